import { beforeEach, describe, expect, it } from "vitest";
import { initialState, reduce } from "./state";
import type { EditorsView, Status } from "./types";
import { renderSettings, renderStatus, shell } from "./view";

const model = { name: "smollm2", origin: "local" as const, modelId: "SmolLM2", runtime: "llama.cpp" };
function status(editors: EditorsView): Status {
  return {
    repo: "/r", version: "0.1.0", files: 3, languages: { python: 2 }, chatModel: model, completeModel: model,
    backend: "local", modelError: null, index: { state: "ready", files: 3 }, ledgerPath: "/l", ledgerError: null,
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

  it("gives the editor set-up lines with where the cairn binary came from", () => {
    renderSettings(
      { configPath: "/c.toml", repoConfig: null, models: [], cache: [], local: null, remote: null, apiKeyStored: false, keyringError: null, chat: "default", complete: "default", gpuBackend: null, error: null },
      { cairn: "/usr/bin/cairn", found: "bundled", neovim: "require('cairn').setup({ cmd = { '/usr/bin/cairn', 'lsp', '--remote', 'auto' } })", vscode: "x" },
    );
    expect(document.getElementById("cairn-binary")!.textContent).toBe("The cairn binary (bundled with this app): /usr/bin/cairn");
    expect(document.getElementById("setup-neovim")!.textContent).toContain("'--remote', 'auto'");
  });
});
