// Rendering: each region of the window is redrawn from the state when its slice of the
// state changed (the reducer never mutates, so a changed slice is a new object).
// Over 600 lines as one room: one renderer per region of the window, in page order,
// sharing only the DOM builder.

import { citationLabel, shortRecord } from "./citations";
import { editDiff } from "./diff";
import { $, add, clear, h } from "./dom";
import { highlight, renderAnswer } from "./markdown";
import { editActionable, editorsLabel, indexLabel, type AssistantMessage, type Message, type State } from "./state";
import type { EditView, ModelView, ProvenanceView, ReferenceMatch, SettingsView, UiError, WithheldEditView } from "./types";

export function shell(): HTMLElement {
  return h(
    "div",
    { class: "app", id: "shell" },
    h(
      "header",
      { class: "topbar" },
      h("span", { class: "brand", title: "Cairn" }, "Cairn"),
      h(
        "form",
        { id: "open-form", class: "open-form" },
        h("input", {
          id: "repo-path",
          type: "text",
          placeholder: "Repository folder, e.g. ~/src/project",
          "aria-label": "Repository folder",
          autocomplete: "off",
          spellcheck: "false",
        }),
        h("button", { id: "open-btn", type: "submit" }, "Open"),
        h("button", { id: "choose-btn", type: "button", "data-act": "choose-folder", title: "Pick the repository folder in a file dialog" }, "Choose…"),
        h("select", { id: "recent", "aria-label": "Recent repositories" }, h("option", { value: "" }, "Recent…")),
      ),
      h(
        "nav",
        { class: "tabs" },
        h("button", { type: "button", "data-view": "chat", id: "tab-chat" }, "Chat"),
        h("button", { type: "button", "data-view": "provenance", id: "tab-provenance" }, "Provenance"),
        h("button", { type: "button", "data-view": "settings", id: "tab-settings" }, "Settings"),
      ),
    ),
    h("div", { id: "banner", class: "banner", role: "alert", hidden: true }),
    h("div", { id: "notice", class: "notice", role: "status", hidden: true }),
    h(
      "main",
      { class: "main" },
      h(
        "section",
        { id: "view-chat", class: "view chat" },
        h("div", { id: "transcript", class: "transcript", "aria-live": "polite" }),
        h(
          "form",
          { id: "ask-form", class: "ask" },
          h("div", { id: "selection-chip", class: "chip", hidden: true }),
          h("textarea", {
            id: "question",
            rows: 3,
            placeholder: "Ask about the repository (Ctrl+Enter sends)",
            "aria-label": "Question",
          }),
          h(
            "div",
            { class: "ask-actions" },
            h("button", { id: "new-chat", type: "button", class: "quiet" }, "New conversation"),
            h("button", { id: "stop-btn", type: "button", hidden: true }, "Stop"),
            h("button", { id: "ask-btn", type: "submit", class: "primary" }, "Ask"),
          ),
        ),
      ),
      h("aside", { id: "panel", class: "panel", hidden: true }),
      h("section", { id: "view-provenance", class: "view provenance", hidden: true }),
      h("section", { id: "view-settings", class: "view settings", hidden: true }),
    ),
    h("footer", { id: "statusbar", class: "statusbar" }),
  );
}

// ---- banner, notice, status bar -------------------------------------------------------

/** Which button goes with an error's action. */
export function bannerButton(e: UiError): { label: string; act: string } | null {
  switch (e.kind) {
    case "unauthorized":
    case "model":
    case "config":
    case "keyring":
    case "remote":
      return { label: "Open Settings", act: "settings" };
    case "not-found":
    case "permission-denied":
    case "not-a-directory":
    case "no-repository":
      return { label: "Choose a folder", act: "focus-path" };
    default:
      return null;
  }
}

