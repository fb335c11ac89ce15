//! Stop strings and the loop guard over a token stream.
//!
//! Text is released to the consumer only once it can no longer be the start of a stop
//! string, so a stop string never reaches the editor even when it arrives split across
//! several tokens. What passes the stop strings goes through the loop guard
//! ([`crate::repetition`]), which holds back text that may be the start of a repetition
//! and ends the generation when the text repeats itself.

use crate::repetition::LoopGuard;

/// Accumulates generated text and decides what may be streamed.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    text: String,
    released: usize,
    hit: Option<String>,
    guard: Option<LoopGuard>,
}

impl StopMatcher {
    /// Stop strings plus the loop guard.
    pub fn new(stops: &[String]) -> Self {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            guard: Some(LoopGuard::new()),
            ..Default::default()
        }
    }

    /// Stop strings only.
    pub fn without_loop_guard(stops: &[String]) -> Self {
        StopMatcher {
            guard: None,
            ..Self::new(stops)
        }
    }

    /// Whether the loop guard ended the text: it repeated itself, and the repeated tail
    /// is not part of [`StopMatcher::text`].
    pub fn repeated(&self) -> bool {
        self.guard.as_ref().is_some_and(LoopGuard::tripped)
    }

    /// Whether generation should end (a stop string or a repetition).
    pub fn done(&self) -> bool {
        self.hit.is_some() || self.repeated()
    }

    fn guarded(&mut self, out: String) -> String {
        match &mut self.guard {
            Some(g) => g.push(&out),
            None => out,
        }
    }

    /// Adds a piece of generated text. Returns the text that is now safe to stream
    /// (possibly empty). After a stop string is found, `stopped()` returns it and further
    /// pushes are ignored.
    pub fn push(&mut self, piece: &str) -> String {
        if self.done() {
            return String::new();
        }
        let out = self.push_unguarded(piece);
        self.guarded(out)
    }

    fn push_unguarded(&mut self, piece: &str) -> String {
        // Only the new piece plus the longest possible partial stop can contain a match.
        let longest = self.stops.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut search_from = self.text.len().saturating_sub(longest);
        while !self.text.is_char_boundary(search_from) {
            search_from -= 1;
        }
        self.text.push_str(piece);

        let mut first: Option<(usize, &String)> = None;
        for stop in &self.stops {
            if let Some(i) = self.text[search_from..].find(stop.as_str()) {
                let at = search_from + i;
                if first.is_none_or(|(f, _)| at < f) {
                    first = Some((at, stop));
                }
            }
        }
        if let Some((at, stop)) = first {
            self.hit = Some(stop.clone());
            self.text.truncate(at);
            return self.release_to(self.text.len());
        }

        // Hold back a suffix that is a prefix of some stop string.
        let mut hold = 0;
        for stop in &self.stops {
            for k in (1..stop.len()).rev() {
                if k <= self.text.len()
                    && stop.is_char_boundary(k)
                    && self.text.is_char_boundary(self.text.len() - k)
                    && self.text.ends_with(&stop[..k])
                {
                    hold = hold.max(k);
                    break;
                }
            }
        }
        let safe = self.text.len() - hold;
        self.release_to(safe)
    }

    fn release_to(&mut self, end: usize) -> String {
        if end <= self.released {
            return String::new();
        }
        let out = self.text[self.released..end].to_string();
        self.released = end;
        out
    }

    /// Releases whatever was held back (call when generation ends).
    pub fn finish(&mut self) -> String {
        if self.repeated() {
            return String::new();
        }
        let out = self.release_to(self.text.len());
        let mut out = self.guarded(out);
        if let Some(g) = &mut self.guard {
            out.push_str(&g.finish());
        }
        out
    }

    pub fn stopped(&self) -> Option<&str> {
        self.hit.as_deref()
    }

    /// The full text, stop string and repeated tail excluded (complete after
    /// [`StopMatcher::finish`]).
    pub fn text(&self) -> &str {
        match &self.guard {
            Some(g) if g.tripped() || self.released == self.text.len() => g.text(),
            _ => &self.text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, String, Option<String>) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = Vec::new();
        for p in pieces {
            out.push(m.push(p));
        }
        out.push(m.finish());
        (out, m.text().to_string(), m.stopped().map(str::to_string))
    }

    #[test]
    fn stop_split_across_tokens_is_never_streamed() {
        let (out, text, hit) = run(&["\n\n"], &["foo", "\n", "\nbar"]);
        assert_eq!(out, vec!["foo", "", "", ""]);
        assert_eq!(text, "foo");
        assert_eq!(hit.as_deref(), Some("\n\n"));
    }

    #[test]
    fn held_back_text_is_released_when_it_cannot_be_a_stop() {
        let (out, text, hit) = run(&["```"], &["a`", "`b", "c"]);
        assert_eq!(out.concat(), "a``bc");
        assert_eq!(out[0], "a");
        assert_eq!(text, "a``bc");
        assert_eq!(hit, None);
    }

    #[test]
    fn earliest_stop_wins_and_multibyte_text_is_safe() {
        let (out, text, hit) = run(&["end", "é;"], &["caf", "é; end"]);
        assert_eq!(out.concat(), "caf");
        assert_eq!(text, "caf");
        assert_eq!(hit.as_deref(), Some("é;"));
    }

    #[test]
    fn a_repetition_ends_the_text_like_a_stop() {
        let stops = vec!["\n\n".to_string()];
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in [
            "a = 1\n",
            "b = a + 1\n",
            "b = a + 1\n",
            "b = a + 1\n",
            "c = 3\n",
        ] {
            out.push_str(&m.push(p));
        }
        out.push_str(&m.finish());
        assert!(m.repeated());
        assert_eq!(m.stopped(), None);
        assert_eq!(m.text(), "a = 1\nb = a + 1\n");
        assert_eq!(out, m.text());
    }

    #[test]
    fn no_stops_streams_everything() {
        let (out, text, _) = run(&[], &["a", "ü", "c"]);
        assert_eq!(out, vec!["a", "ü", "c", ""]);
        assert_eq!(text, "aüc");
    }
}
