//! What is read back out of an answer: citations `[n]` (in prose only — never inside
//! code, where `xs[1]` is an index) and proposed edits (fenced blocks). The one parser of
//! both: front ends show what it found and parse nothing themselves.

use serde::Serialize;

/// One retrieved source shown to the model as `[n]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub n: usize,
    pub path: String,
    /// 1-based, inclusive.
    pub start_line: usize,
    pub end_line: usize,
    #[serde(skip)]
    pub text: String,
    pub score: f32,
    pub retriever: String,
}

/// A citation found in the answer, resolved to its source.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Citation {
    pub n: usize,
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
}

/// Where a citation stands in the answer: `[1, 3]` at `start..end`, counted in UTF-16
/// code units (as JavaScript indexes strings), with the numbers it cites that resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CitationMark {
    pub start: usize,
    pub end: usize,
    pub numbers: Vec<usize>,
}

/// An edit block as the model wrote it: ```` ```edit path=src/a.py lines=3-5 ````.
#[derive(Debug, Clone, PartialEq)]
pub struct EditBlock {
    pub path: Option<String>,
    /// 1-based inclusive line range it replaces; `None` for "the selection".
    pub lines: Option<(usize, usize)>,
    pub text: String,
    /// Whether the block was labelled `edit` (rather than any code block).
    pub labelled: bool,
}

/// A piece of Markdown: code (a fenced block or an inline span) or prose, with its byte
/// offset in the whole text.
struct Segment<'a> {
    at: usize,
    text: &'a str,
    code: bool,
}

/// An opening or closing fence line: its character (`` ` `` or `~`), its length and
/// the rest of the line (the info string).
fn fence(line: &str) -> Option<(char, usize, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let t = &line[indent..];
    let c = t.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = t.chars().take_while(|x| *x == c).count();
    (n >= 3).then(|| (c, n, t[n..].trim()))
}

/// Splits Markdown into code and prose, losslessly, in order.
fn segments(markdown: &str) -> Vec<Segment<'_>> {
    let mut out: Vec<Segment<'_>> = Vec::new();
    let mut open: Option<(char, usize)> = None;
    let mut at = 0;
    for line in markdown.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some((c, n)) = open {
            out.push(Segment {
                at: start,
                text: line,
                code: true,
            });
            if matches!(fence(bare), Some((fc, fnum, rest)) if fc == c && fnum >= n && rest.is_empty())
            {
                open = None;
            }
            continue;
        }
        if let Some((c, n, _)) = fence(bare) {
            open = Some((c, n));
            out.push(Segment {
                at: start,
                text: line,
                code: true,
            });
            continue;
        }
        // Inline code spans: a run of backticks up to the same run.
        let mut rest = line;
        let mut off = start;
        while !rest.is_empty() {
            let Some(open_at) = rest.find('`') else {
                out.push(Segment {
                    at: off,
                    text: rest,
                    code: false,
                });
                break;
            };
            let run = rest[open_at..].chars().take_while(|c| *c == '`').count();
            let ticks = &rest[open_at..open_at + run];
            let Some(close) = rest[open_at + run..].find(ticks).map(|i| open_at + run + i) else {
                out.push(Segment {
                    at: off,
                    text: rest,
                    code: false,
                });
                break;
            };
            out.push(Segment {
                at: off,
                text: &rest[..open_at],
                code: false,
            });
            let end = close + run;
            out.push(Segment {
                at: off + open_at,
                text: &rest[open_at..end],
                code: true,
            });
            off += end;
            rest = &rest[end..];
        }
    }
    out
}

/// The `[1]`, `[1, 3]` citations of a piece of prose: (byte start, byte end, numbers).
fn cited_in(prose: &str) -> Vec<(usize, usize, Vec<usize>)> {
    let bytes = prose.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(open) = prose[i..].find('[').map(|o| i + o) {
        i = open + 1;
        let Some(close) = prose[open + 1..].find(']').map(|c| open + 1 + c) else {
            break;
        };
        let inside = &prose[open + 1..close];
        let numbers: Option<Vec<usize>> = inside
            .split(',')
            .map(|p| {
                let p = p.trim();
                (!p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse().ok())
                    .flatten()
            })
            .collect();
        // `xs[1]` is an index, `[1](url)` and `[1]: url` are links.
        let after = bytes.get(close + 1).copied();
        let before = open.checked_sub(1).map(|b| bytes[b]);
        let index_like =
            before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b')');
        if let Some(numbers) = numbers {
            if !index_like && !matches!(after, Some(b'(') | Some(b':')) {
                out.push((open, close + 1, numbers));
                i = close + 1;
            }
        }
    }
    out
}

fn utf16_offset(text: &str, byte: usize) -> usize {
    text[..byte].encode_utf16().count()
}