export function renderBanner(e: UiError | null): void {
  const el = $("banner");
  clear(el);
  el.hidden = !e;
  if (!e) return;
  el.dataset.kind = e.kind;
  const btn = bannerButton(e);
  add(el, 
    h(
      "div",
      { class: "banner-text" },
      h("strong", { class: "banner-message" }, e.message),
      " ",
      h("span", { class: "banner-action" }, e.action),
    ),
    btn ? h("button", { type: "button", "data-act": btn.act, class: "banner-btn" }, btn.label) : null,
    h("button", { type: "button", "data-act": "dismiss-error", class: "banner-close", "aria-label": "Dismiss" }, "×"),
  );
}

export function renderNotice(text: string | null): void {
  const el = $("notice");
  el.hidden = !text;
  el.textContent = text ?? "";
}

function modelBadge(m: ModelView | null | undefined): HTMLElement {
  if (!m) return h("span", { class: "badge bad" }, "no model");
  const where = m.origin === "remote" ? `remote · ${m.endpoint ?? ""}` : "local";
  return h(
    "span",
    { class: `badge ${m.origin}`, title: `${m.modelId} (${m.runtime})${m.sha256 ? ` sha256 ${m.sha256}` : ""}` },
    `${m.name} · ${where}`,
  );
}

export function renderStatus(s: State): void {
  const el = $("statusbar");
  clear(el);
  if (s.opening) {
    add(el, h("span", { class: "spinner" }), ` opening ${s.opening}… (loading the model)`);
    return;
  }
  if (!s.status) {
    add(el, h("span", {}, `Cairn ${s.version} · no repository open`));
    return;
  }
  const st = s.status;
  const idx = indexLabel(st.index);
  const langs = Object.entries(st.languages)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([l, n]) => `${l} ${n}`)
    .join(", ");
  add(el, 
    h("span", { class: "repo", title: st.repo }, st.repo),
    h(
      "span",
      { class: "index", id: "index-status", "data-state": st.index.state },
      idx.fraction !== null ? h("progress", { max: 1, value: idx.fraction }) : null,
      ` ${idx.text}`,
    ),
    langs ? h("span", { class: "langs" }, langs) : null,
    h("span", { id: "model-status" }, "chat: ", modelBadge(st.chatModel)),
    h("span", { class: `backend ${st.backend}`, id: "backend" }, st.backend),
    st.ledgerError
      ? h("span", { class: "badge bad", title: st.ledgerError }, "ledger unavailable")
      : h("span", { class: "badge ok", title: st.ledgerPath ?? "" }, "ledger ok"),
    editorsBadge(st),
    referencesBadge(st),
  );
}

/** `references: 88 packages · 2 matched (1 withheld)`, from the engine's reference status. */
export function referencesBadge(st: NonNullable<State["status"]>): HTMLElement | null {
  const r = st.references;
  if (!r || r.state === "off") return null;
  const counts = r.matched ? ` · ${r.matched} matched${r.withheld ? ` (${r.withheld} withheld)` : ""}` : "";
  const text =
    r.state === "ready"
      ? `references: ${r.packages} package${r.packages === 1 ? "" : "s"}${counts}`
      : r.state === "building"
        ? "references: indexing dependencies…"
        : "references unavailable";
  return h(
    "span",
    {
      id: "references-status",
      class: `badge ${r.state === "failed" ? "bad" : r.matched ? "warn" : "ok"}`,
      title: r.error ?? `Suggestions are checked against the repository's dependencies (references = "${r.policy}")`,
      "data-state": r.state,
    },
    text,
  );
}

function editorsBadge(st: NonNullable<State["status"]>): HTMLElement {
  const e = st.editors;
  const l = editorsLabel(e);
  return h(
    "span",
    {
      id: "editors-status",
      class: `badge ${l.tone}`,
      title: e?.message ?? "",
      "data-state": e?.state ?? "",
      "data-pid": e?.pid ?? "",
      "data-sessions": e?.sessions ?? 0,
    },
    l.text,
  );
}

// ---- transcript -----------------------------------------------------------------------

const drawn = new Map<string, { msg: Message; key: string; el: HTMLElement }>();

export function resetTranscript(): void {
  drawn.clear();
  clear($("transcript"));
}

