//! `cairn models pull <repo> <file>`: a GGUF from a model hub over HTTP, in the Hugging
//! Face layout (`{endpoint}/{repo}/resolve/{revision}/{file}`; endpoint from
//! `CAIRN_HF_ENDPOINT`, else `HF_ENDPOINT`, else `https://huggingface.co`).
//!
//! The download goes to `<file>.part` beside its destination and resumes from there
//! (`Range`) after a cut connection or an interrupted run. The expected sha256 is the
//! caller's, else the hub's `X-Linked-Etag` (or `ETag`) when it is a sha256, as
//! Hugging Face sends for LFS files. Only a file that starts with the GGUF magic and has
//! that digest is renamed into place; an HTML page, an error status or a wrong digest is
//! a one-line error and leaves no model behind.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::progress::{Progress, ProgressFn};
use crate::types::CancellationToken;
use crate::ModelError;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The hub endpoint: `CAIRN_HF_ENDPOINT`, else `HF_ENDPOINT`, else Hugging Face.
pub fn endpoint() -> String {
    ["CAIRN_HF_ENDPOINT", "HF_ENDPOINT"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// A file in a hub repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    /// `owner/name`, e.g. `Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF`.
    pub repo: String,
    /// Path in the repository, e.g. `qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`.
    pub file: String,
    /// Branch, tag or commit (default `main`).
    pub revision: String,
}

impl HubFile {
    pub fn new(repo: impl Into<String>, file: impl Into<String>) -> Self {
        HubFile {
            repo: repo.into(),
            file: file.into(),
            revision: "main".into(),
        }
    }

    pub fn url(&self, endpoint: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            endpoint.trim_end_matches('/'),
            self.repo.trim_matches('/'),
            self.revision,
            self.file.trim_start_matches('/')
        )
    }

    /// How the registry records where the model came from.
    pub fn source(&self) -> String {
        format!("hf:{}/{}@{}", self.repo, self.file, self.revision)
    }
}

pub struct PullOptions {
    /// Default: [`endpoint()`].
    pub endpoint: Option<String>,
    /// The digest the file must have; default: the hub's sha256 ETag, if it sends one.
    pub sha256: Option<String>,
    /// The folder the file goes to (usually the registry's).
    pub dest_dir: PathBuf,
    /// Bearer token for gated or private repositories (`HF_TOKEN`).
    pub token: Option<String>,
    /// Attempts after a cut connection, each resuming where the last one stopped.
    pub retries: u32,
    pub connect_timeout: Duration,
    pub progress: ProgressFn,
}

impl PullOptions {
    pub fn new(dest_dir: impl Into<PathBuf>) -> Self {
        PullOptions {
            endpoint: None,
            sha256: None,
            dest_dir: dest_dir.into(),
            token: std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()),
            retries: 3,
            connect_timeout: Duration::from_secs(15),
            progress: crate::progress::silent(),
        }
    }
}

/// A downloaded, checked model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub url: String,
    /// Whether the digest was checked against one given or sent by the hub (`false`:
    /// neither had one; the digest is only recorded).
    pub verified: bool,
    /// Bytes that were already there from an earlier, interrupted download.
    pub resumed_from: u64,
    /// `hf:repo/file@revision`
    pub source: String,
}

/// What the `.part` file belongs to, so a resume never mixes two versions of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PartMeta {
    url: String,
    expected_sha256: Option<String>,
}

