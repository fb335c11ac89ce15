//! The settings form over the user's config file (`config.toml`). The window manages two
//! named models, `local` (a GGUF file or a cache entry) and `remote` (an
//! OpenAI-compatible endpoint), and the routing of chat and completions; everything else
//! in the file is kept as it was. API keys go to the OS keyring, never into the file.

use std::path::{Path, PathBuf};

use cairn_engine::config::Config;
use cairn_engine::{ApiKeys, ModelSpec, ModelStore, DEFAULT_MODEL};
use serde::{Deserialize, Serialize};

use crate::error::{DesktopError, ErrorKind, Result};
use crate::files;

/// The config names the window manages.
pub const LOCAL: &str = "local";
pub const REMOTE: &str = "remote";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LocalForm {
    /// A GGUF file; or else
    pub path: Option<String>,
    /// a model of the cache (`cairn models list`).
    pub registry: Option<String>,
    pub gpu_layers: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RemoteForm {
    pub base_url: String,
    pub model: String,
}

/// What the form sends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SettingsForm {
    pub local: Option<LocalForm>,
    pub remote: Option<RemoteForm>,
    /// A new API key for `remote`; empty or absent keeps the stored one.
    pub api_key: Option<String>,
    pub chat: String,
    pub complete: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedModel {
    pub name: String,
    pub path: String,
    pub size: u64,
}

/// What the form shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    pub config_path: String,
    pub local: Option<LocalForm>,
    pub remote: Option<RemoteForm>,
    pub chat: String,
    pub complete: String,
    /// Every name routing may use: `default`, the managed ones and any others in the file.
    pub models: Vec<String>,
    pub cache: Vec<CachedModel>,
    /// Whether a key for `remote` is stored (`None` when the keyring cannot be read).
    pub api_key_stored: Option<bool>,
    pub keyring_error: Option<String>,
    pub gpu_backend: Option<String>,
    /// The repository's own config file, when it exists (it overrides this one).
    pub repo_config: Option<String>,
    /// The file could not be read: the form shows defaults and this message.
    pub error: Option<DesktopError>,
}

fn read_table(path: &Path) -> Result<toml::Table> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.parse::<toml::Table>().map_err(|e| {
            DesktopError::new(
                ErrorKind::Config,
                format!("{} is not valid TOML: {e}", path.display()),
                "Fix the file by hand (the form will not overwrite it), then reopen Settings",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(toml::Table::new()),
        Err(e) => Err(DesktopError::io("read the config file", path, &e)),
    }
}

fn parse(table: &toml::Table, path: &Path) -> Result<Config> {
    let cfg: Config =
        toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| {
                DesktopError::new(
                    ErrorKind::Config,
                    format!("{}: {}", path.display(), e.message()),
                    "Fix the file by hand, then reopen Settings",
                )
            })?;
    cfg.validate().map_err(|e| DesktopError::model(&e))?;
    Ok(cfg)
}

pub fn load(config_path: &Path, repo: Option<&Path>) -> SettingsView {
    let mut view = SettingsView {
        config_path: config_path.display().to_string(),
        local: None,
        remote: None,
        chat: DEFAULT_MODEL.into(),
        complete: DEFAULT_MODEL.into(),
        models: vec![DEFAULT_MODEL.into()],
        cache: Vec::new(),
        api_key_stored: None,
        keyring_error: None,
        gpu_backend: cairn_engine::gpu_backend().map(str::to_string),
        repo_config: repo
            .map(|r| r.join(".cairn").join("config.toml"))
            .filter(|p| p.is_file())
            .map(|p| p.display().to_string()),
        error: None,
    };
    if let Ok(reg) = ModelStore::open() {
        view.cache = reg
            .entries()
            .into_iter()
            .map(|e| CachedModel {
                name: e.name.clone(),
                path: e.path.display().to_string(),
                size: e.size,
            })
            .collect();
    }
    match ApiKeys::is_stored(REMOTE) {
        Ok(k) => view.api_key_stored = Some(k),
        Err(e) => view.keyring_error = Some(e.to_string()),
    }
    let cfg = match read_table(config_path).and_then(|t| parse(&t, config_path)) {
        Ok(c) => c,
        Err(e) => {
            view.error = Some(e);
            return view;
        }
    };
    view.chat = cfg.routing.chat.clone();
    view.complete = cfg.routing.complete.clone();
    for (name, spec) in &cfg.models {
        if !view.models.contains(name) {
            view.models.push(name.clone());
        }
        match (name.as_str(), spec) {
            (LOCAL, ModelSpec::Local(l)) => {
                view.local = Some(LocalForm {
                    path: l.path.as_ref().map(|p| p.display().to_string()),
                    registry: l.registry.clone(),
                    gpu_layers: l.n_gpu_layers,
                })
            }
            (REMOTE, ModelSpec::Remote(r)) => {
                view.remote = Some(RemoteForm {
                    base_url: r.base_url.clone(),
                    model: r.model.clone(),
                })
            }
            _ => {}
        }
    }
    view
}

