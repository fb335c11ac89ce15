// The window's state and the one function that changes it. Everything the window
// shows is derived from this state; every change is an action through `reduce`, which
// is pure (no DOM, no IPC), so the tests replay sequences of actions.

import type {
  AppliedView,
  ChatKind,
  ChatView,
  EditView,
  EditorSetup,
  EditorsView,
  IndexState,
  OpenedView,
  Lines,
  ProvenanceView,
  Selection,
  SettingsView,
  Startup,
  Status,
  UiError,
} from "./types";

export type View = "chat" | "provenance" | "settings";

export type EditDecision =
  | { state: "proposed" }
  | { state: "applying" }
  | { state: "applied"; applied: AppliedView }
  | { state: "dismissing" }
  | { state: "dismissed" }
  | { state: "failed"; error: UiError };

export interface UserMessage {
  role: "user";
  id: string;
  text: string;
  kind: ChatKind;
  selection: Selection | null;
}

export interface AssistantMessage {
  role: "assistant";
  id: string; // the request id
  text: string;
  done: boolean;
  answer: ChatView | null;
  error: UiError | null;
  /** Set when the router fell back mid-answer and the text started over. */
  notice: string | null;
}

export type Message = UserMessage | AssistantMessage;

export interface Panel {
  lines: Lines;
  /** The lines the citation (or the person) points at, highlighted. */
  focusStart: number;
  focusEnd: number;
  /** A citation number, when opened from one. */
  cite: number | null;
}

export interface State {
  version: string;
  recent: string[];
  opening: string | null;
  status: Status | null;
  /** The newest `index-progress` event, kept so a status read before it cannot undo it. */
  indexEvent: IndexEvent | null;
  error: UiError | null;
  view: View;
  messages: Message[];
  conversation: string | null;
  streaming: string | null;
  edits: Record<string, EditDecision>;
  panel: Panel | null;
  selection: Selection | null;
  provenance: ProvenanceView | null;
  settings: SettingsView | null;
  editorSetup: EditorSetup | null;
  notice: string | null;
}

export interface IndexEvent {
  generation: number;
  seq: number;
  index: IndexState;
}

export const initialState: State = {
  version: "",
  recent: [],
  opening: null,
  status: null,
  indexEvent: null,
  error: null,
  view: "chat",
  messages: [],
  conversation: null,
  streaming: null,
  edits: {},
  panel: null,
  selection: null,
  provenance: null,
  settings: null,
  editorSetup: null,
  notice: null,
};

export type Action =
  | { type: "startup"; startup: Startup }
  | { type: "opening"; path: string }
  | { type: "opened"; status: Status }
  | { type: "status"; status: Status }
  | { type: "index"; index: IndexState; generation: number; seq: number }
  | { type: "error"; error: UiError }
  | { type: "clear-error" }
  | { type: "notice"; text: string | null }
  | { type: "view"; view: View }
  | { type: "ask"; requestId: string; question: string; kind: ChatKind; selection: Selection | null }
  | { type: "delta"; requestId: string; text: string }
  | { type: "reset"; requestId: string; reason: string }
  | { type: "answered"; answer: ChatView }
  | { type: "chat-failed"; requestId: string; error: UiError }
  | { type: "panel"; lines: Lines; focusStart: number; focusEnd: number; cite: number | null }
  | { type: "close-panel" }
  | { type: "select"; selection: Selection | null }
  | { type: "edit"; recordId: string; decision: EditDecision }
  | { type: "provenance"; provenance: ProvenanceView }
  | { type: "settings"; settings: SettingsView }
  | { type: "editor-setup"; setup: EditorSetup }
  | { type: "editors"; editors: EditorsView }
  | { type: "new-conversation" };

function updateAssistant(s: State, id: string, f: (m: AssistantMessage) => AssistantMessage): Message[] {
  return s.messages.map((m) => (m.role === "assistant" && m.id === id ? f(m) : m));
}

