import { beforeEach, describe, expect, it } from "vitest";
import { initialState, reduce } from "./state";
import type { ChatView, EditorsView, ReferenceMatch, Status } from "./types";
import { renderSettings, renderStatus, renderTranscript, shell } from "./view";

const model = { name: "smollm2", origin: "local" as const, modelId: "SmolLM2", runtime: "llama.cpp" };
function status(editors: EditorsView): Status {
  return {
    repo: "/r", version: "0.1.0", files: 3, languages: { python: 2 }, chatModel: model, completeModel: model,
    backend: "local", modelError: null, index: { state: "ready", files: 3 }, generation: 1, indexSeq: 1, ledgerPath: "/l", ledgerError: null,
    gpuBackend: null, editors, chatKinds: [{ name: "explain", button: "Explain" }, { name: "fix", button: "Fix selection" }],
  };
}

describe("the window's regions", () => {
  beforeEach(() => {
    document.body.innerHTML = "";
    document.body.append(shell());
  });

  it("offers the typed path, the native folder picker and the recent list side by side", () => {
    const form = document.getElementById("open-form")!;
    expect(form.querySelector("#repo-path")).not.toBeNull();
    const choose = form.querySelector<HTMLButtonElement>("#choose-btn")!;
    // A plain button: choosing must not submit the typed path.
    expect(choose.type).toBe("button");
    expect(choose.dataset.act).toBe("choose-folder");
    expect(form.querySelector("#recent")).not.toBeNull();
  });

  it("shows in the status bar whether editors share this engine", () => {
    const e: EditorsView = { state: "serving", socket: "/run/cairn/lsp.sock", pid: 77, sessions: 2, message: "Editors … share this window's engine" };
    renderStatus(reduce(initialState, { type: "opened", status: status(e) }));
    const badge = document.getElementById("editors-status")!;
    expect(badge.textContent).toBe("2 editors connected");
    expect(badge.dataset).toMatchObject({ state: "serving", pid: "77", sessions: "2" });
    expect(badge.title).toContain("share this window's engine");
    renderStatus(reduce(initialState, { type: "opened", status: status({ ...e, state: "other-daemon", pid: 9, sessions: 0 }) }));
    expect(document.getElementById("editors-status")!.textContent).toBe("editors: another engine (pid 9)");
  });

  it("counts in the status bar the suggestions that matched third-party code", () => {
    const e: EditorsView = { state: "off", socket: "", pid: null, sessions: 0, message: "" };
    const refs = { policy: "block" as const, state: "ready" as const, packages: 88, fingerprints: 460358, warnings: 0, error: null, matched: 2, withheld: 1 };
    renderStatus(reduce(initialState, { type: "opened", status: { ...status(e), references: refs } }));
    const badge = document.getElementById("references-status")!;
    expect(badge.textContent).toBe("references: 88 packages · 2 matched (1 withheld)");
    expect(badge.title).toContain('references = "block"');
    renderStatus(reduce(initialState, { type: "opened", status: { ...status(e), references: { ...refs, state: "off" } } }));
    expect(document.getElementById("references-status")).toBeNull();
  });

  it("gives the editor set-up lines with where the cairn binary came from", () => {
    renderSettings(
      { configPath: "/c.toml", repoConfig: null, models: [], cache: [], local: null, remote: null, apiKeyStored: false, keyringError: null, chat: "default", complete: "default", gpuBackend: null, error: null },
      { cairn: "/usr/bin/cairn", found: "bundled", neovim: "require('cairn').setup({ cmd = { '/usr/bin/cairn', 'lsp', '--remote', 'auto' } })", vscode: "x" },
    );
    expect(document.getElementById("cairn-binary")!.textContent).toBe("The cairn binary (bundled with this app): /usr/bin/cairn");
    expect(document.getElementById("setup-neovim")!.textContent).toContain("'--remote', 'auto'");
  });

  it("names the third-party code a proposed edit reproduces beside its diff, and says when one was withheld", () => {
    const ref: ReferenceMatch = {
      package: "trimmer", version: "2.1.0", licence: "BSD-3-Clause", path: "/r/node_modules/trimmer/index.js",
      lines: [3, 13], matchedChars: 236, textLines: [1, 11], verbatim: true,
    };
    const answer: ChatView = {
      requestId: "q1", conversationId: "c-1", answer: "Here it is.", citations: [], citationMarks: [], sources: [], sourcesError: null,
      edits: [{
        recordId: "0192a3b4-0000-7000-8000-000000000001", path: "app.js", startLine: 1, endLine: 1, newText: "function f() {}\n",
        oldFile: "\n", newFile: "function f() {}\n", problem: null, model, contextFiles: [], references: [ref],
      }],
      withheld: [{ recordId: "0192a3b4-0000-7000-8000-000000000002", path: "lib.js", startLine: 4, endLine: 9, references: [{ ...ref, verbatim: false, matchedChars: 180 }] }],
      model, firstTokenMs: 100, totalMs: 900,
      usage: { promptTokens: 0, reusedPromptTokens: 0, generatedTokens: 0, modelFirstTokenMs: null, tokensPerS: 0 }, fallbackFrom: null,
    };
    let s = reduce(initialState, { type: "opened", status: status({ state: "off", socket: "", pid: null, sessions: 0, message: "" }) });
    s = reduce(s, { type: "ask", requestId: "q1", question: "copy it", kind: "ask", selection: null });
    s = reduce(s, { type: "answered", answer });
    renderTranscript(s);

    const edit = document.querySelector<HTMLElement>('.edit[data-record="0192a3b4-0000-7000-8000-000000000001"]')!;
    const refs = edit.querySelector(".references")!;
    // Beside the diff, before the buttons: package, version, licence, source file and lines.
    expect(refs.nextElementSibling?.matches("table.diff")).toBe(true);
    const item = refs.querySelector<HTMLElement>("li.reference")!;
    expect(item.dataset).toMatchObject({ package: "trimmer", licence: "BSD-3-Clause" });
    expect(item.textContent).toBe(
      "trimmer 2.1.0 (BSD-3-Clause) — /r/node_modules/trimmer/index.js lines 3-13 (236 characters; proposed lines 1-11)",
    );
    expect(edit.querySelector<HTMLButtonElement>("[data-apply]")!.disabled).toBe(false);

    const held = document.querySelector<HTMLElement>('.edit.withheld[data-record="0192a3b4-0000-7000-8000-000000000002"]')!;
    expect(held.querySelector(".withheld-note")!.textContent).toContain("A proposed edit to lib.js was withheld");
    expect(held.querySelector(".withheld-note")!.textContent).toContain('references = "block"');
    expect(held.querySelector("li.reference")!.textContent).toContain("(180 characters, names changed; proposed lines 1-11)");
    // Nothing to apply, no diff: its text never reached the window.
    expect(held.querySelector("[data-apply]")).toBeNull();
    expect(held.querySelector("table.diff")).toBeNull();

    // An edit without references has no such note.
    const plain = { ...answer, requestId: "q2", edits: [{ ...answer.edits[0], recordId: "r3", references: [] }], withheld: [] };
    s = reduce(s, { type: "ask", requestId: "q2", question: "again", kind: "ask", selection: null });
    s = reduce(s, { type: "answered", answer: plain });
    renderTranscript(s);
    expect(document.querySelector('.edit[data-record="r3"] .references')).toBeNull();
  });

  it("says when an answer came from the response cache, naming the original answer's record", () => {
    const answer: ChatView = {
      requestId: "cache-1", conversationId: "c-1", answer: "It returns a + b.", citations: [], citationMarks: [], sources: [], sourcesError: null,
      edits: [], withheld: [], model, firstTokenMs: 3, totalMs: 40,
      usage: { promptTokens: 0, reusedPromptTokens: 0, generatedTokens: 0, modelFirstTokenMs: null, tokensPerS: 0 }, fallbackFrom: null,
      recordId: "0192a3b4-0000-7000-8000-000000000009",
      cached: { fromRecord: "0192a3b4-0000-7000-8000-000000000001", at: "2026-12-07T14:00:00Z" },
    };
    let s = reduce(initialState, { type: "opened", status: status({ state: "off", socket: "", pid: null, sessions: 0, message: "" }) });
    s = reduce(s, { type: "ask", requestId: "cache-1", question: "what does add return?", kind: "ask", selection: null });
    s = reduce(s, { type: "answered", answer });
    renderTranscript(s);
    const note = document.querySelector<HTMLElement>(".meta .cached")!;
    expect(note.textContent).toBe(" · from the cache (the same question over the same sources, answered 2026-12-07T14:00:00Z)");
    expect(note.title).toContain("0192a3b4-0000-7000-8000-000000000001");

    // A fresh answer has no such note.
    s = reduce(s, { type: "ask", requestId: "cache-2", question: "again", kind: "ask", selection: null });
    s = reduce(s, { type: "answered", answer: { ...answer, requestId: "cache-2", cached: null } });
    renderTranscript(s);
    expect(document.querySelectorAll(".meta .cached").length).toBe(1);
  });
});