fn table_of(v: Option<&toml::Value>) -> toml::Table {
    v.and_then(toml::Value::as_table)
        .cloned()
        .unwrap_or_default()
}

fn set_opt(t: &mut toml::Table, key: &str, v: Option<toml::Value>) {
    match v {
        Some(v) => {
            t.insert(key.into(), v);
        }
        None => {
            t.remove(key);
        }
    }
}

/// The config table with the form applied: the managed entries replaced (keeping their
/// other keys, such as `n_ctx` or timeouts), everything else untouched.
pub fn apply_form(mut table: toml::Table, form: &SettingsForm) -> Result<toml::Table> {
    let mut models = table_of(table.get("models"));
    match &form.local {
        Some(l) => {
            let mut t = table_of(models.get(LOCAL));
            if t.get("kind").and_then(toml::Value::as_str) != Some("local") {
                t = toml::Table::new();
            }
            t.insert("kind".into(), "local".into());
            let path = l.path.as_deref().map(str::trim).filter(|p| !p.is_empty());
            let registry = l
                .registry
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty());
            if let Some(p) = path {
                let p = expand_home(p);
                files::check_gguf(&p)?;
                set_opt(&mut t, "path", Some(p.display().to_string().into()));
                t.remove("registry");
            } else if let Some(r) = registry {
                set_opt(&mut t, "registry", Some(r.into()));
                t.remove("path");
            } else {
                return Err(DesktopError::new(
                    ErrorKind::Config,
                    "The local model needs a GGUF file or a model from the cache",
                    "Enter a file path or pick a cached model",
                ));
            }
            set_opt(
                &mut t,
                "n_gpu_layers",
                l.gpu_layers.map(|n| toml::Value::Integer(n.into())),
            );
            models.insert(LOCAL.into(), t.into());
        }
        None => {
            models.remove(LOCAL);
        }
    }
    match &form.remote {
        Some(r) => {
            let base_url = r.base_url.trim();
            let model = r.model.trim();
            if base_url.is_empty() || model.is_empty() {
                return Err(DesktopError::new(
                    ErrorKind::Config,
                    "The remote model needs an endpoint (base URL) and a model id",
                    "Fill in both, e.g. http://127.0.0.1:8080/v1 and the id the server expects",
                ));
            }
            if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                return Err(DesktopError::new(
                    ErrorKind::Config,
                    format!("The endpoint {base_url} is not an http(s) URL"),
                    "Enter the API's base URL including /v1, e.g. https://api.example.com/v1",
                ));
            }
            let mut t = table_of(models.get(REMOTE));
            if t.get("kind").and_then(toml::Value::as_str) != Some("remote") {
                t = toml::Table::new();
            }
            t.insert("kind".into(), "remote".into());
            t.insert("base_url".into(), base_url.into());
            t.insert("model".into(), model.into());
            models.insert(REMOTE.into(), t.into());
        }
        None => {
            models.remove(REMOTE);
        }
    }
    if models.is_empty() {
        table.remove("models");
    } else {
        table.insert("models".into(), models.into());
    }
    let mut routing = table_of(table.get("routing"));
    for (key, value) in [("chat", &form.chat), ("complete", &form.complete)] {
        let v = value.trim();
        let v = if v.is_empty() { DEFAULT_MODEL } else { v };
        routing.insert(key.into(), v.into());
    }
    table.insert("routing".into(), routing.into());
    Ok(table)
}

