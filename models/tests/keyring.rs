//! API keys through the real OS keyring. `make test` runs this once in a kernel keyring
//! session (`CAIRN_KEYRING=keyutils` under `keyctl session`) and once against GNOME
//! Keyring's Secret Service (`CAIRN_KEYRING=secret-service` under `dbus-run-session`).

use cairn_models::keys;

#[test]
fn store_read_and_delete_an_api_key() {
    let Ok(store) = std::env::var("CAIRN_KEYRING") else {
        eprintln!("skipped: CAIRN_KEYRING is not set (`make test` sets it up with a real store)");
        return;
    };
    let name = format!("test-{store}-{}", std::process::id());
    assert_eq!(keys::api_key(&name).unwrap(), None);
    keys::set_api_key(&name, "  sk-test-123  ").unwrap();
    assert_eq!(
        keys::api_key(&name).unwrap().as_deref(),
        Some("sk-test-123")
    );
    assert!(keys::delete_api_key(&name).unwrap());
    assert_eq!(keys::api_key(&name).unwrap(), None);
    assert!(!keys::delete_api_key(&name).unwrap());
    assert!(keys::set_api_key(&name, "   ").is_err());
}