function editKey(s: State, m: Message): string {
  if (m.role !== "assistant" || !m.answer) return "";
  return m.answer.edits.map((e) => `${e.recordId}:${JSON.stringify(s.edits[e.recordId] ?? null)}`).join("|");
}

export function renderTranscript(s: State): void {
  const box = $("transcript");
  if (s.messages.length === 0) {
    if (drawn.size > 0 || box.childElementCount === 0 || box.dataset.empty !== String(!!s.status)) {
      resetTranscript();
      box.dataset.empty = String(!!s.status);
      box.append(welcome(s));
    }
    return;
  }
  if (drawn.size === 0) clear(box);
  const ids = new Set(s.messages.map((m) => m.id));
  for (const [id, d] of drawn) {
    if (!ids.has(id)) {
      d.el.remove();
      drawn.delete(id);
    }
  }
  for (const m of s.messages) {
    const key = editKey(s, m);
    const d = drawn.get(m.id);
    if (d && d.msg === m && d.key === key) continue;
    const el = renderMessage(s, m);
    if (d) d.el.replaceWith(el);
    else box.append(el);
    drawn.set(m.id, { msg: m, key, el });
    if (!d || m.role === "assistant") box.scrollTop = box.scrollHeight;
  }
}

function welcome(s: State): HTMLElement {
  if (!s.status) {
    return h(
      "div",
      { class: "welcome" },
      h("h2", {}, "Open a repository"),
      h("p", {}, "Type the folder of a repository above and press Open, choose it in a file dialog (Choose…), or pick one you used before:"),
      s.recent.length
        ? h(
            "ul",
            { class: "recent-list" },
            s.recent.map((r) => h("li", {}, h("a", { href: "#", "data-open": r }, r))),
          )
        : h("p", { class: "muted" }, "No recent repositories yet."),
      h("p", { class: "muted" }, "From a terminal: cairn-desktop PATH opens PATH directly."),
    );
  }
  return h(
    "div",
    { class: "welcome" },
    h("h2", {}, "Ask about this repository"),
    h(
      "p",
      {},
      "Answers cite the code they draw on as [n]: click one to see the lines. To change code, open a file in the side panel, select lines, then choose Fix or Write test; proposed edits appear as diffs to apply or dismiss.",
    ),
  );
}

/** How a focused turn is labelled in the transcript: its button's words. */
function kindLabel(s: State, kind: string): string {
  const k = s.status?.chatKinds.find((c) => c.name === kind);
  return (k?.button ?? kind).toLowerCase();
}

function renderMessage(s: State, m: Message): HTMLElement {
  if (m.role === "user") {
    const sel = m.selection ? `${m.selection.path}:${m.selection.startLine}-${m.selection.endLine}` : null;
    return h(
      "div",
      { class: "msg user", "data-id": m.id },
      m.kind !== "ask" ? h("span", { class: "kind" }, kindLabel(s, m.kind)) : null,
      sel ? h("span", { class: "sel" }, sel) : null,
      h("div", { class: "text" }, m.text || (m.kind === "ask" ? "" : "(no extra instructions)")),
    );
  }
  return renderAssistant(s, m);
}

