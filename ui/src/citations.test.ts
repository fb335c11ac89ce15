import { describe, expect, it } from "vitest";
import { citedNumbers, linkCitations, panelWindow, proseSegments } from "./citations";

const cites = [
  { n: 1, path: "calc.py", startLine: 4, endLine: 6 },
  { n: 2, path: "shapes.py", startLine: 9, endLine: 9 },
];

describe("citations", () => {
  it("finds numbers in order of first use, lists and runs included", () => {
    expect(citedNumbers("See [2] and [1, 2]; then [3][1].")).toEqual([2, 1, 3]);
  });

  it("ignores brackets in code and markdown links", () => {
    const md = "Use `xs[0]` and [docs](http://x) [1]\n```py\nys[2]\n```\n";
    expect(citedNumbers(md)).toEqual([1]);
  });

  it("links known citations in prose only, leaving unknown numbers as text", () => {
    const out = linkCitations("add() is in [1]; see [7] and [1, 2].\n```\nv = a[1]\n```\n", cites);
    expect(out).toContain('<a href="#" class="cite" data-cite="1" title="calc.py:4-6">1</a>');
    expect(out).toContain("[7]");
    expect(out).toContain('[<a href="#" class="cite" data-cite="1" title="calc.py:4-6">1</a>, <a href="#" class="cite" data-cite="2" title="shapes.py:9">2</a>]');
    expect(out).toContain("v = a[1]\n");
    expect(out.match(/data-cite/g)?.length).toBe(3);
  });

  it("segments Markdown losslessly", () => {
    const md = "a `b` c\n~~~\n[1]\n~~~\nd [1]";
    expect(proseSegments(md).map((s) => s.text).join("")).toBe(md);
    expect(proseSegments(md).filter((s) => s.code).map((s) => s.text)).toEqual(["`b`", "~~~\n[1]\n~~~\n"]);
  });

  it("treats an unclosed fence (still streaming) as code", () => {
    expect(citedNumbers("text [1]\n```python\nx[2]")).toEqual([1]);
  });

  it("opens the panel with context around the cited lines", () => {
    expect(panelWindow({ startLine: 2, endLine: 5 })).toEqual({ start: 1, end: 8 });
  });
});
