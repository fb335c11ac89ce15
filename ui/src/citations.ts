// Citations in an answer: `[n]`, `[1, 3]` and `[1][2]` refer to the numbered sources the
// engine gave the model. In prose (never inside code) the known ones become links that
// open the cited lines; unknown numbers stay plain text.

import type { Citation } from "./types";

const CITE = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\](?![(:])/g;

/** The numbers cited in `text`, in order of first use, without repeats. */
export function citedNumbers(text: string): number[] {
  const out: number[] = [];
  for (const seg of proseSegments(text)) {
    if (seg.code) continue;
    for (const m of seg.text.matchAll(CITE)) {
      for (const part of m[1].split(",")) {
        const n = Number(part.trim());
        if (!out.includes(n)) out.push(n);
      }
    }
  }
  return out;
}

export interface Segment {
  text: string;
  code: boolean;
}

/** Splits Markdown into code (fenced blocks, inline spans) and prose, losslessly. */
export function proseSegments(markdown: string): Segment[] {
  const segs: Segment[] = [];
  const push = (text: string, code: boolean) => {
    if (!text) return;
    const last = segs[segs.length - 1];
    if (last && last.code === code) last.text += text;
    else segs.push({ text, code });
  };
  const lines = markdown.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  let fence: string | null = null;
  for (const line of lines) {
    const m = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      push(line, true);
      if (m && m[1][0] === fence[0] && m[1].length >= fence.length && line.trim() === m[1]) fence = null;
      continue;
    }
    if (m) {
      fence = m[1];
      push(line, true);
      continue;
    }
    // Inline code spans: a run of backticks up to the same run.
    let rest = line;
    while (rest) {
      const open = /`+/.exec(rest);
      if (!open) {
        push(rest, false);
        break;
      }
      const close = rest.indexOf(open[0], open.index + open[0].length);
      if (close < 0) {
        push(rest, false);
        break;
      }
      push(rest.slice(0, open.index), false);
      push(rest.slice(open.index, close + open[0].length), true);
      rest = rest.slice(close + open[0].length);
    }
  }
  return segs;
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The label a citation shows on hover: `path:start-end`. */
export function citationLabel(c: Citation): string {
  return c.startLine === c.endLine ? `${c.path}:${c.startLine}` : `${c.path}:${c.startLine}-${c.endLine}`;
}

/** Markdown with the known citations in prose turned into links (inline HTML). */
export function linkCitations(markdown: string, citations: Citation[]): string {
  const byN = new Map(citations.map((c) => [c.n, c]));
  return proseSegments(markdown)
    .map((seg) => {
      if (seg.code) return seg.text;
      return seg.text.replace(CITE, (whole, inner: string) => {
        const parts = inner.split(",").map((p) => Number(p.trim()));
        if (!parts.some((n) => byN.has(n))) return whole;
        const links = parts.map((n) => {
          const c = byN.get(n);
          if (!c) return String(n);
          return `<a href="#" class="cite" data-cite="${n}" title="${escapeAttr(citationLabel(c))}">${n}</a>`;
        });
        return `[${links.join(", ")}]`;
      });
    })
    .join("");
}

/** Lines to show around a citation in the side panel (a little context each side). */
export function panelWindow(c: { startLine: number; endLine: number }, context = 3): { start: number; end: number } {
  return { start: Math.max(1, c.startLine - context), end: c.endLine + context };
}
