//! Reports over a commit range: JSON Lines, CSV, self-contained HTML, SARIF 2.1.0, in-toto bundle.
//!
//! Over 600 lines as one room: one short section per output format over one `ReportData`.

use crate::error::{Error, Result};
use crate::git;
use crate::record::{record_of_payload, EventKind};
use crate::review::{range_notes, regions_of, review_covers, AiRegion, CheckOptions};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Csv,
    Html,
    Sarif,
    Intoto,
    /// Agent Trace 0.1 records, one per line.
    AgentTrace,
}

impl ReportFormat {
    /// The file name extension a report in this format is saved with.
    pub fn file_extension(self) -> &'static str {
        match self {
            ReportFormat::Json => "jsonl",
            ReportFormat::Csv => "csv",
            ReportFormat::Html => "html",
            ReportFormat::Sarif => "sarif",
            ReportFormat::Intoto => "intoto.jsonl",
            ReportFormat::AgentTrace => "agent-trace.jsonl",
        }
    }
}

impl std::str::FromStr for ReportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "json" | "jsonl" => ReportFormat::Json,
            "csv" => ReportFormat::Csv,
            "html" => ReportFormat::Html,
            "sarif" => ReportFormat::Sarif,
            "intoto" | "in-toto" => ReportFormat::Intoto,
            "agent-trace" => ReportFormat::AgentTrace,
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown report format {s:?}; use json, csv, html, sarif, intoto or agent-trace"
                )))
            }
        })
    }
}

/// One row per commit and file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRow {
    pub commit: String,
    pub author: String,
    pub time: String,
    pub path: String,
    pub models: Vec<String>,
    pub ai: u32,
    pub ai_modified: u32,
    pub human: u32,
    pub reviewed: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    pub ai: u64,
    pub ai_modified: u64,
    pub human: u64,
    pub reviewed_ai: u64,
    pub unreviewed_ai: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelStats {
    #[serde(flatten)]
    pub lines: Tally,
    pub suggested: Option<u64>,
    pub accepted: Option<u64>,
    pub acceptance_rate: Option<f64>,
}

/// An AI-assisted region of a commit whose suggestion reproduced third-party code.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferenceRow {
    pub commit: String,
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub package: String,
    pub version: String,
    pub licence: String,
    /// The third-party source, as found on the machine that made the suggestion.
    pub source_path: String,
    pub source_lines: [u32; 2],
}

/// Everything a report shows.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportData {
    pub range: String,
    pub commits: usize,
    pub attested_commits: usize,
    pub totals: Tally,
    pub by_model: BTreeMap<String, ModelStats>,
    pub by_author: BTreeMap<String, Tally>,
    pub rows: Vec<FileRow>,
    pub regions: Vec<(AiRegion, bool)>,
    /// Notes and imported records that did not read (each names its commit and file).
    pub warnings: Vec<String>,
    /// Regions reproducing third-party code, per commit.
    pub references: Vec<ReferenceRow>,
    /// AI-assisted lines reproducing third-party code, per licence.
    pub reference_lines_by_licence: BTreeMap<String, u64>,
    /// Envelope lines of the range's statements and records (only for the in-toto bundle).
    #[serde(skip)]
    envelopes: Vec<String>,
}

/// Gather the report data for a range. `ledger_file` (optional) adds acceptance rates.
pub fn report_data(
    repo: &Path,
    range: Option<&str>,
    ledger_file: Option<&Path>,
) -> Result<ReportData> {
    gather(repo, range, ledger_file, false)
}

