//! Minting short-lived, scoped keys for automation.

use crate::admission::{Admitted, Expiry, KeyOptions};
use crate::callbacks::Callbacks;
use crate::error::{Incomplete, InputError, NextStep, Operation, RequestError, Result, WorkItem};
use crate::inventory::{KeyRecord, KeyState, Purpose};
use crate::keygen::Algorithm;
use crate::names::{KeySelector, Principal, SourcePattern};
use crate::run::{Opened, add_key, draft, key, key_mut};
use crate::span::Span;
use crate::store::Txn;
use crate::target::{TargetSpec, Targets};
use crate::vault::Vault;
use ssh_key::rand_core::CryptoRng;
use std::collections::HashSet;

/// What to mint: see [`Vault::mint`].
#[derive(Debug, Clone)]
pub struct MintRequest {
    pub(crate) purpose: Purpose,
    pub(crate) options: KeyOptions,
    pub(crate) scope: crate::inventory::Scope,
    pub(crate) deploy: Vec<TargetSpec>,
    pub(crate) certificate: Option<(KeySelector, Vec<Principal>)>,
}

impl MintRequest {
    /// Also sign a user certificate with the CA `ca` (a key id or purpose) for
    /// `principals`, valid until the key expires.
    #[must_use]
    pub fn certificate(mut self, ca: KeySelector, principals: Vec<Principal>) -> Self {
        self.certificate = Some((ca, principals));
        self
    }
    /// A scoped key for `purpose` that expires after `ttl`.
    #[must_use]
    pub fn new(purpose: Purpose, ttl: Span) -> Self {
        MintRequest {
            purpose,
            options: KeyOptions::default().expiry(Expiry::After(ttl)),
            scope: crate::inventory::Scope::default(),
            deploy: Vec::new(),
            certificate: None,
        }
    }
    /// Allow logins only from these addresses, CIDRs or host patterns.
    #[must_use]
    pub fn from(mut self, from: Vec<SourcePattern>) -> Self {
        self.scope.from = from;
        self
    }
    /// Run only this command, whatever the client asks for.
    #[must_use]
    pub fn force_command(mut self, command: impl Into<String>) -> Self {
        self.scope.force_command = Some(command.into());
        self
    }
    /// Deploy to these targets.
    #[must_use]
    pub fn deploy(mut self, targets: Vec<TargetSpec>) -> Self {
        self.deploy = targets;
        self
    }
    crate::admission::key_options_setters!(algorithm, comment, unencrypted, passphrase_in_keyring);
}

/// A minted key: its record and its private key file's content (encrypted unless the
/// request was unencrypted), for handing to the script that asked.
pub struct Minted {
    /// The record.
    pub record: KeyRecord,
    /// The OpenSSH private key file, exactly as stored.
    pub private_key: zeroize::Zeroizing<Vec<u8>>,
    /// The user certificate (`…-cert.pub` content), when one was asked for.
    pub certificate: Option<String>,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("record", &self.record)
            .field("private_key", &"[REDACTED]")
            .finish()
    }
}

impl Minted {
    /// Writes the minted private key (mode 0600) and its certificate beside it (if one was
    /// minted and `files` include one) through the safe file path: never over a file.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Incomplete`] when a file cannot be written: the key is recorded and
    /// deployed already (done), the write is pending, and the next step is to revoke the key
    /// and mint again.
    pub fn write_to(&self, files: &crate::minted::MintedFiles) -> Result<()> {
        files
            .write(&self.private_key, self.certificate.as_deref())
            .map_err(|(path, cause)| {
                let key = self.record.id().to_string();
                Incomplete {
                    operation: Operation::Mint { key: key.clone() },
                    cause: cause.into(),
                    done: vec![WorkItem::RecordedAndDeployed {
                        key: key.clone(),
                        targets: self
                            .record
                            .live_targets()
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                    }],
                    pending: vec![WorkItem::Writing { path }],
                    next: NextStep::RevokeThenRetry { key },
                }
                .into()
            })
    }
}

