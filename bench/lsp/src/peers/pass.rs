//! One server's pass over the session, the same for every server: the file opened, the
//! first completion in it (the server just started and idle), then every keystroke's
//! change and completion request, each waited for. What each answer showed is compared
//! with what the user typed next.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cairn_engine::Position;
use serde::Serialize;
use serde_json::Value;

use crate::client::Client;
use crate::doc::Doc;
use crate::session::{change, position_at, Session};

/// How a server is asked for a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Method {
    /// `textDocument/inlineCompletion`, automatic trigger.
    Inline,
    /// `textDocument/completion`, triggered by typing.
    Completion,
}

/// What one request got back.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ask {
    /// Keystroke index; `None` for the first completion in the cold file.
    pub(crate) i: Option<usize>,
    pub(crate) ch: Option<String>,
    pub(crate) line: u32,
    pub(crate) character: u32,
    pub(crate) ms: f64,
    /// `model`: a new suggestion (or any answer of a server without a cache of its
    /// own); `typing-through`: an earlier suggestion shown again (Cairn: its record id
    /// seen before); `empty`: nothing shown; `error`.
    pub(crate) kind: &'static str,
    pub(crate) error: Option<String>,
    /// The first item's text as the server sent it.
    pub(crate) raw: Option<String>,
    /// What the item adds at the cursor (text the item repeats before the cursor cut off).
    pub(crate) shown: String,
    /// What the user typed next (the rest of the body), its first line.
    pub(crate) truth_line: String,
    /// The shown text's first line is the same as the truth's, and not blank.
    pub(crate) matched: bool,
    pub(crate) record_id: Option<String>,
    /// The item's `data` (the adapter reports its prompt there).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub(crate) data: Value,
    /// Prompt and generated tokens, where the server or its records say.
    pub(crate) prompt_tokens: Option<u32>,
    pub(crate) generated_tokens: Option<u32>,
}

/// One server's pass.
pub(crate) struct Pass {
    pub(crate) cold: Ask,
    pub(crate) keys: Vec<Ask>,
    pub(crate) wall_s: f64,
}

/// Opens the file and types the session into it, one request per keystroke.
pub(crate) fn run(client: &mut Client, method: Method, doc: &mut Doc, session: &Session) -> Pass {
    let mut text = session.start_text.clone();
    let mut offset = session.offset;
    let mut at = position_at(&text, offset);
    let body: Vec<char> = session.body.chars().collect();
    let mut seen: HashSet<String> = HashSet::new();
    doc.did_open(client, &text);
    let truth: String = body.iter().collect();
    let cold = ask(client, method, doc, &text, offset, at, &truth, &mut seen);
    eprintln!(
        "  cold file, first completion: {:.0} ms, {}",
        cold.ms,
        describe(&cold)
    );
    let mut keys = Vec::with_capacity(session.typed.len());
    let t = Instant::now();
    for (i, &ch) in session.typed.iter().enumerate() {
        doc.version += 1;
        let (_, lsp_change, next) = change(at, ch);
        doc.did_change(client, lsp_change);
        text.insert(offset, ch);
        offset += ch.len_utf8();
        at = next;
        let truth: String = body[i + 1..].iter().collect();
        let mut a = ask(client, method, doc, &text, offset, at, &truth, &mut seen);
        a.i = Some(i);
        a.ch = Some(ch.to_string());
        if i % 10 == 0 || i + 1 == session.typed.len() {
            eprintln!(
                "  [{:>4}/{}] {:>8.1} ms {}",
                i + 1,
                session.typed.len(),
                a.ms,
                describe(&a)
            );
        }
        keys.push(a);
    }
    let wall_s = t.elapsed().as_secs_f64();
    doc.did_close(client);
    Pass { cold, keys, wall_s }
}