fn gather(
    repo: &Path,
    range: Option<&str>,
    ledger_file: Option<&Path>,
    bundle: bool,
) -> Result<ReportData> {
    // The ledger's acceptance counts are read beside the notes (git inflates those).
    let (rn, counts) = std::thread::scope(|s| {
        let counts = s.spawn(|| {
            ledger_file
                .filter(|p| p.exists())
                .map(acceptance_counts)
                .transpose()
        });
        let rn = range_notes(repo, range);
        (rn, counts.join().expect("ledger reader panicked"))
    });
    let (rn, counts) = (rn?, counts?);
    let infos = git::commit_infos(repo, &rn.commits)?;
    let mut d = ReportData {
        range: range.unwrap_or("HEAD").to_string(),
        commits: rn.commits.len(),
        warnings: rn.warnings.clone(),
        ..Default::default()
    };
    let opts = CheckOptions::default();
    let mut seen_env: HashSet<String> = HashSet::new();
    for c in &rn.commits {
        let Some(note) = rn.notes.get(c) else {
            continue;
        };
        let Some(ac) = note.attribution() else {
            continue;
        };
        d.attested_commits += 1;
        let reviewed = note
            .reviews
            .iter()
            .any(|(e, _, rv)| review_covers(e, rv, c, ac, &opts));
        let author = infos
            .get(c)
            .map(|i| i.author_email.clone())
            .unwrap_or_default();
        let time = infos.get(c).map(|i| i.time.clone()).unwrap_or_default();
        if bundle {
            let own = note
                .ai_commit
                .iter()
                .map(|(env, _, _)| env.to_line())
                .chain(note.reviews.iter().map(|(e, _, _)| e.to_line()))
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            for line in own.chain(note.records.iter().cloned()) {
                if seen_env.insert(line.clone()) {
                    d.envelopes.push(line);
                }
            }
        }
        for f in &ac.files {
            let mut models: Vec<String> = f.regions.iter().map(|r| r.model.clone()).collect();
            models.sort();
            models.dedup();
            d.rows.push(FileRow {
                commit: c.clone(),
                author: author.clone(),
                time: time.clone(),
                path: f.path.clone(),
                models,
                ai: f.ai_lines,
                ai_modified: f.ai_modified_lines,
                human: f.human_lines,
                reviewed,
            });
            let at = d.by_author.entry(author.clone()).or_default();
            at.ai += f.ai_lines as u64;
            at.ai_modified += f.ai_modified_lines as u64;
            at.human += f.human_lines as u64;
            d.totals.ai += f.ai_lines as u64;
            d.totals.ai_modified += f.ai_modified_lines as u64;
            d.totals.human += f.human_lines as u64;
            let ai_here = (f.ai_lines + f.ai_modified_lines) as u64;
            if reviewed {
                d.totals.reviewed_ai += ai_here;
                at.reviewed_ai += ai_here;
            } else {
                d.totals.unreviewed_ai += ai_here;
                at.unreviewed_ai += ai_here;
            }
        }
        let regions = regions_of(c, ac);
        // The suggestions' records in the note name the third-party code they reproduced.
        let mut refs: HashMap<String, Vec<crate::ReferenceFact>> = HashMap::new();
        if !regions.is_empty() {
            for line in &note.records {
                if let Some(r) = crate::attest::record_of_line(line) {
                    if let (Some(id), Some(o)) = (r.record_id.clone(), r.output) {
                        if !o.references.is_empty() {
                            refs.insert(id, o.references);
                        }
                    }
                }
            }
        }
        for r in &regions {
            for f in refs.get(&r.record_id).into_iter().flatten() {
                *d.reference_lines_by_licence
                    .entry(f.licence.clone())
                    .or_default() += (r.end_line - r.start_line + 1) as u64;
                d.references.push(ReferenceRow {
                    commit: c.clone(),
                    path: r.path.clone(),
                    start_line: r.start_line,
                    end_line: r.end_line,
                    package: f.package.clone(),
                    version: f.version.clone(),
                    licence: f.licence.clone(),
                    source_path: f.path.clone(),
                    source_lines: f.lines,
                });
            }
        }
        for r in regions {
            let n = (r.end_line - r.start_line + 1) as u64;
            let m = d.by_model.entry(r.model.clone()).or_default();
            match r.class {
                crate::record::LineClass::Ai => m.lines.ai += n,
                crate::record::LineClass::AiModified => m.lines.ai_modified += n,
                crate::record::LineClass::Human => m.lines.human += n,
            }
            if reviewed {
                m.lines.reviewed_ai += n;
            } else {
                m.lines.unreviewed_ai += n;
            }
            d.regions.push((r, reviewed));
        }
    }
    if let Some(counts) = counts {
        for (m, (s, a)) in counts {
            let st = d.by_model.entry(m).or_default();
            st.suggested = Some(s);
            st.accepted = Some(a);
            st.acceptance_rate = (s > 0).then(|| (a as f64 / s as f64 * 1000.0).round() / 1000.0);
        }
    }
    Ok(d)
}

