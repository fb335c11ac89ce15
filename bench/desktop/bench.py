"""bench/desktop: the desktop window against the command line, in the same run.

  cold start     spawn of `cairn-desktop` to the window reporting itself interactive
  first token    a chat answer's first streamed text: in the window (click to text painted,
                 and the command's own start to first delta) vs `cairn chat` (question
                 written to first answer byte on stdout), both with the model loaded
  idle memory    the app and its WebKit processes, a repository open and indexed, idle

"The same request": both sides go through `Workspace::chat` (retrieval, numbered sources, the
same prompt), two turns in a fresh conversation with the second timed, the model loaded and
its KV cache warm from the first turn; rounds alternate between the window and `cairn chat`.
Prints a table; `--json PATH` writes the numbers."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "desktop"))
from webdriver import Driver  # noqa: E402

CACHE = Path(os.environ.get("CAIRN_CACHE_DIR") or Path.home() / ".cache" / "cairn")
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or CACHE / "cargo-target")

CALC_PY = (ROOT / "tests" / "desktop" / "conftest.py").read_text().split("CALC_PY = '''")[1].split("'''")[0]
WARMUP = "Hello! Who are you?"
QUESTION = "What does a function called mean usually compute?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    git(path, "init", "-q", "-b", "main")
    git(path, "-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "-q", "--allow-empty", "-m", "init")
    if files:
        git(path, "add", "-A")
        git(path, "-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", "files")
    return path


def tree_memory(pid: int) -> dict:
    """RSS and PSS (KiB) of a process and all its descendants (WebKit's web and network processes)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    todo, seen = [pid], []
    while todo:
        q = todo.pop()
        seen.append(q)
        todo.extend(children.get(q, []))
    out = {"rss_kib": 0, "pss_kib": 0, "processes": []}
    for q in seen:
        try:
            name = Path(f"/proc/{q}/comm").read_text().strip()
            rollup = Path(f"/proc/{q}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {l.split(":")[0]: int(l.split()[1]) for l in rollup.splitlines()[1:] if l.split()[1:2] and l.split()[1].isdigit()}
        out["rss_kib"] += fields.get("Rss", 0)
        out["pss_kib"] += fields.get("Pss", 0)
        out["processes"].append({"pid": q, "name": name, "rss_kib": fields.get("Rss", 0)})
    return out


def find_app_pid(binary: Path) -> int | None:
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if os.readlink(p / "exe") == str(binary):
                    return int(p.name)
            except OSError:
                continue
    return None


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="cairn-bench-desktop-"))
        self.app = Path(args.app)
        self.cairn = Path(args.cairn)
        data = self.tmp / "state"
        for d in ("xdg-data", "keys", "home"):
            (data / d).mkdir(parents=True)
        config = data / "config.toml"
        # The embedded default model, as a new user has it; the response cache off, or every
        # round after the first would time the cache instead of the model.
        config.write_text("[chat]\ncache = false\n")
        self.env = {
            **os.environ,
            "CAIRN_CONFIG": str(config),
            "XDG_DATA_HOME": str(data / "xdg-data"),
            "CAIRN_KEY_STORE": f"file:{data / 'keys'}",
            "GIT_CONFIG_NOSYSTEM": "1",
            "NO_AT_BRIDGE": "1",
        }
        self.empty = make_repo(self.tmp / "empty", {})
        self.fixture = make_repo(self.tmp / "numbers", {"calc.py": CALC_PY, "README.md": "# numbers\n"})
        self.results: dict = {"app": str(self.app), "cairn": str(self.cairn)}

    # --- cold start ---------------------------------------------------------------------

    def cold_start(self, runs: int) -> None:
        walls, inside = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            p = subprocess.Popen([str(self.app)], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wall = None
            assert p.stderr is not None
            for line in p.stderr:
                if "interactive after" in line:
                    wall = (time.perf_counter() - t0) * 1000
                    inside.append(float(line.split("after")[1].split("ms")[0]))
                    break
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
            if wall is None:
                raise RuntimeError("the window never reported itself interactive")
            walls.append(wall)
        self.results["cold_start_ms"] = {"median": statistics.median(walls), "min": min(walls), "runs": walls,
                                         "in_process_median": statistics.median(inside)}

    # --- the window ----------------------------------------------------------------------

    def window_first_tokens(self, repo: Path, label: str) -> None:
        port = free_port()
        log = open(self.tmp / f"tauri-driver-{label}.log", "wb")
        drv = subprocess.Popen(
            [self.args.tauri_driver, "--port", str(port), "--native-port", str(free_port()),
             "--native-driver", shutil.which("WebKitWebDriver") or "WebKitWebDriver"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            d = Driver(f"http://127.0.0.1:{port}", {"tauri:options": {"application": str(self.app), "args": [str(repo)]}})
            try:
                d.wait("the index", lambda: d.js("return document.body.dataset.index") == "ready", 180)
                pid = find_app_pid(self.app)
                time.sleep(5)
                if pid and label == "empty":
                    self.results["idle_memory_repo_open"] = tree_memory(pid)
                window, command, usage = [], [], []
                for _ in range(self.args.rounds):
                    d.find("#new-chat").click()
                    for q, timed in ((WARMUP, False), (QUESTION, True)):
                        box = d.find("#question")
                        box.clear()
                        box.type(q)
                        d.js("delete document.body.dataset.firstTokenMs")
                        d.find("#ask-btn").click()
                        d.wait("the answer", lambda: d.js("return document.body.dataset.streaming") == "false"
                               and d.js("return document.querySelectorAll('.msg.assistant.done').length") > 0, 300, 0.02)
                        if timed:
                            window.append(float(d.js("return document.body.dataset.firstTokenMs")))
                            turn = json.loads(d.js("return document.body.dataset.lastTurn"))
                            command.append(float(turn["commandFirstTokenMs"]))
                            usage.append(turn["usage"])
                    # The same request through `cairn chat`, right after: rounds interleave so
                    # a change in the machine's load touches both sides alike.
                    self.cli_round(repo, label)
                if pid and label == "empty":
                    time.sleep(3)
                    self.results["idle_memory_after_chat"] = tree_memory(pid)
                self.results[f"window_{label}"] = {"window_first_token_ms": window, "command_first_token_ms": command,
                                                   "usage": usage}
            finally:
                d.quit()
        finally:
            drv.terminate()
            try:
                drv.wait(10)
            except subprocess.TimeoutExpired:
                drv.kill()
            log.close()

    # --- the command line ----------------------------------------------------------------

    def cli_round(self, repo: Path, label: str) -> None:
        """One round of `cairn chat` (interactive, on pipes): the warm-up turn, then the timed one."""
        out = self.results.setdefault(f"cli_{label}", {"first_byte_ms": [], "reports": []})
        p = subprocess.Popen([str(self.cairn), "--repo", str(repo), "chat"], env=self.env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        assert p.stdin and p.stdout and p.stderr
        os.set_blocking(p.stdout.fileno(), False)

        def turn(q: str) -> tuple[float, str]:
            # Drain what is left, send the question, time the first answer byte, then wait
            # for the turn's report line on stderr.
            try:
                p.stdout.read()
            except (BlockingIOError, TypeError):
                pass
            t0 = time.perf_counter()
            p.stdin.write((q + "\n").encode())
            p.stdin.flush()
            first = None
            while first is None:
                try:
                    chunk = p.stdout.read()
                except BlockingIOError:
                    chunk = None
                if chunk and chunk.strip():
                    first = (time.perf_counter() - t0) * 1000
                else:
                    time.sleep(0.002)
            while True:
                line = p.stderr.readline().decode()
                if not line or line.startswith("[") or line.startswith("cairn:"):
                    return first, line.strip()

        turn(WARMUP)
        first, report = turn(QUESTION)
        out["first_byte_ms"].append(first)
        out["reports"].append(report)
        # The peer for the window's memory: the same session in a terminal, idle.
        time.sleep(1)
        out.setdefault("idle_rss_kib", []).append(tree_memory(p.pid)["rss_kib"])
        out.setdefault("idle_pss_kib", []).append(tree_memory(p.pid)["pss_kib"])
        p.stdin.close()
        p.wait(60)

    def cli_oneshot(self, repo: Path, label: str) -> None:
        r = subprocess.run([str(self.cairn), "--repo", str(repo), "chat", "--json", QUESTION], env=self.env,
                           capture_output=True, text=True, timeout=300)
        usage = json.loads(r.stdout)["usage"] if r.returncode == 0 else {}
        out = self.results.setdefault(f"cli_{label}", {"first_byte_ms": [], "reports": []})
        out["oneshot_model_ttft_ms"] = usage.get("time_to_first_token")
        out["oneshot_prompt_tokens"] = usage.get("prompt_tokens")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--app", default=str(TARGET / "debug" / "cairn-desktop"))
    ap.add_argument("--cairn", default=str(TARGET / "debug" / "cairn"))
    ap.add_argument("--tauri-driver", default=shutil.which("tauri-driver") or str(CACHE / "tools" / "bin" / "tauri-driver"))
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    b = Bench(args)
    b.cold_start(args.starts)
    for label, repo in (("empty", b.empty), ("fixture", b.fixture)):
        b.window_first_tokens(repo, label)
        b.cli_oneshot(repo, label)
    r = b.results
    med = statistics.median
    print(f"{'measure':58} {'value':>12}")
    cs = r["cold_start_ms"]
    print(f"{'cold start: spawn to interactive window (median of %d)' % args.starts:58} {cs['median']:>9.0f} ms")
    print(f"{'  (in-process: main() to the UI ready call)':58} {cs['in_process_median']:>9.0f} ms")
    for label, what in (("empty", "nothing to retrieve"), ("fixture", "fixture repo, sources retrieved")):
        w, c = r[f"window_{label}"], r[f"cli_{label}"]
        wm, cm, cmd = med(w["window_first_token_ms"]), med(c["first_byte_ms"]), med(w["command_first_token_ms"])
        print(f"{'first token, ' + what:58}")
        print(f"{'  window: click to first text painted (median)':58} {wm:>9.0f} ms")
        print(f"{'  window: command start to first delta (median)':58} {cmd:>9.0f} ms")
        print(f"{'  cairn chat: question to first byte (median)':58} {cm:>9.0f} ms")
        print(f"{'  ratio window / cairn chat':58} {wm / cm:>11.2f}x")
        u = w["usage"][-1]
        print(f"{'  window prompt tokens (reused)':58} {u['promptTokens']:>6} ({u['reusedPromptTokens']})")
        print(f"{'  cairn chat report':58} {c['reports'][-1] if c['reports'] else ''}")
    for key, what in (("idle_memory_repo_open", "idle, repository open"), ("idle_memory_after_chat", "idle after chat")):
        m = r.get(key)
        if m:
            names = ", ".join(sorted({p["name"] for p in m["processes"]}))
            print(f"{'memory ' + what + ' (PSS of app + WebKit processes)':58} {m['pss_kib'] / 1024:>9.0f} MiB")
            print(f"{'  (RSS sum; processes: ' + names + ')':58} {m['rss_kib'] / 1024:>9.0f} MiB")
    c = r.get("cli_empty", {})
    if c.get("idle_pss_kib"):
        print(f"{'peer: cairn chat idle after the same turns (PSS / RSS)':58} {med(c['idle_pss_kib']) / 1024:>9.0f} MiB"
              f" / {med(c['idle_rss_kib']) / 1024:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2))
    shutil.rmtree(b.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
