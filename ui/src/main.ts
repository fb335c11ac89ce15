// The window's controller: one store, the app's events in, user actions out to the
// app's commands, and a redraw of whatever changed. Errors never leave a blank window:
// each lands in the banner with the action to take.

import "highlight.js/styles/github.css";
import "./style.css";
import { api, inTauri, subscribe } from "./api";
import { panelWindow } from "./citations";
import { editPatch } from "./diff";
import { $, clear, h } from "./dom";
import { editorLine, initialState, openedNotice, reduce, toUiError, type Action, type State } from "./state";
import type { ChatKind, Citation } from "./types";
import {
  readSettingsForm,
  renderBanner,
  renderNotice,
  renderPanel,
  renderProvenance,
  renderSelectionChip,
  renderSettings,
  renderStatus,
  renderTabs,
  renderTranscript,
  resetTranscript,
  shell,
} from "./view";

let state: State = initialState;
let drawnState: State | null = null;
let noticeTimer: number | undefined;
const firstDelta = new Map<string, number>();
const askedAt = new Map<string, number>();

function dispatch(a: Action): void {
  state = reduce(state, a);
  draw();
}

function draw(): void {
  const prev = drawnState;
  const s = state;
  drawnState = s;
  if (!prev || prev.error !== s.error) renderBanner(s.error);
  if (!prev || prev.notice !== s.notice) renderNotice(s.notice);
  if (!prev || prev.status !== s.status || prev.opening !== s.opening || prev.version !== s.version) renderStatus(s);
  if (!prev || prev.view !== s.view) renderTabs(s);
  if (!prev || prev.messages !== s.messages || prev.edits !== s.edits || prev.status !== s.status || prev.recent !== s.recent)
    renderTranscript(s);
  if (!prev || prev.panel !== s.panel || prev.selection !== s.selection || prev.view !== s.view || prev.status?.chatKinds !== s.status?.chatKinds) renderPanel(s);
  if (!prev || prev.selection !== s.selection) renderSelectionChip(s);
  if (!prev || prev.provenance !== s.provenance || (prev.status === null) !== (s.status === null))
    renderProvenance(s.provenance, !!s.status);
  if (!prev || prev.settings !== s.settings || prev.editorSetup !== s.editorSetup) renderSettings(s.settings, s.editorSetup);
  if (!prev || prev.recent !== s.recent) renderRecent(s.recent);
  const busy = s.streaming !== null;
  ($("ask-btn") as HTMLButtonElement).disabled = busy || !s.status;
  $("stop-btn").hidden = !busy;
  document.body.dataset.streaming = String(busy);
  document.body.dataset.repo = s.status?.repo ?? "";
  document.body.dataset.index = s.status?.index.state ?? "";
}

function renderRecent(recent: string[]): void {
  const sel = $("recent") as HTMLSelectElement;
  clear(sel);
  sel.append(h("option", { value: "" }, recent.length ? "Recent…" : "No recent repositories"));
  for (const r of recent) sel.append(h("option", { value: r }, r));
}

function notice(text: string): void {
  dispatch({ type: "notice", text });
  window.clearTimeout(noticeTimer);
  noticeTimer = window.setTimeout(() => dispatch({ type: "notice", text: null }), 6000);
}

function fail(e: unknown): void {
  dispatch({ type: "error", error: toUiError(e) });
}

