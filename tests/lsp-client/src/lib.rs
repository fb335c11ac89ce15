//! A small blocking LSP client for Cairn's Rust tests and benchmarks: it starts a server
//! process, speaks `Content-Length`-framed JSON-RPC over its stdio, answers the server's
//! own requests (progress tokens, edits) with `null`, and keeps the server's
//! notifications for the caller. It is test support: it never decides anything about
//! what the server answers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One `Content-Length`-framed message (an LSP message, or an HTTP request with a body):
/// headers up to the blank line, then the body. `None` at the end of the stream.
pub fn read_framed(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut len = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0u8; len.unwrap_or(0)];
    r.read_exact(&mut body).ok()?;
    Some(body)
}

/// Writes one framed message.
pub fn write_framed(w: &mut impl Write, body: &[u8]) -> std::io::Result<()> {
    write!(w, "Content-Length: {}\r\n\r\n", body.len())?;
    w.write_all(body)?;
    w.flush()
}

/// A response to one of the client's requests, with when it arrived.
#[derive(Debug, Clone)]
pub struct Response {
    pub at: Instant,
    pub msg: Value,
}

impl Response {
    /// The result, or the error's message.
    pub fn result(&self) -> Result<Value, String> {
        match self.msg.get("error") {
            Some(e) => Err(e.to_string()),
            None => Ok(self.msg["result"].clone()),
        }
    }
}

/// What went wrong talking to the server.
#[derive(Debug)]
pub enum ClientError {
    /// No response to request `id` in time.
    Timeout { id: i64, after: Duration },
    /// The server closed its output.
    Closed,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Timeout { id, after } => {
                write!(f, "no answer to request {id} in {after:?}")
            }
            ClientError::Closed => write!(f, "the server closed its output"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A running server and its side of the conversation.
pub struct LspClient {
    child: Child,
    writer: Arc<Mutex<ChildStdin>>,
    responses: Receiver<(i64, Response)>,
    notifications: Receiver<Value>,
    early: HashMap<i64, Response>,
    next_id: i64,
}

fn send(w: &Mutex<ChildStdin>, v: &Value) {
    let body = serde_json::to_vec(v).expect("a JSON value serialises");
    let mut w = w.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A server that has exited makes writes fail; the reader side reports it.
    let _ = write_framed(&mut *w, &body);
}

impl LspClient {
    /// Starts `cmd` (its stdin and stdout are taken over; stderr is the caller's choice).
    pub fn spawn(mut cmd: Command) -> std::io::Result<LspClient> {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let writer = Arc::new(Mutex::new(child.stdin.take().expect("piped stdin")));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, responses) = mpsc::channel();
        let (ntx, notifications) = mpsc::channel();
        let w = writer.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            while let Some(body) = read_framed(&mut r) {
                let at = Instant::now();
                let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
                    continue;
                };
                let id = msg.get("id").and_then(Value::as_i64);
                match (msg.get("method").is_some(), id) {
                    // A request from the server: say yes, do nothing.
                    (true, Some(_)) => send(
                        &w,
                        &json!({"jsonrpc": "2.0", "id": msg["id"], "result": null}),
                    ),
                    (true, None) => {
                        let _ = ntx.send(msg);
                    }
                    (false, Some(id)) => {
                        if tx.send((id, Response { at, msg })).is_err() {
                            return;
                        }
                    }
                    (false, None) => {}
                }
            }
        });
        Ok(LspClient {
            child,
            writer,
            responses,
            notifications,
            early: HashMap::new(),
            next_id: 1,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn notify(&self, method: &str, params: Value) {
        send(
            &self.writer,
            &json!({"jsonrpc": "2.0", "method": method, "params": params}),
        );
    }

    /// Sends a request; its id and the instant just before it was written.
    pub fn send_request(&mut self, method: &str, params: Value) -> (i64, Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let at = Instant::now();
        send(&self.writer, &msg);
        (id, at)
    }

    /// Waits for the response to request `id` (others that arrive meanwhile are kept).
    pub fn wait(&mut self, id: i64, timeout: Duration) -> Result<Response, ClientError> {
        if let Some(r) = self.early.remove(&id) {
            return Ok(r);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.responses.recv_timeout(left) {
                Ok((got, r)) if got == id => return Ok(r),
                Ok((got, r)) => {
                    self.early.insert(got, r);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ClientError::Timeout { id, after: timeout })
                }
                Err(RecvTimeoutError::Disconnected) => return Err(ClientError::Closed),
            }
        }
    }

    /// A request and its whole response message.
    pub fn request(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        let (id, _) = self.send_request(method, params);
        self.wait(id, timeout)
    }

    /// A request's result; a JSON-RPC error or no answer is `Err` with its message.
    pub fn call(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        self.request(method, params, timeout)
            .map_err(|e| format!("{method}: {e}"))?
            .result()
            .map_err(|e| format!("{method} failed: {e}"))
    }

    /// The server's notifications received so far, oldest first.
    pub fn take_notifications(&self) -> Vec<Value> {
        self.notifications.try_iter().collect()
    }

    /// Waits up to `timeout` for a notification `pred` accepts (others are dropped).
    pub fn wait_notification(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.notifications.recv_timeout(left) {
                Ok(n) if pred(&n) => return Some(n),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// `shutdown`, `exit`, then waits for the process (killed after `timeout`). The exit
    /// status, or `None` when it had to be killed.
    pub fn shutdown(mut self, timeout: Duration) -> Option<ExitStatus> {
        let _ = self.request("shutdown", Value::Null, timeout);
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

/// A `file:` URI for a path (percent-encoding what a URI may not hold).
pub fn file_uri(p: &std::path::Path) -> String {
    let mut s = String::from("file://");
    for b in p.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        write_framed(&mut buf, br#"{"a":1}"#).unwrap();
        write_framed(&mut buf, b"{}").unwrap();
        let mut r = std::io::Cursor::new(buf);
        assert_eq!(read_framed(&mut r).unwrap(), br#"{"a":1}"#);
        assert_eq!(read_framed(&mut r).unwrap(), b"{}");
        assert!(read_framed(&mut r).is_none());
        assert_eq!(
            file_uri(std::path::Path::new("/a b/c.rs")),
            "file:///a%20b/c.rs"
        );
    }
}