export function reduce(s: State, a: Action): State {
  switch (a.type) {
    case "startup":
      return { ...s, version: a.startup.version, recent: a.startup.recent };
    case "opening":
      return { ...s, opening: a.path, error: null };
    case "opened": {
      const recent = [a.status.repo, ...s.recent.filter((r) => r !== a.status.repo)].slice(0, 10);
      const sameRepo = s.status?.repo === a.status.repo;
      return {
        ...s,
        opening: null,
        status: withIndexEvent(a.status, s.indexEvent),
        recent,
        error: null,
        // Another repository: its conversation, panel and edits start afresh.
        ...(sameRepo
          ? {}
          : { messages: [], conversation: null, edits: {}, panel: null, selection: null, provenance: null }),
      };
    }
    case "status":
      return { ...s, status: withIndexEvent(a.status, s.indexEvent) };
    case "index": {
      const ev = { generation: a.generation, seq: a.seq, index: a.index };
      // Numbers only grow: an event older than the one kept changes nothing.
      if (s.indexEvent && ev.seq <= s.indexEvent.seq) return s;
      // It applies to the status of its opening, or of an earlier one whose reopening's
      // answer has not come yet.
      const st = s.status && ev.generation >= s.status.generation ? withIndexEvent({ ...s.status, generation: ev.generation }, ev) : s.status;
      return { ...s, indexEvent: ev, status: st };
    }
    case "error":
      return { ...s, error: a.error, opening: null };
    case "clear-error":
      return { ...s, error: null };
    case "notice":
      return { ...s, notice: a.text };
    case "view":
      return { ...s, view: a.view };
    case "ask":
      return {
        ...s,
        error: null,
        streaming: a.requestId,
        messages: [
          ...s.messages,
          { role: "user", id: `q-${a.requestId}`, text: a.question, kind: a.kind, selection: a.selection },
          { role: "assistant", id: a.requestId, text: "", done: false, answer: null, error: null, notice: null },
        ],
      };
    case "delta":
      return {
        ...s,
        messages: updateAssistant(s, a.requestId, (m) => (m.done ? m : { ...m, text: m.text + a.text })),
      };
    case "reset":
      return {
        ...s,
        messages: updateAssistant(s, a.requestId, (m) => ({
          ...m,
          text: "",
          notice: `${a.reason}; answering with the fallback model`,
        })),
      };
    case "answered": {
      const edits = { ...s.edits };
      for (const e of a.answer.edits) edits[e.recordId] = { state: "proposed" };
      return {
        ...s,
        streaming: s.streaming === a.answer.requestId ? null : s.streaming,
        conversation: a.answer.conversationId,
        edits,
        messages: updateAssistant(s, a.answer.requestId, (m) => ({
          ...m,
          // The final text is the engine's (trimmed, after any fallback reset).
          text: a.answer.answer,
          done: true,
          answer: a.answer,
        })),
      };
    }
    case "chat-failed":
      return {
        ...s,
        streaming: s.streaming === a.requestId ? null : s.streaming,
        messages: updateAssistant(s, a.requestId, (m) => ({ ...m, done: true, error: a.error })),
      };
    case "panel":
      return { ...s, panel: { lines: a.lines, focusStart: a.focusStart, focusEnd: a.focusEnd, cite: a.cite } };
    case "close-panel":
      return { ...s, panel: null, selection: null };
    case "select":
      return { ...s, selection: a.selection };
    case "edit":
      return { ...s, edits: { ...s.edits, [a.recordId]: a.decision } };
    case "provenance":
      return { ...s, provenance: a.provenance };
    case "settings":
      return { ...s, settings: a.settings };
    case "editor-setup":
      return { ...s, editorSetup: a.setup };
    case "editors":
      // Polled: an unchanged answer keeps the state (and so the status bar) as it is.
      if (!s.status || sameEditors(s.status.editors, a.editors)) return s;
      return { ...s, status: { ...s.status, editors: a.editors } };
    case "new-conversation":
      return { ...s, messages: [], conversation: null, streaming: null };
  }
}

