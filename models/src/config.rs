//! Model configuration: named models and which one serves completions and chat.
//!
//! ```toml
//! [models.coder]
//! kind = "local"
//! path = "/models/qwen2.5-coder-1.5b-q8_0.gguf"
//! n_gpu_layers = 99
//!
//! [models.gpt]
//! kind = "remote"
//! base_url = "https://api.example.com/v1"
//! model = "gpt-4o-mini"
//!
//! [routing]
//! complete = "coder"
//! chat = "gpt"
//! chat_fallback = "default"
//! ```
//!
//! Without a `[routing]` table, completions go to `coder-0.5b` and chat to `auto` (see
//! [`crate::router::choose_auto`]). The catalogue names (`tiny`, `coder-0.5b`,
//! `coder-1.5b`) and `default` (= `coder-0.5b`) need no `[models]` entry. The engine
//! finds and merges the config files; this module only gives them meaning.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::local::LocalOptions;
use crate::registry::DEFAULT_MODEL_NAME;
use crate::remote::RemoteOptions;
use crate::ModelError;

/// The name that always refers to the embedded default model.
pub const DEFAULT: &str = "default";
/// The route that picks a model for the machine: coder-1.5b where it is installed and
/// answers within the chat budget, else coder-0.5b.
pub const AUTO: &str = "auto";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelSpec {
    Local(LocalSpec),
    Remote(RemoteOptions),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalSpec {
    /// A GGUF file; or else
    pub path: Option<PathBuf>,
    /// the name of a model in the cache (`cairn models list`).
    pub registry: Option<String>,
    pub n_ctx: Option<u32>,
    pub n_batch: Option<u32>,
    pub n_threads: Option<i32>,
    pub n_threads_batch: Option<i32>,
    pub n_gpu_layers: Option<u32>,
    /// See [`LocalOptions::reuse_prefix`] (default on).
    pub reuse_prefix: Option<bool>,
    /// See [`LocalOptions::lookup_draft`] (default 0: off).
    pub lookup_draft: Option<u32>,
    /// See [`LocalOptions::max_prompt_tokens`] (default 2048).
    pub max_prompt_tokens: Option<u32>,
    /// See [`LocalOptions::speed_probe`] (default on).
    pub speed_probe: Option<bool>,
    /// Speculative decoding: the draft model, a name from `cairn models list`
    /// (`coder-0.5b`) or a GGUF path. Default: none.
    pub draft: Option<String>,
    /// See [`LocalOptions::draft_tokens`] (default 4).
    pub draft_tokens: Option<u32>,
}

impl LocalSpec {
    pub fn options(&self) -> LocalOptions {
        let d = LocalOptions::default();
        LocalOptions {
            n_ctx: self.n_ctx.unwrap_or(d.n_ctx),
            n_batch: self.n_batch.unwrap_or(d.n_batch),
            n_threads: self.n_threads,
            n_threads_batch: self.n_threads_batch,
            n_gpu_layers: self.n_gpu_layers,
            reuse_prefix: self.reuse_prefix.unwrap_or(d.reuse_prefix),
            lookup_draft: self.lookup_draft.unwrap_or(d.lookup_draft),
            max_prompt_tokens: self.max_prompt_tokens.unwrap_or(d.max_prompt_tokens),
            speed_probe: self.speed_probe.unwrap_or(d.speed_probe),
            // A registry name is resolved by the router, which has the registry.
            draft_model: None,
            draft_tokens: self.draft_tokens.unwrap_or(d.draft_tokens),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    pub complete: String,
    pub complete_fallback: Option<String>,
    pub chat: String,
    pub chat_fallback: Option<String>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            complete: crate::install::CODER_0_5B.name.into(),
            complete_fallback: None,
            chat: AUTO.into(),
            chat_fallback: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    pub models: BTreeMap<String, ModelSpec>,
    pub routing: RoutingConfig,
}

impl ModelsConfig {
    /// The spec for a name; `default` and the catalogue names (`tiny`, `coder-0.5b`,
    /// `coder-1.5b`) are the installed models unless the config redefines them. `auto`
    /// is not one model: the router resolves it.
    pub fn spec(&self, name: &str) -> Result<ModelSpec, ModelError> {
        if let Some(s) = self.models.get(name) {
            return Ok(s.clone());
        }
        if name == DEFAULT {
            return Ok(ModelSpec::Local(LocalSpec {
                registry: Some(DEFAULT_MODEL_NAME.into()),
                ..Default::default()
            }));
        }
        if let Some(m) = crate::install::find(name) {
            return Ok(ModelSpec::Local(LocalSpec {
                registry: Some(m.entry.into()),
                ..Default::default()
            }));
        }
        Err(ModelError::UnknownModel(name.to_string()))
    }

    /// Checks that every routed name exists and every spec is complete.
    pub fn validate(&self) -> Result<(), ModelError> {
        let r = &self.routing;
        for name in [
            Some(&r.complete),
            r.complete_fallback.as_ref(),
            Some(&r.chat),
            r.chat_fallback.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if name == AUTO && !self.models.contains_key(AUTO) {
                continue;
            }
            self.spec(name)?;
        }
        for (name, spec) in &self.models {
            match spec {
                ModelSpec::Local(l) if l.path.is_none() && l.registry.is_none() => {
                    return Err(ModelError::Config(format!(
                        "model `{name}`: a local model needs `path` (a GGUF file) or `registry` (a name from `cairn models list`)"
                    )))
                }
                ModelSpec::Remote(r) if r.base_url.is_empty() || r.model.is_empty() => {
                    return Err(ModelError::Config(format!(
                        "model `{name}`: a remote model needs `base_url` and `model`"
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_remote_and_routing() {
        let cfg: ModelsConfig = toml::from_str(
            r#"
            [models.coder]
            kind = "local"
            path = "/m/coder.gguf"
            n_gpu_layers = 99
            [models.gpt]
            kind = "remote"
            base_url = "http://127.0.0.1:9/v1"
            model = "m"
            fim = true
            [routing]
            complete = "coder"
            chat = "gpt"
            chat_fallback = "default"
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert!(
            matches!(cfg.spec("coder").unwrap(), ModelSpec::Local(l) if l.options().n_gpu_layers == Some(99))
        );
        assert!(
            matches!(cfg.spec("gpt").unwrap(), ModelSpec::Remote(r) if r.fim && r.retries == 2)
        );
        assert!(
            matches!(cfg.spec("default").unwrap(), ModelSpec::Local(l) if l.registry.as_deref() == Some(DEFAULT_MODEL_NAME))
        );
        assert!(
            matches!(cfg.spec("tiny").unwrap(), ModelSpec::Local(l) if l.registry.as_deref() == Some("smollm2-135m-instruct"))
        );
    }

    #[test]
    fn default_routing_is_the_code_model_and_auto() {
        let cfg = ModelsConfig::default();
        assert_eq!(cfg.routing.complete, "coder-0.5b");
        assert_eq!(cfg.routing.chat, AUTO);
        cfg.validate().unwrap();
        let cfg: ModelsConfig =
            toml::from_str("[models.coder]\nkind = \"local\"\nregistry = \"coder-1.5b\"\ndraft = \"coder-0.5b\"\ndraft_tokens = 6\nmax_prompt_tokens = 1024\n").unwrap();
        let ModelSpec::Local(l) = cfg.spec("coder").unwrap() else {
            panic!()
        };
        assert_eq!(l.draft.as_deref(), Some("coder-0.5b"));
        assert_eq!(l.options().draft_tokens, 6);
        assert_eq!(l.options().max_prompt_tokens, 1024);
    }

    #[test]
    fn unknown_keys_and_names_are_errors() {
        let err = toml::from_str::<ModelsConfig>("[models.a]\nkind = \"local\"\npaht = \"x\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("paht"), "{err}");
        let err = toml::from_str::<ModelsConfig>("[routing]\ncomplet = \"a\"\n").unwrap_err();
        assert!(err.to_string().contains("complet"), "{err}");
        let cfg: ModelsConfig = toml::from_str("[routing]\nchat = \"nope\"\n").unwrap();
        assert!(matches!(cfg.validate(), Err(ModelError::UnknownModel(n)) if n == "nope"));
        let cfg: ModelsConfig =
            toml::from_str("[models.r]\nkind = \"remote\"\nmodel = \"m\"\n").unwrap();
        assert!(cfg.validate().unwrap_err().to_string().contains("base_url"));
    }
}
