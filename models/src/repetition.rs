//! The loop guard: notices a generation that has started repeating itself — the same
//! line over and over, the same sentence, a run of the same few words — so that it stops
//! with [`crate::StopReason::Repetition`] and the repeated tail removed.
//!
//! Two detectors look at the end of the text after every piece:
//! - *lines*: the same non-blank line (list numbering ignored, indentation kept, so
//!   `end` at three depths is three different lines) three times in a row, five for
//!   lines under six characters;
//! - *prose lines*: a line of prose (five words or more) for the third time within the
//!   last ten lines, whatever the indentation or list marker — a model that nests the
//!   same two steps deeper and deeper; the text is cut before its second time;
//! - *periods*: the tail is a run of one unit repeated — 3 times for units of 20
//!   characters or more (sentences), 4 for 8–19, and at least 80 characters of run for
//!   shorter units (`0, 0, 0, …`). A unit must hold a letter or digit, so `=====` rules
//!   and runs of `}` or spaces never count.
//!
//! Text that may be the start of a repetition is held back (like a possible stop string)
//! and released when it turns out not to be, so the removed copies are normally never
//! streamed. Where a few characters of a copy were already streamed, they are kept, so
//! the result always equals what was streamed.

/// Units longer than this are not looked for.
const MAX_PERIOD: usize = 400;

#[derive(Debug, Default, Clone)]
pub struct LoopGuard {
    text: String,
    released: usize,
    hit: bool,
}

/// Repetitions needed for a unit of `p` bytes.
fn required(p: usize) -> usize {
    if p >= 20 {
        3
    } else if p >= 8 {
        4
    } else {
        80usize.div_ceil(p).max(8)
    }
}

fn has_alnum(b: &[u8]) -> bool {
    // Non-ASCII bytes count: letters of other scripts.
    b.iter().any(|c| c.is_ascii_alphanumeric() || *c >= 0x80)
}

fn is_boundary_byte(c: u8) -> bool {
    c.is_ascii_whitespace() || c.is_ascii_punctuation()
}

/// The line without its list marker (`1.`, `2)`, `-`, `*`) and trailing blanks; the
/// indentation stays.
fn normalise_line(line: &str) -> &str {
    let line = line.trim_end();
    let rest = line.trim_start();
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let after = if digits > 0 && rest[digits..].starts_with(['.', ')']) {
        &rest[digits + 1..]
    } else if rest.starts_with(['-', '*', '+', '•']) {
        &rest[rest.chars().next().map_or(0, char::len_utf8)..]
    } else {
        return line;
    };
    if after.starts_with(' ') {
        after.trim_start()
    } else {
        line
    }
}

/// A line without indentation, list marker or trailing blanks.
fn normalise_prose(line: &str) -> String {
    normalise_line(line).trim_start().to_string()
}

/// The line's key when it is prose: five or more words of letters.
fn prose_key(line: &str) -> Option<String> {
    let key = normalise_prose(line);
    let words = key
        .split_whitespace()
        .filter(|w| {
            let w = w.trim_end_matches([',', '.', ':', ';', '!', '?']);
            w.len() >= 2 && w.chars().all(char::is_alphabetic)
        })
        .count();
    (words >= 5).then_some(key)
}