function renderAssistant(s: State, m: AssistantMessage): HTMLElement {
  const body = h("div", { class: "answer markdown" });
  body.innerHTML = renderAnswer(m.text, m.answer?.citations ?? [], m.answer?.citationMarks ?? []);
  const el = h(
    "div",
    {
      class: `msg assistant${m.done ? " done" : " streaming"}`,
      "data-id": m.id,
      "data-request": m.id,
    },
    m.notice ? h("div", { class: "msg-notice" }, m.notice) : null,
    body,
    !m.done && !m.text ? h("div", { class: "thinking" }, "thinking…") : null,
  );
  if (m.error) {
    add(el, 
      h(
        "div",
        { class: "msg-error", "data-kind": m.error.kind },
        h("strong", {}, m.error.message),
        " ",
        m.error.action,
      ),
    );
  }
  const a = m.answer;
  if (a) {
    if (a.citations.length) {
      add(el, 
        h(
          "div",
          { class: "citations" },
          "Sources: ",
          a.citations.map((c) =>
            h("a", { href: "#", class: "cite source", "data-cite": c.n, title: citationLabel(c) }, `[${c.n}] ${citationLabel(c)}`),
          ),
        ),
      );
    }
    if (a.sourcesError) {
      add(el, h("p", { class: "muted sources-error" }, `Answered without repository sources: ${a.sourcesError}`));
    }
    for (const e of a.edits) add(el, renderEdit(s, e));
    for (const w of a.withheld ?? []) add(el, renderWithheld(w));
    add(el, 
      h(
        "div",
        { class: "meta" },
        modelBadge(a.model),
        a.fallbackFrom ? ` · answered by the fallback (${a.fallbackFrom} failed)` : "",
        a.cached
          ? h(
              "span",
              { class: "cached", title: `the original answer's record: ${a.cached.fromRecord}` },
              ` · from the cache (the same question over the same sources, answered ${a.cached.at})`,
            )
          : null,
        ` · first token ${a.firstTokenMs !== null ? Math.round(a.firstTokenMs) + " ms" : "–"} · ${(a.totalMs / 1000).toFixed(1)} s`,
        a.usage.promptTokens === 0
          ? null
          : h(
          "span",
          { class: "usage", title: "prompt tokens (reused from the previous request) · generated tokens · generation speed" },
          ` · ${a.usage.promptTokens} prompt tokens (${a.usage.reusedPromptTokens} reused) · ${a.usage.generatedTokens} generated · ${a.usage.tokensPerS} tok/s`,
        ),
      ),
    );
  }
  return el;
}

export function renderEdit(s: State, e: EditView): HTMLElement {
  const d = s.edits[e.recordId] ?? { state: "proposed" };
  const diff = editDiff(e);
  const live = editActionable(s, e);
  const rows = diff.rows.map((r) =>
    h(
      "tr",
      { class: `diff-${r.kind}` },
      h("td", { class: "ln" }, r.oldNo ?? ""),
      h("td", { class: "ln" }, r.newNo ?? ""),
      h("td", { class: "mark" }, r.kind === "add" ? "+" : r.kind === "del" ? "-" : ""),
      h("td", { class: "code" }, r.text),
    ),
  );
  const decision =
    d.state === "applied"
      ? h("span", { class: "decision applied" }, `Applied to ${d.applied.path} (recorded as accepted)`)
      : d.state === "dismissed"
        ? h("span", { class: "decision dismissed" }, "Dismissed (recorded as rejected)")
        : d.state === "applying"
          ? h("span", { class: "decision" }, "Applying…")
          : d.state === "dismissing"
            ? h("span", { class: "decision" }, "Dismissing…")
            : d.state === "failed"
              ? h("span", { class: "decision failed" }, `${d.error.message} ${d.error.action}`)
              : null;
  return h(
    "div",
    { class: `edit state-${d.state}`, "data-record": e.recordId },
    h(
      "div",
      { class: "edit-head" },
      h("span", { class: "edit-path" }, `${e.path}:${e.startLine}-${e.endLine}`),
      h("span", { class: "edit-stat" }, ` +${diff.added} −${diff.removed}`),
    ),
    h(
      "div",
      { class: "provenance-badge", title: `record ${e.recordId}` },
      h("span", { class: "pb-label" }, "AI-proposed"),
      modelBadge(e.model),
      h(
        "span",
        { class: "pb-context", title: e.contextFiles.join("\n") || "no repository context" },
        `${e.contextFiles.length} context file${e.contextFiles.length === 1 ? "" : "s"}`,
      ),
      h("span", { class: "pb-record" }, `record ${shortRecord(e.recordId)}`),
    ),
    e.problem ? h("div", { class: "msg-error" }, e.problem) : null,
    e.references?.length ? renderReferences(e.references, "This edit reproduces third-party code") : null,
    rows.length
      ? h("table", { class: "diff" }, h("tbody", {}, rows))
      : h("div", { class: "edit-same muted" }, "No change: the proposal is what the file already says."),
    h(
      "div",
      { class: "edit-actions" },
      h("button", { type: "button", class: "primary", "data-apply": e.recordId, disabled: !live }, "Apply"),
      h("button", { type: "button", "data-dismiss": e.recordId, disabled: !live }, "Dismiss"),
      h("button", { type: "button", class: "quiet", "data-copy-patch": e.recordId }, "Copy patch"),
      decision,
    ),
  );
}

