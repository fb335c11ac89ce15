// Citations in an answer: the engine finds them (in prose only, never inside code) and
// says where each stands (`citationMarks`, UTF-16 offsets into the answer). The window
// links exactly those; it parses nothing itself, so it and the engine always agree.

import type { Citation, CitationMark } from "./types";

function escapeAttr(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The label a citation shows on hover: `path:start-end`. */
export function citationLabel(c: Citation): string {
  return c.startLine === c.endLine ? `${c.path}:${c.startLine}` : `${c.path}:${c.startLine}-${c.endLine}`;
}

/** Markdown with the engine's citation marks turned into links (inline HTML). Marks that
 *  do not fit the text (a stale answer) are left as text. */
export function linkCitations(markdown: string, marks: CitationMark[], citations: Citation[]): string {
  const byN = new Map(citations.map((c) => [c.n, c]));
  const sorted = [...marks].sort((a, b) => a.start - b.start);
  let out = "";
  let at = 0;
  for (const m of sorted) {
    if (m.start < at || m.end > markdown.length || m.end <= m.start) continue;
    const whole = markdown.slice(m.start, m.end);
    if (!/^\[[\d\s,]+\]$/.test(whole)) continue;
    const parts = whole
      .slice(1, -1)
      .split(",")
      .map((p) => Number(p.trim()));
    const links = parts.map((n) => {
      const c = byN.get(n);
      if (!c || !m.numbers.includes(n)) return String(n);
      return `<a href="#" class="cite" data-cite="${n}" title="${escapeAttr(citationLabel(c))}">${n}</a>`;
    });
    out += markdown.slice(at, m.start) + `[${links.join(", ")}]`;
    at = m.end;
  }
  return out + markdown.slice(at);
}

/** A record id as the window shows it: the end of a UUIDv7, which is its random part
 *  (the start is a timestamp, the same for every record of a burst). */
export function shortRecord(id: string): string {
  const hex = id.replace(/-/g, "");
  return hex.length > 8 ? `…${hex.slice(-8)}` : id;
}

/** Lines to show around a citation in the side panel (a little context each side). */
export function panelWindow(c: { startLine: number; endLine: number }, context = 3): { start: number; end: number } {
  return { start: Math.max(1, c.startLine - context), end: c.endLine + context };
}
