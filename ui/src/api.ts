// The app's commands and events, typed. Every command rejects with a UiError
// ({kind, message, action}) that the window shows as a banner.

import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { open as openDialog } from "@tauri-apps/plugin-dialog";
import type {
  AppliedView,
  ChatKind,
  ChatView,
  EditorSetup,
  EditorsView,
  ExportView,
  IndexState,
  Lines,
  OpenedView,
  ProvenanceView,
  Selection,
  SettingsForm,
  SettingsView,
  Startup,
  Status,
  UiError,
} from "./types";

export function inTauri(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}

const outside: UiError = {
  kind: "window",
  message: "This page is running outside the Cairn app, so it cannot reach the engine.",
  action: "Start it with `cairn-desktop` (or `make run` where a display exists).",
};

function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  if (!inTauri()) return Promise.reject(outside);
  return invoke<T>(cmd, args);
}

export const api = {
  startup: () => call<Startup>("startup"),
  uiReady: () => call<number>("ui_ready"),
  openRepository: (path: string) => call<Status>("open_repository", { path }),
  status: () => call<Status>("status"),
  chat: (req: {
    requestId: string;
    question: string;
    conversation: string | null;
    kind: ChatKind;
    selection: Selection | null;
    maxTokens?: number;
  }) =>
    call<ChatView>("chat", {
      request: {
        requestId: req.requestId,
        question: req.question,
        conversation: req.conversation,
        kind: req.kind,
        path: req.selection?.path ?? null,
        startLine: req.selection?.startLine ?? null,
        endLine: req.selection?.endLine ?? null,
        maxTokens: req.maxTokens ?? null,
      },
    }),
  cancelChat: (requestId: string) => call<boolean>("cancel_chat", { requestId }),
  readLines: (path: string, start: number, end: number) => call<Lines>("read_lines", { path, start, end }),
  applyEdit: (recordId: string) => call<AppliedView>("apply_edit", { recordId }),
  dismissEdit: (recordId: string) => call<null>("dismiss_edit", { recordId }),
  provenance: (range: string | null) => call<ProvenanceView>("provenance", { range }),
  exportReport: (format: string, range: string | null, dest: string | null) =>
    call<ExportView>("export_report", { format, range, dest }),
  settings: () => call<SettingsView>("settings"),
  saveSettings: (form: SettingsForm) =>
    call<{ settings: SettingsView; status: Status | null }>("save_settings", { form }),
  editorSetup: () => call<EditorSetup>("editor_setup"),
  openInEditor: (path: string, line: number | null) => call<OpenedView>("open_in_editor", { path, line }),
  editors: () => call<EditorsView>("editors"),
  /** The native folder picker (the dialog plugin); null when the person cancels. */
  pickFolder: async (defaultPath: string | null): Promise<string | null> => {
    if (!inTauri()) throw outside;
    const picked = await openDialog({ directory: true, multiple: false, title: "Open a repository", defaultPath: defaultPath ?? undefined });
    return typeof picked === "string" ? picked : null;
  },
};

export interface AppEvents {
  index: (p: { generation: number; seq: number; index: IndexState }) => void;
  delta: (p: { requestId: string; text: string }) => void;
  reset: (p: { requestId: string; reason: string }) => void;
}

export async function subscribe(h: AppEvents): Promise<UnlistenFn[]> {
  if (!inTauri()) return [];
  return Promise.all([
    listen<{ generation: number; seq: number; index: IndexState }>("index-progress", (e) => h.index(e.payload)),
    listen<{ requestId: string; text: string }>("chat-delta", (e) => h.delta(e.payload)),
    listen<{ requestId: string; reason: string }>("chat-reset", (e) => h.reset(e.payload)),
  ]);
}