/// Suggestions and acceptances per model, from a ledger file.
fn acceptance_counts(path: &Path) -> Result<HashMap<String, (u64, u64)>> {
    let mut model_of: HashMap<String, String> = HashMap::new();
    let mut counts: HashMap<String, (u64, u64)> = HashMap::new();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(env) = serde_json::from_slice::<crate::dsse::Envelope>(line) else {
            continue;
        };
        let Ok(payload) = env.payload_bytes() else {
            continue;
        };
        let Ok((_, p)) = record_of_payload(&payload) else {
            continue;
        };
        match p.event {
            Some(EventKind::Suggested) => {
                let m = p
                    .generator
                    .map_or_else(|| "unknown".to_string(), |g| g.model_id);
                counts.entry(m.clone()).or_default().0 += 1;
                model_of.insert(p.record_id.unwrap_or_default(), m);
            }
            Some(EventKind::Accepted) => {
                if let Some(m) = p.refers_to.as_deref().and_then(|r| model_of.get(r)) {
                    counts.entry(m.clone()).or_default().1 += 1;
                }
            }
            _ => {}
        }
    }
    Ok(counts)
}

/// Render a report over `range` in `format`.
pub fn report(
    repo: &Path,
    range: Option<&str>,
    format: ReportFormat,
    ledger_file: Option<&Path>,
) -> Result<String> {
    if format == ReportFormat::AgentTrace {
        return crate::interop::agent_trace(repo, range);
    }
    let d = gather(repo, range, ledger_file, format == ReportFormat::Intoto)?;
    if format != ReportFormat::Json {
        // JSON carries them as `warning` lines; the other formats have no place for them.
        for w in &d.warnings {
            tracing::warn!("{w}");
        }
    }
    Ok(match format {
        ReportFormat::Json => to_jsonl(&d)?,
        ReportFormat::Csv => to_csv(&d),
        ReportFormat::Html => to_html(&d),
        ReportFormat::Sarif => serde_json::to_string_pretty(&to_sarif(&d))? + "\n",
        ReportFormat::Intoto => d.envelopes.iter().map(|l| l.clone() + "\n").collect(),
        ReportFormat::AgentTrace => unreachable!("written above"),
    })
}

fn to_jsonl(d: &ReportData) -> Result<String> {
    let mut out = String::new();
    for r in &d.rows {
        let mut v = serde_json::to_value(r)?;
        v["type"] = "file".into();
        out.push_str(&serde_json::to_string(&v)?);
        out.push('\n');
    }
    for w in &d.warnings {
        out.push_str(&serde_json::to_string(
            &json!({"type": "warning", "message": w}),
        )?);
        out.push('\n');
    }
    for r in &d.references {
        let mut v = serde_json::to_value(r)?;
        v["type"] = "reference".into();
        out.push_str(&serde_json::to_string(&v)?);
        out.push('\n');
    }
    out.push_str(&serde_json::to_string(&json!({
        "type": "summary",
        "referenceLinesByLicence": d.reference_lines_by_licence,
        "range": d.range,
        "commits": d.commits,
        "attestedCommits": d.attested_commits,
        "totals": d.totals,
        "byModel": d.by_model,
        "byAuthor": d.by_author,
    }))?);
    out.push('\n');
    Ok(out)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn to_csv(d: &ReportData) -> String {
    let mut out = String::from("commit,author,time,path,models,ai,ai_modified,human,reviewed\n");
    for r in &d.rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            r.commit,
            csv_field(&r.author),
            r.time,
            csv_field(&r.path),
            csv_field(&r.models.join(";")),
            r.ai,
            r.ai_modified,
            r.human,
            r.reviewed
        ));
    }
    out
}

/// Stable fingerprint of a region: its path and line hashes (not line numbers).
pub fn region_fingerprint(r: &AiRegion) -> String {
    crate::digest::sha256_hex(format!("{}\n{}", r.path, r.line_hashes.join("\n")).as_bytes())
}

#[derive(Serialize)]
struct SarifLog<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [SarifRun<'a>; 1],
}

#[derive(Serialize)]
struct SarifRun<'a> {
    tool: Value,
    results: Vec<SarifResult<'a>>,
    properties: Value,
}

