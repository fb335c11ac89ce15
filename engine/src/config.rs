//! Configuration: the user's file (`$XDG_CONFIG_HOME/cairn/config.toml`) merged with the
//! repository's `.cairn/config.toml` (the repository wins, table by table). Unknown keys
//! are errors that name the file and the key, never silently ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use cairn_models::{ModelSpec, ModelsConfig, RoutingConfig};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Named models (`[models.NAME]`).
    pub models: std::collections::BTreeMap<String, ModelSpec>,
    /// Which model serves completions and chat (`[routing]`).
    pub routing: RoutingConfig,
    /// Completion settings (`[completion]`).
    pub completion: CompletionConfig,
    /// Chat settings (`[chat]`).
    pub chat: ChatConfig,
    /// What a suggestion that reproduces third-party code does: `"show"` (default),
    /// `"block"` (withheld; the record says so) or `"off"`.
    pub references: Option<crate::ReferencePolicy>,
    /// Characters of a suggestion a match must cover to be reported (default 150).
    pub reference_min_chars: Option<usize>,
    /// Extra corpus roots for the reference index (each subdirectory a package).
    pub reference_roots: Vec<PathBuf>,
}

/// `[completion]`: what a user may tune about completions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompletionConfig {
    /// What a cold completion may take here (ms); 0 turns the budget off. Default:
    /// [`crate::DEFAULT_LATENCY_BUDGET_MS`].
    pub latency_budget_ms: Option<u64>,
    /// Warm the local model for the place the cursor rests at, in the background, so the
    /// completion there is fast (default true).
    pub prefill: Option<bool>,
}

/// `[chat]`: what a user may tune about chat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Answer a question asked again (same sources, conversation, model and settings)
    /// from the response cache instead of the model (default true). `cairn chat
    /// --no-cache` asks the model anyway for one question.
    pub cache: Option<bool>,
    /// Answers the cache keeps at most (default 512; the oldest go first).
    pub cache_max_entries: Option<usize>,
    /// Bytes the cache file may take at most (default 8 MiB; the oldest go first).
    pub cache_max_bytes: Option<u64>,
}

impl ChatConfig {
    pub(crate) fn apply(&self, o: &mut crate::ChatCacheOptions) {
        if let Some(on) = self.cache {
            o.enabled = on;
        }
        if let Some(n) = self.cache_max_entries {
            o.max_entries = n;
        }
        if let Some(n) = self.cache_max_bytes {
            o.max_bytes = n;
        }
    }
}

impl Config {
    pub(crate) fn models_config(&self) -> ModelsConfig {
        ModelsConfig {
            models: self.models.clone(),
            routing: self.routing.clone(),
        }
    }

    /// Checks the models and routing fit together (every routed name is defined …).
    pub fn validate(&self) -> Result<(), cairn_models::ModelError> {
        self.models_config().validate()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// `$CAIRN_CONFIG` if set, else the platform config dir's `cairn/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "cairn").map(|d| d.config_dir().join("config.toml"))
}

fn read_table(path: &Path) -> Result<Option<toml::Table>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str::<toml::Table>(&text)
                .map(Some)
                .map_err(|e| ConfigError::Invalid {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Config {
    /// Loads the user config and, when `repo` is given, the repository's on top.
    pub fn load(repo: Option<&Path>) -> Result<Config, ConfigError> {
        let mut files = Vec::new();
        if let Some(p) = user_config_path() {
            files.push(p);
        }
        if let Some(r) = repo {
            files.push(r.join(".cairn").join("config.toml"));
        }
        Config::load_files(&files)
    }

    pub fn load_files(files: &[PathBuf]) -> Result<Config, ConfigError> {
        let mut merged = toml::Table::new();
        let mut loaded = Vec::new();
        for f in files {
            if let Some(t) = read_table(f)? {
                merge(&mut merged, t.clone());
                loaded.push((f, t));
            }
        }
        let where_ = if loaded.is_empty() {
            "built-in defaults".to_string()
        } else {
            let names: Vec<String> = loaded
                .iter()
                .map(|(f, _)| f.display().to_string())
                .collect();
            names.join(" + ")
        };
        let cfg = Config::deserialize(toml::Value::Table(merged)).map_err(|e| {
            // A file may hold a partial table that only the merge completes, so files are
            // not required to be valid alone; but an unknown key is named with its file.
            for (f, t) in &loaded {
                if let Err(own) = Config::deserialize(toml::Value::Table(t.clone())) {
                    if own.to_string().contains("unknown") {
                        return ConfigError::Invalid {
                            path: f.display().to_string(),
                            message: own.to_string(),
                        };
                    }
                }
            }
            ConfigError::Invalid {
                path: where_.clone(),
                message: e.to_string(),
            }
        })?;
        cfg.validate().map_err(|e| ConfigError::Invalid {
            path: where_,
            message: e.to_string(),
        })?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_config_overrides_user_config_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.toml");
        let repo = dir.path().join("repo.toml");
        std::fs::write(
            &user,
            "[models.gpt]\nkind = \"remote\"\nbase_url = \"http://127.0.0.1:1/v1\"\nmodel = \"a\"\n[routing]\nchat = \"gpt\"\nchat_fallback = \"default\"\n",
        )
        .unwrap();
        std::fs::write(
            &repo,
            "[models.gpt]\nmodel = \"b\"\n[routing]\ncomplete = \"gpt\"\n",
        )
        .unwrap();
        let cfg = Config::load_files(&[user, repo]).unwrap();
        let r = &cfg.routing;
        assert_eq!((r.chat.as_str(), r.complete.as_str()), ("gpt", "gpt"));
        assert_eq!(r.chat_fallback.as_deref(), Some("default"));
        match cfg.models_config().spec("gpt").unwrap() {
            cairn_models::ModelSpec::Remote(o) => assert_eq!(
                (o.model.as_str(), o.base_url.as_str()),
                ("b", "http://127.0.0.1:1/v1")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_key_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.toml");
        std::fs::write(&f, "[routing]\nchat = \"default\"\ncolour = \"blue\"\n").unwrap();
        let err = Config::load_files(std::slice::from_ref(&f))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.toml") && err.contains("colour"),
            "{err}"
        );
    }

    #[test]
    fn missing_files_mean_defaults() {
        let cfg = Config::load_files(&[PathBuf::from("/nonexistent/cairn.toml")]).unwrap();
        assert_eq!(cfg, Config::default());
    }
}