fn describe(a: &Ask) -> String {
    match a.kind {
        "error" => format!("error: {}", a.error.as_deref().unwrap_or("")),
        "empty" => "nothing shown".into(),
        k => format!(
            "{k}{}: {:?}",
            if a.matched { ", matches" } else { "" },
            first_line(&a.shown)
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn ask(
    client: &mut Client,
    method: Method,
    doc: &Doc,
    text: &str,
    offset: usize,
    at: Position,
    truth: &str,
    seen: &mut HashSet<String>,
) -> Ask {
    let (id, sent) = match method {
        Method::Inline => doc.inline_completion(client, at),
        Method::Completion => doc.completion(client, at),
    };
    let r = client.wait(id, Duration::from_secs(600));
    let ms = r.at.duration_since(sent).as_secs_f64() * 1e3;
    let item = first_item(&r.msg);
    let error = r.msg.get("error").map(|e| {
        e["message"]
            .as_str()
            .map_or_else(|| e.to_string(), String::from)
    });
    let raw = item.and_then(item_text);
    let shown = match (item, &raw) {
        (Some(it), Some(raw)) => after_cursor(it, raw, text, offset),
        _ => String::new(),
    };
    let record_id = item
        .and_then(|i| i["command"]["arguments"][0]["recordId"].as_str())
        .map(String::from);
    let repeat = record_id
        .as_ref()
        .is_some_and(|id| !seen.insert(id.clone()));
    let kind = if error.is_some() {
        "error"
    } else if shown.trim().is_empty() {
        "empty"
    } else if repeat {
        "typing-through"
    } else {
        "model"
    };
    let data = item.map_or(Value::Null, |i| i["data"].clone());
    let truth_line = first_line(truth).to_string();
    Ask {
        i: None,
        ch: None,
        line: at.line,
        character: at.character,
        ms,
        kind,
        error,
        matched: lines_match(&shown, truth),
        prompt_tokens: data["promptTokens"].as_u64().map(|v| v as u32),
        generated_tokens: data["generatedTokens"].as_u64().map(|v| v as u32),
        raw,
        shown,
        truth_line,
        record_id,
        data,
    }
}

/// The first item of an inline-completion or completion answer (a list or `{items}`).
fn first_item(msg: &Value) -> Option<&Value> {
    let result = msg.get("result")?;
    result
        .get("items")
        .or(Some(result))
        .and_then(Value::as_array)
        .and_then(|items| items.first())
}

/// An item's text: `insertText` (a string, or a snippet's `value`), else the text edit's
/// `newText`, else the label.
fn item_text(item: &Value) -> Option<String> {
    let t = &item["insertText"];
    t.as_str()
        .or_else(|| t["value"].as_str())
        .or_else(|| item["textEdit"]["newText"].as_str())
        .or_else(|| item["label"].as_str())
        .map(String::from)
}

/// The item's range start: its own `range`, or its text edit's (`range`, `insert`).
fn range_start(item: &Value) -> Option<Position> {
    let r = [
        &item["range"],
        &item["textEdit"]["range"],
        &item["textEdit"]["insert"],
    ]
    .into_iter()
    .find(|r| r.is_object())?;
    Some(Position::new(
        r["start"]["line"].as_u64()? as u32,
        r["start"]["character"].as_u64()? as u32,
    ))
}

/// The part of the item's text that goes after the cursor: an item whose range starts
/// before the cursor repeats the text there, which is cut off.
fn after_cursor(item: &Value, raw: &str, text: &str, offset: usize) -> String {
    let Some(start) = range_start(item).and_then(|p| offset_of(text, p)) else {
        return raw.to_string();
    };
    match text.get(start..offset) {
        Some(before) if start < offset && raw.starts_with(before) => raw[before.len()..].into(),
        _ => raw.to_string(),
    }
}

/// The byte offset of an LSP position (UTF-16 columns), when it is inside the text.
pub(crate) fn offset_of(text: &str, p: Position) -> Option<usize> {
    let mut start = 0;
    for _ in 0..p.line {
        start += text[start..].find('\n')? + 1;
    }
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let mut units = 0u32;
    for (i, c) in text[start..line_end].char_indices() {
        if units >= p.character {
            return Some(start + i);
        }
        units += c.len_utf16() as u32;
    }
    (units >= p.character).then_some(line_end)
}

/// The first line of a continuation: up to the first line break after something that
/// is not white space (so a suggestion that starts on the next line is that line).
pub(crate) fn first_line(s: &str) -> &str {
    let content = s.find(|c: char| !c.is_whitespace()).unwrap_or(s.len());
    let end = s[content..].find('\n').map_or(s.len(), |i| content + i);
    s[..end].trim_end()
}

/// A suggestion matches when its first line is exactly what was typed next up to that
/// line's end (white space at the end aside), and is not blank.
pub(crate) fn lines_match(shown: &str, truth: &str) -> bool {
    let s = first_line(shown);
    !s.trim().is_empty() && s == first_line(truth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_lines_and_matches() {
        // (shown, truth, first line of shown, matches)
        let cases = [
            ("x = 1;\n    y", "x = 1;\n    z", "x = 1;", true),
            ("x = 1;  ", "x = 1;\n", "x = 1;", true),
            ("x = 1", "x = 1;\n", "x = 1", false),
            (
                "\n    let a = 2;\n",
                "\n    let a = 2;\n}",
                "\n    let a = 2;",
                true,
            ),
            (
                "\n    let a = 2;",
                "\n    let b = 2;",
                "\n    let a = 2;",
                false,
            ),
            ("", "", "", false),
            ("   \n", "   \n", "", false),
        ];
        for (shown, truth, line, m) in cases {
            assert_eq!(first_line(shown), line, "{shown:?}");
            assert_eq!(lines_match(shown, truth), m, "{shown:?} vs {truth:?}");
        }
    }

    #[test]
    fn the_text_before_the_cursor_is_cut_off() {
        let text = "fn f() {\n    let ab\n}\n";
        let offset = text.find("ab").unwrap() + 2;
        // (item, what it adds at the cursor)
        let cases = [
            (
                json!({"insertText": "cd = 1;", "range": {"start": {"line": 1, "character": 10},
                     "end": {"line": 1, "character": 10}}}),
                "cd = 1;",
            ),
            (
                json!({"insertText": "    let abcd = 1;", "range": {"start": {"line": 1, "character": 0},
                     "end": {"line": 1, "character": 10}}}),
                "cd = 1;",
            ),
            (
                json!({"textEdit": {"newText": "let abcd", "range": {"start": {"line": 1, "character": 4},
                     "end": {"line": 1, "character": 10}}}}),
                "cd",
            ),
            (json!({"label": "cd"}), "cd"),
        ];
        for (item, want) in cases {
            let raw = item_text(&item).unwrap();
            assert_eq!(after_cursor(&item, &raw, text, offset), want, "{item}");
        }
        assert_eq!(offset_of(text, Position::new(1, 10)), Some(offset));
        assert_eq!(offset_of(text, Position::new(1, 11)), None);
        assert_eq!(offset_of("é\nx", Position::new(0, 1)), Some(2));
    }

    #[test]
    fn answers_of_both_methods_give_their_first_item() {
        let inline = json!({"result": {"items": [{"insertText": "a"}, {"insertText": "b"}]}});
        let list = json!({"result": [{"label": "c"}]});
        let completion = json!({"result": {"isIncomplete": false, "items": [{"label": "ai - d",
            "textEdit": {"newText": "d", "range": {"start": {"line": 0, "character": 0},
                         "end": {"line": 0, "character": 0}}}}]}});
        assert_eq!(item_text(first_item(&inline).unwrap()).unwrap(), "a");
        assert_eq!(item_text(first_item(&list).unwrap()).unwrap(), "c");
        assert_eq!(item_text(first_item(&completion).unwrap()).unwrap(), "d");
        assert!(first_item(&json!({"result": null})).is_none());
        assert!(first_item(&json!({"error": {"code": 1}})).is_none());
    }
}
