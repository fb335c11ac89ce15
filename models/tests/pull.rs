//! `models pull` against a hub on loopback (a hand-rolled HTTP/1.1 server in the Hugging
//! Face layout: `resolve/` redirects to a CDN path with `X-Linked-Etag` = the sha256):
//! a full download, a resume after a cut connection (within one run and across runs), a
//! wrong digest, an HTML answer and a 404. Nothing is left half-installed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cairn_models::pull::{pull, HubFile, PullOptions};
use cairn_models::{CancellationToken, ModelError};
use sha2::{Digest, Sha256};

fn model_bytes() -> Vec<u8> {
    let mut b = b"GGUF\x03\x00\x00\x00".to_vec();
    let mut x: u64 = 7;
    for _ in 0..400_000 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        b.push((x >> 33) as u8);
    }
    b
}

#[derive(Default)]
struct Hub {
    /// Requests served, with their Range header.
    log: Mutex<Vec<(String, Option<String>)>>,
    /// Cut the next this-many model transfers halfway.
    cuts: AtomicUsize,
}

fn serve(hub: Arc<Hub>, data: Arc<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let hub = hub.clone();
            let data = data.clone();
            std::thread::spawn(move || handle(stream, &hub, &data));
        }
    });
    format!("http://{addr}")
}

fn handle(mut s: TcpStream, hub: &Hub, data: &[u8]) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range:") {
            range = Some(v.trim().to_string());
        }
    }
    hub.log.lock().unwrap().push((path.clone(), range.clone()));
    let sha = hex::encode(Sha256::digest(data));
    let respond = |s: &mut TcpStream, head: String, body: &[u8]| {
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(body);
    };
    match path.as_str() {
        "/acme/tiny-GGUF/resolve/main/model.gguf" => respond(
            &mut s,
            format!("HTTP/1.1 302 Found\r\nLocation: /cdn/model.gguf\r\nX-Linked-Etag: \"{sha}\"\r\nX-Linked-Size: {}\r\nETag: \"not-a-sha\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", data.len()),
            b"",
        ),
        "/acme/tiny-GGUF/resolve/main/tampered.gguf" => respond(
            &mut s,
            format!("HTTP/1.1 302 Found\r\nLocation: /cdn/model.gguf\r\nX-Linked-Etag: \"{}\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "0".repeat(64)),
            b"",
        ),
        "/cdn/model.gguf" => {
            let from: usize = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse().ok())
                .unwrap_or(0);
            let body = &data[from..];
            let head = if from > 0 {
                format!("HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {from}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", data.len() - 1, data.len(), body.len())
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
            };
            let cut = hub
                .cuts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                .is_ok();
            if cut {
                respond(&mut s, head, &body[..body.len() / 2]);
                let _ = s.flush();
                let _ = s.shutdown(std::net::Shutdown::Both);
            } else {
                respond(&mut s, head, body);
            }
        }
        "/acme/html/resolve/main/model.gguf" => {
            let page = b"<!doctype html><html><body>Sign in to continue</body></html>";
            respond(
                &mut s,
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", page.len()),
                page,
            );
        }
        _ => respond(
            &mut s,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 15\r\nConnection: close\r\n\r\nEntry not found".into(),
            b"",
        ),
    }
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn options(endpoint: &str, dir: &Path) -> PullOptions {
    let mut o = PullOptions::new(dir);
    o.endpoint = Some(endpoint.to_string());
    o.token = None;
    o
}

