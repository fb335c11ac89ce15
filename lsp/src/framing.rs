//! A guard in front of the JSON-RPC transport. tower-lsp-server stops reading its input
//! at the first frame it cannot decode, which would end the session; here every frame is
//! read and checked first: bad JSON gets a -32700 answer, JSON that is not a JSON-RPC
//! message gets -32600, a header without a length gets -32700, and the session goes on.
//! Good frames pass through unchanged; answers from the server and from this guard are
//! written whole, one at a time, so they never interleave.

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Largest frame accepted (a 20 MB document fits with room to spare).
const MAX_FRAME: usize = 256 * 1024 * 1024;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

fn error_frame(id: Value, code: i64, message: &str) -> Vec<u8> {
    let v = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    frame(v.to_string().as_bytes())
}

/// Why a frame was refused, as JSON-RPC sees it.
fn check(body: &[u8]) -> Result<(), Vec<u8>> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Err(error_frame(
                Value::Null,
                -32700,
                &format!("parse error: {e}"),
            ))
        }
    };
    let Some(obj) = v.as_object() else {
        return Err(error_frame(
            Value::Null,
            -32600,
            "invalid request: a JSON-RPC message is an object (batches are not part of LSP)",
        ));
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    let id_ok = matches!(
        obj.get("id"),
        None | Some(Value::Number(_) | Value::String(_))
    );
    let is_call = obj.get("method").is_some_and(Value::is_string);
    let is_response =
        obj.contains_key("id") && (obj.contains_key("result") || obj.contains_key("error"));
    if obj.get("jsonrpc") != Some(&json!("2.0")) || !id_ok || !(is_call || is_response) {
        let id = if id_ok { id } else { Value::Null };
        return Err(error_frame(
            id,
            -32600,
            "invalid request: expected a JSON-RPC 2.0 request, notification or response",
        ));
    }
    if let Some(p) = obj.get("params") {
        if !(p.is_object() || p.is_array() || p.is_null()) {
            return Err(error_frame(
                id,
                -32600,
                "invalid request: params must be an object or an array",
            ));
        }
    }
    Ok(())
}

/// Reads one frame's headers; `Ok(None)` at the end of the input. A header block
/// without a usable Content-Length yields `Err(answer)`.
async fn read_headers<R: AsyncRead + Unpin>(
    input: &mut BufReader<R>,
) -> std::io::Result<Option<Result<usize, Vec<u8>>>> {
    let mut length: Option<Result<usize, String>> = None;
    let mut saw_any = false;
    loop {
        let mut line = Vec::new();
        let n = input.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if !saw_any {
                continue; // stray blank line between frames
            }
            break;
        }
        saw_any = true;
        if let Some((k, v)) = text.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = Some(
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("bad Content-Length {:?}", v.trim())),
                );
            }
        }
    }
    Ok(Some(match length {
        Some(Ok(n)) if n <= MAX_FRAME => Ok(n),
        Some(Ok(n)) => Err(error_frame(
            Value::Null,
            -32700,
            &format!("frame of {n} bytes is larger than the {MAX_FRAME}-byte limit"),
        )),
        Some(Err(why)) => Err(error_frame(Value::Null, -32700, &why)),
        None => Err(error_frame(
            Value::Null,
            -32700,
            "a frame header without Content-Length",
        )),
    }))
}

/// Copies good frames from `input` to `to_server`; answers bad ones through `answers`.
async fn pump_in<R, W>(input: R, mut to_server: W, answers: mpsc::UnboundedSender<Vec<u8>>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = BufReader::with_capacity(64 * 1024, input);
    loop {
        let len = match read_headers(&mut input).await {
            Ok(Some(Ok(n))) => n,
            Ok(Some(Err(answer))) => {
                let _ = answers.send(answer);
                continue;
            }
            Ok(None) | Err(_) => break,
        };
        let mut body = vec![0; len];
        if input.read_exact(&mut body).await.is_err() {
            break; // the input ended inside a frame
        }
        match check(&body) {
            Ok(()) => {
                if to_server.write_all(&frame(&body)).await.is_err() {
                    break;
                }
            }
            Err(answer) => {
                tracing::warn!("refused a malformed message ({} bytes)", body.len());
                let _ = answers.send(answer);
            }
        }
    }
    let _ = to_server.shutdown().await;
}

/// Re-frames what the server writes, so its answers and the guard's stay whole.
async fn pump_out<R: AsyncRead + Unpin>(from_server: R, answers: mpsc::UnboundedSender<Vec<u8>>) {
    let mut input = BufReader::with_capacity(64 * 1024, from_server);
    loop {
        let len = match read_headers(&mut input).await {
            Ok(Some(Ok(n))) => n,
            _ => break,
        };
        let mut body = vec![0; len];
        if input.read_exact(&mut body).await.is_err() {
            break;
        }
        if answers.send(frame(&body)).is_err() {
            break;
        }
    }
}

/// Runs `serve(server_input, server_output)` behind the guard, over `input`/`output`.
pub async fn guarded<R, W, F, Fut>(input: R, mut output: W, serve: F)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(tokio::io::DuplexStream, tokio::io::DuplexStream) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (to_server, server_in) = tokio::io::duplex(1 << 20);
    let (server_out, from_server) = tokio::io::duplex(1 << 20);
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if output.write_all(&bytes).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });
    let inbound = tokio::spawn(pump_in(input, to_server, tx.clone()));
    let outbound = tokio::spawn(pump_out(from_server, tx));
    serve(server_in, server_out).await;
    inbound.abort();
    let _ = outbound.await;
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(answer: &[u8]) -> i64 {
        let s = String::from_utf8_lossy(answer);
        let body = s.split("\r\n\r\n").nth(1).unwrap();
        serde_json::from_str::<Value>(body).unwrap()["error"]["code"]
            .as_i64()
            .unwrap()
    }

    #[test]
    fn messages_are_checked_before_the_server_sees_them() {
        assert!(check(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{}}"#).is_ok());
        assert!(check(br#"{"jsonrpc":"2.0","method":"exit"}"#).is_ok());
        assert!(check(br#"{"jsonrpc":"2.0","id":3,"result":null}"#).is_ok());
        assert_eq!(code(&check(b"{not json").unwrap_err()), -32700);
        assert_eq!(code(&check(b"[1,2]").unwrap_err()), -32600);
        assert_eq!(
            code(&check(br#"{"id":1,"method":"x"}"#).unwrap_err()),
            -32600
        );
        assert_eq!(
            code(&check(br#"{"jsonrpc":"2.0","id":{"a":1},"method":"x"}"#).unwrap_err()),
            -32600
        );
        assert_eq!(
            code(&check(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}").unwrap_err()),
            -32700
        );
    }

    #[tokio::test]
    async fn bad_frames_are_answered_and_good_ones_pass() {
        let input = b"Content-Length: 5\r\n\r\n{bad}X-Other: 1\r\n\r\nContent-Length: 33\r\n\r\n{\"jsonrpc\":\"2.0\",\"method\":\"ok\"}  ".to_vec();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (to_server, mut server_side) = tokio::io::duplex(1 << 16);
        pump_in(&input[..], to_server, tx).await;
        let mut passed = String::new();
        server_side.read_to_string(&mut passed).await.unwrap();
        assert!(
            passed.ends_with("{\"jsonrpc\":\"2.0\",\"method\":\"ok\"}  "),
            "{passed}"
        );
        assert_eq!(code(&rx.recv().await.unwrap()), -32700);
        assert_eq!(code(&rx.recv().await.unwrap()), -32700);
    }
}
