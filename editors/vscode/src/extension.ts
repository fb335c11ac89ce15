// Cairn for VS Code: a thin client over `cairn lsp`.
//
// Everything that matters happens in the server. vscode-languageclient (>= 10) turns the
// server's `inlineCompletionProvider` into ghost text, and registers the server's
// `executeCommandProvider` commands (cairn.accept, cairn.reject, ...) as VS Code commands,
// so accepting an inline completion runs the item's `cairn.accept` command on the server,
// which records `accepted` in the provenance ledger. This file adds only what the protocol
// cannot: the chat command (`cairn/chat`, streamed through `$/progress`) and a status view.

import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  ProgressType,
  RequestType,
  RequestType0,
  ServerOptions,
  TransportKind,
} from "vscode-languageclient/node";

interface Position {
  line: number;
  character: number;
}
interface Range {
  start: Position;
  end: Position;
}

interface ChatParams {
  question: string;
  conversationId?: string;
  uri?: string;
  range?: Range;
  partialResultToken?: string | number;
}
interface Citation {
  n: number;
  path: string;
  uri: string;
  startLine: number;
  endLine: number;
}
interface ProposedEdit {
  recordId: string;
  uri: string;
  range: Range;
  newText: string;
}
interface ChatResult {
  conversationId: string;
  answer: string;
  citations: Citation[];
  edits: ProposedEdit[];
}
interface StatusResult {
  version: string;
  repo: string;
  model: { name: string; origin: string; modelId: string };
  index: { state: string; files: number; message?: string };
  ledger: { path: string; records?: number };
}

const ChatRequest = new RequestType<ChatParams, ChatResult, void>("cairn/chat");
const StatusRequest = new RequestType0<StatusResult, void>("cairn/status");
const ChatDelta = new ProgressType<{ delta: string }>();

let client: LanguageClient | undefined;
let conversationId: string | undefined;
let chatChannel: vscode.OutputChannel | undefined;
let traceChannel: vscode.LogOutputChannel | undefined;
let tokenCounter = 0;

function makeClient(): LanguageClient {
  const config = vscode.workspace.getConfiguration("cairn");
  const command = config.get<string>("path") || "cairn";
  const extraArgs = config.get<string[]>("extraArgs") ?? [];
  const languages = config.get<string[]>("documentSelector") ?? [];

  const serverOptions: ServerOptions = {
    command,
    args: ["lsp", ...extraArgs],
    transport: TransportKind.stdio,
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: languages.map((language) => ({ scheme: "file", language })),
    outputChannelName: "Cairn",
    traceOutputChannel: (traceChannel ??= vscode.window.createOutputChannel("Cairn Trace", { log: true })),
  };
  return new LanguageClient("cairn", "Cairn", serverOptions, clientOptions);
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  client = makeClient();
  context.subscriptions.push(client);
  try {
    await client.start();
  } catch (err) {
    void vscode.window.showErrorMessage(
      `Cairn: could not start \`${vscode.workspace.getConfiguration("cairn").get("path")} lsp\`: ${String(err)}. ` +
        "Set `cairn.path` to the cairn binary.",
    );
  }
}

function selectionContext(): { uri?: string; range?: Range } {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.uri.scheme !== "file") {
    return {};
  }
  const s = editor.selection;
  return {
    uri: editor.document.uri.toString(),
    range: {
      start: { line: s.start.line, character: s.start.character },
      end: { line: s.end.line, character: s.end.character },
    },
  };
}

