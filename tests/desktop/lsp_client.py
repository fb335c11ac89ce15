"""A small LSP client over a child's stdio (standard library only): enough to speak to
`cairn lsp --remote auto` as an editor does (requests, notifications, and answers to the
server's own requests)."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time


class LspClient:
    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages: queue.Queue[dict] = queue.Queue()
        self.next_id = 1
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = out.read(length)
            if len(body) < length:
                return
            self.messages.put(json.loads(body))

    def _send(self, msg: dict) -> None:
        body = json.dumps(msg).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params, timeout: float = 120):
        rid = self.next_id
        self.next_id += 1
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer to {method}")
            try:
                msg = self.messages.get(timeout=left)
            except queue.Empty:
                raise TimeoutError(f"no answer to {method}; stderr: {self.stderr_so_far()}") from None
            if "method" in msg:
                if "id" in msg:  # the server asks something (progress tokens …): agree
                    self._send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
                continue
            if msg.get("id") == rid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result")

    def stderr_so_far(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> int:
        try:
            self.request("shutdown", None, timeout=30)
            self.notify("exit", None)
            self.proc.stdin.close()
            return self.proc.wait(30)
        except Exception:
            self.proc.kill()
            return self.proc.wait(10)
