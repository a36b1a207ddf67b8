//! The library's side of secrets at rest, with keyring-core's mock store: keys whose
//! passphrase lives in a keyring, and a backup that carries it to another vault.

use keyvault_core::backup::{BackupError, ExportRequest, ExportTo, RestoreFrom, RestoreRequest};
use keyvault_core::ssh_key::getrandom::SysRng;
use keyvault_core::ssh_key::rand_core::UnwrapErr;
use keyvault_core::vault_secrets::{Keyring, mock_store};
use keyvault_core::{
    Callbacks, Error, NewKey, Passphrase, PassphraseRequest, Progress, Protection, Vault,
};

const BACKUP_PASS: &str = "quartz Lantern 93 meadow-orbit";

/// Answers the backup archive's passphrase and new passphrases; asking for an existing
/// key's passphrase is a failure (it must come from the keyring). Records progress events.
#[derive(Default)]
struct BackupOnly {
    progress: Vec<Progress>,
}

impl Callbacks for BackupOnly {
    fn passphrase(&mut self, request: &PassphraseRequest) -> keyvault_core::Result<Passphrase> {
        assert!(
            request.subject() == "the backup archive"
                || request.kind() == keyvault_core::PassphraseKind::New,
            "unexpected question: {}",
            request.subject()
        );
        Ok(Passphrase::new(BACKUP_PASS.to_owned()))
    }
    fn progress(&mut self, event: Progress) {
        self.progress.push(event);
    }
}

#[test]
fn a_keyring_passphrase_survives_export_and_restore_to_another_keyring() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = Keyring::with_store(mock_store());
    let vault = Vault::open(dir.path().join("a"))
        .expect("open")
        .with_keyring(keyring.clone());
    let mut callbacks = BackupOnly::default();
    let record = vault
        .create(
            &mut UnwrapErr(SysRng),
            &NewKey::new("personal".parse().expect("purpose")).passphrase_in_keyring(true),
            &mut callbacks,
        )
        .expect("create");
    assert_eq!(record.protection(), Protection::Keyring);
    let account = record.keyring_account().expect("account").to_owned();
    let secret = keyring.get(&account).expect("get").expect("stored");

    let exported = vault
        .export(
            &ExportRequest::new(ExportTo::Passphrase)
                .include_keyring_secrets(true)
                .scrypt_work_factor(10),
            &mut callbacks,
        )
        .expect("export");
    assert_eq!(exported.keyring_secrets, 1);
    assert!(callbacks.progress.contains(&Progress::DerivingKey));
    assert!(
        !exported
            .archive
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "the secret travels only encrypted"
    );

    // Another machine: an empty keyring.
    let other_keyring = Keyring::with_store(mock_store());
    let restored_vault = Vault::open(dir.path().join("b"))
        .expect("open")
        .with_keyring(other_keyring.clone());
    let restored = restored_vault
        .restore(
            &exported.archive,
            &RestoreRequest::new(RestoreFrom::Passphrase, "archive"),
            &mut callbacks,
        )
        .expect("restore");
    assert_eq!(restored.keyring_secrets, 1);
    assert_eq!(
        other_keyring
            .get(&account)
            .expect("get")
            .as_deref()
            .map(String::as_str),
        Some(secret.as_str())
    );
    // The restored key opens with it, without asking anyone for the old passphrase.
    let changed = restored_vault
        .change_passphrase(
            &mut UnwrapErr(SysRng),
            &"personal".parse().expect("selector"),
            &mut callbacks,
        )
        .expect("passwd");
    assert_eq!(changed.fingerprint(), record.fingerprint());
    assert_eq!(changed.protection(), Protection::Passphrase);
    assert!(
        other_keyring.get(&account).expect("get").is_none(),
        "forgotten"
    );

    // A second restore into the same, now full, home is refused before any question.
    let e = restored_vault
        .restore(
            &exported.archive,
            &RestoreRequest::new(RestoreFrom::Passphrase, "archive"),
            &mut callbacks,
        )
        .expect_err("home is not empty");
    assert!(
        matches!(e, Error::Backup(BackupError::HomeNotEmpty { .. })),
        "{e}"
    );
}
