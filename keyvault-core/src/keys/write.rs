//! Writing a new key: its two files in `keys/` and its record in the transaction. The
//! public file is written while the encryption's KDF still runs; the private one when it
//! is done; one fsync of `keys/` makes both durable before anything refers to them.

use super::Prepared;
use crate::error::{KeyError, Result, StoreError};
use crate::fsutil;
use crate::inventory::{KeyId, KeyRecord, KeyState, Protection, Purpose};
use crate::keyfile;
use crate::secret::Passphrase;
use crate::store::Txn;
use crate::vault::Vault;
use ssh_key::rand_core::CryptoRng;
use ssh_key::{HashAlg, PrivateKey};

/// Where [`Vault::write_key`] puts a key's two files.
struct KeyFiles<'a> {
    id: &'a KeyId,
    private: std::path::PathBuf,
    public: std::path::PathBuf,
}

impl Vault {
    /// Inside `txn`: picks the id, writes the public key file while the encryption's KDF
    /// still runs, then the private key (0600), one fsync of `keys/` making both durable
    /// before anything else refers to them, and adds the record in `state` to the
    /// transaction's state (saved by the caller).
    pub(crate) fn write_key<R: CryptoRng + ?Sized>(
        &self,
        txn: &mut Txn,
        rng: &mut R,
        mut prepared: Prepared,
        state: KeyState,
    ) -> Result<KeyRecord> {
        prepared.start_encryption(rng)?;
        let Prepared {
            mut key,
            purpose,
            algorithm,
            expires_at,
            comment,
            protection,
            keyring,
            origin,
            detail: _,
            created_at,
            encryption,
        } = prepared;
        let fingerprint = key.fingerprint(HashAlg::Sha256);
        if let Some(dup) = txn.keys().iter().find(|k| *k.fingerprint() == fingerprint) {
            return Err(StoreError::DuplicateKey {
                id: dup.id().to_string(),
            }
            .into());
        }
        let id = self.free_id(txn, &purpose);
        let comment = comment.unwrap_or_else(|| format!("keyvault:{id}"));
        key.set_comment(comment.as_str());
        let public_key = key
            .public_key()
            .to_openssh()
            .map_err(|e| KeyError::Crypto {
                operation: "encode",
                reason: e.to_string(),
            })?;
        let relative = format!("keys/{id}");
        // The passphrase reaches the keyring before the only copy of the key is written.
        let keyring_passphrase = match (&protection, keyring) {
            (Some((passphrase, _)), true) => Some(passphrase),
            _ => None,
        };
        let files = KeyFiles {
            id: &id,
            private: self.paths.home().join(&relative),
            public: self.paths.home().join(format!("{relative}.pub")),
        };
        let keyring_account =
            self.write_key_files(&files, &key, encryption, &public_key, keyring_passphrase)?;
        let record = KeyRecord {
            id,
            purpose,
            algorithm,
            fingerprint,
            public_key,
            comment,
            created_at,
            expires_at,
            state,
            protection: match (&protection, &keyring_account) {
                (Some(_), Some(_)) => Protection::Keyring,
                (Some(_), None) => Protection::Passphrase,
                (None, _) => Protection::None,
            },
            kdf_rounds: protection.as_ref().map(|(_, rounds)| *rounds),
            origin,
            private_key_path: relative,
            deployments: Vec::new(),
            rotated_from: None,
            rotated_to: None,
            revoked_at: None,
            pruned_at: None,
            scope: None,
            cert_authority: None,
            certificate: None,
            keyring_account,
            machine: self.machine.clone().filter(|_| self.shared_store()),
        };
        txn.keys.push(record.clone());
        Ok(record)
    }

    /// The next id of `purpose` in `txn`, skipping ids whose files exist (left by a process
    /// that died before recording them: the private key, or only the public one, written
    /// first).
    fn free_id(&self, txn: &Txn, purpose: &Purpose) -> KeyId {
        let taken = |id: &KeyId| {
            let private = self.paths.keys_dir().join(id.as_str());
            std::fs::symlink_metadata(&private).is_ok()
                || std::fs::symlink_metadata(private.with_file_name(format!("{id}.pub"))).is_ok()
        };
        let mut id = txn.next_id(purpose);
        while taken(&id) {
            id = KeyId::new(purpose, id.number() + 1);
        }
        id
    }

    /// Writes the public key line (while `encryption`'s KDF, if any, still runs), puts
    /// `keyring_passphrase` (if any) in the keyring under the account of the id, writes
    /// `key` (encrypted when `encryption` is given) and fsyncs `keys/` once for both; on
    /// failure undoes what it did. Returns the keyring account.
    fn write_key_files(
        &self,
        files: &KeyFiles<'_>,
        key: &PrivateKey,
        encryption: Option<keyfile::PendingEncryption>,
        public_key: &str,
        keyring_passphrase: Option<&Passphrase>,
    ) -> Result<Option<String>> {
        fsutil::create_new_synced(&files.public, format!("{public_key}\n").as_bytes(), 0o644)?;
        self.hook("public-key-written")
            .and_then(|()| {
                let text = match encryption {
                    Some(pending) => keyfile::to_openssh(&pending.finish(key)?)?,
                    None => keyfile::to_openssh(key)?,
                };
                let account = match keyring_passphrase {
                    Some(passphrase) => {
                        let account = self.keyring_account(files.id);
                        self.keyring()?.set(&account, passphrase.expose())?;
                        Some(account)
                    }
                    None => None,
                };
                let written = fsutil::create_new_synced(&files.private, text.as_bytes(), 0o600)
                    .and_then(|()| fsutil::sync_dir(fsutil::parent_dir(&files.private)));
                if let Err(e) = written {
                    // (Not there when creating it failed: another writer's file stays.)
                    if !matches!(
                        &e,
                        StoreError::Io {
                            operation: "create",
                            ..
                        }
                    ) {
                        let _ = std::fs::remove_file(&files.private);
                    }
                    if let Some(a) = &account {
                        self.forget_keyring_account(a);
                    }
                    return Err(e.into());
                }
                Ok(account)
            })
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&files.public);
            })
    }
}
