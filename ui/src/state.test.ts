import { describe, expect, it } from "vitest";
import {
  editActionable,
  editorLine,
  editorsLabel,
  indexLabel,
  initialState,
  openedNotice,
  reduce,
  toUiError,
  type Action,
  type State,
} from "./state";
import type { ChatView, EditView, EditorsView, Status } from "./types";

const model = { name: "default", origin: "local" as const, modelId: "SmolLM2", runtime: "llama.cpp" };
const status = (repo: string): Status => ({
  repo, version: "0.1.0", files: null, languages: {}, chatModel: model, completeModel: model,
  backend: "local", modelError: null, index: { state: "opening" }, generation: 1, indexSeq: 0, ledgerPath: "/l", ledgerError: null, gpuBackend: null,
  editors: serving(0), chatKinds: [{ name: "fix", button: "Fix selection" }],
});
function serving(sessions: number): EditorsView {
  return { state: "serving", socket: "/run/user/1000/cairn/lsp.sock", pid: 4242, sessions, message: `${sessions} connected` };
}
const edit: EditView = {
  recordId: "rec1", path: "calc.py", startLine: 5, endLine: 6, newText: "    return a + b\n",
  oldFile: "x\n", newFile: "y\n", problem: null, model, contextFiles: ["calc.py:1-9"], references: [],
};
const answer = (requestId: string, edits: EditView[] = []): ChatView => ({
  requestId, conversationId: "c-1", answer: "It adds [1].", citations: [{ n: 1, path: "calc.py", startLine: 4, endLine: 6 }],
  citationMarks: [{ start: 8, end: 11, numbers: [1] }], sourcesError: null,
  sources: [], edits, withheld: [], model, firstTokenMs: 120, totalMs: 900,
  usage: { promptTokens: 10, reusedPromptTokens: 0, generatedTokens: 5, modelFirstTokenMs: 100, tokensPerS: 50 },
  fallbackFrom: null,
});

function replay(...actions: Action[]): State {
  return actions.reduce(reduce, initialState);
}

