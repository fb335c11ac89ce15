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

#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub parts: Vec<PromptPart>,
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
    let mut layout = Vec::<&str>::new();

    let repo_tokens = vocab.file_sep.is_some() || vocab.filename.is_some();
    if repo_tokens {
        if let (Some(repo_tok), Some(repo)) = (&vocab.repo_name, &req.repo_name) {
            parts.push(PromptPart::Special(repo_tok.clone()));
            let nl = if vocab.file_sep.as_deref() == Some("<|file_sep|>") {
                "\n"
            } else {
                ""
            };
            parts.push(PromptPart::Text(format!("{repo}{nl}")));
            layout.push("repo_name");
        }
        for f in &req.context {
            push_file_header(vocab, &mut parts, &f.path);
            let mut text = f.text.clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            parts.push(PromptPart::Text(text));
        }
        if !req.context.is_empty() {
            layout.push("file_sep context");
        }
        if let Some(path) = &req.path {
            if !req.context.is_empty() || vocab.repo_name.is_some() && req.repo_name.is_some() {
                push_file_header(vocab, &mut parts, path);
                layout.push("file_sep current");
            }
        }
    } else if !req.context.is_empty() {
        let c = comment_prefix(req.path.as_deref().unwrap_or(""));
        let mut header = String::new();
        for f in &req.context {
            header.push_str(&format!("{c} File: {}\n", f.path));
            for line in f.text.lines() {
                header.push_str(&format!("{c} {line}\n"));
            }
            header.push('\n');
        }
        if let Some(path) = &req.path {
            header.push_str(&format!("{c} File: {path}\n"));
        }
        parts.push(PromptPart::Text(header));
        layout.push("commented context");
    }

    let (mode, family) = match &vocab.fim {
        Some(fim) if !req.suffix.is_empty() => {
            match fim.family {
                FimFamily::Codestral => {
                    parts.push(PromptPart::Special(fim.suffix.clone()));
                    parts.push(PromptPart::Text(req.suffix.clone()));
                    parts.push(PromptPart::Special(fim.prefix.clone()));
                    parts.push(PromptPart::Text(req.prefix.clone()));
                    layout.push("spm");
                }
                _ => {
                    parts.push(PromptPart::Special(fim.prefix.clone()));
                    parts.push(PromptPart::Text(req.prefix.clone()));
                    parts.push(PromptPart::Special(fim.suffix.clone()));
                    parts.push(PromptPart::Text(req.suffix.clone()));
                    parts.push(PromptPart::Special(fim.middle.clone()));
                    layout.push("psm");
                }
            }
            ("fim", fim.family.name())
        }
        _ => {
            parts.push(PromptPart::Text(req.prefix.clone()));
            layout.push("prefix");
            ("prefix", "plain")
        }
    };
    parts.retain(|p| !matches!(p, PromptPart::Text(t) if t.is_empty()));

    let definition = format!(
        "cairn completion template v1; family={family}; tokens={:?}; layout={}",
        vocab,
        layout.join(",")
    );
    let mut prompt = Prompt {
        parts,
        info: PromptInfo {
            mode: mode.to_string(),
            template: family.to_string(),
            template_sha256: sha256_hex(definition.as_bytes()),
            prompt_sha256: String::new(),
        },
    };
    prompt.info.prompt_sha256 = sha256_hex(prompt.text().as_bytes());
    prompt
}

fn push_file_header(vocab: &VocabTokens, parts: &mut Vec<PromptPart>, path: &str) {
    if let Some(sep) = &vocab.file_sep {
        parts.push(PromptPart::Special(sep.clone()));
        parts.push(PromptPart::Text(format!("{path}\n")));
    } else if let Some(name) = &vocab.filename {
        parts.push(PromptPart::Special(name.clone()));
        parts.push(PromptPart::Text(format!("{path}\n")));
    }
}

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
    fn codestral_is_suffix_first() {
        let vocab = VocabTokens {
            fim: Some(FimTokens {
                prefix: "[PREFIX]".into(),
                suffix: "[SUFFIX]".into(),
                middle: "[MIDDLE]".into(),
                family: FimFamily::Codestral,
            }),
            ..Default::default()
        };
        let p = completion_prompt(&vocab, &CompletionRequest::new("a = ", "\nb = a"));
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
