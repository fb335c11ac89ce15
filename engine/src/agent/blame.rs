//! What an agent reads back: blame with each line's generator, and lines redacted one for
//! one before they leave.

use super::*;

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

pub(super) fn suggestion_record(line: &str, wanted: &HashSet<String>) -> Option<Record> {
    let env: Envelope = serde_json::from_str(line).ok()?;
    let (_, r) = prov::record_of_payload(&env.payload_bytes().ok()?).ok()?;
    (r.event == Some(EventKind::Suggested) && wanted.contains(r.record_id.as_deref()?)).then_some(r)
}
