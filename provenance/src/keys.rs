//! Signing keys: the per-device ed25519 key and reviewers' keys.
//!
//! Keys live in a [`KeyStore`]. The default is the OS keyring (Secret Service on
//! Linux, Keychain on macOS, Credential Manager on Windows). Machines without one
//! (CI, containers) choose another store *explicitly* with `CAIRN_KEY_STORE`:
//! `keyring` (default), `keyutils` (Linux kernel keyring, per session) or
//! `file:/absolute/dir` (one hex file per key, mode 0600). Cairn never falls back
//! to writing secrets anywhere on its own.

use crate::digest::sha256_hex;
use crate::error::{Error, IoContext, Result};
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::path::{Path, PathBuf};

/// Keyring service name under which Cairn keeps its keys.
pub const KEYRING_SERVICE: &str = "cairn";
/// Name of the device key in the store.
pub const DEVICE_KEY: &str = "device-key";
/// Name of the reviewer key in the store.
pub const REVIEWER_KEY: &str = "reviewer-key";

/// Where secret keys are kept.
pub trait KeyStore: Send + Sync {
    /// The 32-byte ed25519 seed stored under `name`, if any.
    fn load(&self, name: &str) -> Result<Option<[u8; 32]>>;
    /// Store a seed under `name`, replacing any earlier one.
    fn store(&self, name: &str, seed: &[u8; 32]) -> Result<()>;
    /// A human-readable description for messages.
    fn describe(&self) -> String;
}

/// Load the key called `name`, creating and storing a fresh one on first use.
pub fn load_or_create(store: &dyn KeyStore, name: &str) -> Result<SigningKey> {
    if let Some(seed) = store.load(name)? {
        return Ok(SigningKey::from_bytes(&seed));
    }
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    store.store(name, &key.to_bytes())?;
    // Read back so a store that silently drops writes is caught now, not at verify time.
    match store.load(name)? {
        Some(seed) if seed == key.to_bytes() => Ok(key),
        _ => Err(Error::KeyStore {
            store: store.describe(),
            message: format!("key {name:?} did not read back after being stored"),
        }),
    }
}

/// Key id: lowercase hex SHA-256 of the raw 32-byte public key.
pub fn key_id(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes())
}

/// Public key as standard base64 of its 32 raw bytes.
pub fn public_key_b64(key: &VerifyingKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

/// Parse a public key from base64 of its raw bytes.
pub fn parse_public_key(b64: &str) -> Result<VerifyingKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| Error::Invalid(format!("public key is not base64: {e}")))?;
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| Error::Invalid("public key is not 32 bytes".into()))?;
    VerifyingKey::from_bytes(&arr).map_err(|e| Error::Invalid(format!("bad public key: {e}")))
}

const SSH_ED25519: &str = "ssh-ed25519";

/// The key as an OpenSSH public key line's first two fields (`ssh-ed25519 AAAA…`), the
/// form an allowed-signers file lists it in.
pub fn ssh_public_key(key: &VerifyingKey) -> String {
    let mut wire = Vec::with_capacity(51);
    for part in [SSH_ED25519.as_bytes(), key.as_bytes()] {
        wire.extend_from_slice(&(part.len() as u32).to_be_bytes());
        wire.extend_from_slice(part);
    }
    format!(
        "{SSH_ED25519} {}",
        base64::engine::general_purpose::STANDARD.encode(wire)
    )
}

