//! Accepted code that reproduces third-party code, marked where it stands: one
//! Information diagnostic per reference over the accepted lines that remain as accepted
//! (package, version, licence, the source file and lines), published after an accept and
//! after every change to a document that has or had such marks, cleared when the lines
//! are gone.

use std::collections::HashSet;

use super::*;

/// The diagnostics' `source`.
pub(crate) const SOURCE: &str = "cairn";
/// The diagnostics' `code`.
pub(crate) const CODE: &str = "third-party-code";

/// Documents this session has published reference marks for (so an empty list clears
/// them once).
#[derive(Default)]
pub(crate) struct Published(Mutex<HashSet<Uri>>);

impl CairnServer {
    /// Publishes the reference marks of the document at `uri` (or clears those it had).
    pub(crate) async fn publish_references(&self, uri: &Uri) {
        let Ok(ws) = self.ws() else { return };
        let marks = ws.accepted_references(&path_of(uri));
        {
            let Ok(mut published) = self.published_references.0.lock() else {
                return;
            };
            if marks.is_empty() && !published.remove(uri) {
                return;
            }
            if !marks.is_empty() {
                published.insert(uri.clone());
            }
        }
        let diagnostics = marks
            .iter()
            .flat_map(|m| {
                m.references
                    .iter()
                    .map(move |r| diagnostic(lsp_range(m.range), &m.record_id, r))
            })
            .collect();
        self.client
            .publish_diagnostics(uri.clone(), diagnostics, None)
            .await;
    }

    /// The document was closed: its marks go with it.
    pub(crate) async fn clear_references(&self, uri: &Uri) {
        let had = self
            .published_references
            .0
            .lock()
            .map(|mut p| p.remove(uri))
            .unwrap_or(false);
        if had {
            self.client
                .publish_diagnostics(uri.clone(), Vec::new(), None)
                .await;
        }
    }
}

/// `Reproduces trimmer 2.1.0 (BSD-3-Clause): node_modules/trimmer/index.js lines 3-13,
/// 236 characters`, with the source lines as related information (editors link it).
fn diagnostic(range: Range, record_id: &str, r: &cairn_engine::ReferenceMatch) -> Diagnostic {
    let kind = if r.verbatim {
        "Reproduces"
    } else {
        "Reproduces, with names changed,"
    };
    let message = format!(
        "{kind} {}: {} lines {}-{}, {} characters",
        r.label(),
        r.path,
        r.lines[0],
        r.lines[1],
        r.matched_chars
    );
    let related = Uri::from_file_path(&r.path).map(|uri| {
        vec![DiagnosticRelatedInformation {
            location: Location {
                uri,
                range: Range::new(
                    Position::new(r.lines[0].saturating_sub(1), 0),
                    Position::new(r.lines[1], 0),
                ),
            },
            message: format!("{} {} ({})", r.package, r.version, r.licence),
        }]
    });
    Diagnostic {
        range,
        severity: Some(DiagnosticSeverity::INFORMATION),
        code: Some(NumberOrString::String(CODE.into())),
        source: Some(SOURCE.into()),
        message,
        related_information: related,
        data: Some(json!({
            "recordId": record_id,
            "package": r.package,
            "version": r.version,
            "licence": r.licence,
            "path": r.path,
            "lines": r.lines,
            "matchedChars": r.matched_chars,
            "verbatim": r.verbatim,
        })),
        ..Default::default()
    }
}
