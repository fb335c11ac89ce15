"""Fixtures for the desktop end-to-end test: the built app, a fixture git repository with
private state dirs, a scripted OpenAI-compatible server on loopback, and tauri-driver in
front of WebKitWebDriver, all on the X display the test runs under (xvfb-run).

When the test runs as root, the app itself runs as `nobody` (setpriv): root reads every
folder, so "a folder without read permission" is only real for an unprivileged user."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import sys

# The one LSP client of the Python tests lives in tests/ (shared with tests/lsp).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest

from webdriver import Driver

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("CAIRN_CACHE_DIR") or Path.home() / ".cache" / "cairn")
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or CACHE / "cargo-target")
OUT = Path(os.environ.get("CAIRN_TEST_OUT") or REPO_ROOT / "tests" / "desktop" / "out")

CALC_PY = '''"""Small arithmetic helpers used by the report module."""


def add(a, b):
    """Return the sum of a and b."""
    return


def mean(values):
    """Return the arithmetic mean of a non-empty list of numbers."""
    total = 0
    for v in values:
        total += v
    return total / len(values)


def clamp(x, low, high):
    """Limit x to the closed interval [low, high]."""
    if x < low:
        return low
    if x > high:
        return high
    return x
'''

SHAPES_PY = '''"""Geometric shapes."""
import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius ** 2
'''

FIXED_ADD = 'def add(a, b):\n    """Return the sum of a and b."""\n    return a + b\n'
# add() spans lines 4-6 of calc.py.
ADD_LINES = (4, 6)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the scripted model --------------------------------------------------------------------


class ScriptedModel(BaseHTTPRequestHandler):
    """OpenAI-compatible /chat/completions with fixed answers, streamed as server-sent
    events: a fix (one code block) when the prompt asks for one, otherwise an answer that
    cites source [1]. Model `refuse` or key `wrong-key` get HTTP 401."""

    requests: list[dict] = []

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        auth = self.headers.get("Authorization", "")
        ScriptedModel.requests.append({"path": self.path, "model": body.get("model"), "auth": bool(auth)})
        if body.get("model") == "refuse" or auth == "Bearer wrong-key":
            msg = b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        prompt = json.dumps(body.get("messages", []))
        if "Find the bug" in prompt:
            answer = f"`add` computes nothing: its `return` has no value [1]. Fixed:\n\n```python\n{FIXED_ADD}```\n"
        else:
            answer = "`add` is defined in calc.py [1]. It is meant to return the sum of `a` and `b`, but its `return` has no value yet."
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for i in range(0, len(answer), 6):
            ev = {"choices": [{"index": 0, "delta": {"content": answer[i : i + 6]}}]}
            self.wfile.write(f"data: {json.dumps(ev)}\n\n".encode())
            self.wfile.flush()
            time.sleep(0.02)
        end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
        self.close_connection = True


@pytest.fixture(scope="session")
def scripted_model():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


# --- the world the app runs in ---------------------------------------------------------------


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@dataclass
class World:
    root: Path
    repo: Path
    config: Path
    data: Path
    locked: Path
    not_gguf: Path
    app: Path  # what tauri-driver launches
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    cairn: Path = Path()  # the `cairn` binary beside the app, as the bundle places it
    editor_args: Path = Path()  # what the $EDITOR the app runs was given

    def socket(self) -> Path:
        """The editors' daemon socket the app serves (`$XDG_RUNTIME_DIR/cairn/lsp.sock`)."""
        return Path(self.env["XDG_RUNTIME_DIR"]) / "cairn" / "lsp.sock"

    def as_app_user(self, argv: list[str]) -> list[str]:
        """A command run as the app's user, with the app's environment."""
        env = [f"{k}={v}" for k, v in self.env.items()]
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] if self.user == "nobody" else []
        return [*drop, "env", "-i", *env, *argv]

    def ledger(self) -> Path:
        found = list((self.data / "xdg-data").glob("cairn/ledgers/*/ledger.jsonl"))
        assert len(found) == 1, f"expected one ledger, found {found}"
        return found[0]

    def ledger_events(self) -> list[dict]:
        import base64

        out = []
        for line in self.ledger().read_text().splitlines():
            if line.strip():
                st = json.loads(base64.b64decode(json.loads(line)["payload"]))
                if "event" in st.get("predicate", {}):
                    out.append(st["predicate"])
        return out


def binary(name: str) -> Path:
    p = Path(os.environ.get(f"CAIRN_{name.upper().replace('-', '_')}_BIN") or TARGET / "debug" / name)
    if not p.is_file():
        pytest.fail(f"{p} does not exist: build it (make test-desktop builds it, or `cargo build -p {name}`)")
    return p


def default_model() -> Path:
    reg = CACHE / "models" / "registry.json"
    try:
        entries = json.loads(reg.read_text())["models"]
        return Path(entries["smollm2-135m-instruct"]["path"])
    except (OSError, KeyError, ValueError):
        pytest.fail(f"the default model is not installed ({reg}): run `make setup`")


