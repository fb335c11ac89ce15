//! Progress of long model operations (downloads, assembling a model from chunk wheels),
//! reported through a callback so that each front end draws it its own way.
//! [`stderr_reporter`] is the ready-made one: an `indicatif` bar on a terminal, a plain
//! line every tenth of the way otherwise (logs, CI).

use std::io::IsTerminal;

/// One step of a long operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// `download`, `assemble` or `verify`.
    pub stage: &'static str,
    /// What is being worked on (a model name, a file).
    pub what: String,
    /// Bytes done so far.
    pub done: u64,
    /// Bytes in all, when known.
    pub total: Option<u64>,
}

/// Receives progress reports; called often (every megabyte or so), so keep it cheap.
pub type ProgressFn = Box<dyn FnMut(&Progress) + Send>;

/// Reports nothing.
pub fn silent() -> ProgressFn {
    Box::new(|_| {})
}

/// Draws progress on stderr: a bar when stderr is a terminal, else a line at each tenth.
pub fn stderr_reporter() -> ProgressFn {
    if std::io::stderr().is_terminal() {
        let mut bar: Option<(indicatif::ProgressBar, &'static str, String)> = None;
        Box::new(move |p: &Progress| {
            let same = bar
                .as_ref()
                .is_some_and(|(_, stage, what)| *stage == p.stage && *what == p.what);
            if !same {
                if let Some((b, _, _)) = bar.take() {
                    b.finish();
                }
                let b = indicatif::ProgressBar::new(p.total.unwrap_or(0));
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_message(format!("{} {}", p.stage, p.what));
                bar = Some((b, p.stage, p.what.clone()));
            }
            if let Some((b, _, _)) = &bar {
                if let Some(t) = p.total {
                    b.set_length(t);
                }
                b.set_position(p.done);
                if p.total.is_some_and(|t| p.done >= t) {
                    b.finish();
                }
            }
        })
    } else {
        let mut last: Option<(&'static str, String, u64)> = None;
        Box::new(move |p: &Progress| {
            let tenth = match p.total {
                Some(t) if t > 0 => (p.done.min(t) * 10 / t).min(10),
                _ => p.done >> 26, // every 64 MiB when the size is unknown
            };
            let changed = last.as_ref().is_none_or(|(stage, what, step)| {
                *stage != p.stage || *what != p.what || *step != tenth
            });
            if changed {
                match p.total {
                    Some(t) => eprintln!(
                        "{} {}: {:.1} of {:.1} MB ({}%)",
                        p.stage,
                        p.what,
                        p.done as f64 / 1e6,
                        t as f64 / 1e6,
                        tenth * 10
                    ),
                    None => eprintln!("{} {}: {:.1} MB", p.stage, p.what, p.done as f64 / 1e6),
                }
                last = Some((p.stage, p.what.clone(), tenth));
            }
        })
    }
}
