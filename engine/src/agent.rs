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

/// Files larger than this are not read for an agent (nor for an edit record).
pub const MAX_AGENT_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Edits one `record_agent_edit` takes at most.
pub const MAX_AGENT_CHANGES: usize = 200;
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
            .map(|p| Event::Suggested {
                generator: generator.clone(),
                input: InputFacts {
                    mode: Mode::Agent,
                    template_digest: String::new(),
                    prompt: prompt.clone(),
                    store_prompt: false,
                    context: Vec::new(),
                    redactions: BTreeMap::new(),
                },
                output: p.text.clone(),
                location: location(p),
                // The agent's edit is already on disk; it is not held back.
                references: Vec::new(),
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
            .map(|(p, (s, a))| RecordedChange {
                path: p.path.clone(),
                start_line: p.start_line,
                end_line: p.start_line + p.lines - 1,
                record_id: s.to_string(),
                accepted_record_id: a.to_string(),
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
        })
    }
}

impl AgentEdit {
    /// Fills what the Agent Trace record says and the call left out: the tool, the model
    /// (the first AI contributor's) and, without explicit changes, its AI line ranges.
    fn with_trace_defaults(mut self) -> Result<AgentEdit, EngineError> {
        let Some(trace) = &self.trace else {
            return Ok(self);
        };
        if !trace.is_object() {
            return Err(input("the Agent Trace record must be a JSON object"));
        }
        if self.tool.trim().is_empty() {
            if let Some(name) = trace.pointer("/tool/name").and_then(|v| v.as_str()) {
                self.tool = name.to_string();
                if self.tool_version.is_none() {
                    self.tool_version = trace
                        .pointer("/tool/version")
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                }
            }
        }
        let mut changes = Vec::new();
        let mut first_model = None;
        for file in trace
            .get("files")
            .and_then(|f| f.as_array())
            .into_iter()
            .flatten()
        {
            let Some(path) = file.get("path").and_then(|p| p.as_str()) else {
                return Err(input("an Agent Trace file has no `path`"));
            };
            for conv in file
                .get("conversations")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
            {
                let kind = conv
                    .pointer("/contributor/type")
                    .and_then(|t| t.as_str())
                    .unwrap_or("unknown");
                if kind != "ai" && kind != "mixed" {
                    continue;
                }
                if first_model.is_none() {
                    first_model = conv
                        .pointer("/contributor/model_id")
                        .and_then(|m| m.as_str())
                        .map(str::to_string);
                }
                for r in conv
                    .get("ranges")
                    .and_then(|r| r.as_array())
                    .into_iter()
                    .flatten()
                {
                    let line = |k: &str| r.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
                    let (Some(start_line), Some(end_line)) = (line("start_line"), line("end_line"))
                    else {
                        return Err(input(format!(
                            "an Agent Trace range of {path} lacks start_line or end_line"
                        )));
                    };
                    changes.push(AgentChange::Lines {
                        path: path.to_string(),
                        start_line,
                        end_line,
                    });
                }
            }
        }
        if self.model.trim().is_empty() {
            if let Some(m) = first_model {
                self.model = m;
            }
        }
        if self.changes.is_empty() {
            self.changes = changes;
        }
        Ok(self)
    }
}

/// A change located in its file.
#[derive(Debug)]
struct Placed {
    path: String,
    start_line: usize,
    lines: usize,
    text: String,
}

