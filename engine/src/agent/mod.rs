//! What a coding agent reaches through a front end (the MCP server): repository files read
//! inside the root only, the context a completion at a position would see, the edits an
//! agent made recorded as signed `suggested` + `accepted` records (so `attest` attributes
//! the committed lines to the agent's model, as it does Cairn's own suggestions), blame
//! with each line's generator, and the redaction of line-shaped text bound for an agent.
//! Nothing here writes a file of the repository.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use cairn_provenance::{
    self as prov, digest::sha256_hex, Envelope, Event, EventKind, Generator, InputFacts, Location,
    Mode, Origin, Record,
};
use serde::Serialize;

use crate::{
    redact, BlameEntry, EngineError, ModelOrigin, Position, Provenance, Range, Snippet, Workspace,
};

mod blame;
mod edit;

pub use blame::redact_lines;
use edit::*;

/// Files larger than this are not read for an agent (nor for an edit record).
pub const MAX_AGENT_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Edits one `record_agent_edit` takes at most.
pub const MAX_AGENT_CHANGES: usize = 200;
/// How long recording an agent's edit waits for a reference index still being built.
const AGENT_REFERENCE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Lines one recorded change covers at most.
pub const MAX_AGENT_CHANGE_LINES: usize = 5_000;
/// Bytes of an Agent Trace record kept (as its digest) at most.
pub const MAX_AGENT_TRACE_BYTES: usize = 256 * 1024;

/// Lines of a repository file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileLines {
    /// Repository-relative, `/`-separated.
    pub path: String,
    /// 1-based, inclusive: the lines returned.
    pub start_line: usize,
    pub end_line: usize,
    /// Lines in the whole file.
    pub total_lines: usize,
    pub lines: Vec<String>,
    /// Stopped before the requested end to stay under the byte budget.
    pub truncated: bool,
}

/// An edit an agent made to the repository's files (already written by the agent), as it
/// registers it: who made it and where the lines it wrote are now.
#[derive(Debug, Clone, Default)]
pub struct AgentEdit {
    /// The agent's tool, as it names itself (`claude-code`, `copilot-agent`, `cursor` …).
    pub tool: String,
    pub tool_version: Option<String>,
    /// The model that wrote the lines (`claude-sonnet-4-5`, `gpt-5` …).
    pub model: String,
    /// Where the model ran; agents' models are usually remote.
    pub origin: Option<ModelOrigin>,
    pub changes: Vec<AgentChange>,
    /// SHA-256 (hex, optionally `sha256:`-prefixed) of the prompt behind the edit. Kept only
    /// as a salted commitment, like Cairn's own prompts.
    pub prompt_digest: Option<String>,
    /// An Agent Trace record (agent-trace.dev) the agent wrote for this edit. Its id, version
    /// and digest go into the record; when `changes` is empty its AI ranges are the changes.
    pub trace: Option<serde_json::Value>,
}

/// The lines one change wrote, in the file as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentChange {
    /// Lines `start_line..=end_line` (1-based) of `path` are the agent's.
    Lines {
        path: String,
        start_line: usize,
        end_line: usize,
    },
    /// `text` is the agent's; it starts at `start_line` when given, else where it is found.
    Text {
        path: String,
        text: String,
        start_line: Option<usize>,
    },
}

/// One change as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedChange {
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
    /// The `suggested` record: the id `blame`, `report` and `check` name.
    pub record_id: String,
    /// The `accepted` record that places the text.
    pub accepted_record_id: String,
    /// Third-party code the change reproduces (package, version, licence, lines), also in
    /// its `suggested` record.
    pub references: Vec<crate::ReferenceMatch>,
}

/// What `record_agent_edit` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedAgentEdit {
    pub tool: String,
    pub model: String,
    pub origin: String,
    pub changes: Vec<RecordedChange>,
    /// The Agent Trace record's digest (SHA-256 of its RFC 8785 form), when one was given.
    pub trace_digest: Option<String>,
    pub ledger: Option<PathBuf>,
    /// Whether the changes were checked against the reference index: `checked`, or why
    /// not (`off`, `building`, `failed: …`).
    pub references_checked: String,
}

/// One line of blame with the generator behind its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlameLine {
    pub line: u32,
    pub text: String,
    pub commit: String,
    /// `ai`, `ai-modified`, `human`, or `unattested` (commit has no Cairn note).
    pub class: String,
    pub model: Option<String>,
    pub record_id: Option<String>,
    /// The tool that produced the record: the agent's for agent edits, Cairn's otherwise.
    pub tool: Option<String>,
    /// `local` or `remote`.
    pub origin: Option<String>,
    /// `fim`, `chat` or `agent`.
    pub mode: Option<String>,
}