/// Parse the base64 blob of an OpenSSH `ssh-ed25519` public key.
pub fn parse_ssh_ed25519(b64: &str) -> Result<VerifyingKey> {
    let wire = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| Error::Invalid(format!("the key is not base64: {e}")))?;
    let mut rest = wire.as_slice();
    let mut field = || -> Result<&[u8]> {
        let bad = || Error::Invalid("the key blob is cut short".into());
        let len = u32::from_be_bytes(rest.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes"))
            as usize;
        let v = rest.get(4..4 + len).ok_or_else(bad)?;
        rest = &rest[4 + len..];
        Ok(v)
    };
    let kind = field()?;
    if kind != SSH_ED25519.as_bytes() {
        return Err(Error::Invalid(format!(
            "the key blob is a {:?} key, not ssh-ed25519",
            String::from_utf8_lossy(kind)
        )));
    }
    let raw: [u8; 32] = field()?
        .try_into()
        .map_err(|_| Error::Invalid("an ed25519 key is 32 bytes".into()))?;
    VerifyingKey::from_bytes(&raw).map_err(|e| Error::Invalid(format!("bad ed25519 key: {e}")))
}

/// The key store named by `CAIRN_KEY_STORE` (default: the OS keyring).
pub fn key_store_from_env() -> Result<Box<dyn KeyStore>> {
    match std::env::var("CAIRN_KEY_STORE") {
        Ok(spec) => key_store_from_spec(&spec),
        Err(_) => Ok(Box::new(KeyringStore::os_default())),
    }
}

/// Parse a key store spec: `keyring`, `keyutils` or `file:/absolute/dir`.
pub fn key_store_from_spec(spec: &str) -> Result<Box<dyn KeyStore>> {
    match spec {
        "" | "keyring" => Ok(Box::new(KeyringStore::os_default())),
        #[cfg(target_os = "linux")]
        "keyutils" => Ok(Box::new(KeyringStore::keyutils())),
        s if s.starts_with("file:") => {
            let dir = PathBuf::from(&s[5..]);
            if !dir.is_absolute() {
                return Err(Error::KeyStoreSpec(spec.into()));
            }
            Ok(Box::new(FileKeyStore::new(dir)))
        }
        _ => Err(Error::KeyStoreSpec(spec.into())),
    }
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    OsDefault,
    #[cfg(target_os = "linux")]
    Keyutils,
}

/// The OS keyring through the `keyring` crate. The seed is stored as a hex password.
#[derive(Debug)]
pub struct KeyringStore {
    service: String,
    backend: Backend,
}

impl KeyringStore {
    /// The platform's default persistent store (Secret Service on Linux).
    pub fn os_default() -> Self {
        Self {
            service: KEYRING_SERVICE.into(),
            backend: Backend::OsDefault,
        }
    }

    /// The Linux kernel keyring (keyutils). Lives as long as the session keyring;
    /// useful headless (`keyctl session - CMD`).
    #[cfg(target_os = "linux")]
    pub fn keyutils() -> Self {
        Self {
            service: KEYRING_SERVICE.into(),
            backend: Backend::Keyutils,
        }
    }

    /// Use another service name (tests use a unique one).
    pub fn with_service(mut self, service: &str) -> Self {
        self.service = service.into();
        self
    }

    fn entry(&self, name: &str) -> Result<keyring::Entry> {
        let e = match self.backend {
            Backend::OsDefault => keyring::Entry::new(&self.service, name),
            #[cfg(target_os = "linux")]
            Backend::Keyutils => {
                keyring::keyutils::KeyutilsCredential::new_with_target(None, &self.service, name)
                    .map(|c| keyring::Entry::new_with_credential(Box::new(c)))
            }
        };
        e.map_err(|e| self.err(e))
    }

    fn err(&self, e: keyring::Error) -> Error {
        Error::KeyStore {
            store: self.describe(),
            message: format!(
                "{e}. On a machine without a keyring set CAIRN_KEY_STORE=file:/some/private/dir"
            ),
        }
    }