pub(crate) fn check_scope(scope: &crate::inventory::Scope) -> Result<()> {
    if let Some(cmd) = &scope.force_command
        && (cmd.is_empty() || cmd.len() > 1024 || cmd.chars().any(char::is_control))
    {
        return Err(InputError::ForceCommand {
            reason: "it must be one line of at most 1024 characters",
        }
        .into());
    }
    if let Some(cmd) = &scope.force_command
        && !crate::inventory::option_value_representable(cmd)
    {
        // sshd reads `\"` inside command="…" as an escaped quote, so the closing quote
        // after a trailing backslash is never seen and sshd rejects the whole line.
        return Err(InputError::ForceCommand {
            reason: "it ends with a backslash, which sshd would read as escaping the closing quote of command=\"…\"",
        }
        .into());
    }
    Ok(())
}

/// The restrictions of `scope` that only a target keeping `authorized_keys` options
/// enforces, by option name. Principals are not among them: only a certificate carries
/// those, never the deployed line.
fn restrictions(scope: &crate::inventory::Scope) -> Vec<&'static str> {
    let mut names = Vec::new();
    if !scope.from.is_empty() {
        names.push("from");
    }
    if scope.force_command.is_some() {
        names.push("command");
    }
    names
}

/// A CA's record and its unlocked private key.
type UnlockedCa = (KeyRecord, ssh_key::PrivateKey);