async function chat(): Promise<void> {
  if (!client || !client.isRunning()) {
    void vscode.window.showErrorMessage("Cairn: the server is not running.");
    return;
  }
  const question = await vscode.window.showInputBox({
    prompt: "Ask Cairn about this repository",
    placeHolder: "Where is the retry policy of the HTTP client defined?",
    ignoreFocusOut: true,
  });
  if (!question) {
    return;
  }
  const out = (chatChannel ??= vscode.window.createOutputChannel("Cairn Chat"));
  out.show(true);
  out.appendLine(`\n> ${question}\n`);

  const token = `cairn-chat-${process.pid}-${++tokenCounter}`;
  let streamed = "";
  const progress = client.onProgress(ChatDelta, token, (value) => {
    if (typeof value?.delta === "string") {
      streamed += value.delta;
      out.append(value.delta);
    }
  });

  let result: ChatResult;
  try {
    result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: "Cairn is answering", cancellable: true },
      (_p, cancel) =>
        client!.sendRequest(
          ChatRequest,
          { question, conversationId, partialResultToken: token, ...selectionContext() },
          cancel,
        ),
    );
  } catch (err) {
    out.appendLine(`\n[error] ${String(err)}`);
    return;
  } finally {
    progress.dispose();
  }
  conversationId = result.conversationId;
  // The final answer is authoritative (a fallback model may have restarted the stream).
  if (result.answer !== streamed) {
    out.appendLine(streamed ? "\n\n(final answer)\n" : "");
    out.append(result.answer);
  }
  out.appendLine("");
  for (const c of result.citations ?? []) {
    out.appendLine(`[${c.n}] ${c.path}:${c.startLine}-${c.endLine}`);
  }
  await offerEdits(result.edits ?? []);
}

// Proposed edits are never applied without the person's choice; each answer is reported back
// to the server (cairn.accept / cairn.reject) so the ledger records what happened.
async function offerEdits(edits: ProposedEdit[]): Promise<void> {
  for (const edit of edits) {
    const uri = vscode.Uri.parse(edit.uri);
    const where = `${vscode.workspace.asRelativePath(uri)}:${edit.range.start.line + 1}`;
    const choice = await vscode.window.showInformationMessage(
      `Cairn proposes an edit at ${where}`,
      { modal: false, detail: edit.newText },
      "Apply",
      "Reject",
    );
    if (choice === "Apply") {
      const we = new vscode.WorkspaceEdit();
      const r = edit.range;
      we.replace(
        uri,
        new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character),
        edit.newText,
      );
      if (await vscode.workspace.applyEdit(we)) {
        await vscode.commands.executeCommand("cairn.accept", { recordId: edit.recordId, uri: edit.uri });
      }
    } else {
      await vscode.commands.executeCommand("cairn.reject", {
        recordId: edit.recordId,
        reason: choice === "Reject" ? "rejected" : "dismissed",
      });
    }
  }
}

async function status(): Promise<void> {
  if (!client || !client.isRunning()) {
    void vscode.window.showErrorMessage("Cairn: the server is not running.");
    return;
  }
  const s = await client.sendRequest(StatusRequest);
  const out = (chatChannel ??= vscode.window.createOutputChannel("Cairn Chat"));
  out.appendLine(JSON.stringify(s, null, 2));
  const index = `${s.index.state}, ${s.index.files} files${s.index.message ? ` (${s.index.message})` : ""}`;
  void vscode.window.showInformationMessage(
    `Cairn ${s.version} on ${s.repo} — model ${s.model.name} (${s.model.origin}); index ${index}; ledger ${s.ledger.path}`,
  );
}

// Tells the server where the cursor rests (`cairn/cursorMoved`), so it warms the model for a
// completion there before one is asked for. The server waits for the cursor to rest; this
// only spares it a notification per keystroke of cursor movement.
let cursorTimer: ReturnType<typeof setTimeout> | undefined;
function reportCursor(e: vscode.TextEditorSelectionChangeEvent): void {
  const doc = e.textEditor.document;
  if (doc.uri.scheme !== "file" || e.selections.length !== 1) {
    return;
  }
  const at = e.selections[0].active;
  if (cursorTimer) {
    clearTimeout(cursorTimer);
  }
  cursorTimer = setTimeout(() => {
    if (client?.isRunning()) {
      void client.sendNotification("cairn/cursorMoved", {
        textDocument: { uri: doc.uri.toString() },
        position: { line: at.line, character: at.character },
      });
    }
  }, 100);
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  context.subscriptions.push(
    vscode.window.onDidChangeTextEditorSelection(reportCursor),
    vscode.commands.registerCommand("cairn.chat", chat),
    vscode.commands.registerCommand("cairn.status", status),
    vscode.commands.registerCommand("cairn.restart", async () => {
      await client?.stop();
      await startClient(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("cairn.path") || e.affectsConfiguration("cairn.extraArgs")) {
        await client?.stop();
        await startClient(context);
      }
    }),
  );
  await startClient(context);
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