    /// Remove a stored key (tests clean up with this).
    pub fn delete(&self, name: &str) -> Result<()> {
        match self.entry(name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }
}

impl KeyStore for KeyringStore {
    fn load(&self, name: &str) -> Result<Option<[u8; 32]>> {
        match self.entry(name)?.get_password() {
            Ok(hexseed) => decode_seed(&hexseed)
                .map(Some)
                .ok_or_else(|| Error::KeyStore {
                    store: self.describe(),
                    message: format!("entry {name:?} does not hold a 32-byte hex seed"),
                }),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    fn store(&self, name: &str, seed: &[u8; 32]) -> Result<()> {
        self.entry(name)?
            .set_password(&hex::encode(seed))
            .map_err(|e| self.err(e))
    }

    fn describe(&self) -> String {
        match self.backend {
            Backend::OsDefault => format!("OS keyring (service {:?})", self.service),
            #[cfg(target_os = "linux")]
            Backend::Keyutils => format!("Linux keyutils (service {:?})", self.service),
        }
    }
}

fn decode_seed(s: &str) -> Option<[u8; 32]> {
    hex::decode(s.trim()).ok()?.try_into().ok()
}

/// Keys as hex files in a directory chosen explicitly by the user (tests, CI).
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.ed25519"))
    }
}

impl KeyStore for FileKeyStore {
    fn load(&self, name: &str) -> Result<Option<[u8; 32]>> {
        let p = self.path(name);
        match std::fs::read_to_string(&p) {
            Ok(s) => decode_seed(&s).map(Some).ok_or_else(|| Error::KeyStore {
                store: self.describe(),
                message: format!("{} does not hold a 32-byte hex seed", p.display()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(p),
        }
    }

    fn store(&self, name: &str, seed: &[u8; 32]) -> Result<()> {
        std::fs::create_dir_all(&self.dir).at(&self.dir)?;
        let p = self.path(name);
        write_private(&p, hex::encode(seed).as_bytes()).at(&p)
    }

    fn describe(&self) -> String {
        format!("file key store {}", self.dir.display())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_creates_once_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path().join("keys"));
        let a = load_or_create(&store, DEVICE_KEY).unwrap();
        let b = load_or_create(&store, DEVICE_KEY).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        let c = load_or_create(&store, REVIEWER_KEY).unwrap();
        assert_ne!(a.to_bytes(), c.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path(DEVICE_KEY))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn ssh_key_round_trip() {
        let k = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let line = ssh_public_key(&k);
        assert!(
            line.starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"),
            "{line}"
        );
        let b64 = line.split(' ').nth(1).unwrap();
        assert_eq!(parse_ssh_ed25519(b64).unwrap(), k);
        assert!(parse_ssh_ed25519("AAAAB3NzaC1yc2EAAAADAQAB").is_err());
        assert!(parse_ssh_ed25519("not base64!").is_err());
    }

    #[test]
    fn spec_parsing_is_explicit() {
        assert!(key_store_from_spec("file:relative").is_err());
        assert!(key_store_from_spec("vault").is_err());
        assert!(key_store_from_spec("file:/tmp/x").is_ok());
    }

    /// Exercises the real OS key store when one is reachable: Secret Service first,
    /// then the kernel keyring (run under `keyctl session - cargo test` headless).
    #[test]
    fn real_keyring_round_trip_when_available() {
        let service = format!("cairn-test-{}", uuid::Uuid::now_v7());
        #[allow(unused_mut)]
        let mut stores = vec![KeyringStore::os_default().with_service(&service)];
        #[cfg(target_os = "linux")]
        stores.push(KeyringStore::keyutils().with_service(&service));
        let mut exercised = 0;
        for store in stores {
            match load_or_create(&store, DEVICE_KEY) {
                Ok(k) => {
                    let again = load_or_create(&store, DEVICE_KEY).unwrap();
                    assert_eq!(k.to_bytes(), again.to_bytes(), "{}", store.describe());
                    store.delete(DEVICE_KEY).unwrap();
                    assert!(store.load(DEVICE_KEY).unwrap().is_none());
                    eprintln!("real keyring store exercised: {}", store.describe());
                    exercised += 1;
                }
                Err(e) => eprintln!("skipping {}: not available here: {e}", store.describe()),
            }
        }
        if exercised == 0 {
            eprintln!("SKIPPED real keyring test: no OS key store reachable (see STACK-NOTES)");
        }
    }
}
