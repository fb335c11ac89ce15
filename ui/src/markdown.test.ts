import { describe, expect, it } from "vitest";
import { renderAnswer } from "./markdown";

describe("answers", () => {
  it("highlights code and links citations", () => {
    const md = "`add` is defined in [1].\n\n```python\ndef add(a, b):\n    return a + b\n```\n";
    const at = md.indexOf("[1]");
    const html = renderAnswer(md, [{ n: 1, path: "calc.py", startLine: 4, endLine: 6 }], [{ start: at, end: at + 3, numbers: [1] }]);
    expect(html).toContain('class="cite"');
    expect(html).toContain('data-cite="1"');
    expect(html).toContain('class="hljs language-python"');
    expect(html).toContain('<span class="hljs-keyword">def</span>');
  });

  it("strips scripts, handlers and remote images from model output", () => {
    const html = renderAnswer('<img src="http://evil/x.png" onerror="alert(1)"><script>alert(2)</script>[x](javascript:alert(3)) ok');
    expect(html).not.toMatch(/<script|onerror|<img|javascript:/i);
    expect(html).toContain("ok");
  });

  it("labels edit blocks with their target", () => {
    const html = renderAnswer("```edit path=src/a.py lines=3-4\nx = 1\n```\n");
    expect(html).toContain('<div class="code-label">edit path=src/a.py lines=3-4</div>');
    expect(html).toContain("language-py");
  });
});