fn input(msg: impl Into<String>) -> EngineError {
    EngineError::Input(msg.into())
}

impl Workspace {
    /// A repository path confined to the repository: repository-relative (`/`-separated)
    /// and absolute. Refused: `..`, absolute paths elsewhere, symlinks that lead out, and
    /// git's own directory.
    pub fn confined_path(&self, path: &str) -> Result<(String, PathBuf), EngineError> {
        let trimmed = path.trim();
        if trimmed.is_empty() {
            return Err(input("the path is empty; give a repository-relative path"));
        }
        if trimmed.contains('\0') {
            return Err(input("the path holds a NUL byte"));
        }
        let outside = || {
            input(format!(
                "{trimmed} is outside the repository {}; paths must stay inside it (no `..`, no \
                 absolute paths elsewhere, no symlinks that lead out)",
                self.root().display()
            ))
        };
        let rel = self.inside_repo(trimmed).ok_or_else(outside)?;
        let abs = self.checked_abs(&rel).ok_or_else(outside)?;
        let rel = rel.replace('\\', "/");
        let rel = rel.trim_end_matches('/').to_string();
        let in_git = |p: &Path| {
            p.components()
                .any(|c| c == Component::Normal(".git".as_ref()))
        };
        // A symlink inside the repository may still lead into git's directory.
        let resolved = std::fs::canonicalize(&abs)
            .ok()
            .and_then(|c| c.strip_prefix(self.root()).ok().map(Path::to_path_buf));
        if in_git(Path::new(&rel)) || resolved.as_deref().is_some_and(in_git) {
            return Err(input(format!(
                "{trimmed} is inside git's own directory; only the repository's files are served"
            )));
        }
        if rel.is_empty() || rel == "." {
            return Err(input(format!(
                "{trimmed} is the repository itself, not a file"
            )));
        }
        Ok((rel, abs))
    }

    /// Lines `start_line..=end_line` (1-based; `end_line` defaults to the end) of a file of
    /// the repository as it is on disk, at most `max_bytes` of them.
    pub fn read_lines(
        &self,
        path: &str,
        start_line: usize,
        end_line: Option<usize>,
        max_bytes: usize,
    ) -> Result<FileLines, EngineError> {
        let (rel, abs) = self.confined_path(path)?;
        let text = read_text_file(&abs, &rel)?;
        let all: Vec<&str> = prov::digest::split_lines(&text).collect();
        let total = all.len();
        let start = start_line.max(1);
        if start > total.max(1) {
            return Err(input(format!(
                "{rel} has {total} lines; line {start} is past its end"
            )));
        }
        let end = end_line.unwrap_or(total).clamp(start, total.max(start));
        let mut lines = Vec::new();
        let mut used = 0usize;
        let mut truncated = false;
        for l in all.iter().take(end).skip(start - 1) {
            if used + l.len() + 1 > max_bytes && !lines.is_empty() {
                truncated = true;
                break;
            }
            used += l.len() + 1;
            lines.push((*l).to_string());
        }
        let end = if total == 0 {
            0
        } else {
            start + lines.len() - 1
        };
        Ok(FileLines {
            path: rel,
            start_line: start,
            end_line: end,
            total_lines: total,
            lines,
            truncated,
        })
    }

    /// The snippets a completion at `line`:`column` (1-based; the column in characters) of
    /// `path` would be given, as the completion pipeline retrieves them (the editor's text
    /// when the document is open, else the file's).
    pub async fn completion_context(
        &self,
        path: &str,
        line: usize,
        column: usize,
    ) -> Result<(String, Vec<Snippet>), EngineError> {
        let (rel, abs) = self.confined_path(path)?;
        let text = match self.doc_text(&rel) {
            Some(t) => t,
            None => std::sync::Arc::new(read_text_file(&abs, &rel)?),
        };
        let lines = text.split('\n').count();
        if line == 0 || line > lines {
            return Err(input(format!(
                "{rel} has {lines} lines; line {line} is not one of them (lines are 1-based)"
            )));
        }
        let line_text = text.split('\n').nth(line - 1).unwrap_or("");
        let character: usize = line_text
            .chars()
            .take(column.saturating_sub(1))
            .map(char::len_utf16)
            .sum();
        let pos = Position::new((line - 1) as u32, character as u32);
        let offset = cairn_text::offset_at(&text, pos)
            .ok_or_else(|| input(format!("{line}:{column} is past the end of {rel}")))?;
        let snippets = self.context_snippets(&rel, &text, offset).await;
        Ok((rel, snippets))
    }

