// Proposed edits as unified diffs: the file before and after (from the app) turned
// into hunks of numbered rows, and the patch text for copying.

import { createTwoFilesPatch, structuredPatch } from "diff";
import type { EditView } from "./types";

export type RowKind = "context" | "add" | "del" | "hunk" | "note";

export interface DiffRow {
  kind: RowKind;
  /** Line numbers in the old and new file (absent on the other side). */
  oldNo: number | null;
  newNo: number | null;
  text: string;
}

export interface DiffSummary {
  rows: DiffRow[];
  added: number;
  removed: number;
}

/** Rows of a unified diff of `oldText` → `newText` with `context` lines around changes. */
export function diffRows(oldText: string, newText: string, context = 3): DiffSummary {
  const patch = structuredPatch("a", "b", oldText, newText, "", "", { context });
  const rows: DiffRow[] = [];
  let added = 0;
  let removed = 0;
  for (const h of patch.hunks) {
    rows.push({
      kind: "hunk",
      oldNo: null,
      newNo: null,
      text: `@@ -${h.oldStart},${h.oldLines} +${h.newStart},${h.newLines} @@`,
    });
    let o = h.oldStart;
    let n = h.newStart;
    for (const line of h.lines) {
      const mark = line[0];
      const text = line.slice(1);
      if (mark === "+") {
        rows.push({ kind: "add", oldNo: null, newNo: n++, text });
        added++;
      } else if (mark === "-") {
        rows.push({ kind: "del", oldNo: o++, newNo: null, text });
        removed++;
      } else if (mark === "\\") {
        rows.push({ kind: "note", oldNo: null, newNo: null, text: line.slice(2) });
      } else {
        rows.push({ kind: "context", oldNo: o++, newNo: n++, text });
      }
    }
  }
  return { rows, added, removed };
}

/** The diff of a proposed edit; without the whole files, the new text as additions. */
export function editDiff(edit: EditView): DiffSummary {
  if (edit.oldFile !== null && edit.newFile !== null) {
    return diffRows(edit.oldFile, edit.newFile);
  }
  const lines = edit.newText.replace(/\n$/, "").split("\n");
  const rows: DiffRow[] = [
    { kind: "note", oldNo: null, newNo: null, text: `lines ${edit.startLine}-${edit.endLine} of ${edit.path} become:` },
    ...lines.map((text, i) => ({ kind: "add" as const, oldNo: null, newNo: edit.startLine + i, text })),
  ];
  return { rows, added: lines.length, removed: 0 };
}

/** A `git apply`-able patch of the edit (for copying). */
export function editPatch(edit: EditView): string {
  if (edit.oldFile === null || edit.newFile === null) return edit.newText;
  return createTwoFilesPatch(`a/${edit.path}`, `b/${edit.path}`, edit.oldFile, edit.newFile, "", "", { context: 3 });
}