impl Vault {
    /// Mints a scoped, short-lived key for a script: generated, recorded with its expiry
    /// and restrictions (never as the purpose's active key), deployed to the requested
    /// targets with `restrict`, `from=`, `command=` and `expiry-time=` options where the
    /// target carries options, and returned with its private key file. `sweep` revokes it
    /// when it expires.
    ///
    /// # Errors
    ///
    /// Policy and input errors before anything is written; [`crate::Error::Incomplete`] when a
    /// target fails after the key was recorded (it names what to run next).
    pub fn mint<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        request: &MintRequest,
        callbacks: &mut dyn Callbacks,
        targets: &dyn Targets,
    ) -> Result<Minted> {
        let purpose = &request.purpose;
        let (admitted, mut opened, ca) = self.admit_mint(request, callbacks, targets)?;
        let subject = format!("minted key for purpose {purpose}");
        let prepared = self.generate_new(rng, &admitted, callbacks, purpose, &subject)?;
        let algorithm = admitted.algorithm();
        let mut txn = self.begin(crate::store::View::Live)?;
        let mut record = self.write_key(&mut txn, rng, prepared, KeyState::Active)?;
        key_mut(&mut txn, record.id())?.scope = Some(request.scope.clone());
        record.scope = Some(request.scope.clone());
        let certificate = match &ca {
            Some(ca) => self.certify_minted(&mut txn, rng, &mut record, ca, request, &admitted)?,
            None => None,
        };
        let detail = mint_detail(request, algorithm, &admitted, &record);
        txn.record([draft("mint", &record, detail)]);
        if let Err(e) = txn.save() {
            // Nothing names the key: its files (and certificate) go with the failed save.
            self.remove_key_files(&record);
            return Err(e);
        }
        self.deploy_minted(&mut txn, &mut opened, &record, request, &admitted)?;
        let record = key(&txn, record.id())?.clone();
        txn.commit()?;
        let private_key = crate::fsutil::read_private(
            &self.private_key_path(&record),
            crate::keyfile::MAX_KEY_FILE_BYTES,
        )?;
        Ok(Minted {
            record,
            private_key,
            certificate,
        })
    }

    /// Everything that can refuse a mint before anything is written: the purpose's policy,
    /// the scope, every target to deploy to, the inventory, and the CA (unlocked) when a
    /// certificate is asked for.
    fn admit_mint<'t>(
        &self,
        request: &MintRequest,
        callbacks: &mut dyn Callbacks,
        targets: &'t dyn Targets,
    ) -> Result<(Admitted, Opened<'t>, Option<UnlockedCa>)> {
        let purpose = &request.purpose;
        let admitted = self.admit_generated(purpose, &request.options)?;
        check_scope(&request.scope)?;
        let mut opened = Opened::new(targets);
        let restrictions = restrictions(&request.scope);
        for spec in &request.deploy {
            let target = opened.get(spec)?;
            if !restrictions.is_empty() && !target.carries_options() {
                return Err(RequestError::ScopeNotCarried {
                    target: spec.to_string(),
                    restrictions,
                }
                .into());
            }
        }
        // Read once: a bad store fails here, and the CA is found in it.
        let inventory = self.store.load(crate::store::View::Live)?;
        let ca = match &request.certificate {
            Some((ca, principals)) => {
                if principals.is_empty() {
                    return Err(RequestError::NoPrincipals.into());
                }
                Some(self.unlock_ca(&inventory, ca, callbacks)?)
            }
            None => None,
        };
        Ok((admitted, opened, ca))
    }

    /// Signs the minted key's user certificate with the unlocked CA, valid from a minute
    /// before the key was made until it expires, writes it beside the key as
    /// `keys/<id>-cert.pub` and records it on the key; returns its text.
    fn certify_minted<R: CryptoRng + ?Sized>(
        &self,
        txn: &mut Txn,
        rng: &mut R,
        record: &mut KeyRecord,
        (ca_record, ca_key): &UnlockedCa,
        request: &MintRequest,
        admitted: &Admitted,
    ) -> Result<Option<String>> {
        let Some((_, principals)) = &request.certificate else {
            return Ok(None);
        };
        let (now, expires_at) = (admitted.created_at(), admitted.expires_at());
        let public = ssh_key::PublicKey::from_openssh(record.public_key()).map_err(|e| {
            crate::error::KeyError::Crypto {
                operation: "parse",
                reason: e.to_string(),
            }
        })?;
        let valid_after =
            u64::try_from((now - chrono::TimeDelta::seconds(60)).timestamp()).unwrap_or(0);
        let valid_before = u64::try_from(expires_at.timestamp()).unwrap_or(0);
        let serial = rng.next_u64();
        let cert = crate::ca::sign_user_certificate(
            rng,
            ca_key,
            &public,
            &crate::ca::CertSpec {
                key_id: record.id().as_str(),
                serial,
                principals,
                valid_after,
                valid_before,
                scope: Some(&request.scope),
            },
        )?;
        let text = cert
            .to_openssh()
            .map_err(|e| crate::error::KeyError::Crypto {
                operation: "encode certificate for",
                reason: e.to_string(),
            })?;
        let relative = format!("keys/{}-cert.pub", record.id());
        crate::fsutil::write_atomic(
            &self.home().join(&relative),
            format!("{text}\n").as_bytes(),
            0o644,
            crate::fsutil::Replace::No,
        )?;
        let info = crate::inventory::CertificateInfo {
            ca: ca_record.id().clone(),
            serial,
            principals: principals.clone(),
            valid_after: chrono::DateTime::from_timestamp(
                i64::try_from(valid_after).unwrap_or(0),
                0,
            )
            .unwrap_or(now),
            valid_before: expires_at,
            path: relative,
        };
        key_mut(txn, record.id())?.certificate = Some(info.clone());
        record.certificate = Some(info);
        Ok(Some(text))
    }

    /// Deploys the recorded minted key to each requested target in turn, saving after each;
    /// the first failure stops with [`Incomplete`] (recorded, not yet deployed there).
    fn deploy_minted(
        &self,
        txn: &mut Txn,
        opened: &mut Opened<'_>,
        record: &KeyRecord,
        request: &MintRequest,
        admitted: &Admitted,
    ) -> Result<()> {
        let hook = self.hook_fn();
        for spec in &request.deploy {
            let name = spec;
            let result = (|| -> Result<()> {
                let target = opened.get(name)?;
                let line = add_key(target.as_ref(), record);
                target.apply(&[line], &HashSet::new(), &hook)?;
                key_mut(txn, record.id())?.mark_deployed(name, self.now());
                txn.record([draft("deploy", record, format!("added to {name}"))]);
                txn.save()
            })();
            if let Err(e) = result {
                return Err(Incomplete {
                    operation: Operation::Mint {
                        key: record.id().to_string(),
                    },
                    cause: self.explain(txn, e),
                    done: vec![WorkItem::Recorded {
                        key: record.id().to_string(),
                        expires: admitted.expires_at().to_rfc3339(),
                    }],
                    pending: vec![WorkItem::Deploying {
                        target: name.to_string(),
                    }],
                    next: NextStep::DeployOrRevoke {
                        key: record.id().to_string(),
                        target: name.to_string(),
                    },
                }
                .into());
            }
        }
        Ok(())
    }
}