/**
 * A status that comes back from a command may have been read before an index event the
 * window already has (events and command answers travel separately): then the event's
 * state is the newer one. Events of another opening of the repository do not apply.
 */
function withIndexEvent(status: Status, ev: IndexEvent | null): Status {
  if (!ev || ev.generation !== status.generation || ev.seq <= status.indexSeq) return status;
  return { ...status, index: ev.index, files: filesOf(ev.index, status.files), indexSeq: ev.seq };
}

function filesOf(index: IndexState, before: number | null): number | null {
  switch (index.state) {
    case "ready":
    case "read-only":
      return index.files;
    case "indexing":
      return index.filesTotal;
    default:
      return before;
  }
}

/** A line for the status bar's index part. */
export function indexLabel(index: IndexState | undefined): { text: string; fraction: number | null } {
  if (!index) return { text: "no repository", fraction: null };
  switch (index.state) {
    case "opening":
      return { text: "opening the index…", fraction: 0 };
    case "indexing": {
      const f = index.filesTotal > 0 ? index.filesDone / index.filesTotal : 0;
      return { text: `indexing ${index.filesDone}/${index.filesTotal} files`, fraction: f };
    }
    case "ready":
      return { text: `${index.files} files indexed`, fraction: null };
    case "read-only":
      return { text: `${index.files} files (read-only: ${index.message})`, fraction: null };
    case "error":
      return { text: `index error: ${index.message}`, fraction: null };
    case "disabled":
      return { text: "index off", fraction: null };
  }
}

function sameEditors(a: EditorsView | undefined, b: EditorsView): boolean {
  return !!a && a.state === b.state && a.pid === b.pid && a.sessions === b.sessions && a.message === b.message && a.socket === b.socket;
}

/** The status bar's words for whether editors share this window's engine. */
export function editorsLabel(e: EditorsView | undefined): { text: string; tone: "ok" | "warn" | "muted" } {
  if (!e) return { text: "editors: –", tone: "muted" };
  switch (e.state) {
    case "serving":
      return { text: e.sessions === 1 ? "1 editor connected" : `${e.sessions} editors connected`, tone: "ok" };
    case "other-daemon":
      return { text: `editors: another engine${e.pid ? ` (pid ${e.pid})` : ""}`, tone: "warn" };
    case "unavailable":
      return { text: "editors: unavailable", tone: "warn" };
    case "starting":
      return { text: "editors: starting", tone: "muted" };
    case "off":
      return { text: "editors: off", tone: "muted" };
  }
}

/** The line "Open in editor" jumps to: the selection's first line when it is in the
 * panel's file, else the first cited line. */
export function editorLine(s: State): number | null {
  const p = s.panel;
  if (!p) return null;
  if (s.selection && s.selection.path === p.lines.path) return s.selection.startLine;
  return p.focusStart;
}

/** The notice after "Open in editor". */
export function openedNotice(v: OpenedView): string {
  const where = v.line ? `${v.path}:${v.line}` : v.path;
  const program = v.command[0]?.split("/").pop() ?? "";
  if (v.via === "editor") return `Opened ${where} in ${program}.`;
  return `Opened ${v.path} with the desktop's default application (${program})${v.note ? `: ${v.note}` : ""}.`;
}

/** Whether an edit's buttons are live. */
export function editActionable(s: State, e: EditView): boolean {
  const d = s.edits[e.recordId];
  return !e.problem && (!d || d.state === "proposed" || d.state === "failed");
}

/** Turns whatever a command threw into a banner: the app's errors carry kind/message/action. */
export function toUiError(e: unknown): UiError {
  if (e && typeof e === "object" && "message" in e && "action" in e && "kind" in e) {
    const o = e as UiError;
    return { kind: o.kind, message: String(o.message), action: String(o.action) };
  }
  const text = e instanceof Error ? e.message : typeof e === "string" ? e : JSON.stringify(e);
  return {
    kind: "window",
    message: `Something in the window failed: ${text}`,
    action: "Try again; if it keeps failing, restart Cairn and report the message.",
  };
}
