//! Secrets kept in the OS keyring: key passphrases keyvault generated
//! (`--passphrase-keyring`) and RunPod API keys (`keyvault runpod login`).
//!
//! Everything lives under the service [`SERVICE`] (`keyvault`). A key's passphrase is stored
//! under an account named after the key (see [`key_account`]); an API key under
//! `runpod-api-key` (or `runpod-api-key:PROFILE`). On Linux and the BSDs the keyring is the
//! Secret Service (gnome-keyring, KWallet) over D-Bus; on macOS the login keychain; on
//! Windows the Credential Manager. When none is reachable the error says so: keyvault never
//! falls back to keeping a secret in a plain file.
//!
//! ```
//! use keyvault_core::vault_secrets::Keyring;
//! // Tests and embedders can use any keyring-core store, here the crate's mock.
//! let keyring = Keyring::with_store(keyvault_core::vault_secrets::mock_store());
//! keyring.set("personal-1", "a generated passphrase")?;
//! assert_eq!(keyring.get("personal-1")?.as_deref().map(String::as_str), Some("a generated passphrase"));
//! assert!(keyring.delete("personal-1")?);
//! assert!(keyring.get("personal-1")?.is_none());
//! # Ok::<(), keyvault_core::vault_secrets::KeyringError>(())
//! ```

use crate::secret::{ApiToken, Passphrase};
use keyring_core::api::CredentialStore;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The keyring service every keyvault secret is stored under.
pub const SERVICE: &str = "keyvault";

/// The account of the default RunPod API key.
pub const RUNPOD_ACCOUNT: &str = "runpod-api-key";

pub use crate::error::KeyringError;

/// The account of a RunPod API key: `runpod-api-key`, or `runpod-api-key:PROFILE` for a
/// `[runpod.PROFILE]` table.
#[must_use]
pub fn runpod_account(profile: Option<&str>) -> String {
    match profile {
        None => RUNPOD_ACCOUNT.to_owned(),
        Some(p) => format!("{RUNPOD_ACCOUNT}:{p}"),
    }
}

/// The account of a key's passphrase: the key id for the vault at the default home, and
/// `<id>@<home>` for any other vault, so two vaults on one machine (a `--home` per project,
/// a CI user's) never overwrite each other's passphrases.
#[must_use]
pub fn key_account(id: &crate::KeyId, home: &std::path::Path, default_home: bool) -> String {
    if default_home {
        id.to_string()
    } else {
        format!("{id}@{}", home.display())
    }
}

/// An empty in-memory store (keyring-core's mock), for tests and examples.
///
/// # Panics
///
/// Never: creating the mock store cannot fail.
#[must_use]
pub fn mock_store() -> Arc<CredentialStore> {
    keyring_core::mock::Store::new().expect("the mock store always builds")
}

/// A handle on a keyring store.
#[derive(Clone)]
pub struct Keyring {
    store: Arc<CredentialStore>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("store", &self.store.vendor())
            .finish()
    }
}

/// What a platform error says, without any secret bytes it may carry.
fn describe(e: &keyring_core::Error) -> String {
    use keyring_core::Error as E;
    match e {
        E::PlatformFailure(p) | E::NoStorageAccess(p) => p.to_string(),
        E::NoEntry => "no such entry".to_owned(),
        E::BadEncoding(_) => "the stored value is not UTF-8 text".to_owned(),
        E::BadDataFormat(_, p) => format!("the stored value is malformed: {p}"),
        E::BadStoreFormat(s) => format!("the store is malformed: {s}"),
        E::TooLong(what, limit) => format!("{what} is longer than {limit}"),
        E::Invalid(what, why) => format!("invalid {what}: {why}"),
        E::Ambiguous(v) => format!("{} entries match", v.len()),
        E::NoDefaultStore => "no credential store is set up".to_owned(),
        E::NotSupportedByStore(s) => s.clone(),
        // Not Debug: a variant this build does not know could carry the stored bytes.
        other => other.to_string().chars().take(200).collect(),
    }
}