/// The audit detail of a mint: algorithm and expiry, then the scope and the certificate.
fn mint_detail(
    request: &MintRequest,
    algorithm: Algorithm,
    admitted: &Admitted,
    record: &KeyRecord,
) -> String {
    let mut detail = vec![format!(
        "scoped {algorithm} key, expires {}",
        admitted.expires_at().to_rfc3339()
    )];
    if !request.scope.from.is_empty() {
        detail.push(format!("from {}", crate::names::join(&request.scope.from)));
    }
    if let Some(c) = &request.scope.force_command {
        detail.push(format!("command {c:?}"));
    }
    if let Some(cert) = record.certificate() {
        detail.push(format!(
            "certificate by {} for {}",
            cert.ca,
            crate::names::join(&cert.principals)
        ));
    }
    detail.join("; ")
}

#[cfg(test)]
mod tests {
    use super::MintRequest;
    use crate::callbacks::FixedPassphrase;
    use crate::error::{Error, Incomplete, NextStep, Operation, TargetError, WorkItem};
    use crate::remote::{AddKey, RemoteKey};
    use crate::store::memory::MemoryStore;
    use crate::target::{Applied, Hook, Target, TargetSpec, Targets};
    use crate::vault::{NewKey, Vault};
    use std::collections::HashSet;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    /// Targets whose key lists are empty and whose writes fail.
    struct Refusing;

    struct RefusingTarget(TargetSpec);

    impl Target for RefusingTarget {
        fn spec(&self) -> &TargetSpec {
            &self.0
        }
        fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError> {
            Ok(Vec::new())
        }
        fn apply(
            &mut self,
            _add: &[AddKey],
            _remove: &HashSet<ssh_key::Fingerprint>,
            _hook: Hook<'_>,
        ) -> Result<Applied, Error> {
            Err(TargetError::Unreachable {
                target: self.0.to_string(),
                reason: "connection refused".to_owned(),
            }
            .into())
        }
        fn atomic_swap(&self) -> bool {
            false
        }
    }

    impl Targets for Refusing {
        fn open(&self, spec: &TargetSpec) -> Result<Box<dyn Target + Send>, Error> {
            Ok(Box::new(RefusingTarget(spec.clone())))
        }
    }