    /// Records an edit an agent made: per change a `suggested` record whose generator names
    /// the agent's tool and model, then an `accepted` record with the final text and where
    /// it is, so the commit that takes those lines attributes them to that model. Writes
    /// ledger records only, never a file.
    pub async fn record_agent_edit(
        &self,
        edit: AgentEdit,
    ) -> Result<RecordedAgentEdit, EngineError> {
        let edit = edit.with_trace_defaults()?;
        let tool = name_field(
            "tool",
            &edit.tool,
            "name the agent's tool (e.g. `claude-code`)",
        )?;
        let model = name_field("model", &edit.model, "name the model that wrote the lines")?;
        let tool_version = match edit.tool_version.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Some(name_field("tool version", v, "")?),
            _ => None,
        };
        if edit.changes.is_empty() {
            return Err(input(
                "no changes: give the files and line ranges (or the new text) the agent wrote",
            ));
        }
        if edit.changes.len() > MAX_AGENT_CHANGES {
            return Err(input(format!(
                "{} changes in one record; at most {MAX_AGENT_CHANGES}: record them in parts",
                edit.changes.len()
            )));
        }
        let prompt = match &edit.prompt_digest {
            Some(d) => normalize_digest(d)?,
            None => String::new(),
        };
        let (trace_digest, trace_meta) = match &edit.trace {
            Some(t) => {
                let (digest, meta) = trace_summary(t)?;
                (Some(digest), Some(meta))
            }
            None => (None, None),
        };
        let origin = edit.origin.unwrap_or(ModelOrigin::Remote);
        let runtime = match &tool_version {
            Some(v) => format!("{tool} {v}"),
            None => tool.clone(),
        };
        let mut sampling = BTreeMap::new();
        if let Some(meta) = trace_meta {
            sampling.insert("agentTrace".to_string(), meta);
        }
        let generator = Generator {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            model_id: model.clone(),
            origin: if origin == ModelOrigin::Remote {
                Origin::Remote
            } else {
                Origin::Local
            },
            gguf_sha256: None,
            endpoint: None,
            remote_model: None,
            runtime: Some(runtime),
            sampling,
        };

        // Every change is checked against the files before anything is written.
        let mut placed = Vec::new();
        let mut texts: HashMap<String, String> = HashMap::new();
        for change in &edit.changes {
            let path = match change {
                AgentChange::Lines { path, .. } | AgentChange::Text { path, .. } => path,
            };
            let (rel, abs) = self.confined_path(path)?;
            if !texts.contains_key(&rel) {
                let t = read_text_file(&abs, &rel).map_err(|e| {
                    input(format!(
                        "{e}; record an edit after the agent has written it to the file"
                    ))
                })?;
                texts.insert(rel.clone(), t);
            }
            let file = &texts[&rel];
            placed.push(place_change(&rel, file, change)?);
        }