fn classify(account: &str, e: &keyring_core::Error) -> KeyringError {
    use keyring_core::Error as E;
    match e {
        E::PlatformFailure(_) | E::NoStorageAccess(_) | E::NoDefaultStore => {
            KeyringError::Unavailable {
                reason: describe(e),
            }
        }
        _ => KeyringError::Failed {
            account: account.to_owned(),
            reason: describe(e),
        },
    }
}

impl Keyring {
    /// The platform's keyring: the Secret Service on Linux and the BSDs, the keychain on
    /// macOS, the Credential Manager on Windows.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Unavailable`] when no keyring can be reached (for example no D-Bus
    /// session bus on a headless server).
    pub fn os() -> Result<Self, KeyringError> {
        let unavailable = |e: keyring_core::Error| KeyringError::Unavailable {
            reason: describe(&e),
        };
        #[cfg(all(
            feature = "keyring",
            unix,
            not(any(target_os = "macos", target_os = "ios", target_os = "android"))
        ))]
        let store: Arc<CredentialStore> =
            zbus_secret_service_keyring_store::Store::new().map_err(unavailable)?;
        #[cfg(all(feature = "keyring", target_os = "macos"))]
        let store: Arc<CredentialStore> =
            apple_native_keyring_store::keychain::Store::new().map_err(unavailable)?;
        #[cfg(all(feature = "keyring", target_os = "windows"))]
        let store: Arc<CredentialStore> =
            windows_native_keyring_store::Store::new().map_err(unavailable)?;
        #[cfg(not(all(
            feature = "keyring",
            any(
                all(
                    unix,
                    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
                ),
                target_os = "macos",
                target_os = "windows"
            )
        )))]
        let store: Arc<CredentialStore> = {
            let _ = unavailable;
            Err(KeyringError::Unavailable {
                reason: "keyvault has no keyring support on this platform".to_owned(),
            })?
        };
        Ok(Keyring { store })
    }

    /// A keyring over any keyring-core store (the mock in tests, a store of the embedder's
    /// choosing).
    #[must_use]
    pub fn with_store(store: Arc<CredentialStore>) -> Self {
        Keyring { store }
    }

    fn entry(&self, account: &str) -> Result<keyring_core::Entry, KeyringError> {
        keyring_core::Entry::new_in_store(&self.store, SERVICE, account)
            .map_err(|e| classify(account, &e))
    }

    /// The secret stored for `account`, if any.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Unavailable`] or [`KeyringError::Failed`].
    pub fn get(&self, account: &str) -> Result<Option<Zeroizing<String>>, KeyringError> {
        match self.entry(account)?.get_password() {
            Ok(s) => Ok(Some(Zeroizing::new(s))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(classify(account, &e)),
        }
    }

    /// Stores `secret` for `account`, replacing what was there.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Unavailable`] or [`KeyringError::Failed`].
    pub fn set(&self, account: &str, secret: &str) -> Result<(), KeyringError> {
        self.entry(account)?
            .set_password(secret)
            .map_err(|e| classify(account, &e))
    }

    /// Deletes the entry for `account`; `false` if there was none.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Unavailable`] or [`KeyringError::Failed`].
    pub fn delete(&self, account: &str) -> Result<bool, KeyringError> {
        match self.entry(account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(classify(account, &e)),
        }
    }

    /// The passphrase stored for a key under `account`.
    ///
    /// # Errors
    ///
    /// [`KeyringError::Missing`] when the entry is gone, or as [`Keyring::get`].
    pub fn passphrase(&self, account: &str, what: &str) -> Result<Passphrase, KeyringError> {
        match self.get(account)? {
            Some(s) => Ok(Passphrase::new(s.to_string())),
            None => Err(KeyringError::Missing {
                service: SERVICE,
                what: what.to_owned(),
                account: account.to_owned(),
            }),
        }
    }

    /// The RunPod API key kept by `keyvault runpod login`, if any.
    ///
    /// # Errors
    ///
    /// As [`Keyring::get`].
    pub fn runpod_api_key(&self, profile: Option<&str>) -> Result<Option<ApiToken>, KeyringError> {
        Ok(self
            .get(&runpod_account(profile))?
            .map(|s| ApiToken::new(s.as_str())))
    }

    /// Keeps a RunPod API key.
    ///
    /// # Errors
    ///
    /// As [`Keyring::set`].
    pub fn set_runpod_api_key(
        &self,
        profile: Option<&str>,
        key: &ApiToken,
    ) -> Result<(), KeyringError> {
        self.set(&runpod_account(profile), key.expose())
    }

    /// Forgets a RunPod API key; `false` if there was none.
    ///
    /// # Errors
    ///
    /// As [`Keyring::delete`].
    pub fn delete_runpod_api_key(&self, profile: Option<&str>) -> Result<bool, KeyringError> {
        self.delete(&runpod_account(profile))
    }
}

