//! Vocabulary and tokenizing: the GGUF's FIM and control tokens, prompts tokenized part by
//! part (text never parsed for control tokens), and a vocabulary-only GGUF.

use super::*;

/// GGUF `general.file_type` values (llama_ftype) for the common quantizations.
pub(super) fn file_type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

pub(super) fn token_text(model: &LlamaModel, t: LlamaToken) -> Option<String> {
    if t.0 < 0 || t.0 >= model.n_vocab() {
        return None;
    }
    let bytes = model.vocab().token_to_piece(t, true, None);
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

/// Reads FIM and repository tokens from the model's vocabulary.
pub fn vocab_tokens(model: &LlamaModel) -> VocabTokens {
    let vocab = model.vocab();
    let fim = match (
        token_text(model, vocab.fim_pre()),
        token_text(model, vocab.fim_suf()),
        token_text(model, vocab.fim_mid()),
    ) {
        (Some(prefix), Some(suffix), Some(middle)) => Some(FimTokens {
            family: FimFamily::detect(&prefix),
            prefix,
            suffix,
            middle,
        }),
        // Codestral has no middle token: the prompt ends after the prefix.
        (Some(prefix), Some(suffix), None)
            if FimFamily::detect(&prefix) == FimFamily::Codestral =>
        {
            Some(FimTokens {
                family: FimFamily::Codestral,
                prefix,
                suffix,
                middle: String::new(),
            })
        }
        _ => None,
    };
    let mut candidates = Vec::new();
    for name in [
        "<repo_name>",
        "<|repo_name|>",
        "<reponame>",
        "<file_sep>",
        "<|file_sep|>",
        "<filename>",
    ] {
        let toks = vocab.tokenize(name.as_bytes(), false, true);
        if toks.len() == 1 && vocab.is_control(toks[0])
            || toks.len() == 1 && token_text(model, toks[0]).as_deref() == Some(name)
        {
            candidates.push(name);
        }
    }
    VocabTokens {
        fim,
        ..Default::default()
    }
    .with_repo_tokens(candidates)
}

/// Turns prompt parts into tokens: control tokens parsed, text never.
pub fn tokenize_prompt(model: &LlamaModel, prompt: &Prompt, add_bos: bool) -> Vec<LlamaToken> {
    let vocab = model.vocab();
    let mut out = Vec::new();
    if add_bos && vocab.should_add_bos() && vocab.bos().0 >= 0 {
        out.push(vocab.bos());
    }
    for part in &prompt.parts {
        match part {
            PromptPart::Special(t) => out.extend(vocab.tokenize(t.as_bytes(), false, true)),
            PromptPart::Text(t) => out.extend(vocab.tokenize(t.as_bytes(), false, false)),
        }
    }
    out
}

/// Tokenizes `text` (special tokens never parsed). A long text is tokenized only from
/// its end (`from_end`, a prefix) or its start (a suffix, a context file) as far as
/// `need` tokens reach, growing the slice until it holds more than that; returns whether
/// the whole text was tokenized. The few tokens at a slice's cut are dropped: they may
/// differ from the whole text's.
pub(super) fn tokenize_bounded(
    model: &LlamaModel,
    text: &str,
    need: usize,
    from_end: bool,
) -> (Vec<LlamaToken>, bool) {
    let vocab = model.vocab();
    let mut bytes = (need * 8).max(4096);
    loop {
        if bytes >= text.len() {
            return (vocab.tokenize(text.as_bytes(), false, false), true);
        }
        let slice = if from_end {
            let mut start = text.len() - bytes;
            while !text.is_char_boundary(start) {
                start += 1;
            }
            &text[start..]
        } else {
            let mut end = bytes;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            &text[..end]
        };
        let mut toks = vocab.tokenize(slice.as_bytes(), false, false);
        if toks.len() > need + 64 {
            if from_end {
                toks.drain(..8);
            } else {
                toks.truncate(toks.len() - 8);
            }
            return (toks, false);
        }
        bytes = bytes.saturating_mul(4);
    }
}

/// A GGUF's vocabulary alone (no weights): enough to see how prompts tokenize. Used by
/// template tests on vocabulary-only GGUFs and by `cairn models` diagnostics.
pub struct Vocabulary {
    pub(super) model: LlamaModel,
}

impl Vocabulary {
    pub fn load(path: &Path) -> Result<Vocabulary, ModelError> {
        check_gguf(path)?;
        let backend = backend()?;
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend, path, &params).map_err(|e| {
            ModelError::LoadFailed {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        Ok(Vocabulary { model })
    }

    pub fn tokens(&self) -> VocabTokens {
        vocab_tokens(&self.model)
    }

    /// Token ids of a prompt, as the local backend would feed them (without BOS).
    pub fn tokenize(&self, prompt: &Prompt) -> Vec<i32> {
        tokenize_prompt(&self.model, prompt, false)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    /// The ids of the FIM prefix, suffix and middle tokens (-1 when absent).
    pub fn fim_ids(&self) -> (i32, i32, i32) {
        let v = self.model.vocab();
        (v.fim_pre().0, v.fim_suf().0, v.fim_mid().0)
    }

    /// The id of a control token by its text, if the vocabulary has it as one token.
    pub fn special_id(&self, text: &str) -> Option<i32> {
        let t = self.model.vocab().tokenize(text.as_bytes(), false, true);
        (t.len() == 1).then(|| t[0].0)
    }
}