/// One result per unreviewed region: typed rather than a `json!` tree, since a long
/// range has a hundred thousand of them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'static str,
    rule_index: u32,
    level: &'static str,
    message: SarifText,
    locations: [SarifLocation<'a>; 1],
    partial_fingerprints: SarifFingerprints,
    properties: SarifResultProperties<'a>,
}

#[derive(Serialize)]
struct SarifText {
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation<'a> {
    physical_location: SarifPhysicalLocation<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifPhysicalLocation<'a> {
    artifact_location: SarifArtifactLocation<'a>,
    region: SarifRegion,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifArtifactLocation<'a> {
    uri: &'a str,
    uri_base_id: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifRegion {
    start_line: u32,
    end_line: u32,
}

#[derive(Serialize)]
struct SarifFingerprints {
    #[serde(rename = "cairnRegion/v1")]
    cairn_region: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResultProperties<'a> {
    commit: &'a str,
    model: &'a str,
    record_id: &'a str,
    class: &'static str,
}

const SARIF_RULE: &str = "cairn/unreviewed-ai-lines";

fn to_sarif(d: &ReportData) -> SarifLog<'_> {
    let results = d
        .regions
        .iter()
        .filter(|(_, reviewed)| !reviewed)
        .map(|(r, _)| SarifResult {
            rule_id: SARIF_RULE,
            rule_index: 0,
            level: "warning",
            message: SarifText {
                text: format!(
                    "{} lines {}-{} are {} ({}) from commit {} and have not been reviewed",
                    r.path,
                    r.start_line,
                    r.end_line,
                    r.class.as_str(),
                    r.model,
                    &r.commit[..12.min(r.commit.len())]
                ),
            },
            locations: [SarifLocation {
                physical_location: SarifPhysicalLocation {
                    artifact_location: SarifArtifactLocation {
                        uri: &r.path,
                        uri_base_id: "%SRCROOT%",
                    },
                    region: SarifRegion {
                        start_line: r.start_line,
                        end_line: r.end_line,
                    },
                },
            }],
            partial_fingerprints: SarifFingerprints {
                cairn_region: region_fingerprint(r),
            },
            properties: SarifResultProperties {
                commit: &r.commit,
                model: &r.model,
                record_id: &r.record_id,
                class: r.class.as_str(),
            },
        })
        .collect();
    SarifLog {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        version: "2.1.0",
        runs: [SarifRun {
            tool: json!({"driver": {
                "name": "cairn",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/cairn",
                "rules": [{
                    "id": SARIF_RULE,
                    "name": "UnreviewedAiAssistedLines",
                    "shortDescription": {"text": "AI-assisted lines without a recorded human review"},
                    "fullDescription": {"text": "Lines attributed to an AI suggestion by Cairn's provenance ledger that no reviewer has signed off with `cairn review`."},
                    "defaultConfiguration": {"level": "warning"},
                    "help": {"text": "Review the lines, then run `cairn review <range>` to record a signed approval."}
                }]
            }}),
            results,
            properties: json!({"range": d.range, "totals": d.totals}),
        }],
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn bar_chart(title: &str, rows: &[(String, &Tally)]) -> String {
    let max = rows
        .iter()
        .map(|(_, t)| t.ai + t.ai_modified + t.human)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (w, label_w, row_h) = (640.0, 200.0, 26.0);
    let h = 40.0 + row_h * rows.len() as f64;
    let mut s = format!(
        "<svg id=\"chart-{id}\" class=\"chart\" role=\"img\" aria-label=\"{t}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"0\" y=\"16\" class=\"ct\">{t}</text>",
        id = esc(&title.to_lowercase().replace(' ', "-")),
        t = esc(title)
    );
    for (i, (name, t)) in rows.iter().enumerate() {
        let y = 28.0 + row_h * i as f64;
        s.push_str(&format!(
            "<text x=\"0\" y=\"{}\" class=\"cl\">{}</text>",
            y + 15.0,
            esc(name)
        ));
        let mut x = label_w;
        for (v, cls) in [(t.ai, "ai"), (t.ai_modified, "aim"), (t.human, "hu")] {
            let bw = (w - label_w - 10.0) * v as f64 / max;
            if bw > 0.0 {
                s.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{bw:.1}\" height=\"{}\" class=\"{cls}\"><title>{cls}: {v}</title></rect>",
                    row_h - 6.0
                ));
            }
            x += bw;
        }
    }
    s.push_str("</svg>");
    s
}