fn place_change(rel: &str, file: &str, change: &AgentChange) -> Result<Placed, EngineError> {
    let file_lines: Vec<&str> = prov::digest::split_lines(file).collect();
    let total = file_lines.len();
    let (start, lines): (usize, Vec<&str>) = match change {
        AgentChange::Lines {
            start_line,
            end_line,
            ..
        } => {
            let (s, e) = (*start_line, *end_line);
            if s == 0 || e < s {
                return Err(input(format!(
                    "lines {s}-{e} of {rel} are not a range (1-based, start ≤ end)"
                )));
            }
            if e > total {
                return Err(input(format!(
                    "{rel} has {total} lines; lines {s}-{e} are not all in it"
                )));
            }
            (s, file_lines[s - 1..e].to_vec())
        }
        AgentChange::Text {
            text, start_line, ..
        } => {
            let wanted: Vec<&str> = prov::digest::split_lines(text).collect();
            if wanted.is_empty() {
                return Err(input(format!("the text given for {rel} is empty")));
            }
            let matches_at = |at: usize| {
                at + wanted.len() <= total
                    && wanted
                        .iter()
                        .zip(&file_lines[at..at + wanted.len()])
                        .all(|(w, f)| w.trim_end() == f.trim_end())
            };
            let at = match start_line {
                Some(0) => return Err(input("startLine is 1-based")),
                Some(s) if matches_at(s - 1) => s - 1,
                Some(s) => {
                    return Err(input(format!(
                        "the text given is not at line {s} of {rel} as the file is now; pass the \
                         line it starts at, or leave startLine out to have Cairn find it"
                    )))
                }
                None => (0..total).find(|&at| matches_at(at)).ok_or_else(|| {
                    input(format!(
                        "the text given is not in {rel} as the file is now; record an edit \
                             after writing it"
                    ))
                })?,
            };
            (at + 1, file_lines[at..at + wanted.len()].to_vec())
        }
    };
    if lines.len() > MAX_AGENT_CHANGE_LINES {
        return Err(input(format!(
            "{} lines of {rel} in one change; at most {MAX_AGENT_CHANGE_LINES}",
            lines.len()
        )));
    }
    if lines.iter().all(|l| prov::digest::is_trivial_line(l)) {
        return Err(input(format!(
            "lines {start}-{} of {rel} are blank or brackets only: nothing to attribute",
            start + lines.len() - 1
        )));
    }
    Ok(Placed {
        path: rel.to_string(),
        start_line: start,
        lines: lines.len(),
        text: lines.join("\n"),
    })
}