/** `trimmer 2.1.0 (BSD-3-Clause)`, as the engine labels a package. */
export function referenceLabel(r: ReferenceMatch): string {
  return `${r.package} ${r.version} (${r.licence})`;
}

/** The third-party code an edit reproduces: package, version, licence, the source file
 * and its lines, the edit's lines that match. */
export function renderReferences(refs: ReferenceMatch[], heading: string): HTMLElement {
  return h(
    "div",
    { class: "references", role: "note" },
    h("strong", {}, `${heading}:`),
    h(
      "ul",
      {},
      refs.map((r) =>
        h(
          "li",
          { class: "reference", "data-package": r.package, "data-licence": r.licence },
          h("span", { class: "ref-package" }, referenceLabel(r)),
          ` — ${r.path} lines ${r.lines[0]}-${r.lines[1]}`,
          h(
            "span",
            { class: "muted" },
            ` (${r.matchedChars} characters${r.verbatim ? "" : ", names changed"}; proposed lines ${r.textLines[0]}-${r.textLines[1]})`,
          ),
        ),
      ),
    ),
  );
}

/** An edit the `block` policy withheld: said so, with what it reproduces, no diff. */
export function renderWithheld(w: WithheldEditView): HTMLElement {
  return h(
    "div",
    { class: "edit withheld", "data-record": w.recordId },
    h(
      "div",
      { class: "edit-head" },
      h("span", { class: "edit-path" }, `${w.path}:${w.startLine}-${w.endLine}`),
      h("span", { class: "decision withheld" }, " withheld"),
    ),
    h(
      "p",
      { class: "withheld-note" },
      `A proposed edit to ${w.path} was withheld: it reproduces third-party code and this repository's settings block such suggestions (references = "block"). Its record ${shortRecord(w.recordId)} says so.`,
    ),
    renderReferences(w.references, "It reproduces"),
  );
}

// ---- side panel -----------------------------------------------------------------------

export function renderPanel(s: State): void {
  const el = $("panel");
  clear(el);
  el.hidden = !s.panel || s.view !== "chat";
  if (!s.panel) return;
  const p = s.panel;
  const sel = s.selection && s.selection.path === p.lines.path ? s.selection : null;
  const ext = p.lines.path.match(/\.(\w+)$/)?.[1] ?? "";
  const lang = { py: "python", rs: "rust", js: "javascript", ts: "typescript", go: "go", md: "markdown" }[ext] ?? ext;
  const rows = p.lines.lines.map((text, i) => {
    const n = p.lines.startLine + i;
    const focus = n >= p.focusStart && n <= p.focusEnd;
    const selected = sel !== null && n >= sel.startLine && n <= sel.endLine;
    const code = h("code", { class: "hljs" });
    code.innerHTML = highlight(text, lang).html || " ";
    return h(
      "div",
      { class: `pl${focus ? " focus" : ""}${selected ? " selected" : ""}`, "data-line": n },
      h("span", { class: "pln", "data-line": n, title: "Click to select; click another line to extend" }, n),
      code,
    );
  });
  const range = p.focusStart === p.focusEnd ? `${p.focusStart}` : `${p.focusStart}-${p.focusEnd}`;
  add(el, 
    h(
      "div",
      { class: "panel-head" },
      h("span", { class: "panel-title", id: "panel-title" }, p.cite !== null ? `[${p.cite}] ` : "", `${p.lines.path}:${range}`),
      h("button", { type: "button", class: "quiet", id: "open-editor-btn", "data-act": "open-editor", title: "Open at this line in $VISUAL or $EDITOR (else the desktop's default application)" }, "Open in editor"),
      h("button", { type: "button", class: "quiet", "data-act": "close-panel", "aria-label": "Close" }, "×"),
    ),
    h(
      "div",
      { class: "panel-tools" },
      h("span", { id: "panel-selection" }, sel ? `selected ${sel.startLine}-${sel.endLine}` : "click line numbers to select"),
      // The focused chat kinds come from the engine's table (through the status).
      (s.status?.chatKinds ?? []).map((k) =>
        h("button", { type: "button", "data-ask": k.name, disabled: !sel, id: `${k.name}-btn` }, k.button),
      ),
    ),
    h("div", { class: "panel-lines", id: "panel-lines" }, rows),
    p.lines.endLine < p.lines.totalLines || p.lines.startLine > 1
      ? h(
          "div",
          { class: "panel-more" },
          p.lines.startLine > 1 ? h("button", { type: "button", class: "quiet", "data-act": "more-above" }, "More above") : null,
          p.lines.endLine < p.lines.totalLines ? h("button", { type: "button", class: "quiet", "data-act": "more-below" }, "More below") : null,
          h("span", { class: "muted" }, ` ${p.lines.totalLines} lines`),
        )
      : null,
  );
  el.querySelector(".focus")?.scrollIntoView({ block: "center" });
}

