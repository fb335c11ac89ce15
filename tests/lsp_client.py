"""One LSP client for Cairn's Python tests (tests/lsp, tests/desktop), standard library only.

A server process on pipes, spoken to frame by frame: a reader thread splits its stdout into
`Content-Length` frames; responses are matched by id; the server's notifications and its
own requests are kept (its requests are answered with a plain `null` result)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path


class LspClient:
    def __init__(self, argv: list[str], env: dict | None = None, cwd: Path | None = None,
                 stderr_path: Path | None = None):
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb") if stderr_path else subprocess.PIPE
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=env, cwd=cwd)
        self.notifications: list[dict] = []
        self.responses: dict = {}
        self._cv = threading.Condition()
        self._next_id = 1000
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            headers = {}
            while True:
                line = out.readline()
                if not line:
                    with self._cv:
                        self._cv.notify_all()
                    return
                line = line.strip()
                if not line:
                    break
                k, _, v = line.decode("ascii", "replace").partition(":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0"))
            body = out.read(n)
            if len(body) < n:
                with self._cv:
                    self._cv.notify_all()
                return
            msg = json.loads(body)
            with self._cv:
                if "id" in msg and "method" not in msg:
                    self.responses[msg["id"]] = msg
                elif "id" in msg:  # a request from the server (progress tokens …): agree
                    self.notifications.append(msg)
                    self.send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
                else:
                    self.notifications.append(msg)
                self._cv.notify_all()

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, msg: dict) -> None:
        body = json.dumps(msg).encode()
        self.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, method: str, params=None, timeout: float = 60.0, msg_id=None) -> dict:
        """Send a request and wait for its response (the whole message: result or error)."""
        if msg_id is None:
            self._next_id += 1
            msg_id = self._next_id
        msg = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.wait_response(msg_id, timeout)

    def call(self, method: str, params=None, timeout: float = 120.0):
        """A request's result; a JSON-RPC error raises."""
        resp = self.request(method, params, timeout)
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp.get("result")

    def wait_response(self, msg_id, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cv:
            while msg_id not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no response to request {msg_id!r} in {timeout}s; stderr tail:\n{self.stderr_tail()}")
                if self.proc.poll() is not None and msg_id not in self.responses:
                    raise RuntimeError(
                        f"server exited with {self.proc.returncode} before answering {msg_id!r}; stderr tail:\n{self.stderr_tail()}"
                    )
                self._cv.wait(min(left, 0.5))
            return self.responses.pop(msg_id)

    def notify(self, method: str, params=None) -> None:
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def shutdown(self, timeout: float = 30.0) -> int:
        """`shutdown` then `exit`; the exit status."""
        resp = self.request("shutdown", None, timeout=timeout)
        assert "error" not in resp, resp
        self.notify("exit")
        return self.proc.wait(timeout=timeout)

    def stderr_tail(self, n: int = 4000) -> str:
        if self.stderr_path is not None:
            try:
                return self.stderr_path.read_bytes()[-n:].decode("utf-8", "replace")
            except OSError:
                return ""
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read()[-n:].decode(errors="replace") if self.proc.stderr else ""

    def close(self) -> int:
        """A clean shutdown if the server answers, else kill; the exit status."""
        try:
            if self.proc.poll() is None:
                return self.shutdown()
            return self.proc.returncode
        except Exception:
            self.proc.kill()
            return self.proc.wait(10)
        finally:
            if self.stderr_path is not None and not isinstance(self._stderr, int):
                self._stderr.close()