impl LoopGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a repetition was found (the text no longer grows after that).
    pub fn tripped(&self) -> bool {
        self.hit
    }

    /// The text so far, without the repeated tail once tripped.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Adds text; returns what may be streamed now.
    pub fn push(&mut self, piece: &str) -> String {
        if self.hit || piece.is_empty() {
            return String::new();
        }
        self.text.push_str(piece);
        if let Some(cut) = self.find_repetition() {
            self.hit = true;
            // What was streamed stays: the result must equal the stream.
            let mut cut = cut.max(self.released);
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.truncate(cut);
            return self.release_to(self.text.len());
        }
        let hold = self.hold_from();
        self.release_to(hold)
    }

    /// Releases what was held back (generation ended for another reason).
    pub fn finish(&mut self) -> String {
        self.release_to(self.text.len())
    }

    fn release_to(&mut self, mut end: usize) -> String {
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        if end <= self.released {
            return String::new();
        }
        let out = self.text[self.released..end].to_string();
        self.released = end;
        out
    }

    /// The window of the text the detectors look at (byte offset of its start).
    fn window_start(&self) -> usize {
        self.text.len().saturating_sub(MAX_PERIOD * 4)
    }

    /// Length of the run at the end of the text that repeats with period `p`: how many
    /// trailing bytes equal the byte `p` before them (capped at `cap`).
    fn run(b: &[u8], p: usize, cap: usize) -> usize {
        let n = b.len();
        let mut l = 0;
        while l < cap && l + p < n && b[n - 1 - l] == b[n - 1 - l - p] {
            l += 1;
        }
        l
    }

    /// Where the kept text ends when the tail repeats itself enough.
    fn find_repetition(&self) -> Option<usize> {
        if let Some(cut) = self.repeated_lines() {
            return Some(cut);
        }
        if let Some(cut) = self.repeated_prose() {
            return Some(cut);
        }
        let w = self.window_start();
        let b = &self.text.as_bytes()[w..];
        let n = b.len();
        for p in 1..=MAX_PERIOD.min(n / 2) {
            let need = required(p);
            let l = Self::run(b, p, (need - 1) * p + p);
            if l + p >= need * p && has_alnum(&b[n - p..]) {
                return Some(w + n - l);
            }
        }
        None
    }

    /// Three equal lines in a row (five when short): the kept text ends after the first.
    fn repeated_lines(&self) -> Option<usize> {
        let t = &self.text[self.window_start()..];
        let complete = &t[..t.rfind('\n')? + 1];
        // Lines with their end offsets (in `t`), last first.
        let mut lines = Vec::new();
        let mut end = complete.len();
        for line in complete[..complete.len() - 1].rsplit('\n') {
            lines.push((normalise_line(line), end));
            end = end.saturating_sub(line.len() + 1);
            if lines.len() == 5 {
                break;
            }
        }
        let (last, _) = *lines.first()?;
        if last.trim().is_empty() || !has_alnum(last.as_bytes()) {
            return None;
        }
        let same = lines.iter().take_while(|(l, _)| *l == last).count();
        let need = if last.trim().len() >= 6 { 3 } else { 5 };
        if same >= need {
            // Keep through the first line of the run.
            let (_, first_end) = lines[same - 1];
            return Some(self.window_start() + first_end);
        }
        None
    }

    /// The complete lines of the window as (start, end, prose key), oldest first; the
    /// partial last line is not included.
    fn prose_lines(&self) -> (Vec<(usize, usize, Option<String>)>, usize) {
        let w = self.window_start();
        let t = &self.text[w..];
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(i) = t[start..].find('\n') {
            let end = start + i + 1;
            let line = &t[start..end - 1];
            out.push((w + start, w + end, prose_key(line)));
            start = end;
        }
        (out, w + start)
    }

    /// A prose line for the third time in the last ten lines: cut before its second.
    fn repeated_prose(&self) -> Option<usize> {
        let (lines, _) = self.prose_lines();
        let (_, _, last) = lines.last()?;
        let key = last.as_ref()?;
        let recent = &lines[lines.len().saturating_sub(10)..];
        let hits: Vec<usize> = recent
            .iter()
            .filter(|(_, _, k)| k.as_ref() == Some(key))
            .map(|(s, _, _)| *s)
            .collect();
        (hits.len() >= 3).then(|| hits[1])
    }

    /// Text from this offset on may be the start of a repetition: hold it back.
    fn hold_from(&self) -> usize {
        let w = self.window_start();
        let b = &self.text.as_bytes()[w..];
        let n = b.len();
        let mut hold = n;
        // Prose lines that repeat earlier ones (and a partial line that may), held from
        // the first of the trailing run.
        {
            let (lines, partial_start) = self.prose_lines();
            let seen_before = |i: usize, key: &str| {
                lines[i.saturating_sub(10)..i]
                    .iter()
                    .any(|(_, _, k)| k.as_deref() == Some(key))
            };
            // A partial line that is only a list marker may still become anything.
            let partial = normalise_prose(&self.text[partial_start..]);
            let partial = partial
                .trim_start_matches(|c: char| "-*+•.)".contains(c) || c.is_ascii_digit())
                .trim_start();
            let may_repeat = partial.is_empty()
                || lines[lines.len().saturating_sub(10)..]
                    .iter()
                    .any(|(_, _, k)| k.as_deref().is_some_and(|k| k.starts_with(partial)));
            if may_repeat {
                let mut i = lines.len();
                while i > 0 {
                    match &lines[i - 1].2 {
                        Some(k) if seen_before(i - 1, k) => {
                            hold = hold.min(lines[i - 1].0 - w);
                            i -= 1;
                        }
                        _ => break,
                    }
                }
                hold = hold.min(partial_start - w);
            }
        }
        // The current line, or the last complete line, repeats the line before it.
        let t = &self.text[w..];
        if let Some(nl) = t.rfind('\n') {
            let partial = &t[nl + 1..];
            let prev_start = t[..nl].rfind('\n').map_or(0, |i| i + 1);
            let prev = &t[prev_start..nl];
            if !prev.trim().is_empty() {
                if !partial.is_empty() && prev.starts_with(partial) {
                    hold = hold.min(nl + 1);
                }
                // A run of equal lines ending here is held from its second line.
                let mut start = prev_start;
                let mut cur = prev;
                while start > 0 {
                    let before_end = start - 1;
                    let before_start = t[..before_end].rfind('\n').map_or(0, |i| i + 1);
                    let before = &t[before_start..before_end];
                    if normalise_line(before) != normalise_line(cur) {
                        break;
                    }
                    hold = hold.min(start);
                    cur = before;
                    start = before_start;
                }
            }
        }
        // A periodic run: held from its first word boundary (the copy may start there),
        // or whole once it is long.
        for p in 1..=MAX_PERIOD.min(n.saturating_sub(1)) {
            let l = Self::run(b, p, required(p) * p);
            if l == 0 || !has_alnum(&b[n - p..]) {
                continue;
            }
            let start = n - l;
            if l >= 12 {
                hold = hold.min(start);
            } else if let Some(x) =
                (start.max(1)..n).find(|&x| is_boundary_byte(b[x - 1]) && !is_boundary_byte(b[x]))
            {
                hold = hold.min(x);
            }
        }
        w + hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds pieces; returns (streamed, final text, tripped).
    fn run(pieces: &[&str]) -> (String, String, bool) {
        let mut g = LoopGuard::new();
        let mut streamed = String::new();
        for p in pieces {
            streamed.push_str(&g.push(p));
            if g.tripped() {
                break;
            }
        }
        streamed.push_str(&g.finish());
        (streamed, g.text().to_string(), g.tripped())
    }

    fn words(s: &str) -> Vec<String> {
        s.split_inclusive(' ').map(str::to_string).collect()
    }

    #[test]
    fn the_same_sentence_four_times_stops_after_the_first() {
        let s = "The ledger is verified by `verify_chain` in ledger.rs. ";
        let text = format!("Cairn checks signatures. {}", s.repeat(4));
        let pieces = words(&text);
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (streamed, kept, tripped) = run(&refs);
        assert!(tripped);
        assert_eq!(kept, format!("Cairn checks signatures. {s}"));
        assert_eq!(streamed, kept, "the copies were never streamed");
    }

    #[test]
    fn the_same_line_three_times_keeps_one() {
        let (streamed, kept, tripped) = run(&[
            "x = compute(a)\n",
            "    total += x\n",
            "    total += x\n",
            "    total += x\n",
            "    total += x\n",
        ]);
        assert!(tripped);
        assert_eq!(kept, "x = compute(a)\n    total += x\n");
        assert_eq!(streamed, kept);
    }

    #[test]
    fn numbered_list_of_the_same_item_counts_as_repeated_lines() {
        let (_, kept, tripped) = run(&[
            "Steps:\n",
            "1. Call verify_chain on the ledger.\n",
            "2. Call verify_chain on the ledger.\n",
            "3. Call verify_chain on the ledger.\n",
        ]);
        assert!(tripped);
        assert_eq!(kept, "Steps:\n1. Call verify_chain on the ledger.\n");
    }

    #[test]
    fn the_same_steps_nested_deeper_and_deeper_stop() {
        // What SmolLM2 answered to "How does cairn verify the ledger?".
        let lines = [
            "The function is called \"verify_ledger\" and it verifies the ledger.\n",
            "1. It creates a new ledger entry with the given ledger name.\n",
            "2. It verifies the ledger by performing the following actions:\n",
            "   - It creates a new ledger entry with the given ledger name.\n",
            "   - It verifies the ledger by performing the following actions:\n",
            "    - It creates a new ledger entry with the given ledger name.\n",
            "    - It verifies the ledger by performing the following actions:\n",
        ];
        let pieces: Vec<String> = lines
            .concat()
            .split_inclusive(' ')
            .map(str::to_string)
            .collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (streamed, kept, tripped) = run(&refs);
        assert!(tripped);
        assert_eq!(kept, lines[..3].concat());
        assert_eq!(streamed, kept, "the repeated steps were never streamed");
    }

    #[test]
    fn a_run_of_words_stops() {
        let text = "result: ".to_string() + &"the same ".repeat(20);
        let pieces = words(&text);
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (streamed, kept, tripped) = run(&refs);
        assert!(tripped);
        assert!(kept.starts_with("result: the same "), "{kept:?}");
        assert!(
            kept.len() < "result: ".len() + 3 * "the same ".len(),
            "{kept:?}"
        );
        assert_eq!(streamed, kept);
    }

    #[test]
    fn ordinary_code_and_rules_are_left_alone() {
        let code = "def area(self):\n    return self.w * self.h\n\n\ndef perimeter(self):\n    return 2 * (self.w + self.h)\n\n# ==========================================\n}\n}\n}\n}\n}\n}\n        end\n      end\n    end\n  end\nend\nxs = [0, 0, 0, 0]\nys = [0, 0, 0, 0]\n";
        let pieces: Vec<String> = code.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (streamed, kept, tripped) = run(&refs);
        assert!(!tripped, "{kept:?}");
        assert_eq!(kept, code);
        assert_eq!(streamed, code);
    }

    #[test]
    fn held_text_is_released_when_it_diverges() {
        let mut g = LoopGuard::new();
        let mut out = g.push("The cat sat on the mat. ");
        out.push_str(&g.push("The cat "));
        // "The cat " could be the start of the same sentence again: held back.
        assert_eq!(out, "The cat sat on the mat. ");
        out.push_str(&g.push("ran off."));
        out.push_str(&g.finish());
        assert_eq!(out, "The cat sat on the mat. The cat ran off.");
        assert!(!g.tripped());
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let s = "Überprüfung der Kette läuft über verify_chain. ";
        let text = s.repeat(5);
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (streamed, kept, tripped) = run(&refs);
        assert!(tripped);
        assert_eq!(kept, s);
        assert_eq!(streamed, kept);
    }
}
