// The shapes the Rust commands return (src-tauri/src/desktop.rs, settings.rs, error.rs).

export type ErrorKind =
  | "not-found"
  | "permission-denied"
  | "not-a-directory"
  | "no-repository"
  | "outside-repository"
  | "config"
  | "model"
  | "unauthorized"
  | "remote"
  | "keyring"
  | "ledger"
  | "stale"
  | "input"
  | "cancelled"
  | "io"
  | "report"
  | "editor"
  | "window";

export interface UiError {
  kind: ErrorKind;
  message: string;
  action: string;
}

export type IndexState =
  | { state: "opening" }
  | { state: "indexing"; filesDone: number; filesTotal: number }
  | { state: "ready"; files: number }
  | { state: "read-only"; files: number; message: string }
  | { state: "error"; message: string }
  | { state: "disabled" };

export interface ModelView {
  name: string;
  origin: "local" | "remote";
  modelId: string;
  endpoint?: string | null;
  quantization?: string | null;
  sha256?: string | null;
  runtime: string;
}

export interface Status {
  repo: string;
  version: string;
  files: number | null;
  languages: Record<string, number>;
  chatModel: ModelView | null;
  completeModel: ModelView | null;
  backend: "local" | "remote" | "none";
  modelError: UiError | null;
  index: IndexState;
  /** The repository's opening and the number of index events sent when `index` was read. */
  generation: number;
  indexSeq: number;
  ledgerPath: string | null;
  ledgerError: string | null;
  gpuBackend: string | null;
  editors: EditorsView;
  chatKinds: ChatKindView[];
  /** The reference index of the repository's dependencies, and this session's counts. */
  references?: ReferenceStatus;
}

/** The reference tracker: its policy, its index, and the suggestions of this session
 * that matched third-party code (and were withheld under `block`). */
export interface ReferenceStatus {
  policy: "off" | "show" | "block";
  state: "off" | "building" | "ready" | "failed";
  packages: number;
  fingerprints: number;
  warnings: number;
  error: string | null;
  matched: number;
  withheld: number;
}

/** Whether editors (`cairn lsp --remote auto`) reach this window's engine. */
export interface EditorsView {
  state: "off" | "starting" | "serving" | "other-daemon" | "unavailable";
  socket: string;
  pid: number | null;
  sessions: number;
  message: string;
}

/** What "Open in editor" started. */
export interface OpenedView {
  path: string;
  line: number | null;
  via: "editor" | "opener";
  command: string[];
  note: string | null;
}

export interface Citation {
  n: number;
  path: string;
  startLine: number;
  endLine: number;
}

/** Where a citation stands in the answer (UTF-16 offsets), as the engine found it. */
export interface CitationMark {
  start: number;
  end: number;
  numbers: number[];
}

export interface Source extends Citation {
  score: number;
  retriever: string;
}

/** Third-party code a suggestion reproduces, as the engine's reference tracker found it. */
export interface ReferenceMatch {
  package: string;
  version: string;
  /** SPDX expression, or "unknown". */
  licence: string;
  /** The source file on this machine. */
  path: string;
  /** Lines of the source file, 1-based, inclusive. */
  lines: [number, number];
  matchedChars: number;
  /** Lines of the suggestion that match. */
  textLines: [number, number];
  /** No identifier renamed. */
  verbatim: boolean;
}

export interface EditView {
  recordId: string;
  path: string;
  startLine: number;
  endLine: number;
  newText: string;
  oldFile: string | null;
  newFile: string | null;
  problem: string | null;
  model: ModelView;
  contextFiles: string[];
  references: ReferenceMatch[];
}

/** A proposed edit withheld by `references = "block"` (its text is not shown). */
export interface WithheldEditView {
  recordId: string;
  path: string;
  startLine: number;
  endLine: number;
  references: ReferenceMatch[];
}

export interface ChatView {
  requestId: string;
  conversationId: string;
  answer: string;
  citations: Citation[];
  citationMarks: CitationMark[];
  sources: Source[];
  sourcesError: string | null;
  edits: EditView[];
  withheld: WithheldEditView[];
  model: ModelView;
  firstTokenMs: number | null;
  totalMs: number;
  usage: {
    promptTokens: number;
    reusedPromptTokens: number;
    generatedTokens: number;
    modelFirstTokenMs: number | null;
    tokensPerS: number;
  };
  fallbackFrom: string | null;
  /** The answer's `answered` ledger record. */
  recordId?: string;
  /** Set when the answer came from the response cache: the original answer's record and when it was given. */
  cached?: { fromRecord: string; at: string } | null;
}

export interface Lines {
  path: string;
  startLine: number;
  endLine: number;
  totalLines: number;
  lines: string[];
}

export interface AppliedView {
  recordId: string;
  path: string;
  startLine: number;
  endLine: number;
}

export interface Tally {
  ai: number;
  aiModified: number;
  human: number;
  reviewedAi: number;
  unreviewedAi: number;
}

export interface FileRow {
  commit: string;
  author: string;
  time: string;
  path: string;
  models: string[];
  ai: number;
  aiModified: number;
  human: number;
  reviewed: boolean;
}

export interface AiRegion {
  commit: string;
  path: string;
  startLine: number;
  endLine: number;
  class: string;
  model: string;
  recordId: string;
}

export interface ReportData {
  range: string;
  commits: number;
  attestedCommits: number;
  totals: Tally;
  byModel: Record<string, Tally & { suggested?: number | null; accepted?: number | null; acceptanceRate?: number | null }>;
  byAuthor: Record<string, Tally>;
  rows: FileRow[];
  regions: [AiRegion, boolean][];
}

export interface LedgerEvent {
  seq: number;
  event: string;
  recordId: string | null;
  refersTo: string | null;
  model: string | null;
  origin: string | null;
  path: string | null;
  startLine: number | null;
  endLine: number | null;
  time: string | null;
}

export interface ProvenanceView {
  report: ReportData | null;
  reportError: UiError | null;
  ledger: {
    path: string | null;
    error: string | null;
    byModel: Record<string, { suggested: number; accepted: number; rejected: number }>;
    recent: LedgerEvent[];
  };
}

export interface ExportView {
  path: string;
  bytes: number;
  format: string;
}

export interface LocalForm {
  path?: string | null;
  registry?: string | null;
  gpuLayers?: number | null;
}

export interface RemoteForm {
  baseUrl: string;
  model: string;
}

export interface SettingsView {
  configPath: string;
  local: LocalForm | null;
  remote: RemoteForm | null;
  chat: string;
  complete: string;
  models: string[];
  cache: { name: string; path: string; size: number }[];
  apiKeyStored: boolean | null;
  keyringError: string | null;
  gpuBackend: string | null;
  repoConfig: string | null;
  error: UiError | null;
}

export interface SettingsForm {
  local: LocalForm | null;
  remote: RemoteForm | null;
  apiKey: string | null;
  chat: string;
  complete: string;
}

export interface Startup {
  path: string | null;
  recent: string[];
  version: string;
}

export interface EditorSetup {
  cairn: string | null;
  found: "bundled" | "build" | "path" | "none";
  neovim: string;
  vscode: string;
}

/** A chat kind's wire name: `ask`, or one of the focused kinds the status lists. */
export type ChatKind = string;

export interface ChatKindView {
  name: string;
  button: string;
}

export interface Selection {
  path: string;
  startLine: number;
  endLine: number;
}
