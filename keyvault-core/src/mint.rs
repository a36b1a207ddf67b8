//! Minting short-lived, scoped keys for automation.

use crate::admission::{Expiry, KeyOptions};
use crate::callbacks::{Callbacks, Progress};
use crate::error::{Incomplete, InputError, NextStep, Operation, RequestError, Result, WorkItem};
use crate::inventory::{KeyRecord, KeyState, Origin, Purpose};
use crate::keygen;
use crate::names::{KeySelector, Principal, SourcePattern};
use crate::run::{Opened, add_key, draft, key, key_mut};
use crate::span::Span;
use crate::target::{TargetSpec, Targets};
use crate::vault::{Prepared, Vault};
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
        let admitted = self.config.policy(purpose).admit(
            purpose,
            &request.options,
            Origin::Generated,
            self.now(),
        )?;
        check_scope(&request.scope)?;
        let mut opened = Opened::new(targets);
        for spec in &request.deploy {
            opened.get(spec)?;
        }
        self.store.load()?;
        let ca = match &request.certificate {
            Some((ca, principals)) => {
                if principals.is_empty() {
                    return Err(RequestError::NoPrincipals.into());
                }
                Some(self.unlock_ca(ca, callbacks)?)
            }
            None => None,
        };
        let subject = format!("minted key for purpose {purpose}");
        let protection = self.protect(
            rng,
            &admitted,
            callbacks,
            purpose,
            &subject,
            admitted.comment(),
        )?;
        let algorithm = admitted.algorithm();
        callbacks.progress(Progress::Generating(algorithm));
        let generated = keygen::generate(rng, algorithm, "");
        callbacks.progress(Progress::Done);
        let mut txn = self.begin()?;
        let (now, expires_at) = (admitted.created_at(), admitted.expires_at());
        let mut record = self.write_key(
            &mut txn,
            rng,
            Prepared::new(
                generated?,
                purpose,
                &admitted,
                protection,
                Origin::Generated,
                String::new(),
            ),
            KeyState::Active,
        )?;
        key_mut(&mut txn, record.id())?.scope = Some(request.scope.clone());
        record.scope = Some(request.scope.clone());
        let mut certificate = None;
        if let (Some((ca_record, ca_key)), Some((_, principals))) = (&ca, &request.certificate) {
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
            key_mut(&mut txn, record.id())?.certificate = Some(info.clone());
            record.certificate = Some(info);
            certificate = Some(text);
        }
        let mut detail = vec![format!(
            "scoped {algorithm} key, expires {}",
            expires_at.to_rfc3339()
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
        txn.record([draft("mint", &record, detail.join("; "))]);
        txn.save()?;
        let hook = self.hook_fn();
        for spec in &request.deploy {
            let name = spec;
            let result = (|| -> Result<()> {
                let target = opened.get(name)?;
                let line = add_key(target.as_ref(), &record);
                target.apply(&[line], &HashSet::new(), &hook)?;
                key_mut(&mut txn, record.id())?.mark_deployed(name, self.now());
                txn.record([draft("deploy", &record, format!("added to {name}"))]);
                txn.save()
            })();
            if let Err(e) = result {
                return Err(Incomplete {
                    operation: Operation::Mint {
                        key: record.id().to_string(),
                    },
                    cause: self.explain(&txn, e),
                    done: vec![WorkItem::Recorded {
                        key: record.id().to_string(),
                        expires: expires_at.to_rfc3339(),
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
}