fn to_html(d: &ReportData) -> String {
    let pct = |n: u64| {
        let all = d.totals.ai + d.totals.ai_modified + d.totals.human;
        if all == 0 {
            0.0
        } else {
            100.0 * n as f64 / all as f64
        }
    };
    let mut charts: Vec<(String, &Tally)> = vec![("all commits".to_string(), &d.totals)];
    charts.extend(d.by_author.iter().take(20).map(|(a, t)| (a.clone(), t)));
    let model_rows: String = d
        .by_model
        .iter()
        .map(|(m, s)| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(m),
                s.lines.ai,
                s.lines.ai_modified,
                s.lines.reviewed_ai,
                s.lines.unreviewed_ai,
                s.acceptance_rate
                    .map_or("n/a".into(), |r| format!("{:.1}%", r * 100.0))
            )
        })
        .collect();
    let region_rows: String = d
        .regions
        .iter()
        .take(5000)
        .map(|(r, reviewed)| {
            format!(
                "<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}-{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.class.as_str(),
                esc(&r.commit[..12.min(r.commit.len())]),
                esc(&r.path),
                r.start_line,
                r.end_line,
                r.class.as_str(),
                esc(&r.model),
                if *reviewed { "reviewed" } else { "<b>unreviewed</b>" }
            )
        })
        .collect();
    format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Cairn provenance report: {range}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}}
h1{{font-size:20px}} table{{border-collapse:collapse;margin:12px 0}} td,th{{border:1px solid #d0d7de;padding:3px 8px;text-align:left}}
.ai{{fill:#8250df;background:#f3eefe}} .aim{{fill:#d29922;background:#fff8e5}} .hu{{fill:#57ab5a}}
.ct{{font-weight:bold;font-size:14px}} .cl{{font-size:12px}} .legend span{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}}
tr.ai-modified{{background:#fff8e5}} tr.ai{{background:#f3eefe}} #filter{{padding:4px;width:260px}}
</style></head><body>
<h1>Cairn provenance report</h1>
<p>Range <code>{range}</code>: {commits} commits, {attested} attested. AI-assisted lines: <b>{ai}</b> ({ai_pct:.1}%), AI-modified: <b>{aim}</b> ({aim_pct:.1}%), human: <b>{hu}</b>. Reviewed AI lines: {rev}, unreviewed: <b>{unrev}</b>.</p>
<div class="legend"><span style="background:#8250df"></span>ai<span style="background:#d29922"></span>ai-modified<span style="background:#57ab5a"></span>human</div>
{chart}
<h2>Models</h2>
<table><tr><th>model</th><th>ai lines</th><th>ai-modified</th><th>reviewed</th><th>unreviewed</th><th>acceptance rate</th></tr>{model_rows}</table>
<h2>AI-assisted regions</h2>
<p><input id="filter" placeholder="filter by path, model or status"> <span id="count"></span></p>
<table id="regions"><tr><th>commit</th><th>file</th><th>lines</th><th>class</th><th>model</th><th>review</th></tr>{region_rows}</table>
<script>
(function () {{
  var input = document.getElementById("filter");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#regions tr")).slice(1);
  function apply() {{
    var q = input.value.toLowerCase(), shown = 0;
    rows.forEach(function (r) {{
      var ok = r.textContent.toLowerCase().indexOf(q) >= 0;
      r.style.display = ok ? "" : "none";
      if (ok) shown++;
    }});
    document.getElementById("count").textContent = shown + " of " + rows.length + " regions";
  }}
  input.addEventListener("input", apply);
  apply();
}})();
</script>
</body></html>
"##,
        range = esc(&d.range),
        commits = d.commits,
        attested = d.attested_commits,
        ai = d.totals.ai,
        aim = d.totals.ai_modified,
        hu = d.totals.human,
        ai_pct = pct(d.totals.ai),
        aim_pct = pct(d.totals.ai_modified),
        rev = d.totals.reviewed_ai,
        unrev = d.totals.unreviewed_ai,
        chart = bar_chart("Lines by origin", &charts),
    )
}