fn dl_err(url: &str, message: impl Into<String>) -> ModelError {
    ModelError::Download {
        url: url.to_string(),
        message: message.into(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A header value that is a sha256 (64 hex digits, quotes and `W/` ignored).
fn sha256_etag(v: &str) -> Option<String> {
    let v = v.trim().trim_start_matches("W/").trim_matches('"');
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

enum Attempt {
    Done,
    /// The connection broke; resume.
    Cut(String),
}

/// Downloads `file` into `opts.dest_dir`, resuming a `.part` left by an earlier run.
pub async fn pull(
    file: &HubFile,
    opts: &mut PullOptions,
    cancel: &CancellationToken,
) -> Result<Pulled, ModelError> {
    let endpoint = opts.endpoint.clone().unwrap_or_else(endpoint);
    let url = file.url(&endpoint);
    let name = Path::new(&file.file)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            dl_err(
                &url,
                "the file name is empty: name the .gguf file in the repository",
            )
        })?
        .to_string();
    std::fs::create_dir_all(&opts.dest_dir).map_err(io_err(&opts.dest_dir))?;
    let dest = opts.dest_dir.join(&name);
    let part = opts.dest_dir.join(format!("{name}.part"));
    let meta_path = opts.dest_dir.join(format!("{name}.part.json"));
    let wanted = opts.sha256.as_deref().map(str::to_ascii_lowercase);

    // A finished file with the wanted digest is not downloaded again.
    if let (Some(w), true) = (&wanted, dest.exists()) {
        if crate::registry::sha256_file(&dest)? == *w {
            let size = std::fs::metadata(&dest).map_err(io_err(&dest))?.len();
            return Ok(Pulled {
                path: dest,
                sha256: w.clone(),
                size,
                url,
                verified: true,
                resumed_from: size,
                source: file.source(),
            });
        }
    }
    // A part from another URL or digest is not ours to continue.
    let meta = PartMeta {
        url: url.clone(),
        expected_sha256: wanted.clone(),
    };
    let old_meta: Option<PartMeta> = std::fs::read(&meta_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if old_meta.as_ref() != Some(&meta) {
        let _ = std::fs::remove_file(&part);
    }
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap_or_default())
        .map_err(io_err(&meta_path))?;
    let resumed_from = std::fs::metadata(&part).map_or(0, |m| m.len());

    let client = reqwest::Client::builder()
        .connect_timeout(opts.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| dl_err(&url, format!("cannot build an HTTP client: {e}")))?;

    let mut hub_sha: Option<String> = None;
    let mut total: Option<u64> = None;
    let mut attempt = 0;
    let outcome: Result<(), ModelError> = async {
        loop {
            match fetch_once(&client, &url, &part, opts, cancel, &mut hub_sha, &mut total).await? {
                Attempt::Done => return Ok(()),
                Attempt::Cut(why) => {
                    attempt += 1;
                    let have = std::fs::metadata(&part).map_or(0, |m| m.len());
                    if attempt > opts.retries {
                        return Err(dl_err(
                            &url,
                            format!(
                                "the download broke off after {:.1} MB ({why}): run the same command again to resume",
                                have as f64 / 1e6
                            ),
                        ));
                    }
                    tracing::info!(%url, attempt, have, "download cut ({why}); resuming");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
            }
        }
    }
    .await;
    if let Err(e) = outcome {
        // Nothing to resume: leave nothing behind.
        if !part.exists() {
            let _ = std::fs::remove_file(&meta_path);
        }
        return Err(e);
    }

    // Check what arrived before it becomes a model.
    let size = std::fs::metadata(&part).map_err(io_err(&part))?.len();
    if let Some(t) = total {
        if size != t {
            return Err(dl_err(
                &url,
                format!("got {size} bytes of {t}: run the same command again to resume"),
            ));
        }
    }
    let discard = |message: String| {
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_file(&meta_path);
        dl_err(&url, message)
    };
    let mut magic = [0u8; 4];
    let n = std::fs::File::open(&part)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(io_err(&part))?;
    if n < 4 || &magic != b"GGUF" {
        return Err(discard(format!(
            "the file is not a GGUF model (it starts with \"{}\"): name a .gguf file of the repository",
            String::from_utf8_lossy(&magic[..n]).escape_debug()
        )));
    }
    (opts.progress)(&Progress {
        stage: "verify",
        what: name.clone(),
        done: 0,
        total: Some(size),
    });
    let actual = crate::registry::sha256_file(&part)?;
    let expected = wanted.or(hub_sha);
    if let Some(e) = &expected {
        if *e != actual {
            return Err(discard(format!(
                "the download has sha256 {actual}, not {e}: it was deleted; run the command again (and check --sha256 if you gave one)"
            )));
        }
    }
    std::fs::rename(&part, &dest).map_err(io_err(&dest))?;
    let _ = std::fs::remove_file(&meta_path);
    Ok(Pulled {
        path: dest,
        sha256: actual,
        size,
        url,
        verified: expected.is_some(),
        resumed_from,
        source: file.source(),
    })
}

/// One request (following redirects by hand, so that the hub's own headers are seen),
/// appending to `part` from where it ends.
#[allow(clippy::too_many_arguments)]
async fn fetch_once(
    client: &reqwest::Client,
    url: &str,
    part: &Path,
    opts: &mut PullOptions,
    cancel: &CancellationToken,
    hub_sha: &mut Option<String>,
    total: &mut Option<u64>,
) -> Result<Attempt, ModelError> {
    let have = std::fs::metadata(part).map_or(0, |m| m.len());
    let mut at = url.to_string();
    let mut hops = 0;
    let resp = loop {
        let mut rb = client.get(&at);
        if have > 0 {
            rb = rb.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        if let Some(t) = &opts.token {
            // Only to the hub itself, never to a CDN it redirects to.
            if hops == 0 {
                rb = rb.bearer_auth(t);
            }
        }
        let sent = tokio::select! {
            _ = cancel.cancelled() => return Err(ModelError::Cancelled),
            r = rb.send() => r,
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                return Err(dl_err(
                    url,
                    format!(
                        "cannot connect ({}): check the network, or set HF_ENDPOINT to a reachable mirror",
                        root_cause(&e)
                    ),
                ))
            }
            Err(e) => return Ok(Attempt::Cut(root_cause(&e))),
        };
        let h = resp.headers();
        if hub_sha.is_none() {
            *hub_sha = h
                .get("x-linked-etag")
                .and_then(|v| v.to_str().ok())
                .and_then(sha256_etag)
                .or_else(|| {
                    h.get(reqwest::header::ETAG)
                        .and_then(|v| v.to_str().ok())
                        .and_then(sha256_etag)
                });
        }
        if total.is_none() {
            *total = h
                .get("x-linked-size")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
        }
        if resp.status().is_redirection() {
            let loc = h
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| dl_err(url, "a redirect without a Location"))?;
            let next = reqwest::Url::parse(&at)
                .and_then(|base| base.join(loc))
                .map_err(|e| dl_err(url, format!("a redirect to a bad URL `{loc}`: {e}")))?;
            at = next.to_string();
            hops += 1;
            if hops > 10 {
                return Err(dl_err(url, "more than 10 redirects"));
            }
            continue;
        }
        break resp;
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    match status {
        200 | 206 => {}
        416 if have > 0 => {
            // Nothing past what we have: complete if the size agrees, else start over.
            let complete = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit('/').next())
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n == have);
            if complete {
                total.get_or_insert(have);
                return Ok(Attempt::Done);
            }
            let _ = std::fs::remove_file(part);
            return Ok(Attempt::Cut("the server refused the resume; starting over".into()));
        }
        404 => {
            return Err(dl_err(
                url,
                "HTTP 404: no such repository, revision or file; check the names (they are case-sensitive) and --revision",
            ))
        }
        401 | 403 => {
            return Err(dl_err(
                url,
                format!("HTTP {status}: the repository is gated or private; accept its terms on the hub and set HF_TOKEN"),
            ))
        }
        429 | 500..=599 => return Ok(Attempt::Cut(format!("HTTP {status}"))),
        _ => return Err(dl_err(url, format!("HTTP {status}: the hub refused the download"))),
    }
    if content_type.contains("text/html") {
        return Err(dl_err(
            url,
            "the server answered with an HTML page, not a model file: check the repository and file names and HF_ENDPOINT",
        ));
    }
    // 200 to a ranged request: the server starts from the beginning.
    let start = if status == 206 { have } else { 0 };
    if status == 206 {
        let from = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split('-').next())
            .and_then(|n| n.trim().parse::<u64>().ok());
        if from != Some(have) {
            let _ = std::fs::remove_file(part);
            return Ok(Attempt::Cut(
                "the server resumed from another offset".into(),
            ));
        }
    }
    if total.is_none() {
        *total = resp.content_length().map(|n| n + start);
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(io_err(part))?;
    f.set_len(start).map_err(io_err(part))?;
    f.seek(std::io::SeekFrom::Start(start))
        .map_err(io_err(part))?;
    let what = part
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let mut done = start;
    let mut stream = resp.bytes_stream();
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => {
                let _ = f.sync_all();
                return Err(ModelError::Cancelled);
            }
            n = stream.next() => n,
        };
        match next {
            None => break,
            Some(Ok(bytes)) => {
                f.write_all(&bytes).map_err(io_err(part))?;
                done += bytes.len() as u64;
                (opts.progress)(&Progress {
                    stage: "download",
                    what: what.clone(),
                    done,
                    total: *total,
                });
            }
            Some(Err(e)) => {
                let _ = f.sync_all();
                return Ok(Attempt::Cut(root_cause(&e)));
            }
        }
    }
    f.sync_all().map_err(io_err(part))?;
    if total.is_some_and(|t| done < t) {
        return Ok(Attempt::Cut(format!(
            "the connection closed at byte {done}"
        )));
    }
    Ok(Attempt::Done)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_endpoints_and_etags() {
        let f = HubFile::new("Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", "q4.gguf");
        assert_eq!(
            f.url("https://hub.example/"),
            "https://hub.example/Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/resolve/main/q4.gguf"
        );
        assert_eq!(
            f.source(),
            "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/q4.gguf@main"
        );
        let sha = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32";
        assert_eq!(sha256_etag(&format!("\"{sha}\"")).as_deref(), Some(sha));
        assert_eq!(
            sha256_etag(&format!("W/\"{}\"", sha.to_uppercase())).as_deref(),
            Some(sha)
        );
        assert_eq!(
            sha256_etag("\"da39a3ee5e6b4b0d3255bfef95601890afd80709\""),
            None
        );
    }
}
