//! Prompt building for completions: fill-in-the-middle for the code-model families that
//! have FIM tokens, the model's repository/file tokens for multi-file context, and plain
//! prefix continuation otherwise.
//!
//! Prompts are built as parts: special tokens (only ever the model's own control tokens,
//! looked up in its vocabulary) and text. Text is tokenized with special-token parsing
//! off, so source code that happens to contain `<fim_prefix>` cannot inject control tokens.

use sha2::{Digest, Sha256};

use crate::types::{CompletionRequest, PromptInfo};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptPart {
    /// A control token of the model, by its text (e.g. `<fim_prefix>`).
    Special(String),
    /// Ordinary text.
    Text(String),
}

/// What a part of a completion prompt is, so that it can be fitted to a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartRole {
    /// FIM and repository control tokens, the repository name, the current file's
    /// header: always kept.
    Fixed,
    /// Part of context file `n` (its header and text): kept or dropped together.
    Context(usize),
    /// The text before the cursor.
    Prefix,
    /// The text after the cursor.
    Suffix,
    /// Text typed since the prefix ended, as the start of the middle: always kept.
    Middle,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub parts: Vec<PromptPart>,
    /// One role per part (completion prompts; chat prompts have none).
    pub roles: Vec<PartRole>,
    pub info: PromptInfo,
}

impl Prompt {
    /// The prompt as one string (special tokens written as their text), as sent to a
    /// remote `/v1/completions` endpoint or shown in debug output.
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                PromptPart::Special(s) | PromptPart::Text(s) => s.as_str(),
            })
            .collect()
    }
}

/// Known FIM layouts. All but Codestral put the prefix first (PSM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FimFamily {
    /// StarCoder, StarCoder2, SantaCoder: `<fim_prefix>`, `<fim_suffix>`, `<fim_middle>`.
    StarCoder,
    /// Qwen2.5-Coder, CodeGemma: `<|fim_prefix|>`, `<|fim_suffix|>`, `<|fim_middle|>`.
    Qwen,
    /// DeepSeek-Coder: `<｜fim▁begin｜>`, `<｜fim▁hole｜>`, `<｜fim▁end｜>`.
    DeepSeek,
    /// CodeLlama: `<PRE>`, `<SUF>`, `<MID>`.
    CodeLlama,
    /// Codestral: `[SUFFIX]` suffix `[PREFIX]` prefix (suffix first, no middle token).
    Codestral,
    /// FIM tokens of a family we do not know: prefix, suffix, middle order.
    Generic,
}

