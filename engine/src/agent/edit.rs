//! An agent's edit checked and placed: names and digests validated, the Agent Trace record
//! summarised, each change located in its file before anything is recorded.

use super::*;

impl AgentEdit {
    /// Fills what the Agent Trace record says and the call left out: the tool, the model
    /// (the first AI contributor's) and, without explicit changes, its AI line ranges.
    pub(super) fn with_trace_defaults(mut self) -> Result<AgentEdit, EngineError> {
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
pub(super) struct Placed {
    pub(super) path: String,
    pub(super) start_line: usize,
    pub(super) lines: usize,
    pub(super) text: String,
}

pub(super) fn place_change(
    rel: &str,
    file: &str,
    change: &AgentChange,
) -> Result<Placed, EngineError> {
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
pub(super) fn name_field(what: &str, value: &str, missing: &str) -> Result<String, EngineError> {
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

pub(super) fn normalize_digest(d: &str) -> Result<String, EngineError> {
    let hex = d.trim().strip_prefix("sha256:").unwrap_or(d.trim());
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(input(
            "the prompt digest must be a SHA-256 in hex (64 digits, optionally `sha256:`-prefixed)",
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

/// The digest of an Agent Trace record (RFC 8785 form) and what the record keeps of it.
pub(super) fn trace_summary(
    trace: &serde_json::Value,
) -> Result<(String, serde_json::Value), EngineError> {
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
pub(super) fn read_text_file(abs: &Path, rel: &str) -> Result<String, EngineError> {
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
