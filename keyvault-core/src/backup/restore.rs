//! Restoring an archive into an empty home: everything is checked before anything is written.

use super::*;
use crate::callbacks::{Callbacks, PassphraseKind, PassphraseRequest, Progress};
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::inventory::{Inventory, KeyState};
use crate::vault::Vault;
use age::secrecy::SecretString;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// How a restore decrypts the archive.
#[derive(Debug, Clone)]
pub enum RestoreFrom {
    /// An identity file: age's (`AGE-SECRET-KEY-1…`) or an OpenSSH private key
    /// (ed25519 or RSA; its passphrase is asked of the callbacks when it has one).
    Identity(PathBuf),
    /// A passphrase asked of the callbacks.
    Passphrase,
}

/// What to restore: see [`Vault::restore`].
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    from: RestoreFrom,
    force: bool,
    name: String,
}

impl RestoreRequest {
    /// Decrypt with `from`; `name` names the archive in messages (its path).
    #[must_use]
    pub fn new(from: RestoreFrom, name: impl Into<String>) -> Self {
        RestoreRequest {
            from,
            force: false,
            name: name.into(),
        }
    }
    /// Restore even into a home that holds files: they are moved aside, not deleted.
    #[must_use]
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }
}

/// A finished restore.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The home written.
    pub home: PathBuf,
    /// When the archive was made.
    pub created_at: DateTime<Utc>,
    /// How many key records the inventory holds.
    pub keys: usize,
    /// How many audit events verified.
    pub events: u64,
    /// How many keyring passphrases were put back in the OS keyring.
    pub keyring_secrets: usize,
    /// Keys whose passphrase lives in a keyring and was not in the archive.
    pub keyring_missing: Vec<String>,
    /// Where the home's previous contents went (`--force`).
    pub moved_aside: Option<PathBuf>,
    /// What the user should review: policy or host keys that differ from the vault the
    /// restore replaced.
    pub review: Vec<RestoreNote>,
}

/// Something a restore brought in that changes what the vault trusts.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreNote {
    /// How much it matters (`high`: policy or trusted host keys changed).
    pub severity: crate::status::Severity,
    /// The vault file concerned (`config.toml`, `known_hosts`).
    pub file: String,
    /// What differs.
    pub message: String,
}

pub(crate) fn describe_decrypt(e: &age::DecryptError, passphrase: bool) -> String {
    use age::DecryptError as D;
    match e {
        D::NoMatchingKeys if passphrase => {
            "the archive is encrypted to recipients, not a passphrase".to_owned()
        }
        D::NoMatchingKeys => {
            "it is not encrypted to this identity (or it needs a passphrase instead)".to_owned()
        }
        D::DecryptionFailed if passphrase => "wrong passphrase".to_owned(),
        D::DecryptionFailed | D::InvalidMac => {
            "the archive is corrupt or does not match this identity".to_owned()
        }
        D::InvalidHeader | D::UnknownFormat => {
            "not an age-encrypted file, or its header is damaged".to_owned()
        }
        D::ExcessiveWork { required, .. } => {
            format!("its scrypt work factor ({required}) is too high to try")
        }
        D::KeyDecryptionFailed => "the identity's own passphrase is wrong".to_owned(),
        D::Io(io) => format!("the archive is truncated or corrupt ({io})"),
        other => other.to_string(),
    }
}

/// An archive that passed every check, with what the checks found.
struct Checked {
    parsed: Archive,
    inventory: Inventory,
    events: u64,
    keyring_missing: Vec<String>,
}

impl Checked {
    fn file(&self, path: &str) -> Option<&ArchiveFile> {
        self.parsed.files.iter().find(|f| f.path == path)
    }
}

