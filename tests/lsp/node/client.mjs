// A third, independent client for `cairn lsp`: vscode-languageserver-protocol over stdio.
// initialize -> didOpen -> inlineCompletion (invoked) -> insert + cairn.accept -> cairn/status
// (ledger: suggested, then accepted for that record) -> shutdown -> exit.
// Exit code 0 when every step holds; 1 with a message otherwise.
//
//   node client.mjs --bin CAIRN --repo DIR --file calc.py --line 5 --character 11
//
// The environment is passed through to the server (the test sets CAIRN_KEY_STORE,
// XDG_DATA_HOME and CAIRN_CONFIG to a private directory).

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
  InitializeRequest,
  InitializedNotification,
  DidOpenTextDocumentNotification,
  DidChangeTextDocumentNotification,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  ExecuteCommandRequest,
  ShutdownRequest,
  ExitNotification,
  RequestType0,
} from "vscode-languageserver-protocol/node";

const { values: args } = parseArgs({
  options: {
    bin: { type: "string" },
    repo: { type: "string" },
    file: { type: "string", default: "calc.py" },
    line: { type: "string", default: "5" },
    character: { type: "string", default: "11" },
    timeout: { type: "string", default: "240" },
  },
});

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}
function check(cond, msg) {
  if (!cond) fail(msg);
}
function withTimeout(promise, what, seconds = 120) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${seconds}s`)), seconds * 1000);
    }),
  ]).finally(() => clearTimeout(timer));
}

// The ledger: one DSSE envelope per line, the in-toto statement base64 in `payload`.
function ledgerEvents(path) {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(Buffer.from(JSON.parse(l).payload, "base64").toString("utf8")))
    .filter((s) => String(s.predicateType).endsWith("/provenance/event/v1"))
    .map((s) => s.predicate);
}

check(args.bin && args.repo, "usage: client.mjs --bin CAIRN --repo DIR [--file F --line L --character C]");
const overall = setTimeout(() => fail(`the whole session took over ${args.timeout}s`), Number(args.timeout) * 1000);

const server = spawn(args.bin, ["lsp"], { stdio: ["pipe", "pipe", "inherit"], env: process.env });
let exited = null;
const exitPromise = new Promise((resolve) =>
  server.on("exit", (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }),
);
server.on("error", (e) => fail(`could not start ${args.bin} lsp: ${e.message}`));

const conn = createProtocolConnection(new StreamMessageReader(server.stdout), new StreamMessageWriter(server.stdin));
conn.onError(([e]) => fail(`connection error: ${e?.message ?? e}`));
conn.onUnhandledNotification(() => {});
// Server-to-client requests (e.g. work-done progress creation) are answered plainly.
conn.onRequest(() => null);
conn.listen();

const repoUri = pathToFileURL(args.repo).href;
const filePath = join(args.repo, args.file);
const uri = pathToFileURL(filePath).href;
const text = readFileSync(filePath, "utf8");
const position = { line: Number(args.line), character: Number(args.character) };

try {
  const init = await withTimeout(
    conn.sendRequest(InitializeRequest.type, {
      processId: process.pid,
      rootUri: repoUri,
      workspaceFolders: [{ uri: repoUri, name: "repo" }],
      clientInfo: { name: "cairn-node-test", version: "0" },
      capabilities: {
        general: { positionEncodings: ["utf-16"] },
        window: { workDoneProgress: true },
        workspace: { workspaceFolders: true, executeCommand: {} },
        textDocument: {
          synchronization: { didSave: true },
          inlineCompletion: { dynamicRegistration: false },
          completion: { completionItem: { snippetSupport: false } },
        },
      },
    }),
    "initialize",
  );
  const caps = init.capabilities;
  check(caps.inlineCompletionProvider, `no inlineCompletionProvider in ${JSON.stringify(caps)}`);
  check(
    (caps.executeCommandProvider?.commands ?? []).includes("cairn.accept"),
    `cairn.accept is not an executeCommandProvider command: ${JSON.stringify(caps.executeCommandProvider)}`,
  );
  await conn.sendNotification(InitializedNotification.type, {});
  await conn.sendNotification(DidOpenTextDocumentNotification.type, {
    textDocument: { uri, languageId: "python", version: 1, text },
  });

  const result = await withTimeout(
    conn.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri },
      position,
      context: { triggerKind: InlineCompletionTriggerKind.Invoked },
    }),
    "textDocument/inlineCompletion",
  );
  const items = Array.isArray(result) ? result : result?.items;
  check(Array.isArray(items) && items.length > 0, `no inline completion at ${JSON.stringify(position)}: ${JSON.stringify(result)}`);
  const item = items[0];
  const insertText = typeof item.insertText === "string" ? item.insertText : item.insertText?.value;
  check(insertText && insertText.trim(), `empty insertText: ${JSON.stringify(item)}`);
  check(item.command?.command === "cairn.accept", `the item's command is not cairn.accept: ${JSON.stringify(item)}`);
  const arg = item.command.arguments?.[0];
  check(arg?.recordId && arg.uri === uri, `cairn.accept arguments: ${JSON.stringify(item.command.arguments)}`);

  // As VS Code does: insert the text, then run the item's command.
  const range = item.range ?? { start: position, end: position };
  await conn.sendNotification(DidChangeTextDocumentNotification.type, {
    textDocument: { uri, version: 2 },
    contentChanges: [{ range, text: insertText }],
  });
  const accepted = await withTimeout(
    conn.sendRequest(ExecuteCommandRequest.type, { command: item.command.command, arguments: item.command.arguments }),
    "workspace/executeCommand cairn.accept",
  );
  check(accepted === null, `cairn.accept answered ${JSON.stringify(accepted)}, expected null`);

  const status = await withTimeout(conn.sendRequest(new RequestType0("cairn/status")), "cairn/status");
  check(typeof status?.version === "string" && status.version, `cairn/status: ${JSON.stringify(status)}`);
  check(status.ledger?.path, `cairn/status has no ledger path: ${JSON.stringify(status)}`);
  const events = ledgerEvents(status.ledger.path);
  const suggested = events.find((e) => e.event === "suggested" && e.recordId === arg.recordId);
  const acc = events.find((e) => e.event === "accepted" && e.refersTo === arg.recordId);
  const summary = JSON.stringify(events.map((e) => [e.seq, e.event, e.recordId, e.refersTo]));
  check(suggested, `no suggested record ${arg.recordId} in ${status.ledger.path}: ${summary}`);
  check(acc, `no accepted record referring to ${arg.recordId}: ${summary}`);
  check(acc.seq > suggested.seq, `accepted (seq ${acc.seq}) is not after suggested (seq ${suggested.seq})`);

  await withTimeout(conn.sendRequest(ShutdownRequest.type), "shutdown", 60);
  await conn.sendNotification(ExitNotification.type);
  const { code, signal } = await withTimeout(exitPromise, "process exit after exit notification", 30);
  check(code === 0, `cairn lsp exited with code ${code} (signal ${signal}) after shutdown + exit`);
  conn.dispose();
  clearTimeout(overall);
  console.log(
    `ok: ${items.length} inline item(s); accepted ${arg.recordId} (${JSON.stringify(insertText)}); ` +
      `ledger ${status.ledger.path}; model ${status.model?.name}; index ${status.index?.state}`,
  );
  process.exit(0);
} catch (e) {
  if (exited === null) server.kill("SIGKILL");
  fail(e?.stack ?? String(e));
}
