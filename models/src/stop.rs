//! Stop strings over a token stream.
//!
//! Text is released to the consumer only once it can no longer be the start of a stop
//! string, so a stop string never reaches the editor even when it arrives split across
//! several tokens.

/// Accumulates generated text and decides what may be streamed.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    text: String,
    released: usize,
    hit: Option<String>,
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            ..Default::default()
        }
    }

    /// Adds a piece of generated text. Returns the text that is now safe to stream
    /// (possibly empty). After a stop string is found, `stopped()` returns it and further
    /// pushes are ignored.
    pub fn push(&mut self, piece: &str) -> String {
        if self.hit.is_some() {
            return String::new();
        }
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

    /// Releases whatever was held back (call when generation ends without a stop).
    pub fn finish(&mut self) -> String {
        self.release_to(self.text.len())
    }

    pub fn stopped(&self) -> Option<&str> {
        self.hit.as_deref()
    }

    /// The full text so far, stop string excluded.
    pub fn text(&self) -> &str {
        &self.text
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
    fn no_stops_streams_everything() {
        let (out, text, _) = run(&[], &["a", "ü", "c"]);
        assert_eq!(out, vec!["a", "ü", "c", ""]);
        assert_eq!(text, "aüc");
    }
}