/// A strong random passphrase for a key whose passphrase lives in the keyring: 32 random
/// bytes, hex-encoded (256 bits).
pub(crate) fn random_passphrase<R: ssh_key::rand_core::CryptoRng + ?Sized>(
    rng: &mut R,
) -> Passphrase {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(bytes.as_mut());
    // Written straight into a buffer of the final size: no partial copy is left behind.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(64);
    for b in bytes.iter() {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    Passphrase::new(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_are_separate_per_account() {
        let k = Keyring::with_store(mock_store());
        assert!(k.get("a-1").expect("ok").is_none());
        k.set("a-1", "one").expect("ok");
        k.set("a-1@/tmp/other", "two").expect("ok");
        assert_eq!(k.get("a-1").expect("ok").expect("ok").as_str(), "one");
        assert_eq!(
            k.get("a-1@/tmp/other").expect("ok").expect("ok").as_str(),
            "two"
        );
        assert!(k.delete("a-1").expect("ok"));
        assert!(!k.delete("a-1").expect("ok"));
        assert_eq!(
            k.get("a-1@/tmp/other").expect("ok").expect("ok").as_str(),
            "two"
        );
    }

    #[test]
    fn a_missing_passphrase_names_the_entry_not_a_secret() {
        let k = Keyring::with_store(mock_store());
        let e = k.passphrase("personal-1", "passphrase of key personal-1");
        let msg = e.expect_err("missing").to_string();
        assert!(
            msg.contains("personal-1") && msg.contains("keyvault"),
            "{msg}"
        );
    }

    #[test]
    fn api_keys_are_kept_per_profile() {
        let k = Keyring::with_store(mock_store());
        k.set_runpod_api_key(None, &ApiToken::new("rpa_DEFAULT"))
            .expect("ok");
        k.set_runpod_api_key(Some("team"), &ApiToken::new("rpa_TEAM"))
            .expect("ok");
        assert_eq!(
            k.runpod_api_key(None).expect("ok").expect("ok").expose(),
            "rpa_DEFAULT"
        );
        assert_eq!(
            k.runpod_api_key(Some("team"))
                .expect("ok")
                .expect("ok")
                .expose(),
            "rpa_TEAM"
        );
        assert!(k.delete_runpod_api_key(None).expect("ok"));
        assert!(k.runpod_api_key(None).expect("ok").is_none());
    }

    #[test]
    fn platform_errors_never_echo_stored_bytes() {
        let e = classify(
            "x",
            &keyring_core::Error::BadEncoding(b"SECRET-BYTES".to_vec()),
        );
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }

    #[test]
    fn random_passphrases_are_long_and_differ() {
        let mut rng = ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng);
        let a = random_passphrase(&mut rng);
        let b = random_passphrase(&mut rng);
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        // Exactly the generator's 32 bytes, in lowercase hex.
        use ssh_key::rand_core::{Rng, SeedableRng};
        let seeded = random_passphrase(&mut chacha20::ChaCha20Rng::from_seed([5; 32]));
        let mut bytes = [0u8; 32];
        chacha20::ChaCha20Rng::from_seed([5; 32]).fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(seeded.expose(), hex);
    }
}