/// Validates the form, stores the API key (if one was entered) and writes the file.
pub fn save(config_path: &Path, form: &SettingsForm) -> Result<()> {
    let table = read_table(config_path)?;
    let table = apply_form(table, form)?;
    parse(&table, config_path)?;
    if let Some(key) = form
        .api_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        if form.remote.is_none() {
            return Err(DesktopError::new(
                ErrorKind::Config,
                "An API key was entered but no remote model is configured",
                "Fill in the remote model's endpoint and id, or clear the key",
            ));
        }
        ApiKeys::set(REMOTE, key).map_err(DesktopError::from)?;
    }
    let text = toml::to_string_pretty(&table).map_err(|e| {
        DesktopError::new(
            ErrorKind::Config,
            format!("cannot write the settings as TOML: {e}"),
            "Report this as a bug",
        )
    })?;
    let header =
        "# Cairn configuration (written by the desktop app's Settings; edits by hand are kept).\n";
    let body = if text.starts_with('#') {
        text
    } else {
        format!("{header}{text}")
    };
    files::write_atomic(config_path, &body)
}

fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => directories::BaseDirs::new()
            .map(|b| b.home_dir().join(rest))
            .unwrap_or_else(|| PathBuf::from(p)),
        None => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_keeps_unmanaged_keys_and_models() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("m.gguf");
        std::fs::write(&gguf, b"GGUF\x03\0\0\0").unwrap();
        let table: toml::Table = r#"
            [models.coder]
            kind = "local"
            registry = "coder"
            [models.local]
            kind = "local"
            registry = "x"
            n_ctx = 8192
            [routing]
            chat_fallback = "default"
        "#
        .parse()
        .unwrap();
        let form = SettingsForm {
            local: Some(LocalForm {
                path: Some(gguf.display().to_string()),
                registry: None,
                gpu_layers: Some(20),
            }),
            remote: Some(RemoteForm {
                base_url: "http://127.0.0.1:8080/v1".into(),
                model: "m".into(),
            }),
            api_key: None,
            chat: "remote".into(),
            complete: "local".into(),
        };
        let t = apply_form(table, &form).unwrap();
        let text = toml::to_string(&t).unwrap();
        let cfg: Config = toml::from_str(&text).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.routing.chat, "remote");
        assert_eq!(cfg.routing.chat_fallback.as_deref(), Some("default"));
        assert!(cfg.models.contains_key("coder"));
        match &cfg.models["local"] {
            ModelSpec::Local(l) => {
                assert_eq!(l.n_ctx, Some(8192));
                assert_eq!(l.n_gpu_layers, Some(20));
                assert_eq!(l.registry, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_that_is_not_gguf_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        let bad = dir.path().join("model.gguf");
        std::fs::write(&bad, "not a model").unwrap();
        let form = SettingsForm {
            local: Some(LocalForm {
                path: Some(bad.display().to_string()),
                ..Default::default()
            }),
            chat: "local".into(),
            complete: "default".into(),
            ..Default::default()
        };
        let e = save(&cfg, &form).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Model);
        assert!(e.message.contains("not a GGUF model file"), "{e}");
        assert!(!cfg.exists());
    }

    #[test]
    fn routing_to_an_unknown_model_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("config.toml");
        let form = SettingsForm {
            chat: "remote".into(),
            complete: "default".into(),
            ..Default::default()
        };
        let e = save(&cfg, &form).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config, "{e}");
        assert!(e.message.contains("remote"), "{e}");
    }

    #[test]
    fn saved_settings_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("sub").join("config.toml");
        let form = SettingsForm {
            remote: Some(RemoteForm {
                base_url: "http://127.0.0.1:9/v1".into(),
                model: "tiny".into(),
            }),
            chat: "remote".into(),
            complete: "default".into(),
            ..Default::default()
        };
        save(&cfg, &form).unwrap();
        let v = load(&cfg, None);
        assert!(v.error.is_none(), "{:?}", v.error);
        assert_eq!(v.chat, "remote");
        assert_eq!(v.remote.unwrap().model, "tiny");
        assert!(v.models.contains(&"remote".to_string()));
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(!text.to_lowercase().contains("key"), "{text}");
    }
}
