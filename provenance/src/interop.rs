//! The other tools' formats: Agent Trace 0.1 (`cursor/agent-trace`) out and in, and
//! git-ai's authorship logs (`refs/notes/ai`, Git AI Standard v3.0.0) in.
//!
//! Imported attribution is unsigned: its regions carry the tool's name and
//! `unsigned: true`, and `blame`, `report` and `check` use them beside Cairn's own, so a
//! team that mixes assistants has one gate. Whatever does not read (a note that is not
//! the format, a range past the end of the file, a note on a commit that does not exist)
//! becomes a warning naming the commit and file; nothing is dropped without one.

use crate::digest::line_hash;
use crate::error::Result;
use crate::git;
use crate::notes::{AiCommit, FileAttribution, KeyInfo, Region};
use crate::record::LineClass;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// git-ai's notes ref.
pub const GIT_AI_NOTES_REF: &str = "refs/notes/ai";
/// Where Agent Trace's reference implementation keeps its records (JSON Lines), relative
/// to the repository root; `*.json` files in the same folder are read too.
pub const AGENT_TRACE_DIR: &str = ".agent-trace";
/// The `version` Cairn writes: the published schema's pattern is `MAJOR.MINOR`.
pub const AGENT_TRACE_VERSION: &str = "0.1";

/// Who wrote one imported line: (class, tool, model, conversation id).
type LineSource = (LineClass, String, String, String);

/// Attribution another tool recorded for one commit.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// Per file, per 1-based line.
    lines: BTreeMap<String, BTreeMap<u32, LineSource>>,
}

/// Imported attribution of the commits asked for, and what could not be read.
#[derive(Debug, Clone, Default)]
pub struct Imports {
    pub by_commit: HashMap<String, Imported>,
    pub warnings: Vec<String>,
}

impl Imports {
    pub fn is_empty(&self) -> bool {
        self.by_commit.is_empty()
    }
}

fn add(
    imp: &mut Imported,
    path: &str,
    lines: impl IntoIterator<Item = u32>,
    what: (LineClass, &str, &str, &str),
) {
    let file = imp.lines.entry(path.to_string()).or_default();
    for l in lines {
        file.insert(
            l,
            (
                what.0,
                what.1.to_string(),
                what.2.to_string(),
                what.3.to_string(),
            ),
        );
    }
}

/// Parse `1-4,9,12-13` into line numbers; `None` when it does not read.
fn parse_ranges(spec: &str) -> Option<Vec<(u32, u32)>> {
    spec.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => part.parse().ok().map(|n| (n, n)),
        })
        .map(|r| r.filter(|(a, b)| *a >= 1 && a <= b))
        .collect()
}

/// Parse one git-ai authorship log (Git AI Standard v3.0.0).
fn parse_git_ai(text: &str, commit: &str, imp: &mut Imported, warnings: &mut Vec<String>) {
    let place = format!("git-ai note ({GIT_AI_NOTES_REF}) on {}", short(commit));
    let Some((att, meta)) = text.split_once("\n---\n").or_else(|| {
        text.strip_suffix("\n---")
            .map(|a| (a, ""))
            .or_else(|| text.strip_prefix("---\n").map(|m| ("", m)))
    }) else {
        warnings.push(format!(
            "{place}: no `---` line between the attestation and metadata sections; not read"
        ));
        return;
    };
    let meta: Value = match serde_json::from_str(meta.trim()) {
        Ok(v) => v,
        Err(e) => {
            warnings.push(format!(
                "{place}: the metadata section is not JSON ({e}); lines kept as AI from an unknown model"
            ));
            Value::Null
        }
    };
    let mut path: Option<String> = None;
    for (i, line) in att.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(entry) = line.strip_prefix("  ") {
            let Some(p) = &path else {
                warnings.push(format!(
                    "{place}, line {}: an entry before any file path",
                    i + 1
                ));
                continue;
            };
            let (hash, ranges) = entry.split_once(' ').unwrap_or((entry, ""));
            let Some(ranges) = parse_ranges(ranges.trim()) else {
                warnings.push(format!(
                    "{place}, {p}: line ranges {:?} do not read; entry skipped",
                    ranges.trim()
                ));
                continue;
            };
            let prompt = &meta["prompts"][hash];
            if meta.is_object() && prompt.is_null() {
                warnings.push(format!(
                    "{place}, {p}: session {hash} is not among the metadata's prompts"
                ));
            }
            let agent = &prompt["agent_id"];
            let tool = agent["tool"].as_str().unwrap_or("unknown");
            let model = agent["model"].as_str().unwrap_or("unknown");
            let lines = ranges.into_iter().flat_map(|(a, b)| a..=b);
            add(
                imp,
                p,
                lines,
                (
                    LineClass::Ai,
                    &format!("git-ai/{tool}"),
                    model,
                    &format!("git-ai:{hash}"),
                ),
            );
        } else {
            let p = line.trim_end();
            path = Some(
                p.strip_prefix('"')
                    .and_then(|p| p.strip_suffix('"'))
                    .unwrap_or(p)
                    .to_string(),
            );
        }
    }
}