/// A tool, model or version name as records and commit trailers carry it: one line of at
/// most 200 characters, no control characters (a model name ends up in `Assisted-by:`).
fn name_field(what: &str, value: &str, missing: &str) -> Result<String, EngineError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(input(missing));
    }
    if v.chars().count() > 200 {
        return Err(input(format!(
            "the {what} name is longer than 200 characters"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(input(format!(
            "the {what} name holds a control character (a line break?); give it on one line"
        )));
    }
    Ok(v.to_string())
}

fn normalize_digest(d: &str) -> Result<String, EngineError> {
    let hex = d.trim().strip_prefix("sha256:").unwrap_or(d.trim());
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(input(
            "the prompt digest must be a SHA-256 in hex (64 digits, optionally `sha256:`-prefixed)",
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

/// The digest of an Agent Trace record (RFC 8785 form) and what the record keeps of it.
fn trace_summary(trace: &serde_json::Value) -> Result<(String, serde_json::Value), EngineError> {
    let bytes = prov::jcs::to_vec(trace)
        .map_err(|e| input(format!("the Agent Trace record does not canonicalise: {e}")))?;
    if bytes.len() > MAX_AGENT_TRACE_BYTES {
        return Err(input(format!(
            "the Agent Trace record is {} bytes; at most {MAX_AGENT_TRACE_BYTES}",
            bytes.len()
        )));
    }
    let digest = sha256_hex(&bytes);
    let s = |k: &str| trace.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let meta = serde_json::json!({
        "id": s("id"),
        "version": s("version"),
        "digest": digest,
    });
    Ok((digest, meta))
}

/// A repository file as text: refused when missing, not a file, too large, binary or not UTF-8.
fn read_text_file(abs: &Path, rel: &str) -> Result<String, EngineError> {
    let meta = std::fs::metadata(abs).map_err(|e| input(format!("cannot read {rel}: {e}")))?;
    if !meta.is_file() {
        return Err(input(format!("{rel} is not a file")));
    }
    if meta.len() > MAX_AGENT_FILE_BYTES {
        return Err(input(format!(
            "{rel} is {} bytes; files over {MAX_AGENT_FILE_BYTES} bytes are not served",
            meta.len()
        )));
    }
    let bytes = std::fs::read(abs).map_err(|e| input(format!("cannot read {rel}: {e}")))?;
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Err(input(format!("{rel} is a binary file")));
    }
    String::from_utf8(bytes).map_err(|_| input(format!("{rel} is not UTF-8 text")))
}

/// Redacts lines bound for an agent with the rules of prompts bound for a remote model,
/// keeping one output line per input line: a secret that spans lines (a private key block)
/// leaves its placeholder on its first line and empties the rest. Counts per kind.
pub fn redact_lines(
    lines: &[String],
    path: Option<&str>,
) -> (Vec<String>, BTreeMap<String, usize>) {
    let joined = lines.join("\n");
    let r = redact::redact(&joined, path);
    let kinds: BTreeMap<String, usize> = r.kinds.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    if r.count == 0 {
        return (lines.to_vec(), kinds);
    }
    let out: Vec<&str> = r.text.split('\n').collect();
    if out.len() == lines.len() {
        return (out.into_iter().map(str::to_string).collect(), kinds);
    }
    // Lines outside the secrets come through unchanged: align on them. Every line returned
    // is a line of the redacted text (or empty), so nothing unredacted can slip through.
    let mut result = Vec::with_capacity(lines.len());
    let (mut i, mut k) = (0, 0);
    while i < lines.len() {
        if k >= out.len() {
            result.push(String::new());
            i += 1;
            continue;
        }
        if out[k] == lines[i] {
            result.push(out[k].to_string());
            i += 1;
            k += 1;
            continue;
        }
        // out[k] merges lines i..=j: j is where the next redacted line lines up again.
        let next = out.get(k + 1);
        let mut j = i;
        while j + 1 < lines.len() && next.is_some_and(|n| *n != lines[j + 1]) {
            j += 1;
        }
        if next.is_none() {
            j = lines.len() - 1;
        }
        result.push(out[k].to_string());
        result.extend(std::iter::repeat_n(String::new(), j - i));
        i = j + 1;
        k += 1;
    }
    (result, kinds)
}

impl Provenance {
    /// [`Provenance::blame`] with each line's generator: the tool (the agent's for agent
    /// edits, Cairn's otherwise), origin and mode, read from the records the commit's note
    /// carries (so on any clone), else from this machine's ledger.
    pub fn blame_lines(
        &self,
        file: &Path,
        rev: Option<&str>,
    ) -> Result<Vec<BlameLine>, EngineError> {
        let entries: Vec<BlameEntry> = self.blame(file, rev)?;
        let wanted: HashSet<String> = entries.iter().filter_map(|e| e.record_id.clone()).collect();
        let mut found: HashMap<String, Record> = HashMap::new();
        if !wanted.is_empty() {
            let commits: Vec<String> = {
                let mut c: Vec<String> = entries
                    .iter()
                    .filter(|e| e.record_id.is_some())
                    .map(|e| e.commit.clone())
                    .collect();
                c.sort();
                c.dedup();
                c
            };
            for text in prov::git::read_notes(self.root(), &commits)?.values() {
                for line in prov::Note::parse(text).records {
                    if let Some(r) = suggestion_record(&line, &wanted) {
                        found.insert(r.record_id.clone().unwrap_or_default(), r);
                    }
                }
            }
            if found.len() < wanted.len() {
                if let Some(path) = self.ledger_file().ok().filter(|p| p.exists()) {
                    for e in prov::read_entries(&path).unwrap_or_default() {
                        let r = e.record;
                        if r.event == Some(EventKind::Suggested)
                            && r.record_id.as_ref().is_some_and(|id| wanted.contains(id))
                        {
                            found
                                .entry(r.record_id.clone().unwrap_or_default())
                                .or_insert(r);
                        }
                    }
                }
            }
        }
        Ok(entries
            .into_iter()
            .map(|e| {
                let r = e.record_id.as_ref().and_then(|id| found.get(id));
                let g = r.and_then(|r| r.generator.as_ref());
                let mode = r
                    .and_then(|r| r.input.as_ref())
                    .and_then(|i| i.mode.clone());
                let tool = g.map(|g| {
                    if mode.as_deref() == Some("agent") {
                        g.runtime.clone().unwrap_or_else(|| "agent".into())
                    } else {
                        format!("cairn {}", g.tool_version)
                    }
                });
                BlameLine {
                    line: e.line,
                    text: e.text,
                    commit: e.commit,
                    class: e.class,
                    model: e.model,
                    record_id: e.record_id,
                    tool,
                    origin: g.map(|g| match g.origin {
                        Origin::Local => "local".to_string(),
                        Origin::Remote => "remote".to_string(),
                    }),
                    mode,
                }
            })
            .collect())
    }
}

fn suggestion_record(line: &str, wanted: &HashSet<String>) -> Option<Record> {
    let env: Envelope = serde_json::from_str(line).ok()?;
    let (_, r) = prov::record_of_payload(&env.payload_bytes().ok()?).ok()?;
    (r.event == Some(EventKind::Suggested) && wanted.contains(r.record_id.as_deref()?)).then_some(r)
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
