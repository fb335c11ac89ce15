"""Shared pieces of the `cairn lsp` client tests: the binary, an isolated workspace (a real git
repository plus private key store, data dir and config), the ledger as decoded statements,
and a raw JSON-RPC stdio connection for the tests that must send bytes no client would."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# The one LSP client of the Python tests lives in tests/ (shared with tests/desktop).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lsp_client import LspClient  # noqa: E402


def cairn_bin() -> Path:
    """`$CAIRN_BIN`, else `$CARGO_TARGET_DIR/debug/cairn` (default target dir
    `~/.cache/cairn/cargo-target`, as the Makefile sets it)."""
    if os.environ.get("CAIRN_BIN"):
        return Path(os.environ["CAIRN_BIN"])
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
        os.environ.get("CAIRN_CACHE_DIR") or os.path.expanduser("~/.cache/cairn"), "cargo-target"
    )
    return Path(target) / "debug" / "cairn"


# The fixture repository. Line numbers below are 0-based LSP positions into CALC_PY.
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
# After `    return ` in add(): the model continues the expression.
RETURN_POS = {"line": 5, "character": 11}
# The blank line inside mean()'s body, indented as an editor leaves it after Enter.
BLANK_POS = {"line": 13, "character": 4}

SHAPES_PY = '''"""Geometric shapes."""
import math


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius ** 2


class Rectangle:
    def __init__(self, width, height):
        self.width = width
        self.height = height

    def area(self):
        return self.width * self.height
'''

REPORT_PY = '''"""Print a short report of a list of numbers."""
from calc import add, mean, clamp
from shapes import Circle


def report(values):
    print("sum:", sum(values))
    print("mean:", mean(values))
    print("first two:", add(values[0], values[1]))
    print("clamped:", [clamp(v, 0, 10) for v in values])
    print("circle:", Circle(2).area())


if __name__ == "__main__":
    report([1, 5, 12, -3])
'''


@dataclass
class Workspace:
    root: Path  # the temporary directory holding everything
    repo: Path  # the git repository Cairn serves
    env: dict[str, str] = field(default_factory=dict)

    def uri(self, rel: str) -> str:
        return (self.repo / rel).as_uri()

    def text(self, rel: str) -> str:
        return (self.repo / rel).read_text()


def make_workspace(tmp: Path) -> Workspace:
    """A real git repository with a commit of a few Python files, and state dirs of its own:
    signing key store, XDG data dir (index + ledger) and an empty user config."""
    repo = tmp / "repo"
    repo.mkdir(parents=True)
    (repo / "calc.py").write_text(CALC_PY)
    (repo / "shapes.py").write_text(SHAPES_PY)
    (repo / "report.py").write_text(REPORT_PY)
    (repo / "README.md").write_text("# numbers\n\nArithmetic helpers and shapes.\n")
    git_env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "Test Developer"],
        ["config", "user.email", "dev@example.com"],
        ["config", "commit.gpgsign", "false"],
        ["add", "-A"],
        ["commit", "-q", "-m", "numbers: arithmetic helpers and shapes"],
    ):
        subprocess.run(["git", *args], cwd=repo, env=git_env, check=True)

    (tmp / "keys").mkdir()
    (tmp / "data").mkdir()
    config = tmp / "config.toml"
    config.write_text("")
    env = dict(os.environ)
    for k in ("CAIRN_REPO", "CAIRN_LEDGER_DIR", "CAIRN_DATA_DIR", "CAIRN_KEYRING"):
        env.pop(k, None)
    env.update(
        {
            "CAIRN_KEY_STORE": f"file:{tmp / 'keys'}",
            "XDG_DATA_HOME": str(tmp / "data"),
            "CAIRN_CONFIG": str(config),
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "CAIRN_LOG": os.environ.get("CAIRN_LOG", "warn"),
        }
    )
    return Workspace(root=tmp, repo=repo, env=env)


# --- the ledger -------------------------------------------------------------------------


def ledger_statements(path: str | Path) -> list[dict]:
    """The ledger's lines decoded: DSSE envelope -> in-toto statement (payload is base64)."""
    out = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        env = json.loads(line)
        assert env.get("payloadType") == "application/vnd.in-toto+json", env
        out.append(json.loads(base64.b64decode(env["payload"])))
    return out


def ledger_events(path: str | Path) -> list[dict]:
    """The event predicates of the ledger, in ledger order (header left out)."""
    return [
        s["predicate"]
        for s in ledger_statements(path)
        if s.get("predicateType", "").endswith("/provenance/event/v1")
    ]


def find_ledger(ws: Workspace) -> Path:
    """The one ledger under the workspace's private data dir."""
    found = list((ws.root / "data").glob("cairn/ledgers/*/ledger.jsonl"))
    assert len(found) == 1, f"expected one ledger under {ws.root / 'data'}, found {found}"
    return found[0]


def assert_suggested_then(events: list[dict], record_id: str, decision_event: str) -> tuple[dict, dict]:
    """The ledger holds `suggested` for record_id, and later a `decision_event` record
    (`accepted`/`rejected`) that refers to it. Returns both predicates."""
    suggested = [e for e in events if e.get("event") == "suggested" and e.get("recordId") == record_id]
    assert suggested, f"no `suggested` record {record_id} in the ledger: {summarise(events)}"
    later = [e for e in events if e.get("event") == decision_event and e.get("refersTo") == record_id]
    assert later, f"no `{decision_event}` record referring to {record_id}: {summarise(events)}"
    assert later[0]["seq"] > suggested[0]["seq"], (suggested[0], later[0])
    return suggested[0], later[0]


def summarise(events: list[dict]) -> list[tuple]:
    return [(e.get("seq"), e.get("event"), e.get("recordId"), e.get("refersTo")) for e in events]


def verify_with_cli(ws: Workspace) -> subprocess.CompletedProcess:
    """`cairn --repo R verify`: signatures and the chain of the ledger this session wrote."""
    return subprocess.run(
        [str(cairn_bin()), "--repo", str(ws.repo), "verify"],
        env=ws.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- process memory ---------------------------------------------------------------------


def proc_status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


# --- raw JSON-RPC over stdio ------------------------------------------------------------


class RawServer(LspClient):
    """`cairn lsp` on pipes for a test workspace, spoken to frame by frame."""

    def __init__(self, ws: Workspace, args: list[str] = (), cwd: Path | None = None):
        super().__init__(
            [str(cairn_bin()), "lsp", *args],
            env=ws.env,
            cwd=cwd or ws.root,
            stderr_path=ws.root / f"cairn-lsp-{uuid.uuid4().hex[:8]}.stderr",
        )

    def initialize(self, ws: Workspace, capabilities: dict | None = None) -> dict:
        resp = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": ws.repo.as_uri(),
                "workspaceFolders": [{"uri": ws.repo.as_uri(), "name": ws.repo.name}],
                "capabilities": capabilities or {},
                "clientInfo": {"name": "cairn-raw-test"},
            },
        )
        assert "result" in resp, resp
        self.notify("initialized", {})
        return resp["result"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stderr.close()