export function renderSelectionChip(s: State): void {
  const el = $("selection-chip");
  const sel = s.selection;
  el.hidden = !sel;
  clear(el);
  if (sel) {
    add(el, 
      `About ${sel.path}:${sel.startLine}-${sel.endLine}`,
      h("button", { type: "button", class: "quiet", "data-act": "clear-selection", "aria-label": "Clear selection" }, "×"),
    );
  }
}

// ---- views ----------------------------------------------------------------------------

export function renderTabs(s: State): void {
  for (const v of ["chat", "provenance", "settings"] as const) {
    $(`view-${v}`).hidden = s.view !== v;
    $(`tab-${v}`).classList.toggle("active", s.view === v);
  }
}

function num(n: number | null | undefined): string {
  return n === null || n === undefined ? "–" : String(n);
}

export function renderProvenance(p: ProvenanceView | null, hasRepo: boolean): void {
  const el = $("view-provenance");
  clear(el);
  add(el, 
    h(
      "div",
      { class: "prov-tools" },
      h("h2", {}, "Provenance"),
      h("input", { id: "prov-range", type: "text", placeholder: "Commit range (default: all of HEAD), e.g. main..HEAD" }),
      h("button", { type: "button", "data-act": "prov-refresh", id: "prov-refresh" }, "Refresh"),
    ),
  );
  if (!hasRepo) {
    add(el, h("p", { class: "muted" }, "Open a repository to see what in it was AI-assisted."));
    return;
  }
  add(el, 
    h(
      "div",
      { class: "prov-export" },
      "Export the report: ",
      ["json", "csv", "html", "sarif"].map((f) =>
        h("button", { type: "button", "data-export": f, id: `export-${f}` }, f.toUpperCase()),
      ),
      h("input", { id: "export-dest", type: "text", placeholder: "to (default: Downloads/cairn-report-REPO.EXT)" }),
      h("span", { id: "export-result", class: "muted" }),
    ),
  );
  if (!p) {
    add(el, h("p", { class: "muted" }, "Loading…"));
    return;
  }
  const r = p.report;
  if (p.reportError) {
    add(el, h("div", { class: "msg-error" }, p.reportError.message, " ", p.reportError.action));
  }
  if (r) {
    const t = r.totals;
    add(el, 
      h(
        "p",
        { class: "prov-summary", id: "prov-summary" },
        `${r.commits} commits in ${r.range}, ${r.attestedCommits} attested: ${t.ai} AI lines, ${t.aiModified} AI lines edited by a person, ${t.human} human lines; ${t.unreviewedAi} AI-assisted lines not reviewed.`,
      ),
      h("h3", {}, "AI-assisted lines by model"),
      table(
        ["model", "ai", "ai-modified", "reviewed", "unreviewed", "acceptance"],
        Object.entries(r.byModel).map(([m, v]) => [
          m,
          num(v.ai),
          num(v.aiModified),
          num(v.reviewedAi),
          num(v.unreviewedAi),
          v.acceptanceRate !== null && v.acceptanceRate !== undefined ? `${Math.round(v.acceptanceRate * 100)}%` : "–",
        ]),
        "No attested commits yet: commit with Cairn's hooks installed (`cairn init`) to attribute lines.",
      ),
      h("h3", {}, "By file"),
      table(
        ["file", "commit", "models", "ai", "ai-modified", "human", "reviewed"],
        r.rows.map((f) => [f.path, f.commit.slice(0, 10), f.models.join(", "), num(f.ai), num(f.aiModified), num(f.human), f.reviewed ? "yes" : "no"]),
        "No files with attested lines.",
      ),
      h("h3", {}, "Unreviewed AI-assisted regions"),
      table(
        ["file", "lines", "class", "model", "commit"],
        r.regions
          .filter(([, reviewed]) => !reviewed)
          .map(([g]) => [g.path, `${g.startLine}-${g.endLine}`, g.class, g.model, g.commit.slice(0, 10)]),
        "None.",
      ),
    );
  }
  const l = p.ledger;
  add(el, 
    h("h3", {}, "Ledger: suggestions and decisions (committed or not)"),
    l.error ? h("div", { class: "msg-error" }, l.error) : null,
    table(
      ["model", "suggested", "accepted", "rejected"],
      Object.entries(l.byModel).map(([m, v]) => [m, num(v.suggested), num(v.accepted), num(v.rejected)]),
      "No suggestions recorded yet.",
    ),
    h("h3", {}, "Latest ledger records"),
    table(
      ["seq", "event", "file", "lines", "model", "record", "time"],
      l.recent.map((e) => [
        num(e.seq),
        e.event,
        e.path ?? "",
        e.startLine !== null ? `${e.startLine}-${e.endLine}` : "",
        e.model ? `${e.model}${e.origin ? ` (${e.origin})` : ""}` : "",
        shortRecord(e.refersTo ?? e.recordId ?? ""),
        e.time ?? "",
      ]),
      "The ledger is empty.",
      "ledger-table",
    ),
    h("p", { class: "muted" }, l.path ? `Ledger file: ${l.path}` : ""),
  );
}

