//! Provenance subcommands: init, attest, blame, review, check, report, verify.
//! Thin: arguments in, [`Provenance`] calls, text out.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use cairn_engine::{CheckOptions, Provenance, ReportFormat, ReviewerIdentity, NOTES_REF};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ProvenanceCommands {
    /// Set a repository up for provenance: hooks (post-commit, post-rewrite,
    /// prepare-commit-msg) and notes.rewriteRef so notes follow amend and rebase.
    Init {
        /// The cairn binary the hooks call (default: this one).
        #[arg(long)]
        cairn_bin: Option<PathBuf>,
    },
    /// Attribute a commit's AI-assisted lines into git notes (refs/notes/cairn).
    Attest {
        /// Commit to attest.
        #[arg(default_value = "HEAD")]
        commit: String,
        /// Read `old new` pairs from stdin (the post-rewrite hook) and re-attest the new commits.
        #[arg(long)]
        rewritten: bool,
        /// Add `Assisted-by:` trailers to this commit message file when staged lines are
        /// AI-assisted (the prepare-commit-msg hook). Never adds Signed-off-by.
        #[arg(long, value_name = "MSG_FILE")]
        trailer_for: Option<PathBuf>,
        /// Recover attribution by line content from other commits' notes: after a
        /// squash-merge made elsewhere, or a cherry-pick without -x. Searches every
        /// attested commit that is not an ancestor of COMMIT, or those of --from.
        #[arg(long)]
        recover: bool,
        /// With --recover: only the notes of this range's commits (e.g. `main..origin/feature`).
        #[arg(long, value_name = "RANGE", requires = "recover")]
        from: Option<String>,
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        ledger: LedgerArgs,
    },
    /// Per line of FILE: human, ai or ai-modified, with model and record id.
    Blame {
        file: PathBuf,
        /// Revision to blame (default HEAD).
        #[arg(long)]
        rev: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show the AI-assisted lines of RANGE; with --approve, record your signed review.
    Review {
        /// Commit range, e.g. `main..HEAD`.
        range: String,
        /// Record the approval (signed with your reviewer key, not the device key).
        #[arg(long)]
        approve: bool,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
    /// CI gate: list AI-assisted regions of RANGE; with --require-review, exit 1 if any is unreviewed.
    Check {
        /// Commit range (default: everything reachable from HEAD).
        range: Option<String>,
        #[arg(long)]
        require_review: bool,
        /// Only reviews by these key ids count (repeatable).
        #[arg(long = "trusted-reviewer", value_name = "KEYID")]
        trusted_reviewers: Vec<String>,
        /// Fail when AI-assisted lines reproduce third-party code under any of these SPDX
        /// licence ids (comma-separated, repeatable; `unknown` counts as an id).
        #[arg(long = "deny-licence", value_name = "LIST", value_delimiter = ',')]
        deny_licences: Vec<String>,
        #[arg(long)]
        json: bool,
        /// Also write a SLSA verification summary (in-toto statement, DSSE envelope signed
        /// by this device's key) of the verdict to this file.
        #[arg(long, value_name = "FILE")]
        vsa: Option<PathBuf>,
    },
    /// Report AI-assisted, ai-modified and human lines per commit, file, author and model.
    Report {
        range: Option<String>,
        /// json (JSON Lines), csv, html, sarif, intoto or agent-trace (Agent Trace 0.1 records).
        #[arg(long, default_value = "json")]
        format: String,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        ledger: LedgerArgs,
    },
    /// Check signatures, the ledger chain, note checkpoints and subjects; exit 1 on any failure.
    Verify {
        range: Option<String>,
        /// Move a torn (never acknowledged) last ledger line aside so appends work again.
        #[arg(long)]
        quarantine_torn_tail: bool,
        /// Also print each embedded record's signer and whether it is trusted.
        #[arg(long)]
        records: bool,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        ledger: LedgerArgs,
    },
}

#[derive(clap::Args, Clone, Debug, Default)]
pub struct LedgerArgs {
    /// Ledger directory for this repository (default: the user data dir, keyed by repository root).
    #[arg(long, env = "CAIRN_LEDGER_DIR")]
    ledger_dir: Option<PathBuf>,
}

impl LedgerArgs {
    /// The repository (from `CAIRN_REPO` or the current directory) with this ledger.
    fn provenance(&self) -> Result<Provenance> {
        let start = match std::env::var_os("CAIRN_REPO") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_dir().context("reading the current directory")?,
        };
        Ok(Provenance::discover_with_ledger_dir(
            &start,
            self.ledger_dir.clone(),
        )?)
    }
}

fn git_config(repo: &std::path::Path, key: &str) -> Option<String> {
    std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["config", "--get", key])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

