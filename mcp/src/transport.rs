//! The byte stream in front of the SDK's newline-delimited JSON-RPC transport, bounded.
//!
//! A message longer than [`MAX_MESSAGE_BYTES`] is never held in memory: its bytes are
//! scanned as they pass for its top-level `id` and `method`, then dropped, and a small
//! `cairn/requestTooLarge` request with the same id takes its place, which the server
//! answers with a JSON-RPC error naming the size and the limit. The client gets a clear
//! error for its request instead of silence (the SDK alone drops an oversized line without
//! a reply), and the session goes on.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// The largest message a client may send (a request with its arguments).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// The method that stands in for a message that was too large.
pub const TOO_LARGE_METHOD: &str = "cairn/requestTooLarge";

/// Copies `input` to `output` line by line until `input` ends, replacing lines over
/// `limit` bytes as described above. Returns when either side closes.
pub async fn bounded_copy<R, W>(input: R, mut output: W, limit: usize) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut line: Vec<u8> = Vec::new();
    // Set while an oversized line is being skipped.
    let mut skipping: Option<(TopLevelScan, usize)> = None;
    loop {
        let (consumed, done) = {
            let buf = input.fill_buf().await?;
            if buf.is_empty() {
                break;
            }
            let nl = buf.iter().position(|b| *b == b'\n');
            let take = nl.map_or(buf.len(), |i| i + 1);
            let chunk = &buf[..take];
            match &mut skipping {
                Some((scan, n)) => {
                    scan.feed(chunk);
                    *n += chunk.len();
                }
                None if line.len() + chunk.len() > limit => {
                    let mut scan = TopLevelScan::default();
                    scan.feed(&line);
                    scan.feed(chunk);
                    skipping = Some((scan, line.len() + chunk.len()));
                    line = Vec::new();
                }
                None => line.extend_from_slice(chunk),
            }
            (take, nl.is_some())
        };
        input.consume(consumed);
        if !done {
            continue;
        }
        match skipping.take() {
            Some((scan, n)) => {
                tracing::warn!(
                    bytes = n,
                    limit,
                    "a client message over the limit was dropped"
                );
                if let Some(stand_in) = scan.stand_in(n, limit) {
                    output.write_all(stand_in.as_bytes()).await?;
                    output.write_all(b"\n").await?;
                    output.flush().await?;
                }
            }
            None => {
                output.write_all(&line).await?;
                output.flush().await?;
                line.clear();
            }
        }
    }
    // A last line without a newline is an incomplete message: the transport drops it too.
    if !line.is_empty() {
        output.write_all(&line).await?;
    }
    output.shutdown().await
}

/// Finds a JSON object's top-level `id` and `method` in a stream of bytes, keeping only
/// those values (each at most a few hundred bytes).
#[derive(Default)]
struct TopLevelScan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// At depth 1, the next string is a key.
    want_key: bool,
    key: Vec<u8>,
    last_key: Vec<u8>,
    /// Capturing the value of `id` or `method`.
    capture: Option<(Which, Vec<u8>)>,
    id: Option<Vec<u8>>,
    method: Option<Vec<u8>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Id,
    Method,
}

const MAX_CAPTURE: usize = 512;

impl TopLevelScan {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.step(b);
        }
    }

    fn step(&mut self, b: u8) {
        if let Some((_, v)) = &mut self.capture {
            // A value at depth 1 ends at the `,` or `}` that follows it outside strings.
            let ends = !self.in_string && self.depth == 1 && (b == b',' || b == b'}');
            if !ends && v.len() < MAX_CAPTURE {
                v.push(b);
            }
            if ends {
                if let Some((which, v)) = self.capture.take() {
                    match which {
                        Which::Id => self.id = Some(v),
                        Which::Method => self.method = Some(v),
                    }
                }
            }
        }
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
                if self.depth == 1 && self.want_key {
                    self.last_key = std::mem::take(&mut self.key);
                    self.want_key = false;
                }
            } else if self.depth == 1 && self.want_key && self.key.len() < 16 {
                self.key.push(b);
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                self.key.clear();
            }
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth == 1 {
                    self.want_key = b == b'{';
                }
            }
            b'}' | b']' => self.depth = self.depth.saturating_sub(1),
            b',' if self.depth == 1 => self.want_key = true,
            b':' if self.depth == 1 => {
                let which = match self.last_key.as_slice() {
                    b"id" => Some(Which::Id),
                    b"method" => Some(Which::Method),
                    _ => None,
                };
                if let Some(w) = which {
                    self.capture = Some((w, Vec::new()));
                }
            }
            _ => {}
        }
    }

    /// The request that stands in for the dropped message, when it had an id to answer.
    fn stand_in(&self, bytes: usize, limit: usize) -> Option<String> {
        let parse = |v: &Option<Vec<u8>>| {
            v.as_ref()
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(v.trim_ascii()).ok())
        };
        let id = parse(&self.id).filter(|v| v.is_number() || v.is_string())?;
        let method = parse(&self.method).filter(|v| v.is_string());
        Some(
            serde_json::json!({
                "jsonrpc": "2.0",
                "id": id,
                "method": TOO_LARGE_METHOD,
                "params": {"bytes": bytes, "limit": limit, "method": method},
            })
            .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(input: &[u8], limit: usize) -> String {
        let mut out = Vec::new();
        bounded_copy(input, &mut out, limit).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn small_lines_pass_and_large_ones_are_replaced() {
        let big = "x".repeat(5000);
        let input = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}}\n\
             {{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\",\"method\":\"tools/call\",\"params\":{{\"name\":\"search\",\"arguments\":{{\"query\":\"{big}\",\"id\":99}}}}}}\n\
             {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\",\"params\":{{\"q\":\"{big}\"}}}}\n\
             {{\"jsonrpc\":\"2.0\",\"params\":{{\"q\":\"{big}\"}},\"method\":\"tools/call\",\"id\":7}}\n\
             {{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}}\n"
        );
        let out = run(input.as_bytes(), 1000).await;
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(lines[0]["method"], "ping");
        assert_eq!(lines[1]["method"], TOO_LARGE_METHOD);
        assert_eq!(lines[1]["id"], "a\"b");
        assert_eq!(lines[1]["params"]["method"], "tools/call");
        assert!(lines[1]["params"]["bytes"].as_u64().unwrap() > 5000);
        // The notification had no id to answer; the id after the params is still found.
        assert_eq!(lines[2]["id"], 7);
        assert_eq!(lines[3]["id"], 2);
    }
}