function newId(): string {
  return `r${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

// ---- repository -------------------------------------------------------------------------

async function open(path: string): Promise<void> {
  const p = path.trim();
  if (!p) {
    fail({ kind: "input", message: "No folder was given.", action: "Type or paste the path of a repository folder." });
    return;
  }
  dispatch({ type: "opening", path: p });
  try {
    const status = await api.openRepository(p);
    if (state.status?.repo !== status.repo) resetTranscript();
    dispatch({ type: "opened", status });
    ($("repo-path") as HTMLInputElement).value = status.repo;
    if (status.modelError) dispatch({ type: "error", error: status.modelError });
    if (state.view === "provenance") void loadProvenance();
  } catch (e) {
    fail(e);
  }
}

/** The native folder picker; the typed path and the recent list stay as they are. */
async function chooseFolder(): Promise<void> {
  const btn = document.getElementById("choose-btn") as HTMLButtonElement | null;
  if (btn) btn.disabled = true;
  try {
    const picked = await api.pickFolder(state.status?.repo ?? null);
    if (!picked) return; // cancelled
    await open(picked);
    if (state.status && !state.error) notice(`Opened ${state.status.repo} (chosen in the folder dialog).`);
  } catch (e) {
    fail(e);
  } finally {
    if (btn) btn.disabled = false;
  }
}

async function openInEditor(): Promise<void> {
  const p = state.panel;
  if (!p) return;
  try {
    notice(openedNotice(await api.openInEditor(p.lines.path, editorLine(state))));
  } catch (e) {
    fail(e);
  }
}

/** Editors connecting and leaving change the status bar; nothing pushes that, so poll. */
let editorsPoll: number | undefined;
function pollEditors(): void {
  window.clearInterval(editorsPoll);
  editorsPoll = window.setInterval(() => {
    if (!state.status || state.streaming) return;
    api.editors().then((editors) => dispatch({ type: "editors", editors }), () => {});
  }, 1500);
}

// ---- chat ---------------------------------------------------------------------------------

async function ask(kind: ChatKind): Promise<void> {
  if (state.streaming) return;
  const box = $("question") as HTMLTextAreaElement;
  const question = box.value.trim();
  const selection = state.selection;
  if (kind === "ask" && !question) {
    box.focus();
    return;
  }
  if (kind !== "ask" && !selection) {
    fail({ kind: "input", message: "Nothing is selected.", action: "Open a file in the side panel and click line numbers to select lines." });
    return;
  }
  const requestId = newId();
  askedAt.set(requestId, performance.now());
  // The request goes out before the window redraws, so the model starts at once.
  const asked = api.chat({ requestId, question, conversation: state.conversation, kind, selection });
  dispatch({ type: "ask", requestId, question, kind, selection });
  box.value = "";
  try {
    const answer = await asked;
    pendingDeltas.delete(requestId);
    dispatch({ type: "answered", answer });
    const t0 = askedAt.get(requestId);
    // Read by the benchmark: the turn as the window and the model saw it.
    document.body.dataset.lastAnswerMs = t0 ? String(Math.round(performance.now() - t0)) : "";
    document.body.dataset.lastTurn = JSON.stringify({ commandFirstTokenMs: answer.firstTokenMs, usage: answer.usage });
  } catch (e) {
    const error = toUiError(e);
    dispatch({ type: "chat-failed", requestId, error });
    if (error.kind !== "cancelled") dispatch({ type: "error", error });
  }
}

// Deltas arrive per token. The first is drawn at once; the rest are drawn in batches, a
// few times a second, because each draw re-renders the whole answer (Markdown, highlighting,
// sanitising) and a local model shares the CPU with this window.
const pendingDeltas = new Map<string, string>();
let flushTimer: number | undefined;
const DELTA_BATCH_MS = 120;

function flushDeltas(): void {
  flushTimer = undefined;
  for (const [requestId, text] of pendingDeltas) dispatch({ type: "delta", requestId, text });
  pendingDeltas.clear();
}

function onDelta(p: { requestId: string; text: string }): void {
  if (!firstDelta.has(p.requestId)) {
    const now = performance.now();
    firstDelta.set(p.requestId, now);
    const t0 = askedAt.get(p.requestId);
    dispatch({ type: "delta", requestId: p.requestId, text: p.text });
    // Read by the end-to-end test and the benchmark: click to first streamed text, in the window.
    if (t0 !== undefined) document.body.dataset.firstTokenMs = String(Math.round(performance.now() - t0));
    return;
  }
  pendingDeltas.set(p.requestId, (pendingDeltas.get(p.requestId) ?? "") + p.text);
  if (flushTimer === undefined) flushTimer = window.setTimeout(flushDeltas, DELTA_BATCH_MS);
}

// ---- citations and the side panel ------------------------------------------------------

function citationFor(el: HTMLElement): Citation | null {
  const msg = el.closest<HTMLElement>(".msg.assistant");
  const n = Number(el.dataset.cite);
  const m = state.messages.find((x) => x.role === "assistant" && x.id === msg?.dataset.id);
  if (!m || m.role !== "assistant" || !m.answer) return null;
  return m.answer.citations.find((c) => c.n === n) ?? null;
}

async function showLines(path: string, focusStart: number, focusEnd: number, cite: number | null): Promise<void> {
  const w = panelWindow({ startLine: focusStart, endLine: focusEnd }, 8);
  try {
    const lines = await api.readLines(path, w.start, w.end);
    dispatch({ type: "panel", lines, focusStart, focusEnd, cite });
  } catch (e) {
    fail(e);
  }
}

async function moreLines(direction: "above" | "below"): Promise<void> {
  const p = state.panel;
  if (!p) return;
  const start = direction === "above" ? Math.max(1, p.lines.startLine - 40) : p.lines.startLine;
  const end = direction === "below" ? p.lines.endLine + 40 : p.lines.endLine;
  try {
    const lines = await api.readLines(p.lines.path, start, end);
    dispatch({ type: "panel", lines, focusStart: p.focusStart, focusEnd: p.focusEnd, cite: p.cite });
  } catch (e) {
    fail(e);
  }
}

function selectLine(n: number, extend: boolean): void {
  const p = state.panel;
  if (!p) return;
  const sel = state.selection;
  const path = p.lines.path;
  if (sel && sel.path === path && (extend || sel.startLine === sel.endLine) && n !== sel.startLine) {
    const a = Math.min(sel.startLine, n);
    const b = Math.max(sel.endLine, n);
    dispatch({ type: "select", selection: { path, startLine: a, endLine: b } });
  } else {
    dispatch({ type: "select", selection: { path, startLine: n, endLine: n } });
  }
}

// ---- edits --------------------------------------------------------------------------------

async function applyEdit(recordId: string): Promise<void> {
  dispatch({ type: "edit", recordId, decision: { state: "applying" } });
  try {
    const applied = await api.applyEdit(recordId);
    dispatch({ type: "edit", recordId, decision: { state: "applied", applied } });
    notice(`Applied to ${applied.path}; the ledger records it as accepted.`);
    if (state.panel?.lines.path === applied.path) void showLines(applied.path, applied.startLine, Math.max(applied.startLine, applied.endLine), null);
  } catch (e) {
    const error = toUiError(e);
    dispatch({ type: "edit", recordId, decision: { state: "failed", error } });
    dispatch({ type: "error", error });
  }
}

async function dismissEdit(recordId: string): Promise<void> {
  dispatch({ type: "edit", recordId, decision: { state: "dismissing" } });
  try {
    await api.dismissEdit(recordId);
    dispatch({ type: "edit", recordId, decision: { state: "dismissed" } });
  } catch (e) {
    const error = toUiError(e);
    dispatch({ type: "edit", recordId, decision: { state: "failed", error } });
    dispatch({ type: "error", error });
  }
}

function findEdit(recordId: string) {
  for (const m of state.messages) {
    if (m.role === "assistant" && m.answer) {
      const e = m.answer.edits.find((x) => x.recordId === recordId);
      if (e) return e;
    }
  }
  return null;
}

// ---- provenance and settings --------------------------------------------------------------

async function loadProvenance(): Promise<void> {
  if (!state.status) return;
  const range = (document.getElementById("prov-range") as HTMLInputElement | null)?.value.trim() || null;
  try {
    dispatch({ type: "provenance", provenance: await api.provenance(range) });
  } catch (e) {
    fail(e);
  }
}

async function exportReport(format: string): Promise<void> {
  const range = (document.getElementById("prov-range") as HTMLInputElement | null)?.value.trim() || null;
  const dest = (document.getElementById("export-dest") as HTMLInputElement | null)?.value.trim() || null;
  try {
    const r = await api.exportReport(format, range, dest);
    const out = document.getElementById("export-result");
    if (out) out.textContent = `wrote ${r.bytes} bytes to ${r.path}`;
    notice(`Exported the ${format.toUpperCase()} report to ${r.path}.`);
  } catch (e) {
    fail(e);
  }
}

async function loadSettings(): Promise<void> {
  try {
    dispatch({ type: "settings", settings: await api.settings() });
    if (!state.editorSetup) dispatch({ type: "editor-setup", setup: await api.editorSetup() });
  } catch (e) {
    fail(e);
  }
}

async function saveSettings(): Promise<void> {
  const form = readSettingsForm();
  const btn = document.getElementById("save-settings") as HTMLButtonElement | null;
  if (btn) btn.disabled = true;
  try {
    const saved = await api.saveSettings(form);
    dispatch({ type: "settings", settings: saved.settings });
    dispatch({ type: "clear-error" });
    if (saved.status) {
      dispatch({ type: "status", status: saved.status });
      if (saved.status.modelError) dispatch({ type: "error", error: saved.status.modelError });
    }
    notice(saved.status ? "Settings saved; the repository was reopened with the new models." : "Settings saved.");
  } catch (e) {
    fail(e);
  } finally {
    if (btn) btn.disabled = false;
  }
}

function setView(view: State["view"]): void {
  dispatch({ type: "view", view });
  if (view === "provenance") void loadProvenance();
  if (view === "settings") void loadSettings();
}

// ---- wiring ---------------------------------------------------------------------------

function wire(): void {
  $("open-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void open(($("repo-path") as HTMLInputElement).value);
  });
  $("recent").addEventListener("change", (ev) => {
    const v = (ev.target as HTMLSelectElement).value;
    if (v) void open(v);
  });
  $("ask-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void ask("ask");
  });
  $("question").addEventListener("keydown", (ev) => {
    const k = ev as KeyboardEvent;
    if (k.key === "Enter" && (k.ctrlKey || k.metaKey)) {
      ev.preventDefault();
      void ask("ask");
    }
  });
  $("stop-btn").addEventListener("click", () => {
    if (state.streaming) void api.cancelChat(state.streaming).catch(fail);
  });
  $("new-chat").addEventListener("click", () => {
    resetTranscript();
    dispatch({ type: "new-conversation" });
  });
  document.addEventListener("submit", (ev) => {
    if ((ev.target as HTMLElement).id === "settings-form") {
      ev.preventDefault();
      void saveSettings();
    }
  });
  document.addEventListener("click", (ev) => {
    const t = ev.target as HTMLElement;
    const link = t.closest<HTMLElement>("a");
    const actEl = t.closest<HTMLElement>("[data-act],[data-view],[data-apply],[data-dismiss],[data-copy-patch],[data-ask],[data-export],[data-open]");
    if (link && link.classList.contains("cite")) {
      ev.preventDefault();
      const c = citationFor(link);
      if (c) void showLines(c.path, c.startLine, c.endLine, c.n);
      return;
    }
    if (link && !link.dataset.open) {
      // Links in answers never navigate the window away.
      ev.preventDefault();
    }
    const line = t.closest<HTMLElement>(".pln");
    if (line) {
      selectLine(Number(line.dataset.line), (ev as MouseEvent).shiftKey);
      return;
    }
    if (!actEl) return;
    const d = actEl.dataset;
    if (d.view) setView(d.view as State["view"]);
    else if (d.open) {
      ev.preventDefault();
      void open(d.open);
    } else if (d.apply) void applyEdit(d.apply);
    else if (d.dismiss) void dismissEdit(d.dismiss);
    else if (d.copyPatch) {
      const e = findEdit(d.copyPatch);
      if (e) void navigator.clipboard?.writeText(editPatch(e)).then(() => notice("Patch copied."), fail);
    } else if (d.ask) void ask(d.ask as ChatKind);
    else if (d.export) void exportReport(d.export);
    else if (d.act === "dismiss-error") dispatch({ type: "clear-error" });
    else if (d.act === "settings") setView("settings");
    else if (d.act === "focus-path") ($("repo-path") as HTMLInputElement).focus();
    else if (d.act === "close-panel") dispatch({ type: "close-panel" });
    else if (d.act === "clear-selection") dispatch({ type: "select", selection: null });
    else if (d.act === "more-above") void moreLines("above");
    else if (d.act === "more-below") void moreLines("below");
    else if (d.act === "prov-refresh") void loadProvenance();
    else if (d.act === "open-editor") void openInEditor();
    else if (d.act === "choose-folder") void chooseFolder();
  });
  window.addEventListener("error", (ev) => fail(ev.error ?? ev.message));
  window.addEventListener("unhandledrejection", (ev) => fail(ev.reason));
}

async function boot(): Promise<void> {
  const root = $("app");
  clear(root);
  root.append(shell());
  wire();
  draw();
  if (!inTauri()) {
    fail({ kind: "window", message: "This page is running outside the Cairn app, so it cannot reach the engine.", action: "Start it with `cairn-desktop`." });
    return;
  }
  await subscribe({
    index: (p) => {
      const before = state.status?.index.state;
      dispatch({ type: "index", index: p.index });
      const settled = ["ready", "read-only", "error"].includes(p.index.state);
      if (settled && before !== p.index.state) void api.status().then((status) => dispatch({ type: "status", status }), () => {});
    },
    delta: onDelta,
    reset: (p) => dispatch({ type: "reset", requestId: p.requestId, reason: p.reason }),
  });
  const startup = await api.startup();
  dispatch({ type: "startup", startup });
  document.body.dataset.ready = "true";
  void api.uiReady();
  pollEditors();
  if (startup.path) await open(startup.path);
}

boot().catch((e) => {
  // Even a failed start leaves words on the screen.
  const root = document.getElementById("app");
  if (root && !document.getElementById("banner")) {
    root.textContent = `Cairn's window failed to start: ${toUiError(e).message} Restart Cairn; if it persists, report this message.`;
  } else {
    fail(e);
  }
});