impl ProvenanceCommands {
    fn ledger(&self) -> LedgerArgs {
        match self {
            ProvenanceCommands::Attest { ledger, .. }
            | ProvenanceCommands::Report { ledger, .. }
            | ProvenanceCommands::Verify { ledger, .. } => ledger.clone(),
            _ => LedgerArgs::default(),
        }
    }

    pub fn run(self) -> Result<ExitCode> {
        let prov = self.ledger().provenance()?;
        let repo = prov.root().to_path_buf();
        match self {
            ProvenanceCommands::Init { cairn_bin } => {
                let bin = match cairn_bin {
                    Some(b) => b,
                    None => std::env::current_exe().context("locating the cairn binary")?,
                };
                let out = prov.init(&bin.to_string_lossy())?;
                for h in &out.hooks {
                    println!("installed {}", h.display());
                }
                for h in &out.skipped {
                    println!(
                        "left alone {} (not Cairn's; call `{} attest` from it yourself)",
                        h.display(),
                        bin.display()
                    );
                }
                println!("notes.rewriteRef = {NOTES_REF}");
                println!(
                    "share attribution and the ledger's checkpoints ({NOTES_REF}, {NOTES_REF}-checkpoints) with: \
                     git push origin 'refs/notes/*'  /  git fetch origin 'refs/notes/*:refs/notes/*'"
                );
                Ok(ExitCode::SUCCESS)
            }
            ProvenanceCommands::Attest {
                commit,
                rewritten,
                trailer_for,
                recover,
                from,
                quiet,
                ledger: _,
            } => {
                if let Some(msg) = trailer_for {
                    prov.add_trailers(&msg)?;
                    return Ok(ExitCode::SUCCESS);
                }
                let outcomes = if rewritten {
                    let mut pairs = Vec::new();
                    for line in std::io::stdin().lock().lines() {
                        let line = line.context("reading old/new pairs from stdin")?;
                        let mut it = line.split_whitespace();
                        if let (Some(o), Some(n)) = (it.next(), it.next()) {
                            pairs.push((o.to_string(), n.to_string()));
                        }
                    }
                    prov.attest_rewritten(&pairs)?
                } else if recover {
                    vec![prov.attest_recovering(&commit, from.as_deref())?]
                } else {
                    vec![prov.attest(&commit)?]
                };
                if !quiet {
                    for o in &outcomes {
                        println!(
                            "{}: {} ai, {} ai-modified, {} human lines{}",
                            &o.commit[..12],
                            o.ai_lines,
                            o.ai_modified_lines,
                            o.human_lines,
                            if o.models.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", o.models.join(", "))
                            }
                        );
                    }
                }
                for o in &outcomes {
                    let from = &o.statement.recovered_from;
                    if !from.is_empty() {
                        let short: Vec<&str> = from.iter().map(|c| &c[..12.min(c.len())]).collect();
                        println!(
                            "{}: recovered attribution from the notes of {}",
                            &o.commit[..12],
                            short.join(", ")
                        );
                    } else if recover {
                        println!(
                            "{}: nothing to recover (no other commit's note has these lines)",
                            &o.commit[..12]
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ProvenanceCommands::Blame { file, rev, json } => {
                let lines = prov.blame(&file, rev.as_deref())?;
                let mut out = std::io::stdout().lock();
                for b in lines {
                    if json {
                        writeln!(out, "{}", serde_json::to_string(&b)?)?;
                    } else {
                        let model = match (&b.model, &b.tool) {
                            (Some(m), Some(t)) => format!("{m} ({t}, unsigned)"),
                            (Some(m), None) => m.clone(),
                            _ => String::new(),
                        };
                        writeln!(
                            out,
                            "{} {:>5} {:<11} {:<24} {}",
                            &b.commit[..8],
                            b.line,
                            b.class,
                            model,
                            b.text
                        )?;
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            ProvenanceCommands::Review {
                range,
                approve,
                name,
                email,
            } => {
                let regions = prov.ai_regions(Some(&range))?;
                if regions.is_empty() {
                    println!("no AI-assisted lines in {range}");
                    return Ok(ExitCode::SUCCESS);
                }
                for r in &regions {
                    println!(
                        "{} {}:{}-{} {} ({})",
                        &r.commit[..12],
                        r.path,
                        r.start_line,
                        r.end_line,
                        r.class.as_str(),
                        r.model
                    );
                }
                if !approve {
                    println!("re-run with --approve to record your signed review");
                    return Ok(ExitCode::SUCCESS);
                }
                let who = ReviewerIdentity {
                    name: name
                        .or_else(|| git_config(&repo, "user.name"))
                        .context("no reviewer name: pass --name or set git user.name")?,
                    email: email
                        .or_else(|| git_config(&repo, "user.email"))
                        .context("no reviewer email: pass --email or set git user.email")?,
                };
                let out = prov.review(&range, &who)?;
                println!(
                    "recorded review of {} commits by {} (key {}), diff digest {}",
                    out.review.commits.len(),
                    who.email,
                    &out.review.reviewer.keyid[..16],
                    out.review.diff_digest
                );
                println!("share it with: git push origin {NOTES_REF}");
                Ok(ExitCode::SUCCESS)
            }
            ProvenanceCommands::Check {
                range,
                require_review,
                trusted_reviewers,
                deny_licences,
                json,
                vsa,
            } => {
                let opts = CheckOptions {
                    trusted_reviewers,
                    deny_licences: deny_licences
                        .into_iter()
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty())
                        .collect(),
                };
                let out = match &vsa {
                    Some(path) => {
                        let (out, line) =
                            prov.check_vsa(range.as_deref(), require_review, &opts)?;
                        std::fs::write(path, line + "\n")
                            .with_context(|| format!("writing {}", path.display()))?;
                        eprintln!("wrote the verification summary to {}", path.display());
                        out
                    }
                    None => prov.check(range.as_deref(), require_review, &opts)?,
                };
                if json {
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    for r in &out.unreviewed {
                        println!(
                            "unreviewed: {}:{}-{} {} model {} commit {}",
                            r.path,
                            r.start_line,
                            r.end_line,
                            r.class.as_str(),
                            r.model,
                            &r.commit[..12]
                        );
                    }
                    for d in &out.denied {
                        println!(
                            "denied licence: {}:{}-{} reproduces {} {} ({}) {}:{}-{} commit {}",
                            d.region.path,
                            d.region.start_line,
                            d.region.end_line,
                            d.package,
                            d.version,
                            d.licence,
                            d.path,
                            d.lines[0],
                            d.lines[1],
                            &d.region.commit[..12.min(d.region.commit.len())]
                        );
                    }
                    for w in &out.warnings {
                        eprintln!("warning: {w}");
                    }
                    for (c, by) in &out.reverted {
                        println!(
                            "reverted: AI-assisted commit {} was reverted by {} (no review needed)",
                            &c[..12],
                            &by[..12.min(by.len())]
                        );
                    }
                    println!("{}", out.summary_line());
                }
                Ok(if out.passed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
            ProvenanceCommands::Report {
                range,
                format,
                output,
                ledger: _,
            } => {
                let format: ReportFormat = format.parse()?;
                let text = prov.report(range.as_deref(), format)?;
                match output {
                    Some(p) => std::fs::write(&p, text)
                        .with_context(|| format!("writing {}", p.display()))?,
                    None => std::io::stdout().lock().write_all(text.as_bytes())?,
                }
                Ok(ExitCode::SUCCESS)
            }
            ProvenanceCommands::Verify {
                range,
                quarantine_torn_tail,
                records,
                json,
                ledger: _,
            } => {
                if quarantine_torn_tail {
                    match prov.quarantine_torn_tail()? {
                        Some(side) => println!("moved the torn last line to {}", side.display()),
                        None => println!("{} has no torn last line", prov.ledger_file()?.display()),
                    }
                }
                let rep = prov.verify(range.as_deref())?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rep)?);
                    return Ok(if rep.ok() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    });
                }
                for c in &rep.checked {
                    println!("checked {c}");
                }
                let trust = |t: Option<bool>| match t {
                    Some(true) => "trusted",
                    Some(false) => "NOT TRUSTED",
                    None => "trust unknown",
                };
                for s in &rep.signers {
                    println!(
                        "signer {} ({}{}): {} attestations, {} records, {}\n  {}",
                        &s.keyid[..16],
                        s.principal.as_deref().unwrap_or("not listed"),
                        if s.this_device { ", this device" } else { "" },
                        s.statements,
                        s.records,
                        trust(s.trusted),
                        s.ssh_key
                    );
                }
                if records {
                    for r in &rep.records {
                        println!(
                            "record {} on {}: signed by {} ({}), {}",
                            r.record.as_deref().unwrap_or("?"),
                            &r.commit[..12.min(r.commit.len())],
                            &r.keyid[..16],
                            r.principal.as_deref().unwrap_or("not listed"),
                            trust(r.trusted)
                        );
                    }
                }
                for w in &rep.warnings {
                    println!("warning: {w}");
                }
                for f in &rep.failures {
                    println!("FAIL {f}");
                }
                if rep.ok() {
                    println!("verified: ok");
                    Ok(ExitCode::SUCCESS)
                } else {
                    bail!("verification failed: {} problems", rep.failures.len())
                }
            }
        }
    }
}