/// Parse one Agent Trace record, adding it to the commit its `vcs.revision` names.
fn parse_agent_trace(
    repo: &Path,
    record: &Value,
    source: &str,
    imports: &mut Imports,
    wanted: &HashSet<&str>,
) {
    let id = record["id"].as_str().unwrap_or("?");
    let place = format!("Agent Trace record {id} in {source}");
    if record["vcs"]["type"].as_str() != Some("git") {
        imports.warnings.push(format!(
            "{place}: no git revision (vcs {}); not read",
            record["vcs"]
        ));
        return;
    }
    let rev = record["vcs"]["revision"].as_str().unwrap_or("");
    let Ok(commit) = git::resolve(repo, rev) else {
        imports.warnings.push(format!(
            "{place}: revision {rev:?} is not a commit in this repository; not read"
        ));
        return;
    };
    if !wanted.contains(commit.as_str()) {
        return;
    }
    let tool = record["tool"]["name"].as_str().unwrap_or("agent-trace");
    let imp = imports.by_commit.entry(commit.clone()).or_default();
    for f in record["files"].as_array().into_iter().flatten() {
        let Some(path) = f["path"].as_str() else {
            imports
                .warnings
                .push(format!("{place}: a file entry without a path"));
            continue;
        };
        for conv in f["conversations"].as_array().into_iter().flatten() {
            let url = conv["url"].as_str().unwrap_or(id);
            for r in conv["ranges"].as_array().into_iter().flatten() {
                let who = if r["contributor"].is_object() {
                    &r["contributor"]
                } else {
                    &conv["contributor"]
                };
                let class = match who["type"].as_str() {
                    Some("ai") => LineClass::Ai,
                    Some("mixed") => LineClass::AiModified,
                    _ => continue, // human or unknown: nothing to attribute
                };
                let model = who["model_id"].as_str().unwrap_or("unknown");
                let (Some(a), Some(b)) = (r["start_line"].as_u64(), r["end_line"].as_u64()) else {
                    imports.warnings.push(format!(
                        "{place}, {path}: a range without start_line/end_line; skipped"
                    ));
                    continue;
                };
                if a < 1 || b < a {
                    imports.warnings.push(format!(
                        "{place}, {path}: range {a}-{b} is not a line range; skipped"
                    ));
                    continue;
                }
                add(
                    imp,
                    path,
                    a as u32..=b as u32,
                    (
                        class,
                        &format!("agent-trace/{tool}"),
                        model,
                        &format!("agent-trace:{url}"),
                    ),
                );
            }
        }
    }
}

fn short(c: &str) -> &str {
    &c[..12.min(c.len())]
}