function table(head: string[], rows: string[][], empty: string, id?: string): HTMLElement {
  if (rows.length === 0) return h("p", { class: "muted" }, empty);
  return h(
    "table",
    { class: "grid", id },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
  );
}

export function renderSettings(s: SettingsView | null, setup: State["editorSetup"]): void {
  const el = $("view-settings");
  clear(el);
  if (!s) {
    add(el, h("p", { class: "muted" }, "Loading settings…"));
    return;
  }
  const local = s.local;
  const localMode = local?.path ? "file" : local?.registry ? "cache" : "none";
  const routeOptions = (current: string) => {
    const names = new Set([...s.models, "default", "local", "remote"]);
    return [...names].map((n) => h("option", { value: n, selected: n === current }, n));
  };
  add(el, 
    h("h2", {}, "Settings"),
    s.error ? h("div", { class: "msg-error" }, s.error.message, " ", s.error.action) : null,
    h("p", { class: "muted" }, `Saved to ${s.configPath}`, s.repoConfig ? ` (the repository's ${s.repoConfig} overrides it)` : ""),
    h(
      "form",
      { id: "settings-form", class: "settings-form" },
      h(
        "fieldset",
        {},
        h("legend", {}, "Local model (\"local\")"),
        h(
          "label",
          {},
          h("input", { type: "radio", name: "local-mode", value: "none", checked: localMode === "none" }),
          " none (use the default model, SmolLM2-135M)",
        ),
        h(
          "label",
          {},
          h("input", { type: "radio", name: "local-mode", value: "cache", checked: localMode === "cache" }),
          " from the model cache: ",
          h(
            "select",
            { id: "local-registry" },
            s.cache.map((c) =>
              h("option", { value: c.name, selected: c.name === local?.registry }, `${c.name} (${(c.size / 1e6).toFixed(0)} MB)`),
            ),
          ),
        ),
        h(
          "label",
          {},
          h("input", { type: "radio", name: "local-mode", value: "file", checked: localMode === "file", id: "local-mode-file" }),
          " a GGUF file: ",
          h("input", { id: "local-path", type: "text", value: local?.path ?? "", placeholder: "/models/qwen2.5-coder-1.5b-q8_0.gguf" }),
        ),
        h(
          "label",
          {},
          "GPU layers: ",
          h("input", { id: "gpu-layers", type: "number", min: 0, max: 999, value: local?.gpuLayers ?? "" }),
          h("span", { class: "muted" }, s.gpuBackend ? ` (GPU backend: ${s.gpuBackend})` : " (this build runs on the CPU; layers apply to GPU builds)"),
        ),
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Remote model (\"remote\", any OpenAI-compatible API)"),
        h("label", {}, "Endpoint: ", h("input", { id: "remote-url", type: "text", value: s.remote?.baseUrl ?? "", placeholder: "https://api.example.com/v1" })),
        h("label", {}, "Model id: ", h("input", { id: "remote-model", type: "text", value: s.remote?.model ?? "", placeholder: "gpt-4o-mini" })),
        h(
          "label",
          {},
          "API key: ",
          h("input", {
            id: "api-key",
            type: "password",
            autocomplete: "off",
            placeholder: s.apiKeyStored ? "stored in the keyring (type to replace)" : "stored in the OS keyring, never in the file",
          }),
        ),
        s.keyringError ? h("div", { class: "muted" }, `Keyring: ${s.keyringError}`) : null,
      ),
      h(
        "fieldset",
        {},
        h("legend", {}, "Which model serves what"),
        h("label", {}, "Chat: ", h("select", { id: "route-chat" }, routeOptions(s.chat))),
        h("label", {}, "Completions: ", h("select", { id: "route-complete" }, routeOptions(s.complete))),
      ),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "primary", id: "save-settings" }, "Save")),
    ),
    h(
      "section",
      { class: "editor-setup" },
      h("h3", {}, "Use Cairn from your editor"),
      setup
        ? [
            h(
              "p",
              { id: "cairn-binary", "data-found": setup.found },
              setup.cairn
                ? `The cairn binary (${{ bundled: "bundled with this app", build: "from the build folder", path: "found on PATH", none: "" }[setup.found]}): ${setup.cairn}`
                : "The cairn binary was not found next to the app or on PATH.",
            ),
            h("p", { class: "muted" }, "With --remote auto, editors share this window's engine while it has a repository open (one index, one ledger, one model in memory)."),
            h("p", {}, "Neovim:"),
            h("pre", { id: "setup-neovim" }, setup.neovim),
            h("p", {}, "VS Code (settings.json, with the Cairn extension):"),
            h("pre", { id: "setup-vscode" }, setup.vscode),
          ]
        : h("p", { class: "muted" }, "…"),
    ),
  );
}

/** Reads the settings form back into what `save_settings` takes. */
export function readSettingsForm(): import("./types").SettingsForm {
  const val = (id: string) => (document.getElementById(id) as HTMLInputElement | null)?.value.trim() ?? "";
  const mode = (document.querySelector('input[name="local-mode"]:checked') as HTMLInputElement | null)?.value ?? "none";
  const gpu = val("gpu-layers");
  const gpuLayers = gpu === "" ? null : Number(gpu);
  const local =
    mode === "file"
      ? { path: val("local-path"), registry: null, gpuLayers }
      : mode === "cache"
        ? { path: null, registry: val("local-registry"), gpuLayers }
        : null;
  const baseUrl = val("remote-url");
  const model = val("remote-model");
  const remote = baseUrl || model ? { baseUrl, model } : null;
  const key = (document.getElementById("api-key") as HTMLInputElement | null)?.value ?? "";
  return { local, remote, apiKey: key.trim() ? key.trim() : null, chat: val("route-chat"), complete: val("route-complete") };
}