    /// A vault (files in a temporary home, state in memory) with an unencrypted CA `ca-1`;
    /// purposes `ci` and `ca` allow unencrypted keys.
    fn vault_with_ca() -> (tempfile::TempDir, std::path::PathBuf, Vault, MemoryStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = crate::store::memory::home(
            dir.path(),
            "vault",
            "[purpose.ci]\npassphrase = \"optional\"\n[purpose.ca]\npassphrase = \"optional\"\n",
        );
        let store = MemoryStore::default();
        let vault = Vault::open(&home)
            .expect("open")
            .with_store(Arc::new(store.clone()));
        let mut rng = ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng);
        let mut callbacks = FixedPassphrase(crate::Passphrase::new("unused".to_owned()));
        vault
            .ca_init(
                &mut rng,
                &NewKey::new("ca".parse().expect("purpose")).unencrypted(true),
                &mut callbacks,
            )
            .expect("ca");
        (dir, home, vault, store)
    }

    /// The error of a mint recorded but not deployed to `target`.
    fn assert_left(error: Error, id: &str, expires: &str, target: &TargetSpec) {
        let Error::Incomplete(incomplete) = error else {
            panic!("{error:?}");
        };
        let Incomplete {
            operation,
            done,
            pending,
            next,
            ..
        } = *incomplete;
        assert_eq!(operation, Operation::Mint { key: id.to_owned() });
        assert_eq!(
            done,
            [WorkItem::Recorded {
                key: id.to_owned(),
                expires: expires.to_owned()
            }]
        );
        assert_eq!(
            pending,
            [WorkItem::Deploying {
                target: target.to_string()
            }]
        );
        assert_eq!(
            next,
            NextStep::DeployOrRevoke {
                key: id.to_owned(),
                target: target.to_string()
            }
        );
    }

    /// A mint with a scope and a certificate whose target refuses the key: the key and its
    /// certificate are recorded and written, the audit says what was minted, and the error
    /// says what was done and what is left.
    #[test]
    fn a_certified_mint_whose_target_fails_is_recorded_and_says_what_is_left() {
        let (_dir, home, vault, store) = vault_with_ca();
        let mut rng = ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng);
        let mut callbacks = FixedPassphrase(crate::Passphrase::new("unused".to_owned()));
        let target: TargetSpec = "file:/fake/authorized_keys".parse().expect("spec");
        let request = MintRequest::new("ci".parse().expect("purpose"), "1h".parse().expect("ttl"))
            .unencrypted(true)
            .from(vec!["10.0.0.0/8".parse().expect("from")])
            .force_command("uptime")
            .certificate(
                "ca".parse().expect("ca"),
                vec!["deploy".parse().expect("principal")],
            )
            .deploy(vec![target.clone()]);
        let error = vault
            .mint(&mut rng, &request, &mut callbacks, &Refusing)
            .expect_err("the target refuses");
        let saved = store.saved();
        let record = saved
            .state
            .keys()
            .iter()
            .find(|k| k.purpose().as_str() == "ci")
            .expect("recorded");
        let id = record.id().to_string();
        let expires = record.expires_at().expect("expires").to_rfc3339();
        assert_left(error, &id, &expires, &target);
        let mint = saved
            .events
            .iter()
            .find(|e| e.action == "mint")
            .expect("mint event");
        assert_eq!(
            mint.detail,
            format!(
                "scoped {} key, expires {expires}; from 10.0.0.0/8; command \"uptime\"; certificate by ca-1 for deploy",
                record.algorithm()
            )
        );
        assert!(!saved.events.iter().any(|e| e.action == "deploy"));
        let cert = record.certificate().expect("certificate");
        assert_eq!(cert.path, format!("keys/{id}-cert.pub"));
        assert_eq!(cert.valid_before, record.expires_at().expect("expires"));
        assert_eq!(
            cert.valid_after,
            record.created_at() - chrono::TimeDelta::seconds(60)
        );
        let file = home.join(&cert.path);
        let meta = std::fs::metadata(&file).expect("certificate file");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
        let text = std::fs::read_to_string(&file).expect("read");
        let parsed = ssh_key::Certificate::from_openssh(text.trim_end()).expect("parse");
        assert_eq!(parsed.valid_principals(), ["deploy".to_owned()]);
        assert_eq!(parsed.serial(), cert.serial);
    }

    /// A minted key whose file is there already: nothing is written over it, and the error
    /// says the key is recorded (deployed nowhere) and what to do.
    #[test]
    fn a_minted_key_that_cannot_be_written_out_says_what_is_left() {
        let (dir, _home, vault, _store) = vault_with_ca();
        let mut rng = ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng);
        let mut callbacks = FixedPassphrase(crate::Passphrase::new("unused".to_owned()));
        let request = MintRequest::new("ci".parse().expect("purpose"), "1h".parse().expect("ttl"))
            .unencrypted(true);
        let minted = vault
            .mint(&mut rng, &request, &mut callbacks, &Refusing)
            .expect("mint");
        let out = dir.path().join("id_ci");
        std::fs::write(&out, "someone's file\n").expect("write");
        let files = crate::minted::MintedFiles::new(&out, false);
        let Err(Error::Incomplete(incomplete)) = minted.write_to(&files) else {
            panic!("written over a file");
        };
        let key = minted.record.id().to_string();
        assert_eq!(incomplete.operation, Operation::Mint { key: key.clone() });
        assert_eq!(
            incomplete.done,
            [WorkItem::RecordedAndDeployed {
                key: key.clone(),
                targets: Vec::new()
            }]
        );
        assert_eq!(
            incomplete.pending,
            [WorkItem::Writing { path: out.clone() }]
        );
        assert_eq!(incomplete.next, NextStep::RevokeThenRetry { key });
        assert_eq!(
            std::fs::read_to_string(&out).expect("read"),
            "someone's file\n"
        );
    }
}