/// Read the other tools' attribution for `commits`: git-ai notes and Agent Trace files.
pub fn import(repo: &Path, commits: &[String]) -> Result<Imports> {
    let mut imports = Imports::default();
    let wanted: HashSet<&str> = commits.iter().map(String::as_str).collect();

    // git-ai: one note per commit under refs/notes/ai.
    if let Ok(list) = git::git(repo, &["notes", "--ref", GIT_AI_NOTES_REF, "list"]) {
        let pairs: Vec<(&str, &str)> = list.lines().filter_map(|l| l.split_once(' ')).collect();
        let objects: Vec<String> = pairs
            .iter()
            .map(|(_, o)| format!("{o}^{{commit}}"))
            .collect();
        let exists = git::objects_exist(repo, &objects)?;
        let mut blobs = Vec::new();
        let mut on = Vec::new();
        for ((blob, obj), ok) in pairs.iter().zip(exists) {
            if !ok {
                imports.warnings.push(format!(
                    "git-ai note ({GIT_AI_NOTES_REF}) {blob} is on {obj}, which is not a commit in \
                     this repository (rewritten or not fetched?); not read"
                ));
            } else if wanted.contains(obj) {
                blobs.push(blob.to_string());
                on.push(obj.to_string());
            }
        }
        for (c, text) in on.iter().zip(git::read_blobs(repo, &blobs)?) {
            let text = String::from_utf8_lossy(&text.unwrap_or_default()).into_owned();
            let mut imp = imports.by_commit.remove(c).unwrap_or_default();
            parse_git_ai(&text, c, &mut imp, &mut imports.warnings);
            imports.by_commit.insert(c.clone(), imp);
        }
    }

    // Agent Trace: records in .agent-trace/ of the work tree.
    let dir = repo.join(AGENT_TRACE_DIR);
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut files: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
            .collect();
        files.sort();
        for p in files {
            let source = p
                .strip_prefix(repo)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            let text = match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) => {
                    imports.warnings.push(format!("{source}: cannot read: {e}"));
                    continue;
                }
            };
            let records: Vec<(String, std::result::Result<Value, serde_json::Error>)> =
                if p.extension().is_some_and(|e| e == "jsonl") {
                    text.lines()
                        .enumerate()
                        .filter(|(_, l)| !l.trim().is_empty())
                        .map(|(i, l)| (format!("{source}:{}", i + 1), serde_json::from_str(l)))
                        .collect()
                } else {
                    vec![(source.clone(), serde_json::from_str(&text))]
                };
            for (at, r) in records {
                match r {
                    Ok(v) => parse_agent_trace(repo, &v, &at, &mut imports, &wanted),
                    Err(e) => imports
                        .warnings
                        .push(format!("{at}: not an Agent Trace record (not JSON: {e})")),
                }
            }
        }
    }
    Ok(imports)
}

/// The imported attribution of `commit` as an (unsigned) `AiCommit`, with line hashes
/// from the commit's files. Lines past a file's end are dropped with a warning.
pub fn to_ai_commit(
    repo: &Path,
    commit: &str,
    imp: &Imported,
    warnings: &mut Vec<String>,
) -> Result<AiCommit> {
    let specs: Vec<String> = imp.lines.keys().map(|p| format!("{commit}:{p}")).collect();
    let contents = git::read_blobs(repo, &specs)?;
    let mut files = Vec::new();
    for ((path, lines), content) in imp.lines.iter().zip(contents) {
        let Some(content) = content else {
            warnings.push(format!(
                "imported attribution for {path} in commit {}: the commit has no such file; skipped",
                short(commit)
            ));
            continue;
        };
        let text = String::from_utf8_lossy(&content);
        let file_lines: Vec<&str> = crate::digest::split_lines(&text).collect();
        let n = file_lines.len() as u32;
        if let Some((&last, _)) = lines.iter().next_back().filter(|(l, _)| **l > n) {
            warnings.push(format!(
                "imported attribution for {path} in commit {} reaches line {last} but the file has \
                 {n} lines; the lines past its end are dropped",
                short(commit)
            ));
        }
        let mut regions: Vec<Region> = Vec::new();
        let (mut ai, mut aim) = (0, 0);
        for (&l, (class, tool, model, conv)) in lines.range(1..=n) {
            let h = line_hash(file_lines[l as usize - 1]);
            match class {
                LineClass::Ai => ai += 1,
                _ => aim += 1,
            }
            match regions.last_mut() {
                Some(r)
                    if r.end_line + 1 == l
                        && r.class == *class
                        && &r.record_id == conv
                        && r.tool.as_deref() == Some(tool) =>
                {
                    r.end_line = l;
                    r.line_hashes.push(h);
                }
                _ => regions.push(Region {
                    start_line: l,
                    end_line: l,
                    class: *class,
                    record_id: conv.clone(),
                    model: model.clone(),
                    line_hashes: vec![h],
                    tool: Some(tool.clone()),
                    unsigned: true,
                }),
            }
        }
        files.push(FileAttribution {
            path: path.clone(),
            blob: None,
            added_lines: ai + aim,
            ai_lines: ai,
            ai_modified_lines: aim,
            human_lines: 0,
            regions,
        });
    }
    Ok(AiCommit {
        commit: commit.to_string(),
        patch_id: git::patch_id(repo, commit).unwrap_or_default(),
        time: String::new(),
        signer: KeyInfo {
            keyid: String::new(),
            public_key: String::new(),
        },
        checkpoint: None,
        rewritten_from: None,
        files,
        record_digests: vec![],
        record_signers: vec![],
        recovered_from: vec![],
    })
}

