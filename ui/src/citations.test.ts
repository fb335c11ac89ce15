import { describe, expect, it } from "vitest";
import { linkCitations, panelWindow, shortRecord } from "./citations";

const cites = [
  { n: 1, path: "calc.py", startLine: 4, endLine: 6 },
  { n: 2, path: "shapes.py", startLine: 9, endLine: 9 },
];

/** The mark of the `k`-th occurrence of `needle` in `text` (what the engine sends). */
function mark(text: string, needle: string, numbers: number[], k = 0) {
  let at = -1;
  for (let i = 0; i <= k; i++) at = text.indexOf(needle, at + 1);
  return { start: at, end: at + needle.length, numbers };
}

describe("citations", () => {
  it("links exactly the marks the engine found, known sources only", () => {
    const md = "add() is in [1]; see [7] and [1, 2].\n```\nv = a[1]\n```\n";
    const marks = [mark(md, "[1]", [1]), mark(md, "[1, 2]", [1, 2])];
    const out = linkCitations(md, marks, cites);
    expect(out).toContain('<a href="#" class="cite" data-cite="1" title="calc.py:4-6">1</a>');
    expect(out).toContain("[7]");
    expect(out).toContain('[<a href="#" class="cite" data-cite="1" title="calc.py:4-6">1</a>, <a href="#" class="cite" data-cite="2" title="shapes.py:9">2</a>]');
    expect(out).toContain("v = a[1]\n");
    expect(out.match(/data-cite/g)?.length).toBe(3);
  });

  it("counts offsets in UTF-16 units, as the engine does", () => {
    const md = "é😀 [1]";
    expect(linkCitations(md, [{ start: 4, end: 7, numbers: [1] }], cites)).toContain('data-cite="1"');
  });

  it("leaves a streaming answer (no marks yet) and stale marks as text", () => {
    expect(linkCitations("see [1]", [], cites)).toBe("see [1]");
    expect(linkCitations("see [1]", [{ start: 0, end: 3, numbers: [1] }], cites)).toBe("see [1]");
    expect(linkCitations("see", [{ start: 4, end: 7, numbers: [1] }], cites)).toBe("see");
  });

  it("shows the random end of a UUIDv7 record id, not its timestamp", () => {
    const a = shortRecord("01a201ac-3f3d-74b8-9ba0-4020fe3b41a3");
    const b = shortRecord("01a201ac-3f3d-74b8-9ba0-4020fe3b41a4");
    expect(a).toBe("…fe3b41a3");
    expect(a).not.toBe(b);
  });

  it("opens the panel with context around the cited lines", () => {
    expect(panelWindow({ startLine: 2, endLine: 5 })).toEqual({ start: 1, end: 8 });
  });
});
