//! API keys for remote models, kept in the OS keyring and nowhere else.
//!
//! The store is the platform's default (Secret Service on Linux desktops, Keychain,
//! Credential Manager). `CAIRN_KEYRING=keyutils` selects the Linux kernel keyring
//! instead, which works headless (CI, SSH sessions) inside its own session keyring.

use std::sync::Once;

use crate::ModelError;

const SERVICE: &str = "cairn";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    PlatformDefault,
    Keyutils,
    SecretService,
}

fn parse_store(choice: &str) -> Result<Store, ModelError> {
    match choice {
        "" | "default" => Ok(Store::PlatformDefault),
        "keyutils" if cfg!(target_os = "linux") => Ok(Store::Keyutils),
        "secret-service" if cfg!(target_os = "linux") => Ok(Store::SecretService),
        other => Err(ModelError::Keyring(format!(
            "CAIRN_KEYRING={other} is not a store Cairn knows here: use `keyutils` or `secret-service` (Linux), or leave it unset"
        ))),
    }
}

fn select_store() -> Result<(), ModelError> {
    static ONCE: Once = Once::new();
    let store = parse_store(&std::env::var("CAIRN_KEYRING").unwrap_or_default())?;
    ONCE.call_once(|| match store {
        Store::PlatformDefault => {}
        #[cfg(target_os = "linux")]
        Store::Keyutils => {
            keyring::set_default_credential_builder(keyring::keyutils::default_credential_builder())
        }
        #[cfg(target_os = "linux")]
        Store::SecretService => keyring::set_default_credential_builder(
            keyring::secret_service::default_credential_builder(),
        ),
        #[cfg(not(target_os = "linux"))]
        _ => {}
    });
    Ok(())
}

fn entry(model: &str) -> Result<keyring::Entry, ModelError> {
    select_store()?;
    keyring::Entry::new(SERVICE, &format!("api-key:{model}")).map_err(|e| {
        ModelError::Keyring(format!("cannot open the keyring entry for `{model}`: {e}"))
    })
}

/// Stores the API key for a remote model.
pub fn set_api_key(model: &str, key: &str) -> Result<(), ModelError> {
    if key.trim().is_empty() {
        return Err(ModelError::Keyring("the API key is empty".into()));
    }
    entry(model)?
        .set_password(key.trim())
        .map_err(|e| ModelError::Keyring(format!("cannot store the key for `{model}`: {e}; is a keyring service running? (headless Linux: CAIRN_KEYRING=keyutils)")))
}

/// The stored API key of a remote model, `None` when there is none.
pub fn api_key(model: &str) -> Result<Option<String>, ModelError> {
    match entry(model)?.get_password() {
        Ok(k) => Ok(Some(k)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(ModelError::Keyring(format!(
            "cannot read the key for `{model}`: {e}; (headless Linux: CAIRN_KEYRING=keyutils)"
        ))),
    }
}

pub fn delete_api_key(model: &str) -> Result<bool, ModelError> {
    match entry(model)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(ModelError::Keyring(format!(
            "cannot delete the key for `{model}`: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names() {
        assert_eq!(parse_store("").unwrap(), Store::PlatformDefault);
        assert_eq!(parse_store("keyutils").unwrap(), Store::Keyutils);
        let err = parse_store("vault").unwrap_err().to_string();
        assert!(err.contains("vault") && err.contains("keyutils"), "{err}");
    }
}