/// Citations in the answer's prose resolved against the sources, in order of first use,
/// and where each one stands (only those citing a known source).
pub fn citations(answer: &str, sources: &[Source]) -> (Vec<Citation>, Vec<CitationMark>) {
    let mut seen: Vec<Citation> = Vec::new();
    let mut marks = Vec::new();
    for seg in segments(answer).iter().filter(|s| !s.code) {
        for (s, e, numbers) in cited_in(seg.text) {
            let known: Vec<usize> = numbers
                .into_iter()
                .filter(|n| sources.iter().any(|src| src.n == *n))
                .collect();
            if known.is_empty() {
                continue;
            }
            for n in &known {
                if seen.iter().any(|c| c.n == *n) {
                    continue;
                }
                if let Some(src) = sources.iter().find(|src| src.n == *n) {
                    seen.push(Citation {
                        n: *n,
                        path: src.path.clone(),
                        start_line: src.start_line,
                        end_line: src.end_line,
                    });
                }
            }
            marks.push(CitationMark {
                start: utf16_offset(answer, seg.at + s),
                end: utf16_offset(answer, seg.at + e),
                numbers: known,
            });
        }
    }
    (seen, marks)
}

/// Fenced blocks of the answer (```` ``` ```` or `~~~`): `edit` blocks with their target,
/// and plain code blocks.
pub fn code_blocks(answer: &str) -> Vec<EditBlock> {
    let mut out = Vec::new();
    let mut lines = answer.lines();
    while let Some(line) = lines.next() {
        let Some((c, n, info)) = fence(line) else {
            continue;
        };
        let mut body = Vec::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if matches!(fence(l), Some((fc, fnum, rest)) if fc == c && fnum >= n && rest.is_empty())
            {
                closed = true;
                break;
            }
            body.push(l);
        }
        let mut words = info.split_whitespace();
        let labelled = words.next() == Some("edit");
        let (mut path, mut range) = (None, None);
        if labelled {
            for w in words {
                if let Some(p) = w.strip_prefix("path=") {
                    path = Some(p.trim_matches('"').to_string());
                } else if let Some(l) = w.strip_prefix("lines=") {
                    let mut it = l.split('-').map(|x| x.trim().parse::<usize>());
                    if let (Some(Ok(a)), b) = (it.next(), it.next()) {
                        let b = b.and_then(Result::ok).unwrap_or(a);
                        if a >= 1 && b >= a {
                            range = Some((a, b));
                        }
                    }
                }
            }
        }
        if closed || !body.is_empty() {
            let mut text = body.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            out.push(EditBlock {
                path,
                lines: range,
                text,
                labelled,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(n: usize, path: &str) -> Source {
        Source {
            n,
            path: path.into(),
            start_line: 3,
            end_line: 9,
            text: "x = 1\n".into(),
            score: 1.0,
            retriever: "hybrid".into(),
        }
    }

    fn cited(answer: &str) -> String {
        let s = [src(1, "a.py"), src(2, "b.py"), src(3, "c.py")];
        let (c, marks) = citations(answer, &s);
        let utf16: Vec<u16> = answer.encode_utf16().collect();
        let shown: Vec<String> = marks
            .iter()
            .map(|m| String::from_utf16_lossy(&utf16[m.start..m.end]))
            .collect();
        format!(
            "{:?} at {:?}",
            c.iter().map(|c| c.n).collect::<Vec<_>>(),
            shown
        )
    }

    #[test]
    fn citations_resolve_in_order_and_ignore_unknown_numbers() {
        assert_eq!(
            cited("See [2] and [1, 2]; not [7] or [x]."),
            r#"[2, 1] at ["[2]", "[1, 2]"]"#
        );
        assert_eq!(cited("Both [1][3]."), r#"[1, 3] at ["[1]", "[3]"]"#);
    }

    #[test]
    fn code_never_cites() {
        let a = "Use `xs[1]` here [1].\n```python\nys[2] = 0  # [3]\n```\n~~~\n[3]\n~~~\nand xs[2] or [2](http://x) or\n[3]: http://y\n";
        assert_eq!(cited(a), r#"[1] at ["[1]"]"#);
    }

    #[test]
    fn marks_count_utf16_units() {
        let s = [src(1, "a.py")];
        let (_, marks) = citations("é😀 [1]", &s);
        assert_eq!((marks[0].start, marks[0].end), (4, 7));
    }

    #[test]
    fn edit_blocks_carry_their_target() {
        let a = "Change it:\n```edit path=src/a.py lines=3-4\ndef f():\n    return 2\n```\nand\n~~~python\nprint(1)\n~~~\n";
        let b = code_blocks(a);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].path.as_deref(), Some("src/a.py"));
        assert_eq!(b[0].lines, Some((3, 4)));
        assert_eq!(b[0].text, "def f():\n    return 2\n");
        assert!(b[0].labelled);
        assert!(!b[1].labelled);
        assert_eq!(b[1].text, "print(1)\n");
        // Nonsense ranges are dropped, not trusted.
        let b = code_blocks("```edit path=a lines=9-2\nx\n```");
        assert_eq!(b[0].lines, None);
    }
}