        // Agents' code is the code most likely to be copied: every change is checked
        // against the reference index (a build in progress is waited for, briefly).
        let references_checked = self.references_ready(AGENT_REFERENCE_WAIT).await;
        let refs = self
            .references
            .check_all(
                placed
                    .iter()
                    .map(|p| (p.path.clone(), p.text.clone()))
                    .collect(),
            )
            .await;
        let base_commit = self.base_commit().await;
        let location = |p: &Placed| Location {
            base_commit: base_commit.clone(),
            path: p.path.clone(),
            range: Range::new(
                Position::new((p.start_line - 1) as u32, 0),
                cairn_text::end_after(Position::new((p.start_line - 1) as u32, 0), &p.text),
            ),
        };
        let suggested: Vec<Event> = placed
            .iter()
            .zip(&refs)
            .map(|(p, r)| Event::Suggested {
                generator: generator.clone(),
                input: InputFacts {
                    mode: Mode::Agent,
                    template_digest: String::new(),
                    prompt: prompt.clone(),
                    store_prompt: false,
                    context: Vec::new(),
                    redactions: BTreeMap::new(),
                    budget: None,
                },
                output: p.text.clone(),
                location: location(p),
                // The agent's edit is already on disk; it is not held back, whatever the
                // policy: its record names what it reproduces.
                references: r.iter().map(|m| m.fact()).collect(),
                withheld: false,
            })
            .collect();
        let ids = self.append(suggested).await?;
        let accepted: Vec<Event> = placed
            .iter()
            .zip(&ids)
            .map(|(p, id)| Event::Accepted {
                record_id: *id,
                partial: false,
                final_text: p.text.clone(),
                location: location(p),
            })
            .collect();
        let accepted_ids = self.append(accepted).await?;
        let changes = placed
            .iter()
            .zip(ids.iter().zip(&accepted_ids))
            .zip(refs)
            .map(|((p, (s, a)), references)| RecordedChange {
                path: p.path.clone(),
                start_line: p.start_line,
                end_line: p.start_line + p.lines - 1,
                record_id: s.to_string(),
                accepted_record_id: a.to_string(),
                references,
            })
            .collect();
        Ok(RecordedAgentEdit {
            tool,
            model,
            origin: if origin == ModelOrigin::Remote {
                "remote".into()
            } else {
                "local".into()
            },
            changes,
            trace_digest,
            ledger: self.status().ledger.path,
            references_checked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn redacted_lines_keep_their_count() {
        let lines = s(&[
            "key = load()",
            "-----BEGIN RSA PRIVATE KEY-----",
            "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
            "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
            "-----END RSA PRIVATE KEY-----",
            "print(key)",
        ]);
        let (out, kinds) = redact_lines(&lines, Some("notes.txt"));
        assert_eq!(out.len(), lines.len(), "{out:?}");
        assert_eq!(out[0], "key = load()");
        assert_eq!(out[5], "print(key)");
        assert!(kinds.contains_key("private-key"), "{kinds:?}");
        let all = out.join("\n");
        assert!(!all.contains("MIIEow") && !all.contains("VTLw7"), "{all}");
    }

    #[test]
    fn plain_lines_pass_through() {
        let lines = s(&["fn main() {", "    println!(\"hi\");", "}"]);
        assert_eq!(redact_lines(&lines, Some("main.rs")).0, lines);
        let aws = s(&["let k = \"AKIAIOSFODNN7EXAMPLE\";", "x"]);
        let (out, kinds) = redact_lines(&aws, Some("a.rs"));
        assert_eq!(out.len(), 2);
        assert!(!out[0].contains("AKIAIOSFODNN7EXAMPLE") || kinds.is_empty());
    }

    #[test]
    fn changes_are_placed_in_the_file() {
        let file = "a\nfn f() {\n    g();\n}\n";
        let p = place_change(
            "x.rs",
            file,
            &AgentChange::Text {
                path: "x.rs".into(),
                text: "fn f() {\n    g();\n".into(),
                start_line: None,
            },
        )
        .unwrap();
        assert_eq!((p.start_line, p.lines), (2, 2));
        assert_eq!(p.text, "fn f() {\n    g();");
        let l = place_change(
            "x.rs",
            file,
            &AgentChange::Lines {
                path: "x.rs".into(),
                start_line: 2,
                end_line: 4,
            },
        )
        .unwrap();
        assert_eq!(l.text, "fn f() {\n    g();\n}");
        let wrong = place_change(
            "x.rs",
            file,
            &AgentChange::Text {
                path: "x.rs".into(),
                text: "fn f() {".into(),
                start_line: Some(1),
            },
        );
        assert!(wrong.is_err());
        let trivial = place_change(
            "x.rs",
            file,
            &AgentChange::Lines {
                path: "x.rs".into(),
                start_line: 4,
                end_line: 4,
            },
        );
        assert!(trivial
            .unwrap_err()
            .to_string()
            .contains("nothing to attribute"));
        assert!(place_change(
            "x.rs",
            file,
            &AgentChange::Lines {
                path: "x.rs".into(),
                start_line: 3,
                end_line: 9,
            },
        )
        .is_err());
    }

    #[test]
    fn trace_ranges_become_changes() {
        let trace = serde_json::json!({
            "version": "0.1.0",
            "id": "550e8400-e29b-41d4-a716-446655440000",
            "tool": {"name": "cursor", "version": "2.4.0"},
            "files": [{"path": "src/a.ts", "conversations": [
                {"contributor": {"type": "ai", "model_id": "anthropic/claude-opus-4-5"},
                 "ranges": [{"start_line": 3, "end_line": 5}]},
                {"contributor": {"type": "human"}, "ranges": [{"start_line": 9, "end_line": 9}]}
            ]}]
        });
        let e = AgentEdit {
            trace: Some(trace),
            ..Default::default()
        }
        .with_trace_defaults()
        .unwrap();
        assert_eq!(e.tool, "cursor");
        assert_eq!(e.tool_version.as_deref(), Some("2.4.0"));
        assert_eq!(e.model, "anthropic/claude-opus-4-5");
        assert_eq!(
            e.changes,
            vec![AgentChange::Lines {
                path: "src/a.ts".into(),
                start_line: 3,
                end_line: 5
            }]
        );
        assert!(normalize_digest("sha256:ABCDEF").is_err());
        assert!(name_field("model", "gpt\nSigned-off-by: x", "").is_err());
        assert_eq!(name_field("model", " gpt-5 ", "").unwrap(), "gpt-5");
        let d = "ab".repeat(32);
        assert_eq!(normalize_digest(&format!("sha256:{d}")).unwrap(), d);
    }
}
