//! Asking for a passphrase never holds the vault's lock: another writer (a cron `sweep`,
//! another `new`) can work while a person types.

use keyvault_core::ssh_key::getrandom::SysRng;
use keyvault_core::ssh_key::rand_core::UnwrapErr;
use keyvault_core::target::{Target, TargetSpec, Targets};
use keyvault_core::{
    Callbacks, Error, FixedPassphrase, NewKey, Passphrase, PassphraseRequest, RotateRequest, Vault,
};
use std::path::PathBuf;
use std::time::Duration;

const PASS: &str = "plum-Vortex-carpet-71-tundra";

struct NoTargets;

impl Targets for NoTargets {
    fn open(&self, spec: &TargetSpec) -> Result<Box<dyn Target + Send>, Error> {
        panic!("no target expected, asked for {spec}");
    }
}

/// Answers with a passphrase, but first has another vault handle write to the same home.
struct WriterWhilePrompting {
    home: PathBuf,
    wrote: bool,
}

impl Callbacks for WriterWhilePrompting {
    fn passphrase(&mut self, _request: &PassphraseRequest) -> keyvault_core::Result<Passphrase> {
        let other = Vault::open(&self.home)?.with_lock_timeout(Duration::from_secs(1));
        let mut fixed = FixedPassphrase(Passphrase::new(PASS.to_owned()));
        other.create(
            &mut UnwrapErr(SysRng),
            &NewKey::new("other".parse()?),
            &mut fixed,
        )?;
        self.wrote = true;
        Ok(Passphrase::new(PASS.to_owned()))
    }
}

#[test]
fn rotate_prompts_without_holding_the_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("vault");
    let vault = Vault::open(&home).expect("open");
    let mut fixed = FixedPassphrase(Passphrase::new(PASS.to_owned()));
    vault
        .create(
            &mut UnwrapErr(SysRng),
            &NewKey::new("personal".parse().expect("purpose")),
            &mut fixed,
        )
        .expect("create");
    let mut callbacks = WriterWhilePrompting {
        home: home.clone(),
        wrote: false,
    };
    let report = vault
        .rotate(
            &mut UnwrapErr(SysRng),
            &RotateRequest::purposes(vec!["personal".parse().expect("p")]),
            &mut callbacks,
            &NoTargets,
        )
        .expect("the rotation succeeds although another writer ran during the prompt");
    assert!(callbacks.wrote);
    assert_eq!(report.rotated.len(), 1);
    let inventory = vault.inventory().expect("inventory");
    assert_eq!(inventory.keys().len(), 3, "personal-1, other-1, personal-2");
    assert_eq!(vault.verify_audit().expect("audit").events, 5);
}

/// A reader that must wait for the writer lock (to migrate a vault's files into its
/// database) waits the timeout given with `with_lock_timeout`, not `config.toml`'s.
#[test]
fn a_reader_waits_the_lock_timeout_the_vault_was_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("vault");
    let files = Vault::open_with_store(&home, Some(keyvault_core::StoreLocation::Files))
        .expect("open files");
    let mut fixed = FixedPassphrase(Passphrase::new(PASS.to_owned()));
    files
        .create(
            &mut UnwrapErr(SysRng),
            &NewKey::new("personal".parse().expect("purpose")),
            &mut fixed,
        )
        .expect("create");
    std::fs::write(home.join("config.toml"), "lock_timeout = \"60s\"\n").expect("config");
    // Another process's writer lock, as flock sees it (another open file description).
    let lock = std::fs::File::open(home.join(".lock")).expect("open .lock");
    lock.lock().expect("lock");
    let vault = Vault::open(&home)
        .expect("open")
        .with_lock_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = vault.inventory().expect_err("locked");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            Error::Store(keyvault_core::StoreError::Locked { waited_secs: 0, .. })
        ),
        "{err}"
    );
    drop(lock);
    assert_eq!(vault.inventory().expect("read").keys().len(), 1);
}