impl FimFamily {
    pub fn name(self) -> &'static str {
        match self {
            FimFamily::StarCoder => "starcoder",
            FimFamily::Qwen => "qwen",
            FimFamily::DeepSeek => "deepseek-coder",
            FimFamily::CodeLlama => "codellama",
            FimFamily::Codestral => "codestral",
            FimFamily::Generic => "generic-fim",
        }
    }

    /// Recognises the family from the text of the vocabulary's FIM prefix token.
    pub fn detect(fim_pre_text: &str) -> FimFamily {
        let t = fim_pre_text.trim_start_matches('▁').trim();
        match t {
            "<fim_prefix>" | "<fim-prefix>" => FimFamily::StarCoder,
            "<|fim_prefix|>" => FimFamily::Qwen,
            "<｜fim▁begin｜>" | "<|fim▁begin|>" | "<｜fim_begin｜>" => FimFamily::DeepSeek,
            "<PRE>" => FimFamily::CodeLlama,
            "[PREFIX]" => FimFamily::Codestral,
            _ => FimFamily::Generic,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FimTokens {
    pub prefix: String,
    pub suffix: String,
    pub middle: String,
    pub family: FimFamily,
}

/// The control tokens of a vocabulary that prompt building cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VocabTokens {
    pub fim: Option<FimTokens>,
    /// `<repo_name>` / `<|repo_name|>`.
    pub repo_name: Option<String>,
    /// `<file_sep>` / `<|file_sep|>`.
    pub file_sep: Option<String>,
    /// `<filename>` (StarCoder 1 style file header).
    pub filename: Option<String>,
}

impl VocabTokens {
    /// Finds the repository/file tokens among a vocabulary's control tokens.
    pub fn with_repo_tokens<'a>(
        mut self,
        control_tokens: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        for t in control_tokens {
            match t {
                "<repo_name>" | "<|repo_name|>" | "<reponame>" => {
                    self.repo_name.get_or_insert_with(|| t.to_string());
                }
                "<file_sep>" | "<|file_sep|>" => {
                    self.file_sep.get_or_insert_with(|| t.to_string());
                }
                "<filename>" => {
                    self.filename.get_or_insert_with(|| t.to_string());
                }
                _ => {}
            }
        }
        self
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Builds the completion prompt for a vocabulary.
///
/// With FIM tokens and a non-empty suffix, a FIM prompt; otherwise plain prefix
/// continuation. Context files are written with the model's repository/file tokens
/// when it has them, or as a commented header per file when it has none.
pub fn completion_prompt(vocab: &VocabTokens, req: &CompletionRequest) -> Prompt {
    let mut parts = Vec::new();
    let mut roles = Vec::new();
    let mut layout = Vec::<&str>::new();
    let mut push = |part: PromptPart, role: PartRole| {
        parts.push(part);
        roles.push(role);
    };

    let repo_tokens = vocab.file_sep.is_some() || vocab.filename.is_some();
    if repo_tokens {
        if let (Some(repo_tok), Some(repo)) = (&vocab.repo_name, &req.repo_name) {
            push(PromptPart::Special(repo_tok.clone()), PartRole::Fixed);
            // Qwen2.5-Coder's repository format puts a newline after the name.
            let nl = if vocab.file_sep.as_deref() == Some("<|file_sep|>") {
                "\n"
            } else {
                ""
            };
            push(PromptPart::Text(format!("{repo}{nl}")), PartRole::Fixed);
            layout.push("repo_name");
        }
        for (i, f) in req.context.iter().enumerate() {
            for part in file_header(vocab, &f.path) {
                push(part, PartRole::Context(i));
            }
            let mut text = f.text.clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            push(PromptPart::Text(text), PartRole::Context(i));
        }
        if !req.context.is_empty() {
            layout.push("file_sep context");
        }
        if let Some(path) = &req.path {
            if !req.context.is_empty() || vocab.repo_name.is_some() && req.repo_name.is_some() {
                for part in file_header(vocab, path) {
                    push(part, PartRole::Fixed);
                }
                layout.push("file_sep current");
            }
        }
    } else if !req.context.is_empty() {
        let c = comment_prefix(req.path.as_deref().unwrap_or(""));
        for (i, f) in req.context.iter().enumerate() {
            let mut block = format!("{c} File: {}\n", f.path);
            for line in f.text.lines() {
                block.push_str(&format!("{c} {line}\n"));
            }
            block.push('\n');
            push(PromptPart::Text(block), PartRole::Context(i));
        }
        if let Some(path) = &req.path {
            push(
                PromptPart::Text(format!("{c} File: {path}\n")),
                PartRole::Fixed,
            );
        }
        layout.push("commented context");
    }

    let (mode, family) = match &vocab.fim {
        Some(fim) if !req.suffix.is_empty() => {
            match fim.family {
                FimFamily::Codestral => {
                    push(PromptPart::Special(fim.suffix.clone()), PartRole::Fixed);
                    push(PromptPart::Text(req.suffix.clone()), PartRole::Suffix);
                    push(PromptPart::Special(fim.prefix.clone()), PartRole::Fixed);
                    push(PromptPart::Text(req.prefix.clone()), PartRole::Prefix);
                    push(PromptPart::Text(req.middle.clone()), PartRole::Middle);
                    layout.push("spm");
                }
                _ => {
                    push(PromptPart::Special(fim.prefix.clone()), PartRole::Fixed);
                    push(PromptPart::Text(req.prefix.clone()), PartRole::Prefix);
                    push(PromptPart::Special(fim.suffix.clone()), PartRole::Fixed);
                    push(PromptPart::Text(req.suffix.clone()), PartRole::Suffix);
                    push(PromptPart::Special(fim.middle.clone()), PartRole::Fixed);
                    push(PromptPart::Text(req.middle.clone()), PartRole::Middle);
                    layout.push("psm");
                }
            }
            ("fim", fim.family.name())
        }
        _ => {
            push(PromptPart::Text(req.prefix.clone()), PartRole::Prefix);
            push(PromptPart::Text(req.middle.clone()), PartRole::Middle);
            layout.push("prefix");
            ("prefix", "plain")
        }
    };
    if !req.middle.is_empty() {
        layout.push("typed middle");
    }
    let keep: Vec<bool> = parts
        .iter()
        .map(|p| !matches!(p, PromptPart::Text(t) if t.is_empty()))
        .collect();
    let mut k = keep.iter();
    parts.retain(|_| *k.next().unwrap_or(&true));
    let mut k = keep.iter();
    roles.retain(|_| *k.next().unwrap_or(&true));

    let definition = format!(
        "cairn completion template v1; family={family}; tokens={:?}; layout={}",
        vocab,
        layout.join(",")
    );
    let mut prompt = Prompt {
        parts,
        roles,
        info: PromptInfo {
            mode: mode.to_string(),
            template: family.to_string(),
            template_sha256: sha256_hex(definition.as_bytes()),
            prompt_sha256: String::new(),
            budget: None,
        },
    };
    prompt.info.prompt_sha256 = sha256_hex(prompt.text().as_bytes());
    prompt
}

fn file_header(vocab: &VocabTokens, path: &str) -> Vec<PromptPart> {
    if let Some(sep) = &vocab.file_sep {
        vec![
            PromptPart::Special(sep.clone()),
            PromptPart::Text(format!("{path}\n")),
        ]
    } else if let Some(name) = &vocab.filename {
        vec![
            PromptPart::Special(name.clone()),
            PromptPart::Text(format!("{path}\n")),
        ]
    } else {
        Vec::new()
    }
}

/// Stop strings for a fill-in-the-middle request, beyond the model's own end tokens:
/// the model has reached the suffix when it writes the suffix's first non-blank line
/// again at a line start (same indentation), and a code fence at a line start means it
/// has fallen into chat (instruct models do), except in Markdown files.
pub fn fim_stops(req: &CompletionRequest) -> Vec<String> {
    let mut stops = Vec::new();
    if let Some(line) = req
        .suffix
        .lines()
        .map(str::trim_end)
        .find(|l| !l.trim().is_empty())
    {
        stops.push(format!("\n{line}"));
    }
    let markdown = req.path.as_deref().is_some_and(|p| {
        let p = p.to_ascii_lowercase();
        [".md", ".markdown", ".rst", ".mdx", ".txt"]
            .iter()
            .any(|e| p.ends_with(e))
    });
    if !markdown {
        stops.push("\n```".into());
    }
    stops
}

/// Control tokens that end a completion or a chat answer when the model produces them
/// (Qwen2.5-Coder: end of text, FIM padding, a new file or repository, end of turn). The
/// local backend stops on every control token; these are the ones remote prompts and
/// tests name.
pub const QWEN_STOP_TOKENS: &[&str] = &[
    "<|endoftext|>",
    "<|fim_pad|>",
    "<|file_sep|>",
    "<|repo_name|>",
    "<|im_end|>",
];

/// Line-comment marker for a path, so context shown to a model without file tokens
/// still reads as a comment of the language being completed.
pub fn comment_prefix(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "py" | "sh" | "bash" | "rb" | "toml" | "yaml" | "yml" | "r" | "pl" | "ex" | "exs"
        | "jl" | "nim" | "cmake" | "mk" | "dockerfile" => "#",
        "sql" | "lua" | "hs" | "elm" | "ada" => "--",
        "lisp" | "clj" | "el" | "scm" => ";;",
        "erl" | "hrl" | "tex" => "%",
        "vim" => "\"",
        _ => "//",
    }
}

/// Fallback chat template (ChatML) for GGUF files that carry none.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ContextFile;

    fn starcoder() -> VocabTokens {
        VocabTokens {
            fim: Some(FimTokens {
                prefix: "<fim_prefix>".into(),
                suffix: "<fim_suffix>".into(),
                middle: "<fim_middle>".into(),
                family: FimFamily::StarCoder,
            }),
            ..Default::default()
        }
        .with_repo_tokens(["<repo_name>", "<file_sep>", "<filename>"])
    }

    fn codestral() -> VocabTokens {
        VocabTokens {
            fim: Some(FimTokens {
                prefix: "[PREFIX]".into(),
                suffix: "[SUFFIX]".into(),
                middle: "[MIDDLE]".into(),
                family: FimFamily::Codestral,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn family_detection() {
        assert_eq!(FimFamily::detect("<fim_prefix>"), FimFamily::StarCoder);
        assert_eq!(FimFamily::detect("<|fim_prefix|>"), FimFamily::Qwen);
        assert_eq!(FimFamily::detect("<｜fim▁begin｜>"), FimFamily::DeepSeek);
        assert_eq!(FimFamily::detect("▁<PRE>"), FimFamily::CodeLlama);
        assert_eq!(FimFamily::detect("[PREFIX]"), FimFamily::Codestral);
        assert_eq!(FimFamily::detect("<pre>"), FimFamily::Generic);
    }

    #[test]
    fn fim_prompt_psm_with_repo_context() {
        let mut req = CompletionRequest::new("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n");
        req.path = Some("src/math.py".into());
        req.repo_name = Some("acme/calc".into());
        req.context = vec![ContextFile {
            path: "src/util.py".into(),
            text: "def sub(a, b):\n    return a - b".into(),
        }];
        let p = completion_prompt(&starcoder(), &req);
        assert_eq!(p.info.mode, "fim");
        assert_eq!(p.info.template, "starcoder");
        assert_eq!(
            p.text(),
            "<repo_name>acme/calc<file_sep>src/util.py\ndef sub(a, b):\n    return a - b\n\
             <file_sep>src/math.py\n<fim_prefix>def add(a, b):\n    <fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>"
        );
        assert_eq!(p.info.prompt_sha256, sha256_hex(p.text().as_bytes()));
    }

    #[test]
    fn qwen_repository_fim_layout() {
        let vocab = VocabTokens {
            fim: Some(FimTokens {
                prefix: "<|fim_prefix|>".into(),
                suffix: "<|fim_suffix|>".into(),
                middle: "<|fim_middle|>".into(),
                family: FimFamily::Qwen,
            }),
            ..Default::default()
        }
        .with_repo_tokens(["<|repo_name|>", "<|file_sep|>"]);
        let mut req = CompletionRequest::new("total = ", "\n    return total\n");
        req.path = Some("shop/cart.py".into());
        req.repo_name = Some("acme/shop".into());
        req.context = vec![ContextFile {
            path: "shop/utils.py".into(),
            text: "def frob(xs): return sum(xs)".into(),
        }];
        let p = completion_prompt(&vocab, &req);
        // Qwen2.5-Coder's documented repository-level FIM format.
        assert_eq!(
            p.text(),
            "<|repo_name|>acme/shop\n<|file_sep|>shop/utils.py\ndef frob(xs): return sum(xs)\n\
             <|file_sep|>shop/cart.py\n<|fim_prefix|>total = <|fim_suffix|>\n    return total\n<|fim_middle|>"
        );
        assert_eq!(p.info.mode, "fim");
        assert_eq!(p.roles.len(), p.parts.len());
        assert_eq!(
            p.roles,
            vec![
                PartRole::Fixed,
                PartRole::Fixed,
                PartRole::Context(0),
                PartRole::Context(0),
                PartRole::Context(0),
                PartRole::Fixed,
                PartRole::Fixed,
                PartRole::Fixed,
                PartRole::Prefix,
                PartRole::Fixed,
                PartRole::Suffix,
                PartRole::Fixed,
            ]
        );
        assert_eq!(fim_stops(&req), vec!["\n    return total", "\n```"]);
    }

    #[test]
    fn typed_text_starts_the_middle_in_every_layout() {
        let mut req = CompletionRequest::new("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n");
        req.middle = "return a".into();
        let p = completion_prompt(&starcoder(), &req);
        assert_eq!(
            p.text(),
            "<fim_prefix>def add(a, b):\n    <fim_suffix>\n\nprint(add(1, 2))\n<fim_middle>return a"
        );
        assert_eq!(p.roles.last(), Some(&PartRole::Middle));
        assert_eq!(p.parts.last(), Some(&PromptPart::Text("return a".into())));
        // The layout is part of the template's digest: a record tells the two apart.
        let plain = completion_prompt(&starcoder(), &CompletionRequest::new("a", "b"));
        assert_ne!(p.info.template_sha256, plain.info.template_sha256);
        assert_eq!(
            completion_prompt(&codestral(), &req).text(),
            "[SUFFIX]\n\nprint(add(1, 2))\n[PREFIX]def add(a, b):\n    return a"
        );
        // Without FIM (and so through remote `/completions`), it follows the prefix.
        let p = completion_prompt(&VocabTokens::default(), &req);
        assert_eq!(
            (p.info.mode.as_str(), p.text().as_str()),
            ("prefix", "def add(a, b):\n    return a")
        );
    }

    #[test]
    fn codestral_is_suffix_first() {
        let p = completion_prompt(&codestral(), &CompletionRequest::new("a = ", "\nb = a"));
        assert_eq!(p.text(), "[SUFFIX]\nb = a[PREFIX]a = ");
    }

    #[test]
    fn no_fim_tokens_means_prefix_continuation_with_commented_context() {
        let mut req = CompletionRequest::new("fn main() {\n    ", "\n}\n");
        req.path = Some("src/main.rs".into());
        req.context = vec![ContextFile {
            path: "src/lib.rs".into(),
            text: "pub fn hello() {}".into(),
        }];
        let p = completion_prompt(&VocabTokens::default(), &req);
        assert_eq!(p.info.mode, "prefix");
        assert_eq!(
            p.text(),
            "// File: src/lib.rs\n// pub fn hello() {}\n\n// File: src/main.rs\nfn main() {\n    "
        );
    }

    #[test]
    fn empty_suffix_with_fim_model_is_prefix_mode() {
        let p = completion_prompt(&starcoder(), &CompletionRequest::new("x = 1\n", ""));
        assert_eq!(p.info.mode, "prefix");
        assert_eq!(p.parts, vec![PromptPart::Text("x = 1\n".into())]);
    }

    #[test]
    fn template_digest_depends_on_family_not_on_text() {
        let a = completion_prompt(&starcoder(), &CompletionRequest::new("a", "b"));
        let b = completion_prompt(&starcoder(), &CompletionRequest::new("c", "d"));
        let c = completion_prompt(&VocabTokens::default(), &CompletionRequest::new("a", "b"));
        assert_eq!(a.info.template_sha256, b.info.template_sha256);
        assert_ne!(a.info.template_sha256, c.info.template_sha256);
        assert_ne!(a.info.prompt_sha256, b.info.prompt_sha256);
    }
}