describe("the window's state", () => {
  it("streams deltas into the answer, then takes the engine's final text", () => {
    const s = replay(
      { type: "opened", status: status("/r") },
      { type: "ask", requestId: "q1", question: "what does add do?", kind: "ask", selection: null },
      { type: "delta", requestId: "q1", text: "It " },
      { type: "delta", requestId: "q1", text: "adds" },
    );
    const m = s.messages[1];
    expect(m).toMatchObject({ role: "assistant", text: "It adds", done: false });
    expect(s.streaming).toBe("q1");
    const done = reduce(s, { type: "answered", answer: answer("q1") });
    expect(done.messages[1]).toMatchObject({ text: "It adds [1].", done: true });
    expect(done.streaming).toBeNull();
    expect(done.conversation).toBe("c-1");
    // A late delta does not change a finished answer.
    expect(reduce(done, { type: "delta", requestId: "q1", text: "!" }).messages[1]).toMatchObject({ text: "It adds [1]." });
  });

  it("starts the text over when the router falls back, and says so", () => {
    const s = replay(
      { type: "ask", requestId: "q1", question: "q", kind: "ask", selection: null },
      { type: "delta", requestId: "q1", text: "partial" },
      { type: "reset", requestId: "q1", reason: "remote timed out" },
    );
    expect(s.messages[1]).toMatchObject({ text: "", notice: "remote timed out; answering with the fallback model" });
  });

  it("tracks each proposed edit through apply and dismiss", () => {
    let s = replay(
      { type: "ask", requestId: "q1", question: "", kind: "fix", selection: { path: "calc.py", startLine: 5, endLine: 6 } },
      { type: "answered", answer: answer("q1", [edit]) },
    );
    expect(s.edits.rec1).toEqual({ state: "proposed" });
    expect(editActionable(s, edit)).toBe(true);
    s = reduce(s, { type: "edit", recordId: "rec1", decision: { state: "applying" } });
    expect(editActionable(s, edit)).toBe(false);
    s = reduce(s, { type: "edit", recordId: "rec1", decision: { state: "applied", applied: { recordId: "rec1", path: "calc.py", startLine: 5, endLine: 6 } } });
    expect(s.edits.rec1.state).toBe("applied");
    expect(editActionable({ ...s, edits: {} }, { ...edit, problem: "changed on disk" })).toBe(false);
  });

  it("keeps the conversation when the same repository reopens, and clears it for another", () => {
    const s = replay(
      { type: "opened", status: status("/r") },
      { type: "ask", requestId: "q1", question: "q", kind: "ask", selection: null },
      { type: "opened", status: status("/r") },
    );
    expect(s.messages.length).toBe(2);
    const other = reduce(s, { type: "opened", status: status("/other") });
    expect(other.messages).toEqual([]);
    expect(other.recent).toEqual(["/other", "/r"]);
  });

  it("updates index progress and the file count", () => {
    const s = replay(
      { type: "opened", status: status("/r") },
      { type: "index", index: { state: "indexing", filesDone: 3, filesTotal: 12 }, generation: 1, seq: 1 },
    );
    expect(s.status?.files).toBe(12);
    expect(indexLabel(s.status?.index)).toEqual({ text: "indexing 3/12 files", fraction: 0.25 });
    const r = reduce(s, { type: "index", index: { state: "ready", files: 11 }, generation: 1, seq: 2 });
    expect(indexLabel(r.status?.index).text).toBe("11 files indexed");
  });

  it("a status read before an index event the window has does not undo it", () => {
    // Reopened (generation 2): the events arrive before the command's answer, which was
    // read when no event of this opening had been sent.
    const events = replay(
      { type: "opened", status: status("/r") },
      { type: "index", index: { state: "opening" }, generation: 2, seq: 1 },
      { type: "index", index: { state: "ready", files: 4 }, generation: 2, seq: 2 },
    );
    const answered = reduce(events, { type: "status", status: { ...status("/r"), generation: 2, indexSeq: 0 } });
    expect(answered.status?.index).toEqual({ state: "ready", files: 4 });
    expect(answered.status?.files).toBe(4);
    // A late event of the earlier opening, or an older one of this, changes nothing.
    const late = replay(
      { type: "opened", status: status("/r") },
      { type: "index", index: { state: "ready", files: 4 }, generation: 2, seq: 5 },
      { type: "index", index: { state: "indexing", filesDone: 1, filesTotal: 4 }, generation: 1, seq: 4 },
    );
    expect(late.status?.index).toEqual({ state: "ready", files: 4 });
    // A status newer than every event wins.
    const newer = reduce(late, { type: "status", status: { ...status("/r"), generation: 2, indexSeq: 5, index: { state: "read-only", files: 4, message: "x" } } });
    expect(newer.status?.index.state).toBe("read-only");
  });

  it("a failed turn is shown on its message and frees the input", () => {
    const err = { kind: "unauthorized" as const, message: "401", action: "Open Settings." };
    const s = replay(
      { type: "ask", requestId: "q1", question: "q", kind: "ask", selection: null },
      { type: "chat-failed", requestId: "q1", error: err },
    );
    expect(s.streaming).toBeNull();
    expect(s.messages[1]).toMatchObject({ done: true, error: err });
  });

  it("turns anything thrown into a readable error", () => {
    expect(toUiError({ kind: "not-found", message: "No folder.", action: "Check." }).kind).toBe("not-found");
    const e = toUiError(new Error("boom"));
    expect(e.kind).toBe("window");
    expect(e.message).toContain("boom");
    expect(e.action).toMatch(/restart/i);
  });

  it("takes polled editor sessions into the status, keeping the state when nothing changed", () => {
    const s = replay({ type: "opened", status: status("/r") });
    expect(s.status?.editors.sessions).toBe(0);
    // Same answer again: the very same state object, so nothing redraws.
    expect(reduce(s, { type: "editors", editors: serving(0) })).toBe(s);
    const one = reduce(s, { type: "editors", editors: serving(1) });
    expect(one.status?.editors).toMatchObject({ state: "serving", sessions: 1, pid: 4242 });
    expect(one.status?.repo).toBe("/r");
    // Before a repository is open there is no status to put it in.
    expect(reduce(initialState, { type: "editors", editors: serving(1) })).toBe(initialState);
  });

  it("words the editors' part of the status bar", () => {
    expect(editorsLabel(serving(1))).toEqual({ text: "1 editor connected", tone: "ok" });
    expect(editorsLabel(serving(3)).text).toBe("3 editors connected");
    expect(editorsLabel({ ...serving(0), state: "other-daemon", pid: 99 })).toEqual({
      text: "editors: another engine (pid 99)",
      tone: "warn",
    });
    expect(editorsLabel({ ...serving(0), state: "other-daemon", pid: null }).text).toBe("editors: another engine");
    expect(editorsLabel({ ...serving(0), state: "unavailable" }).tone).toBe("warn");
    expect(editorsLabel(undefined).text).toBe("editors: –");
  });

  it("opens the editor at the selection, else at the first cited line", () => {
    const lines = { path: "calc.py", startLine: 1, endLine: 12, totalLines: 12, lines: [] };
    let s = replay(
      { type: "opened", status: status("/r") },
      { type: "panel", lines, focusStart: 4, focusEnd: 6, cite: 1 },
    );
    expect(editorLine(s)).toBe(4);
    s = reduce(s, { type: "select", selection: { path: "calc.py", startLine: 9, endLine: 10 } });
    expect(editorLine(s)).toBe(9);
    // A selection in another file does not move this file's line.
    s = reduce(s, { type: "select", selection: { path: "other.py", startLine: 2, endLine: 2 } });
    expect(editorLine(s)).toBe(4);
    expect(editorLine(reduce(s, { type: "close-panel" }))).toBeNull();
  });

  it("says what opened the file, and why the editor was passed over", () => {
    expect(openedNotice({ path: "/r/calc.py", line: 4, via: "editor", command: ["/usr/bin/code", "-g", "/r/calc.py:4"], note: null })).toBe(
      "Opened /r/calc.py:4 in code.",
    );
    expect(
      openedNotice({ path: "/r/calc.py", line: 4, via: "opener", command: ["xdg-open", "/r/calc.py"], note: "vim could not be started" }),
    ).toBe("Opened /r/calc.py with the desktop's default application (xdg-open): vim could not be started.");
  });
});