/// Cairn's attribution of a commit with imported regions added for lines Cairn's own
/// regions do not cover (Cairn's signed attribution wins where both speak).
pub fn merge(cairn: Option<&AiCommit>, imported: AiCommit) -> AiCommit {
    let Some(base) = cairn else {
        return imported;
    };
    let mut out = base.clone();
    for f in imported.files {
        let existing = out.files.iter_mut().find(|x| x.path == f.path);
        match existing {
            None => out.files.push(f),
            Some(x) => {
                let covered: HashSet<u32> = x
                    .regions
                    .iter()
                    .flat_map(|r| r.start_line..=r.end_line)
                    .collect();
                for r in f.regions {
                    if (r.start_line..=r.end_line).any(|l| covered.contains(&l)) {
                        continue;
                    }
                    let n = r.end_line - r.start_line + 1;
                    match r.class {
                        LineClass::Ai => x.ai_lines += n,
                        _ => x.ai_modified_lines += n,
                    }
                    x.human_lines = x.human_lines.saturating_sub(n);
                    x.regions.push(r);
                }
                x.regions.sort_by_key(|r| r.start_line);
            }
        }
    }
    out
}

/// Agent Trace 0.1 records (JSON Lines, one per attested commit with AI-assisted lines)
/// for a range: each region a range under a conversation named by its record id,
/// `ai` for AI lines and `mixed` for AI lines a person edited.
pub fn agent_trace(repo: &Path, range: Option<&str>) -> Result<String> {
    let rn = crate::review::range_notes(repo, range)?;
    for w in &rn.warnings {
        tracing::warn!("{w}");
    }
    let infos = git::commit_infos(repo, &rn.commits)?;
    let mut out = String::new();
    for c in &rn.commits {
        let Some(ac) = rn.notes.get(c).and_then(|n| n.attribution()) else {
            continue;
        };
        if !ac.has_ai() {
            continue;
        }
        let time = infos
            .get(c)
            .and_then(|i| {
                time::OffsetDateTime::parse(&i.time, &time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map(|t| t.to_offset(time::UtcOffset::UTC))
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(crate::ledger::now_rfc3339);
        let mut files = Vec::new();
        for f in ac.files.iter().filter(|f| !f.regions.is_empty()) {
            // One conversation per (record, class, model): the contributor is per conversation.
            let mut convs: BTreeMap<(String, &str, String), Vec<Value>> = BTreeMap::new();
            for r in &f.regions {
                let kind = match r.class {
                    LineClass::Ai => "ai",
                    LineClass::AiModified => "mixed",
                    LineClass::Human => continue,
                };
                convs
                    .entry((r.record_id.clone(), kind, r.model.clone()))
                    .or_default()
                    .push(json!({
                        "start_line": r.start_line,
                        "end_line": r.end_line,
                        "content_hash": format!("cairn-line-hash:{}", r.line_hashes.join(".")),
                    }));
            }
            let conversations: Vec<Value> = convs
                .into_iter()
                .map(|((rid, kind, model), ranges)| {
                    let url = if rid.contains(':') {
                        rid
                    } else {
                        format!("urn:uuid:{rid}")
                    };
                    json!({
                        "url": url,
                        "contributor": {"type": kind, "model_id": model},
                        "ranges": ranges,
                    })
                })
                .collect();
            files.push(json!({"path": f.path, "conversations": conversations}));
        }
        let reviewed = rn.notes.get(c).is_some_and(|n| {
            n.reviews.iter().any(|(e, _, rv)| {
                crate::review::review_covers(e, rv, c, ac, &crate::review::CheckOptions::default())
            })
        });
        let record = json!({
            "version": AGENT_TRACE_VERSION,
            "id": trace_id(c),
            "timestamp": time,
            "vcs": {"type": "git", "revision": c},
            "tool": {"name": "cairn", "version": env!("CARGO_PKG_VERSION")},
            "files": files,
            "metadata": {
                "dev.cairn": {
                    "notesRef": git::NOTES_REF,
                    "signer": ac.signer.keyid,
                    "reviewed": reviewed,
                    "unsignedImports": ac.files.iter().flat_map(|f| &f.regions).any(|r| r.unsigned),
                }
            },
        });
        out.push_str(&serde_json::to_string(&record)?);
        out.push('\n');
    }
    Ok(out)
}

/// A stable UUID (version 8, RFC 9562) for a commit's trace record.
fn trace_id(commit: &str) -> String {
    let d = crate::digest::sha256(format!("cairn-agent-trace:{commit}").as_bytes());
    let mut b: [u8; 16] = d[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}
