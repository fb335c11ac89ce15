"""A small W3C WebDriver client over the standard library: enough to drive the Cairn window
through tauri-driver (sessions, elements, clicks, keys, script, screenshots, waits)."""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class WebDriverError(RuntimeError):
    pass


class Element:
    def __init__(self, driver: "Driver", eid: str, selector: str, unique: bool = False):
        self.driver = driver
        self.id = eid
        self.selector = selector
        # Found alone by its selector (not one of find_all's): it can be found again.
        self.unique = unique

    def _url(self, tail: str = "") -> str:
        return f"/element/{self.id}{tail}"

    def click(self) -> "Element":
        try:
            self._click()
        except WebDriverError as e:
            # The view re-rendered between finding and clicking (a status update redraws
            # a panel): the same selector names the element again.
            if not (self.unique and "stale element" in str(e)):
                raise
            self.id = self.driver.find(self.selector).id
            self._click()
        return self

    def _click(self) -> None:
        # Inside a scrolled panel the element may sit outside the viewport.
        self.driver.js("arguments[0].scrollIntoView({block: 'center'});", {ELEMENT: self.id})
        self.driver.cmd("POST", self._url("/click"), {})

    def type(self, text: str) -> "Element":
        self.driver.cmd("POST", self._url("/value"), {"text": text})
        return self

    def clear(self) -> "Element":
        self.driver.cmd("POST", self._url("/clear"), {})
        return self

    @property
    def text(self) -> str:
        return self.driver.cmd("GET", self._url("/text"))

    def attr(self, name: str):
        return self.driver.cmd("GET", self._url(f"/attribute/{name}"))

    def prop(self, name: str):
        return self.driver.cmd("GET", self._url(f"/property/{name}"))

    @property
    def enabled(self) -> bool:
        return self.driver.cmd("GET", self._url("/enabled"))


class Driver:
    """One session. `base` is the driver's URL, e.g. http://127.0.0.1:4444."""

    def __init__(self, base: str, capabilities: dict, timeout: float = 120):
        self.base = base.rstrip("/")
        self.timeout = timeout
        value = self._request("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}}, timeout=180)
        self.session = value["sessionId"]

    def _request(self, method: str, path: str, body=None, timeout: float | None = None):
        # tauri-driver keeps a pool of connections to WebKitWebDriver; now and then one has
        # been closed by the other side and the request dies unprocessed ("connection reset",
        # "closed without response"). Such a request is sent again; any answer is final.
        for attempt in range(4):
            try:
                return self._request_once(method, path, body, timeout)
            except (ConnectionResetError, http.client.RemoteDisconnected):
                if attempt == 3:
                    raise
                time.sleep(0.3)
        raise AssertionError("unreachable")

    def _request_once(self, method: str, path: str, body=None, timeout: float | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json; charset=utf-8")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as r:
                payload = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read())
            except Exception:  # noqa: BLE001 - report what the driver said, whatever it was
                raise WebDriverError(f"{method} {path}: HTTP {e.code}") from e
            v = payload.get("value", {})
            raise WebDriverError(f"{method} {path}: {v.get('error')}: {v.get('message')}") from e
        return payload.get("value")

    def cmd(self, method: str, path: str, body=None):
        return self._request(method, f"/session/{self.session}{path}", body)

    def quit(self) -> None:
        try:
            self._request("DELETE", f"/session/{self.session}", timeout=30)
        except Exception:  # noqa: BLE001 - the app may already be gone
            pass

    # --- elements -------------------------------------------------------------------

    def find(self, css: str) -> Element:
        v = self.cmd("POST", "/element", {"using": "css selector", "value": css})
        return Element(self, v[ELEMENT], css, unique=True)

    def find_all(self, css: str) -> list[Element]:
        vs = self.cmd("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, v[ELEMENT], css) for v in vs]

    def js(self, script: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, what: str, predicate, timeout: float = 60, interval: float = 0.1):
        """Polls `predicate()` until it returns something truthy; raises with `what`."""
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            try:
                v = predicate()
                if v:
                    return v
            except WebDriverError as e:
                last_err = e
            time.sleep(interval)
        raise TimeoutError(f"waited {timeout}s for {what}" + (f" (last error: {last_err})" if last_err else ""))

    def wait_for(self, css: str, timeout: float = 60) -> Element:
        return self.wait(f"`{css}`", lambda: self.find_all(css)[0] if self.find_all(css) else None, timeout)

    def visible(self, css: str) -> bool:
        return bool(
            self.js(
                "const e = document.querySelector(arguments[0]); return !!e && !e.hidden && e.offsetParent !== null;",
                css,
            )
        )

    def text_of(self, css: str) -> str:
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css) or ""

    def set_value(self, css: str, value: str) -> None:
        """Sets an input or select and fires the events a person's edit would."""
        self.js(
            """const e = document.querySelector(arguments[0]);
               e.value = arguments[1];
               e.dispatchEvent(new Event('input', {bubbles: true}));
               e.dispatchEvent(new Event('change', {bubbles: true}));""",
            css,
            value,
        )

    def screenshot(self, path: Path) -> Path:
        png = base64.b64decode(self.cmd("GET", "/screenshot"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return path