@pytest.fixture(scope="session")
def world(scripted_model):
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        pytest.fail("no display: run under xvfb-run (make test-desktop does)")
    # Not pytest's tmp dir: it is private to the test's user, and the app may run as another.
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="cairn-desktop-e2e-"))
    root.chmod(0o755)
    try:
        yield make_world(root)
    finally:
        (root / "locked-folder").chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def make_world(root: Path) -> World:
    as_root = os.geteuid() == 0
    repo = root / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text(CALC_PY)
    (repo / "shapes.py").write_text(SHAPES_PY)
    (repo / "README.md").write_text("# numbers\n\nArithmetic helpers and shapes.\n")
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "Test Developer"],
        ["config", "user.email", "dev@example.com"],
        ["config", "commit.gpgsign", "false"],
        ["add", "-A"],
        ["commit", "-q", "-m", "numbers: arithmetic helpers and shapes"],
    ):
        git(repo, *args)
    data = root / "state"
    for d in ("home", "xdg-data", "xdg-config", "xdg-cache", "keys", "models", "bin", "exports", "run", "editor"):
        (data / d).mkdir(parents=True)
    (data / "run").chmod(0o700)
    # The app's own copy of the binary and the model: an unprivileged user cannot reach ~root.
    # `cairn` goes beside the app, where the bundle puts the sidecar.
    app_bin = data / "bin" / "cairn-desktop"
    shutil.copy2(binary("cairn-desktop"), app_bin)
    cairn_bin = data / "bin" / "cairn"
    shutil.copy2(binary("cairn"), cairn_bin)
    # $EDITOR for "Open in editor": a program named `code` (so it gets `-g FILE:LINE`) that
    # writes down its arguments.
    editor_args = data / "editor" / "args.txt"
    editor = data / "editor" / "code"
    editor.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {shlex_quote(str(editor_args))}\n")
    editor.chmod(0o755)
    model = data / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    shutil.copy2(default_model(), model)
    config = data / "xdg-config" / "cairn" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'[models.smollm2]\nkind = "local"\npath = "{model}"\nn_threads = 2\n\n'
        '[routing]\nchat = "smollm2"\ncomplete = "smollm2"\n'
    )
    locked = root / "locked-folder"
    locked.mkdir()
    (locked / "secret.py").write_text("x = 1\n")
    locked.chmod(0o000)
    not_gguf = data / "models" / "downloaded-model.gguf"
    not_gguf.write_text("<!doctype html><title>404 Not Found</title>\n")
    env = {
        "HOME": str(data / "home"),
        "XDG_DATA_HOME": str(data / "xdg-data"),
        "XDG_CONFIG_HOME": str(data / "xdg-config"),
        "XDG_CACHE_HOME": str(data / "xdg-cache"),
        "CAIRN_CACHE_DIR": str(data / "xdg-cache" / "cairn"),
        "CAIRN_CONFIG": str(config),
        "CAIRN_KEY_STORE": f"file:{data / 'keys'}",
        "CAIRN_KEYRING": "keyutils",
        "CAIRN_LOG": os.environ.get("CAIRN_LOG", "info"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "DISPLAY": os.environ.get("DISPLAY", ""),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NO_AT_BRIDGE": "1",
        "XDG_RUNTIME_DIR": str(data / "run"),
        "EDITOR": str(editor),
    }
    if os.environ.get("XAUTHORITY"):
        # xvfb-run's display wants its cookie; the app's user gets a copy of its own.
        xauth = data / "home" / ".Xauthority"
        shutil.copy2(os.environ["XAUTHORITY"], xauth)
        env["XAUTHORITY"] = str(xauth)
    # The launcher tauri-driver starts: the app with its environment, in a session keyring
    # of its own (API keys), as `nobody` when the test runs as root.
    exports = " ".join(f"{k}={shlex_quote(v)}" for k, v in env.items())
    drop = "setpriv --reuid=65534 --regid=65534 --clear-groups -- " if as_root else ""
    # root's session bus is not nobody's to use.
    unset = "-u DBUS_SESSION_BUS_ADDRESS " if as_root else ""
    # The outer shell's $VISUAL would win over the test's $EDITOR.
    unset += "-u VISUAL "
    launcher = data / "bin" / "launch-cairn-desktop"
    stderr = OUT / "cairn-desktop.stderr"
    OUT.mkdir(parents=True, exist_ok=True)
    launcher.write_text(
        "#!/bin/sh\n"
        f"# Written by tests/desktop/conftest.py\n"
        f'exec {drop}env {unset}{exports} keyctl session - {shlex_quote(str(app_bin))} "$@" 2>>{shlex_quote(str(stderr))}\n'
    )
    launcher.chmod(0o755)
    if as_root:
        subprocess.run(["chown", "-R", "65534:65534", str(repo), str(data)], check=True)
        stderr.touch()
        os.chmod(stderr, 0o666)
    return World(root=root, repo=repo, config=config, data=data, locked=locked, not_gguf=not_gguf,
                 app=launcher, env=env, user="nobody" if as_root else os.environ.get("USER", ""),
                 cairn=cairn_bin, editor_args=editor_args)


def shlex_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def tauri_driver() -> Path:
    found = os.environ.get("TAURI_DRIVER") or shutil.which("tauri-driver") or str(CACHE / "tools" / "bin" / "tauri-driver")
    if not Path(found).is_file():
        pytest.fail("tauri-driver is missing: run `scripts/setup.sh --test` (cargo install tauri-driver --locked)")
    return Path(found)


@pytest.fixture(scope="session")
def driver_url():
    native = shutil.which("WebKitWebDriver")
    if not native:
        pytest.fail("WebKitWebDriver is missing: apt-get install webkit2gtk-driver (scripts/setup.sh does)")
    port, native_port = free_port(), free_port()
    log = open(OUT / "tauri-driver.log", "wb")
    proc = subprocess.Popen(
        [str(tauri_driver()), "--port", str(port), "--native-port", str(native_port), "--native-driver", native],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"tauri-driver did not listen on {port}: see {OUT / 'tauri-driver.log'}")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def app(world, driver_url):
    """One window for the whole session, started without a repository (the tests open
    one through the window, after trying bad paths)."""
    d = Driver(driver_url, {"tauri:options": {"application": str(world.app)}})
    d.wait("the window to be interactive", lambda: d.js("return document.body.dataset.ready === 'true'"), 120)
    yield d
    d.quit()


def shot(d: Driver, name: str) -> Path:
    return d.screenshot(OUT / f"{name}.png")