fn only_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_download_is_checked_against_the_hubs_sha256() {
    let data = Arc::new(model_bytes());
    let hub = Arc::new(Hub::default());
    let url = serve(hub.clone(), data.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&url, dir.path());
    let reports = Arc::new(AtomicUsize::new(0));
    let r = reports.clone();
    o.progress = Box::new(move |_| {
        r.fetch_add(1, Ordering::Relaxed);
    });
    let got = rt()
        .block_on(pull(
            &HubFile::new("acme/tiny-GGUF", "model.gguf"),
            &mut o,
            &CancellationToken::new(),
        ))
        .unwrap();
    assert!(got.verified);
    assert_eq!(got.sha256, hex::encode(Sha256::digest(&*data)));
    assert_eq!(got.size, data.len() as u64);
    assert_eq!(got.resumed_from, 0);
    assert_eq!(std::fs::read(&got.path).unwrap(), *data);
    assert_eq!(got.source, "hf:acme/tiny-GGUF/model.gguf@main");
    assert_eq!(only_files(dir.path()), vec!["model.gguf"]);
    assert!(reports.load(Ordering::Relaxed) > 0, "progress was reported");
}

#[test]
fn a_cut_connection_resumes_with_a_range_request() {
    let data = Arc::new(model_bytes());
    let hub = Arc::new(Hub::default());
    let url = serve(hub.clone(), data.clone());
    let dir = tempfile::tempdir().unwrap();

    // Within one run: the retry resumes.
    hub.cuts.store(1, Ordering::SeqCst);
    let got = rt()
        .block_on(pull(
            &HubFile::new("acme/tiny-GGUF", "model.gguf"),
            &mut options(&url, dir.path()),
            &CancellationToken::new(),
        ))
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), *data);
    let log = hub.log.lock().unwrap().clone();
    let ranged: Vec<_> = log.iter().filter_map(|(_, r)| r.clone()).collect();
    assert_eq!(ranged.len(), 2, "{log:?}");
    assert!(
        ranged[1].starts_with("bytes=") && ranged[1] != "bytes=0-",
        "{log:?}"
    );

    // Across runs: no retries left, so the first run stops with a resumable part.
    let dir = tempfile::tempdir().unwrap();
    hub.cuts.store(1, Ordering::SeqCst);
    let mut o = options(&url, dir.path());
    o.retries = 0;
    let e = rt()
        .block_on(pull(
            &HubFile::new("acme/tiny-GGUF", "model.gguf"),
            &mut o,
            &CancellationToken::new(),
        ))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("run the same command again to resume"),
        "{e}"
    );
    assert!(dir.path().join("model.gguf.part").exists());
    assert!(!dir.path().join("model.gguf").exists());
    let got = rt()
        .block_on(pull(
            &HubFile::new("acme/tiny-GGUF", "model.gguf"),
            &mut o,
            &CancellationToken::new(),
        ))
        .unwrap();
    assert!(
        got.resumed_from > 0 && got.resumed_from < data.len() as u64,
        "{got:?}"
    );
    assert_eq!(std::fs::read(&got.path).unwrap(), *data);
    assert_eq!(only_files(dir.path()), vec!["model.gguf"]);
}

#[test]
fn a_wrong_digest_html_and_404_are_clear_errors_that_leave_nothing() {
    let data = Arc::new(model_bytes());
    let hub = Arc::new(Hub::default());
    let url = serve(hub.clone(), data.clone());
    let dir = tempfile::tempdir().unwrap();
    let run = |repo: &str, file: &str, sha: Option<&str>| -> ModelError {
        let mut o = options(&url, dir.path());
        o.sha256 = sha.map(str::to_string);
        rt().block_on(pull(
            &HubFile::new(repo, file),
            &mut o,
            &CancellationToken::new(),
        ))
        .unwrap_err()
    };
    let e = run("acme/tiny-GGUF", "tampered.gguf", None).to_string();
    assert!(e.contains("sha256") && e.contains("deleted"), "{e}");
    let e = run("acme/tiny-GGUF", "model.gguf", Some(&"1".repeat(64))).to_string();
    assert!(e.contains("not 1111"), "the caller's digest wins: {e}");
    let e = run("acme/html", "model.gguf", None).to_string();
    assert!(e.contains("HTML page"), "{e}");
    let e = run("acme/nothing", "model.gguf", None).to_string();
    assert!(e.contains("404") && e.contains("check the names"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    assert!(
        only_files(dir.path()).is_empty(),
        "{:?}",
        only_files(dir.path())
    );
}
