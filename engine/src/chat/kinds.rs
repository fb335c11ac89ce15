//! What a chat turn is for, as one table: its name on the wire, how editors offer it,
//! what the model is told, and where a proposed edit goes. A new editor command is one
//! variant and one row here (plus the editor plugins' key bindings); the LSP server and
//! the desktop app read everything else from the row.

use serde::Serialize;

/// What a chat turn is for; code actions use the focused kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(into = "&'static str")]
pub enum ChatKind {
    #[default]
    Ask,
    Explain,
    Fix,
    WriteTest,
}

/// Where the first code block of an answer goes when the model wrote no labelled
/// `edit` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EditTarget {
    /// Nowhere: the answer is prose.
    None,
    /// It replaces the selected lines.
    ReplaceSelection,
    /// It goes after the selected lines.
    AfterSelection,
}

/// One row of [`CHAT_KINDS`].
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatKindInfo {
    #[serde(skip)]
    pub kind: ChatKind,
    /// On the wire (`cairn/chat` `kind`, the desktop's requests).
    pub name: &'static str,
    /// The editor command that runs it on a selection (`None`: plain chat).
    pub command: Option<&'static str>,
    /// The code action's title.
    pub title: &'static str,
    /// The desktop app's button for it.
    pub button: &'static str,
    /// The LSP code action kind.
    pub code_action_kind: &'static str,
    /// Shown while it runs.
    pub progress: &'static str,
    /// Put before the person's own words in the question.
    pub instruction: &'static str,
    pub edits: EditTarget,
    /// Whether it works on a selection only.
    pub needs_selection: bool,
}

pub const CHAT_KINDS: &[ChatKindInfo] = &[
    ChatKindInfo {
        kind: ChatKind::Ask,
        name: "ask",
        command: None,
        title: "Cairn: Ask",
        button: "Ask",
        code_action_kind: "",
        progress: "Cairn",
        instruction: "",
        edits: EditTarget::None,
        needs_selection: false,
    },
    ChatKindInfo {
        kind: ChatKind::Explain,
        name: "explain",
        command: Some("cairn.explain"),
        title: "Cairn: Explain this",
        button: "Explain",
        code_action_kind: "refactor.cairn.explain",
        progress: "Cairn: explaining",
        instruction: "Explain what the selected code does and anything surprising in it.",
        edits: EditTarget::None,
        needs_selection: true,
    },
    ChatKindInfo {
        kind: ChatKind::Fix,
        name: "fix",
        command: Some("cairn.fix"),
        title: "Cairn: Fix this",
        button: "Fix selection",
        code_action_kind: "quickfix.cairn.fix",
        progress: "Cairn: fixing",
        instruction: "Find the bug in the selected code and fix it. Reply with a short explanation, then the corrected code for the whole selection in one fenced code block.",
        edits: EditTarget::ReplaceSelection,
        needs_selection: true,
    },
    ChatKindInfo {
        kind: ChatKind::WriteTest,
        name: "test",
        command: Some("cairn.writeTest"),
        title: "Cairn: Write a test for this",
        button: "Write test",
        code_action_kind: "refactor.cairn.test",
        progress: "Cairn: writing a test",
        instruction: "Write a unit test for the selected code, in the file's language and test style. Reply with the test in one fenced code block.",
        edits: EditTarget::AfterSelection,
        needs_selection: true,
    },
];

impl ChatKind {
    pub fn info(self) -> &'static ChatKindInfo {
        CHAT_KINDS
            .iter()
            .find(|k| k.kind == self)
            .unwrap_or(&CHAT_KINDS[0])
    }

    /// The kind named `name` on the wire (`""` is `ask`).
    pub fn from_name(name: &str) -> Option<ChatKind> {
        let name = if name.is_empty() { "ask" } else { name };
        CHAT_KINDS.iter().find(|k| k.name == name).map(|k| k.kind)
    }

    /// The kind an editor command runs.
    pub fn from_command(command: &str) -> Option<ChatKind> {
        CHAT_KINDS
            .iter()
            .find(|k| k.command == Some(command))
            .map(|k| k.kind)
    }

    /// The names on the wire, for error messages: `ask, explain, fix or test`.
    pub fn names() -> String {
        let names: Vec<&str> = CHAT_KINDS.iter().map(|k| k.name).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }

    /// The question the model is asked: the kind's instruction, then the person's words.
    pub(crate) fn question(self, asked: &str) -> String {
        let i = self.info().instruction;
        if i.is_empty() {
            asked.to_string()
        } else {
            format!("{i} {asked}").trim_end().to_string()
        }
    }
}

impl From<ChatKind> for &'static str {
    fn from(k: ChatKind) -> &'static str {
        k.info().name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_names_round_trip() {
        for k in [
            ChatKind::Ask,
            ChatKind::Explain,
            ChatKind::Fix,
            ChatKind::WriteTest,
        ] {
            assert_eq!(CHAT_KINDS.iter().filter(|r| r.kind == k).count(), 1);
            assert_eq!(ChatKind::from_name(k.info().name), Some(k));
            if let Some(c) = k.info().command {
                assert_eq!(ChatKind::from_command(c), Some(k));
            }
        }
        assert_eq!(ChatKind::from_name(""), Some(ChatKind::Ask));
        assert_eq!(ChatKind::from_name("poem"), None);
        assert_eq!(ChatKind::names(), "ask, explain, fix or test");
    }
}
