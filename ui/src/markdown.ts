// Answers are Markdown from a model: rendered with marked, code highlighted with
// highlight.js, citations linked, and the HTML sanitised with DOMPurify before it
// touches the page (a model's output is untrusted: no scripts, no handlers, no remote
// resources in a window that can call the app's commands).

import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/common";
import { Marked } from "marked";
import { linkCitations } from "./citations";
import type { Citation, CitationMark } from "./types";

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** Highlighted HTML for code in `lang` (escaped plain text when the language is unknown). */
export function highlight(code: string, lang?: string | null): { html: string; language: string | null } {
  const name = (lang ?? "").trim().split(/\s+/)[0].toLowerCase();
  if (name && hljs.getLanguage(name)) {
    return { html: hljs.highlight(code, { language: name, ignoreIllegals: true }).value, language: name };
  }
  return { html: escapeHtml(code), language: null };
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    code({ text, lang }) {
      const info = (lang ?? "").trim();
      // `edit path=… lines=…` blocks: the label says where the code goes.
      const label = info.startsWith("edit") ? info : "";
      const guess = label ? (info.match(/path=\S+\.(\w+)/)?.[1] ?? "") : info;
      const { html, language } = highlight(text, guess);
      const cls = language ? `hljs language-${language}` : "hljs";
      const head = label ? `<div class="code-label">${escapeHtml(label)}</div>` : "";
      return `<div class="code">${head}<pre><code class="${cls}">${html}</code></pre></div>\n`;
    },
  },
});

const PURIFY = {
  ALLOWED_URI_REGEXP: /^(?:#|https?:)/i,
  FORBID_TAGS: ["style", "img", "iframe", "form", "input", "video", "audio", "object", "embed"],
  FORBID_ATTR: ["style"],
};

/** Sanitised HTML for an answer with the citations the engine marked linked (a streaming
 *  answer has no marks yet: it shows plain text until the turn ends). */
export function renderAnswer(markdown: string, citations: Citation[] = [], marks: CitationMark[] = []): string {
  const html = marked.parse(linkCitations(markdown, marks, citations), { async: false }) as string;
  return DOMPurify.sanitize(html, PURIFY) as string;
}