impl Vault {
    /// Restores an archive made by [`Vault::export`] into this vault's home, which must be
    /// empty or missing (or, with [`RestoreRequest::force`], is moved aside). Everything is
    /// checked before anything is written; keyring passphrases in the archive go back into
    /// the OS keyring. Records a `restore` audit event in the restored log.
    ///
    /// # Errors
    ///
    /// [`BackupError`] for archives that cannot be decrypted or do not verify, and for a
    /// home that is not empty; the callbacks' error; [`crate::Error::Keyring`];
    /// [`StoreError`] for I/O.
    pub fn restore(
        &self,
        archive: &[u8],
        request: &RestoreRequest,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Restored> {
        let home = self.paths.home().to_owned();
        // Refuse a non-empty home before asking for any passphrase.
        let occupied = home_occupied(&home)?;
        if occupied && !request.force {
            return Err(BackupError::HomeNotEmpty { home }.into());
        }
        self.refuse_shared_store(None)?;
        let plain = self.decrypt_archive(archive, request, callbacks)?;
        let checked = check_archive(&plain).map_err(|reason| BackupError::Invalid {
            archive: request.name.clone(),
            reason,
        })?;
        self.refuse_shared_store(checked.file("config.toml"))?;

        // Everything checked: stage the files beside the home, then swap it in.
        let parent = fsutil::parent_dir(&home).to_owned();
        create_parent(&parent)?;
        // What changes what the vault trusts, against the vault it replaces.
        let review = if occupied {
            review_against(&home, &|path: &str| checked.file(path))
        } else {
            Vec::new()
        };
        let base = home.file_name().map_or_else(
            || "keyvault".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let stamp = self.now().format("%Y%m%dT%H%M%SZ");
        let staging = parent.join(format!(".{base}.restore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        // The keyring before the swap: if it refuses, the home is untouched.
        let staged = stage(&staging, &checked).and_then(|()| self.put_keyring(&checked.parsed));
        if let Err(e) = staged {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        let aside = occupied.then(|| parent.join(format!("{base}.before-restore-{stamp}")));
        swap_in(&home, &staging, aside.as_deref())?;
        fsutil::sync_dir(&parent)?;
        self.record_restore(home, checked, aside, review)
    }

    /// [`BackupError::SharedStore`] when the restored home would keep its records in
    /// PostgreSQL, [`BackupError::ExistingDatabase`] in a SQLite database outside the home
    /// that exists (one inside goes aside with the home): the store this vault was told to
    /// use, else the one `config` (the archive's `config.toml`, checked valid already) names.
    fn refuse_shared_store(&self, config: Option<&ArchiveFile>) -> Result<()> {
        use crate::policy::StoreLocation;
        let parse = |c: &ArchiveFile| crate::policy::Config::parse(&c.text, Path::new("c")).ok();
        let named =
            (self.store_override.clone()).or_else(|| config.and_then(parse).map(|c| c.store()));
        match named {
            Some(StoreLocation::Postgres(store)) => Err(BackupError::SharedStore { store }.into()),
            Some(StoreLocation::Sqlite(file)) => {
                let home = self.paths.home();
                let database = home.join(file);
                let inside = database.starts_with(home)
                    && !(database.components()).any(|c| c == std::path::Component::ParentDir);
                // Outside fsutil: an lstat, which reads nothing and follows no link.
                if !inside && std::fs::symlink_metadata(&database).is_ok() {
                    return Err(BackupError::ExistingDatabase { database }.into());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Puts the archive's keyring passphrases back into the OS keyring.
    fn put_keyring(&self, parsed: &Archive) -> Result<()> {
        if !parsed.keyring.is_empty() {
            let keyring = self.keyring()?;
            for s in &parsed.keyring {
                keyring.set(&s.account, &s.secret)?;
            }
        }
        Ok(())
    }

    /// Opens the restored vault at `home` and records the `restore` event in its log.
    fn record_restore(
        &self,
        home: PathBuf,
        checked: Checked,
        moved_aside: Option<PathBuf>,
        review: Vec<RestoreNote>,
    ) -> Result<Restored> {
        let parsed = checked.parsed;
        // Opened in the store its config.toml names (or the one this vault was told to
        // use): a database store imports the restored files at once (see the migration in
        // `store::sqlite`).
        let restored = Vault::open_with_store(&home, self.store_override.clone())?
            .with_actor(self.actor.clone());
        let mut txn = restored.begin(crate::store::View::All)?;
        let mut detail = format!(
            "restored from a backup made {}: {} keys",
            parsed.created_at.to_rfc3339(),
            txn.keys().len()
        );
        if let Some(aside) = &moved_aside {
            detail.push_str(&format!("; previous contents moved to {}", aside.display()));
        }
        let keys = txn.keys().len();
        txn.record([crate::audit::Draft {
            action: "restore",
            key_id: None,
            fingerprint: None,
            outcome: crate::audit::Outcome::Ok,
            detail: Some(detail),
        }]);
        txn.commit()?;
        Ok(Restored {
            home,
            created_at: parsed.created_at,
            keys,
            events: checked.events,
            keyring_secrets: parsed.keyring.len(),
            keyring_missing: checked.keyring_missing,
            moved_aside,
            review,
        })
    }

    fn decrypt_archive(
        &self,
        archive: &[u8],
        request: &RestoreRequest,
        callbacks: &mut dyn Callbacks,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let name = request.name.clone();
        let passphrase = matches!(request.from, RestoreFrom::Passphrase);
        let fail = |reason: String| BackupError::Decrypt {
            archive: name.clone(),
            reason,
        };
        let undecryptable = |e: age::DecryptError| match e {
            age::DecryptError::NoMatchingKeys if passphrase => wrong_kind(request, true),
            e => fail(describe_decrypt(&e, passphrase)),
        };
        if !looks_like_age(archive) {
            return Err(fail("not an age-encrypted file".to_owned()).into());
        }
        let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(archive))
            .map_err(undecryptable)?;
        let identities = identities_for(&decryptor, request, callbacks)?;
        if passphrase {
            callbacks.progress(Progress::DerivingKey);
        }
        let reader = decryptor.decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity));
        let mut plain = Zeroizing::new(Vec::new());
        let read = reader.map_err(undecryptable).and_then(|r| {
            r.take(MAX_ARCHIVE_BYTES + 1)
                .read_to_end(&mut plain)
                .map_err(|e| fail(format!("the archive is truncated or corrupt ({e})")))
        });
        if passphrase {
            callbacks.progress(Progress::Done);
        }
        read?;
        if plain.len() as u64 > MAX_ARCHIVE_BYTES {
            return Err(fail(format!(
                "it holds more than {MAX_ARCHIVE_BYTES} bytes, more than any vault"
            ))
            .into());
        }
        Ok(plain)
    }
}

/// Whether the home holds anything (a missing home does not).
fn home_occupied(home: &Path) -> Result<bool> {
    match std::fs::read_dir(home) {
        Ok(mut rd) => Ok(rd.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StoreError::Io {
            operation: "read",
            path: home.to_owned(),
            source,
        }
        .into()),
    }
}

/// The archive is encrypted to recipients (`to_recipients`) or to a passphrase, not the
/// kind of secret `request` brings.
fn wrong_kind(request: &RestoreRequest, to_recipients: bool) -> BackupError {
    BackupError::WrongSecretKind {
        archive: request.name.clone(),
        to_recipients,
    }
}

/// Whether `archive` starts (after whitespace) as an age file, binary or armored.
fn looks_like_age(archive: &[u8]) -> bool {
    let start = archive
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&archive[..0], |i| &archive[i..]);
    start.starts_with(b"age-encryption.org/")
        || start.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

/// The identities `request` brings for `decryptor`: a passphrase asked of the callbacks
/// or an identity file; refused when the archive is encrypted to the other kind.
fn identities_for<R: std::io::BufRead>(
    decryptor: &age::Decryptor<R>,
    request: &RestoreRequest,
    callbacks: &mut dyn Callbacks,
) -> Result<Vec<Box<dyn age::Identity>>> {
    match &request.from {
        RestoreFrom::Passphrase => {
            if !decryptor.is_scrypt() {
                return Err(wrong_kind(request, true).into());
            }
            let p = callbacks.passphrase(&PassphraseRequest::new(
                PassphraseKind::Existing,
                "the backup archive",
            ))?;
            let mut identity =
                age::scrypt::Identity::new(SecretString::from(p.expose().to_owned()));
            identity.set_max_work_factor(30);
            Ok(vec![Box::new(identity)])
        }
        RestoreFrom::Identity(path) => {
            if decryptor.is_scrypt() {
                return Err(wrong_kind(request, false).into());
            }
            identities_from(path, callbacks)
        }
    }
}

/// Checks a decrypted archive, in order: its shape and files, its inventory, audit log,
/// config and records, its key files, its keyring passphrases. The error is the reason.
fn check_archive(plain: &[u8]) -> std::result::Result<Checked, String> {
    let parsed = parse_archive(plain)?;
    let (inventory, events) = check_inventory(&parsed)?;
    check_key_files(&parsed, &inventory)?;
    let keyring_missing = check_keyring(&parsed, &inventory)?;
    Ok(Checked {
        parsed,
        inventory,
        events,
        keyring_missing,
    })
}

/// The archive's JSON, its format and version, and its list of files (allowed paths,
/// each once, none larger than export takes).
fn parse_archive(plain: &[u8]) -> std::result::Result<Archive, String> {
    let parsed: Archive = serde_json::from_slice(plain)
        .map_err(|e| format!("its content is not a keyvault archive ({e})"))?;
    if parsed.format != FORMAT {
        return Err(format!("its format is {:?}", parsed.format));
    }
    if parsed.version != VERSION {
        return Err(format!(
            "it is version {} and this keyvault reads version {VERSION}",
            parsed.version
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for f in &parsed.files {
        if !allowed_path(&f.path) {
            return Err(format!("it holds an unexpected file {:?}", f.path));
        }
        if !seen.insert(f.path.as_str()) {
            return Err(format!("it holds {} twice", f.path));
        }
        if f.text.len() as u64 > MAX_FILE_BYTES {
            return Err(format!(
                "{} is larger than {MAX_FILE_BYTES} bytes, more than export takes",
                f.path
            ));
        }
    }
    Ok(parsed)
}

/// The archive's inventory and how many audit events verify against it; its config, that
/// no file goes unnamed by a record, every record, and its `known_hosts`.
fn check_inventory(parsed: &Archive) -> std::result::Result<(Inventory, u64), String> {
    let file = |path: &str| parsed.files.iter().find(|f| f.path == path);
    let inventory_text =
        file("inventory.json").ok_or_else(|| "it has no inventory.json".to_owned())?;
    let inventory = Inventory::parse(inventory_text.text.as_bytes())
        .map_err(|e| format!("its inventory.json is damaged: {e}"))?;
    let audit_text = file("audit.jsonl").map_or("", |f| f.text.as_str());
    let verified = crate::audit::verify_bytes(audit_text.as_bytes(), inventory.audit_head())
        .map_err(|e| format!("its audit log does not verify: {e}"))?;
    if let Some(config) = file("config.toml") {
        crate::policy::Config::parse(&config.text, Path::new("config.toml"))
            .map_err(|e| format!("its config.toml is invalid: {e}"))?;
    }
    // No file no record names, every record as `new`/`import`/`mint` would have made it.
    let named = named_key_files(&inventory);
    for f in &parsed.files {
        if !TOP_FILES.contains(&f.path.as_str()) && !named.contains(&f.path) {
            return Err(format!(
                "it holds {}, which no record names (keyvault never exports such a file)",
                f.path
            ));
        }
    }
    for record in inventory.keys() {
        check_record(record).map_err(|reason| format!("record {}: {reason}", record.id()))?;
    }
    if let Some(known_hosts) = file("known_hosts") {
        check_known_hosts(&known_hosts.text)?;
    }
    Ok((inventory, verified.events))
}

/// Every record's private file (unless pruned) and `.pub` (when present) is the key it
/// names.
fn check_key_files(parsed: &Archive, inventory: &Inventory) -> std::result::Result<(), String> {
    let file = |path: &str| parsed.files.iter().find(|f| f.path == path);
    for record in inventory.keys() {
        let id = record.id().to_string();
        if record.pruned_at().is_none() {
            let path = format!("keys/{id}");
            check_key_file(record, &path, file(&path), true)?;
        }
        let path = format!("keys/{id}.pub");
        if let Some(f) = file(&path) {
            check_key_file(record, &path, Some(f), false)?;
        }
    }
    Ok(())
}

/// `f`, at `path`, is the private (`private`) or public key `record` names, encrypted
/// exactly when the record says it is protected.
fn check_key_file(
    record: &crate::KeyRecord,
    path: &str,
    f: Option<&ArchiveFile>,
    private: bool,
) -> std::result::Result<(), String> {
    let f = f.ok_or_else(|| format!("{path} is missing"))?;
    let fingerprint = if private {
        let key = ssh_key::PrivateKey::from_openssh(&f.text)
            .map_err(|e| format!("{path} is not a key ({e})"))?;
        // An unencrypted file where the record says it is protected (or the
        // reverse) is not what keyvault wrote.
        let protected = record.protection() != crate::Protection::None;
        if key.is_encrypted() != protected {
            return Err(format!(
                "{path} is {} but its record says {}",
                if key.is_encrypted() {
                    "encrypted"
                } else {
                    "not encrypted"
                },
                if protected {
                    "it is protected"
                } else {
                    "it is not"
                }
            ));
        }
        Ok(key.public_key().fingerprint(ssh_key::HashAlg::Sha256))
    } else {
        ssh_key::PublicKey::from_openssh(f.text.trim())
            .map(|k| k.fingerprint(ssh_key::HashAlg::Sha256))
    }
    .map_err(|e| format!("{path} is not a key ({e})"))?;
    if fingerprint == *record.fingerprint() {
        Ok(())
    } else {
        Err(format!(
            "{path} is not the key its record names ({} ≠ {})",
            fingerprint,
            record.fingerprint()
        ))
    }
}

/// Every keyring passphrase in the archive belongs to a record; returns the live keys
/// whose keyring passphrase the archive does not hold.
fn check_keyring(
    parsed: &Archive,
    inventory: &Inventory,
) -> std::result::Result<Vec<String>, String> {
    for s in &parsed.keyring {
        let ok = inventory
            .keys()
            .iter()
            .any(|k| k.id().as_str() == s.key && k.keyring_account() == Some(&s.account));
        if !ok {
            return Err(format!(
                "it holds a keyring passphrase for {} that no record names",
                s.key
            ));
        }
    }
    Ok(inventory
        .keys()
        .iter()
        .filter(|k| k.pruned_at().is_none() && k.state() != KeyState::Revoked)
        .filter(|k| {
            k.keyring_account()
                .is_some_and(|a| !parsed.keyring.iter().any(|s| s.account == a))
        })
        .map(|k| k.id().to_string())
        .collect())
}

/// Creates the home's parent (0700) when it is missing.
fn create_parent(parent: &Path) -> Result<()> {
    if !parent.exists() {
        // 0700 whatever the umask: the mode only ever loses bits to it.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(parent)
            .map_err(|source| StoreError::Io {
                operation: "create",
                path: parent.to_owned(),
                source,
            })?;
    }
    Ok(())
}

/// Writes the checked archive's files and `current/` links into `staging`, synced.
fn stage(staging: &Path, checked: &Checked) -> Result<()> {
    fsutil::ensure_dir(staging, 0o700)?;
    fsutil::ensure_dir(&staging.join("keys"), 0o700)?;
    for f in &checked.parsed.files {
        fsutil::write_atomic(
            &staging.join(&f.path),
            f.text.as_bytes(),
            mode_for(&f.path),
            fsutil::Replace::No,
        )?;
    }
    let current = staging.join("current");
    fsutil::ensure_dir(&current, 0o700)?;
    let inventory = &checked.inventory;
    for purpose in inventory.purposes() {
        if let Some(active) = inventory.active(purpose) {
            crate::vault::point_current_in(&current, purpose, active.id())?;
        }
    }
    fsutil::sync_dir(&staging.join("keys"))?;
    fsutil::sync_dir(staging)?;
    Ok(())
}

/// Moves the home aside to `aside` (or removes it when it is an empty directory) and
/// renames `staging` into its place.
fn swap_in(home: &Path, staging: &Path, aside: Option<&Path>) -> Result<()> {
    let io = |operation: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io {
            operation,
            path,
            source,
        }
    };
    if let Some(aside) = aside {
        std::fs::rename(home, aside).map_err(io("move aside", home))?;
    } else if home.exists() {
        std::fs::remove_dir(home).map_err(io("replace", home))?;
    }
    std::fs::rename(staging, home).map_err(io("rename", staging))?;
    Ok(())
}

/// The `keys/` files the records of `inventory` name: each live key's private file, each
/// key's `.pub`, and each certificate.
pub(crate) fn named_key_files(inventory: &Inventory) -> std::collections::HashSet<String> {
    let mut named = std::collections::HashSet::new();
    for record in inventory.keys() {
        let id = record.id();
        if record.pruned_at().is_none() {
            named.insert(format!("keys/{id}"));
        }
        named.insert(format!("keys/{id}.pub"));
        if let Some(cert) = record.certificate() {
            named.insert(cert.path.clone());
        }
    }
    named
}

/// Checks a restored record as `new`, `import`, `mint` and `ca trust` check what they
/// record: anything else could put text into an `authorized_keys` line (a comment holding a
/// line break and a second key) or into a file path.
pub(crate) fn check_record(record: &crate::KeyRecord) -> std::result::Result<(), String> {
    let id = record.id().as_str();
    let number = id
        .strip_prefix(record.purpose().as_str())
        .and_then(|n| n.strip_prefix('-'));
    if !number.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!(
            "its id is not <purpose>-<n> for purpose {}",
            record.purpose()
        ));
    }
    crate::admission::check_comment(record.comment())
        .map_err(|e| format!("its comment is invalid: {e}"))?;
    let public = record.public_key();
    if public.chars().any(char::is_control) || public.len() > 16 * 1024 {
        return Err("its public key holds a line break or control character".to_owned());
    }
    let key = ssh_key::PublicKey::from_openssh(public)
        .map_err(|e| format!("its public key does not parse ({e})"))?;
    if key.fingerprint(ssh_key::HashAlg::Sha256) != *record.fingerprint() {
        return Err("its public key does not have its fingerprint".to_owned());
    }
    if let Some(scope) = record.scope() {
        crate::mint::check_scope(scope).map_err(|e| e.to_string())?;
    }
    // Principals and `from=` patterns were checked when the records were read.
    if let Some(cert) = record.certificate()
        && cert.path != format!("keys/{id}-cert.pub")
    {
        return Err(format!(
            "its certificate path {:?} is not keys/{id}-cert.pub",
            cert.path
        ));
    }
    let plain = |s: &str| !s.is_empty() && s.len() <= 4096 && !s.chars().any(char::is_control);
    for d in record.deployments() {
        if !plain(&d.target().to_string()) {
            return Err("a deployment target holds a control character".to_owned());
        }
    }
    if record.keyring_account().is_some_and(|a| !plain(a)) {
        return Err("its keyring account holds a control character".to_owned());
    }
    Ok(())
}

/// Refuses `known_hosts` lines keyvault never writes: a marker (`@cert-authority`,
/// `@revoked`) or a host pattern with a wildcard or negation, which would trust a key for
/// hosts nobody checked.
pub(crate) fn check_known_hosts(text: &str) -> std::result::Result<(), String> {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let hosts = line.split_whitespace().next().unwrap_or_default();
        if hosts.starts_with('@') {
            return Err(format!(
                "its known_hosts line {} is a {} marker, which keyvault never writes",
                n + 1,
                hosts.escape_debug()
            ));
        }
        if !hosts.starts_with("|1|") && hosts.contains(['*', '?', '!']) {
            return Err(format!(
                "its known_hosts line {} trusts a host key for the pattern {:?}, which keyvault never writes",
                n + 1,
                hosts
            ));
        }
    }
    Ok(())
}

/// What an archive changes in the policy and trusted host keys of the vault at `home`
/// (which it is about to replace).
pub(crate) fn review_against<'a>(
    home: &Path,
    file: &dyn Fn(&str) -> Option<&'a ArchiveFile>,
) -> Vec<RestoreNote> {
    let mut notes = Vec::new();
    for name in ["config.toml", "known_hosts"] {
        let before = fsutil::read_optional(&home.join(name), MAX_FILE_BYTES)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let after = file(name).map_or("", |f| f.text.as_str());
        if before == after {
            continue;
        }
        let old: std::collections::HashSet<&str> = before.lines().map(str::trim).collect();
        let new: std::collections::HashSet<&str> = after.lines().map(str::trim).collect();
        let added: Vec<String> = after
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !old.contains(l))
            .map(|l| format!("{:?}", shorten(l)))
            .collect();
        let removed = before
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !new.contains(l))
            .count();
        let what = if name == "config.toml" {
            "the policy"
        } else {
            "the trusted host keys"
        };
        let mut message = format!(
            "{name} from the archive differs from the vault it replaced: {what} changed ({} line(s) added, {removed} removed)",
            added.len()
        );
        if !added.is_empty() {
            message.push_str(&format!(": {}", added.join(", ")));
        }
        notes.push(RestoreNote {
            severity: crate::status::Severity::High,
            file: name.to_owned(),
            message,
        });
    }
    notes
}

/// The identities in an identity file: age's, or one OpenSSH private key (decrypted with a
/// passphrase from `callbacks` if it is encrypted).
pub(crate) fn identities_from(
    path: &Path,
    callbacks: &mut dyn Callbacks,
) -> Result<Vec<Box<dyn age::Identity>>> {
    let bad = |reason: String| BackupError::Identity {
        path: path.to_owned(),
        reason,
    };
    let bytes = fsutil::read_optional(path, 1024 * 1024)?
        .map(Zeroizing::new)
        .ok_or_else(|| bad("no such file".to_owned()))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not a text file".to_owned()))?;
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let key =
            ssh_key::PrivateKey::from_openssh(text).map_err(|e| bad(format!("not a key ({e})")))?;
        let subject = format!("identity {}", path.display());
        let plain = if key.is_encrypted() {
            let p = callbacks
                .passphrase(&PassphraseRequest::new(PassphraseKind::Existing, &subject))?;
            crate::keyfile::decrypt(&key, &p, &subject)?
        } else {
            key
        };
        let pem = crate::keyfile::to_openssh(&plain)?;
        let identity = age::ssh::Identity::from_buffer(pem.as_bytes(), None)
            .map_err(|e| bad(e.to_string()))?;
        if let age::ssh::Identity::Unsupported(_) = identity {
            return Err(bad(format!(
                "{} keys cannot decrypt age archives; use an ssh-ed25519 or ssh-rsa key",
                plain.algorithm()
            ))
            .into());
        }
        return Ok(vec![Box::new(identity)]);
    }
    let file = age::IdentityFile::from_buffer(text.as_bytes())
        .map_err(|e| bad(format!("not an age identity file ({e})")))?;
    let identities = file
        .into_identities()
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .map(|i| i as Box<dyn age::Identity>)
        .collect::<Vec<_>>();
    if identities.is_empty() {
        return Err(bad("it holds no identity".to_owned()).into());
    }
    Ok(identities)
}

#[cfg(test)]
#[path = "restore_tests.rs"]
mod tests;
