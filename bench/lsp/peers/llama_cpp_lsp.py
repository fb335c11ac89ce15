"""A thin LSP adapter in front of llama-cpp-python's OpenAI-compatible server: the
llama-cpp-python peer of `bench/lsp/run --peers`. Standard library only.

    python llama_cpp_lsp.py --url http://127.0.0.1:PORT/v1 --prefix-tokens N \
        --suffix-tokens M --max-tokens K

It keeps the open documents (full and incremental sync, UTF-16 positions) and answers
`textDocument/inlineCompletion` and `textDocument/completion` with one model call each:
a Qwen fill-in-the-middle prompt (`<|fim_prefix|>` prefix `<|fim_suffix|>` suffix
`<|fim_middle|>`) sent as the raw prompt of `/completions`, greedy, at most K tokens,
stopped at Qwen's end-of-generation tokens. Nothing else: no cache of its own, no
retrieval, no clean-up of the text, no debounce. The server keeps its KV cache between
requests (llama-cpp-python evaluates only the tokens after the common prefix).

The window is cut in characters from a token count: when a document is opened, the
server tokenizes it once (`/extras/tokenize`) and the document's characters per token
turn N and M into characters. The prefix starts at a line start (so typing on a line
keeps the cached prefix), the suffix ends at a line end. The item's `data` says what the
server reported (prompt and generated tokens) and the window's characters.

The raw FIM string, not `/completions` with `suffix`: llama-cpp-python 0.3.36 builds
`suffix` requests with token 0 in place of the FIM tokens (`llama.py`, "TODO: Fix").
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import urllib.parse

FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE = "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"
STOPS = ["<|endoftext|>", "<|fim_pad|>", "<|file_sep|>", "<|im_end|>", "<|repo_name|>"]


def read_message(inp):
    length = None
    while True:
        line = inp.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        k, _, v = line.decode("ascii", "replace").partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    body = inp.read(length or 0)
    return json.loads(body)


def write_message(out, msg) -> None:
    body = json.dumps(msg).encode("utf-8")
    out.write(b"Content-Length: %d\r\n\r\n" % len(body))
    out.write(body)
    out.flush()


def offset_of(text: str, line: int, character: int) -> int:
    """The index in `text` of an LSP position (UTF-16 columns); clamped to the line."""
    start = 0
    for _ in range(line):
        nl = text.find("\n", start)
        if nl < 0:
            return len(text)
        start = nl + 1
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    units = 0
    i = start
    while i < end and units < character:
        units += 2 if ord(text[i]) > 0xFFFF else 1
        i += 1
    return i


class Server:
    def __init__(self, url: str, model: str, prefix_tokens: int, suffix_tokens: int,
                 max_tokens: int):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.base = u.path.rstrip("/")
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        self.model = model
        self.prefix_tokens, self.suffix_tokens = prefix_tokens, suffix_tokens
        self.max_tokens = max_tokens
        self.docs: dict[str, str] = {}
        self.chars_per_token: dict[str, float] = {}

    def post(self, path: str, body: dict) -> dict:
        data = json.dumps(body).encode("utf-8")
        for attempt in (0, 1):
            try:
                self.conn.request("POST", path, data, {"Content-Type": "application/json"})
                r = self.conn.getresponse()
                payload = r.read()
                if r.status != 200:
                    raise RuntimeError(f"{path}: HTTP {r.status}: {payload[:300]!r}")
                return json.loads(payload)
            except (http.client.HTTPException, ConnectionError):
                # A keep-alive connection the server closed: once more on a new one.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def opened(self, uri: str, text: str) -> None:
        self.docs[uri] = text
        tokens = self.post("/extras/tokenize", {"input": text, "model": self.model})["tokens"]
        self.chars_per_token[uri] = len(text) / max(len(tokens), 1)

    def changed(self, uri: str, changes: list) -> None:
        text = self.docs.get(uri, "")
        for c in changes:
            if "range" not in c:
                text = c["text"]
                continue
            s, e = c["range"]["start"], c["range"]["end"]
            a = offset_of(text, s["line"], s["character"])
            b = offset_of(text, e["line"], e["character"])
            text = text[:a] + c["text"] + text[b:]
        self.docs[uri] = text

    def complete(self, uri: str, pos: dict) -> tuple[str, dict]:
        text = self.docs.get(uri, "")
        off = offset_of(text, pos["line"], pos["character"])
        cpt = self.chars_per_token.get(uri, 4.0)
        start = max(0, off - int(self.prefix_tokens * cpt))
        if start > 0:
            nl = text.find("\n", start, off)
            start = nl + 1 if nl >= 0 else start
        end = min(len(text), off + int(self.suffix_tokens * cpt))
        if end < len(text):
            nl = text.rfind("\n", off, end)
            end = nl + 1 if nl >= 0 else off
        prompt = FIM_PREFIX + text[start:off] + FIM_SUFFIX + text[off:end] + FIM_MIDDLE
        r = self.post(self.base + "/completions", {
            "model": self.model, "prompt": prompt, "max_tokens": self.max_tokens,
            "temperature": 0.0, "repeat_penalty": 1.0, "stop": STOPS, "stream": False,
        })
        usage = r.get("usage") or {}
        data = {"promptTokens": usage.get("prompt_tokens"),
                "generatedTokens": usage.get("completion_tokens"),
                "prefixChars": off - start, "suffixChars": end - off,
                "charsPerToken": round(cpt, 3),
                "finishReason": r["choices"][0].get("finish_reason")}
        return r["choices"][0]["text"], data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="the server's base URL, …/v1")
    ap.add_argument("--model", default="m")
    ap.add_argument("--prefix-tokens", type=int, required=True)
    ap.add_argument("--suffix-tokens", type=int, required=True)
    ap.add_argument("--max-tokens", type=int, required=True)
    a = ap.parse_args()
    srv = Server(a.url, a.model, a.prefix_tokens, a.suffix_tokens, a.max_tokens)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        msg = read_message(inp)
        if msg is None:
            return
        method, params, mid = msg.get("method"), msg.get("params") or {}, msg.get("id")
        result = None
        try:
            if method == "initialize":
                result = {"capabilities": {
                    "textDocumentSync": {"openClose": True, "change": 2},
                    "completionProvider": {},
                    "inlineCompletionProvider": {},
                }, "serverInfo": {"name": "llama-cpp-python LSP adapter (bench/lsp)"}}
            elif method == "textDocument/didOpen":
                td = params["textDocument"]
                srv.opened(td["uri"], td["text"])
            elif method == "textDocument/didChange":
                srv.changed(params["textDocument"]["uri"], params["contentChanges"])
            elif method == "textDocument/didClose":
                srv.docs.pop(params["textDocument"]["uri"], None)
            elif method in ("textDocument/inlineCompletion", "textDocument/completion"):
                pos = params["position"]
                text, data = srv.complete(params["textDocument"]["uri"], pos)
                here = {"start": pos, "end": pos}
                if method == "textDocument/inlineCompletion":
                    result = {"items": [{"insertText": text, "range": here, "data": data}]}
                else:
                    result = {"isIncomplete": False, "items": [
                        {"label": text, "textEdit": {"range": here, "newText": text},
                         "data": data}]}
            elif method == "exit":
                return
        except Exception as e:  # noqa: BLE001 (the error goes back to the client)
            if mid is not None:
                write_message(out, {"jsonrpc": "2.0", "id": mid,
                                    "error": {"code": -32603, "message": str(e)}})
            else:
                print(f"llama_cpp_lsp: {method}: {e}", file=sys.stderr)
            continue
        if mid is not None and method is not None:
            write_message(out, {"jsonrpc": "2.0", "id": mid, "result": result})


if __name__ == "__main__":
    main()
