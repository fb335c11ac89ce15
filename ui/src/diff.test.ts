import { describe, expect, it } from "vitest";
import { diffRows, editDiff, editPatch } from "./diff";
import type { EditView } from "./types";

const model = { name: "default", origin: "local" as const, modelId: "SmolLM2", runtime: "llama.cpp" };

describe("diffs", () => {
  it("numbers rows on both sides and counts changes", () => {
    const d = diffRows("a\nb\nc\n", "a\nB\nc\nd\n");
    expect(d.added).toBe(2);
    expect(d.removed).toBe(1);
    expect(d.rows[0]).toMatchObject({ kind: "hunk", text: "@@ -1,3 +1,4 @@" });
    expect(d.rows.slice(1)).toEqual([
      { kind: "context", oldNo: 1, newNo: 1, text: "a" },
      { kind: "del", oldNo: 2, newNo: null, text: "b" },
      { kind: "add", oldNo: null, newNo: 2, text: "B" },
      { kind: "context", oldNo: 3, newNo: 3, text: "c" },
      { kind: "add", oldNo: null, newNo: 4, text: "d" },
    ]);
  });

  it("keeps only context around a change in a long file", () => {
    const old = Array.from({ length: 40 }, (_, i) => `line ${i + 1}`).join("\n") + "\n";
    const neu = old.replace("line 20\n", "line twenty\n");
    const d = diffRows(old, neu);
    expect(d.rows.filter((r) => r.kind === "context").length).toBe(6);
    expect(d.rows.find((r) => r.kind === "del")).toMatchObject({ oldNo: 20, text: "line 20" });
  });

  it("shows an edit without whole files as its new lines", () => {
    const e: EditView = {
      recordId: "r1", path: "a.py", startLine: 3, endLine: 4, newText: "x = 1\ny = 2\n",
      oldFile: null, newFile: null, problem: null, model, contextFiles: [], references: [],
    };
    const d = editDiff(e);
    expect(d.rows.filter((r) => r.kind === "add").map((r) => [r.newNo, r.text])).toEqual([[3, "x = 1"], [4, "y = 2"]]);
    expect(editPatch(e)).toBe("x = 1\ny = 2\n");
  });

  it("makes a patch git can apply", () => {
    const e: EditView = {
      recordId: "r1", path: "calc.py", startLine: 1, endLine: 1, newText: "b\n",
      oldFile: "a\n", newFile: "b\n", problem: null, model, contextFiles: [], references: [],
    };
    const p = editPatch(e);
    expect(p).toContain("--- a/calc.py");
    expect(p).toContain("+++ b/calc.py");
    expect(p).toContain("-a\n+b");
  });
});
