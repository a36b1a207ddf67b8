//! SSH certificates: a passphrase-protected certificate authority kept in the vault,
//! trusted in `authorized_keys` targets as `cert-authority,principals="…"`, signing
//! short-lived user certificates for minted keys.

use crate::audit::{Draft, Outcome};
use crate::callbacks::Callbacks;
use crate::error::{Error, RequestError, Result, StoreError};
use crate::inventory::{KeyRecord, KeyState};
use crate::names::{KeySelector, Principal};
use crate::report::Report;
use crate::target::{TargetSpec, Targets};
use crate::vault::{NewKey, Vault};
use ssh_key::rand_core::CryptoRng;
use std::collections::HashSet;

impl Vault {
    /// Creates a passphrase-protected certificate authority: a key of the request's purpose
    /// (usually `ca`) marked as a CA. It signs certificates (`mint --cert`) and is trusted
    /// with [`Vault::ca_trust`].
    ///
    /// # Errors
    ///
    /// As [`Vault::create`].
    pub fn ca_init<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        request: &NewKey,
        callbacks: &mut dyn Callbacks,
    ) -> Result<KeyRecord> {
        let record = self.create(rng, request, callbacks)?;
        let mut txn = self.begin(crate::store::View::Live)?;
        let Some(entry) = txn.get_mut(record.id()) else {
            return Err(StoreError::NotFound {
                selector: record.id().to_string(),
            }
            .into());
        };
        entry.cert_authority = Some(Vec::new());
        let updated = entry.clone();
        txn.record([Draft {
            action: "ca-init",
            key_id: Some(updated.id().to_string()),
            fingerprint: Some(updated.fingerprint().to_string()),
            outcome: Outcome::Ok,
            detail: Some("certificate authority".to_owned()),
        }]);
        txn.commit()?;
        Ok(updated)
    }

    /// Trusts the CA `ca` at an `authorized_keys` target for `principals`, as a
    /// `cert-authority,principals="…"` line (with `expiry-time=` when the CA expires).
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; [`RequestError::NotCertificateAuthority`] when the key is not a
    /// live CA, [`RequestError::NoOptions`] when the target cannot hold options (RunPod);
    /// target errors.
    pub fn ca_trust(
        &self,
        ca: &KeySelector,
        principals: Vec<Principal>,
        spec: &TargetSpec,
        targets: &dyn Targets,
    ) -> Result<Report> {
        if spec.is_account() {
            return Err(RequestError::NoOptions {
                target: spec.to_string(),
            }
            .into());
        }
        let mut txn = self.begin(crate::store::View::Live)?;
        let record = self.find_in(&mut txn, ca)?;
        if record.cert_authority().is_none()
            || record.state() == KeyState::Revoked
            || record.is_expired_at(self.now())
        {
            return Err(RequestError::NotCertificateAuthority {
                id: record.id().to_string(),
                trusting: true,
            }
            .into());
        }
        let name = spec;
        let mut target = targets.open(spec)?;
        let mut trusted = record.clone();
        trusted.cert_authority = Some(principals.clone());
        let line = target.line(&trusted);
        let hook = |point: &str| self.hook(point);
        target.apply(
            &[crate::remote::AddKey {
                fingerprint: record.fingerprint().to_owned(),
                line,
            }],
            &HashSet::new(),
            &hook,
        )?;
        let now = self.now();
        if let Some(entry) = txn.get_mut(record.id()) {
            entry.cert_authority = Some(principals.clone());
            entry.mark_deployed(name, now);
        }
        txn.record([Draft {
            action: "ca-trust",
            key_id: Some(record.id().to_string()),
            fingerprint: Some(record.fingerprint().to_string()),
            outcome: Outcome::Ok,
            detail: Some(format!(
                "trusted at {name} for {}",
                if principals.is_empty() {
                    "any principal".to_owned()
                } else {
                    crate::names::join(&principals)
                }
            )),
        }]);
        txn.commit()?;
        Ok(Report::deployed_once(record.id().clone(), name.clone()))
    }

    /// The CA named `ca` in `inventory` (the live view the caller read), decrypted with a
    /// passphrase from `callbacks`.
    pub(crate) fn unlock_ca(
        &self,
        inventory: &crate::inventory::Inventory,
        ca: &KeySelector,
        callbacks: &mut dyn Callbacks,
    ) -> Result<(KeyRecord, ssh_key::PrivateKey)> {
        let record = self.find_record(inventory, ca)?;
        if record.cert_authority().is_none()
            || record.state() == KeyState::Revoked
            || record.is_expired_at(self.now())
        {
            return Err(RequestError::NotCertificateAuthority {
                id: record.id().to_string(),
                trusting: false,
            }
            .into());
        }
        let subject = format!("certificate authority {}", record.id());
        let plain = self.unlock(
            &record,
            callbacks,
            &subject,
            crate::callbacks::PassphraseKind::Existing,
        )?;
        Ok((record, plain))
    }
}

/// What goes into a user certificate.
pub(crate) struct CertSpec<'a> {
    pub key_id: &'a str,
    pub serial: u64,
    pub principals: &'a [Principal],
    pub valid_after: u64,
    pub valid_before: u64,
    pub scope: Option<&'a crate::inventory::Scope>,
}

/// Signs a user certificate for `public` with `ca`: principals, validity window,
/// `force-command` / `source-address` critical options from the key's scope, and the usual
/// extensions.
pub(crate) fn sign_user_certificate<R: CryptoRng + ?Sized>(
    rng: &mut R,
    ca: &ssh_key::PrivateKey,
    public: &ssh_key::PublicKey,
    spec: &CertSpec<'_>,
) -> Result<ssh_key::Certificate> {
    let crypto = |e: ssh_key::Error| -> Error {
        crate::error::KeyError::Crypto {
            operation: "sign certificate for",
            reason: e.to_string(),
        }
        .into()
    };
    let mut nonce = vec![0u8; 32];
    rng.fill_bytes(&mut nonce);
    let mut builder = ssh_key::certificate::Builder::new(
        nonce,
        public.key_data().clone(),
        spec.valid_after,
        spec.valid_before,
    )
    .map_err(crypto)?;
    builder.serial(spec.serial).map_err(crypto)?;
    builder.key_id(spec.key_id).map_err(crypto)?;
    builder
        .cert_type(ssh_key::certificate::CertType::User)
        .map_err(crypto)?;
    for p in spec.principals {
        builder.valid_principal(p.as_str()).map_err(crypto)?;
    }
    if let Some(scope) = spec.scope {
        if let Some(cmd) = &scope.force_command {
            builder
                .critical_option("force-command", cmd.clone())
                .map_err(crypto)?;
        }
        if !scope.from.is_empty() {
            builder
                .critical_option("source-address", crate::names::join(&scope.from))
                .map_err(crypto)?;
        }
    }
    for ext in [
        "permit-X11-forwarding",
        "permit-agent-forwarding",
        "permit-port-forwarding",
        "permit-pty",
        "permit-user-rc",
    ] {
        builder.extension(ext, "").map_err(crypto)?;
    }
    builder.comment(spec.key_id).map_err(crypto)?;
    builder.sign(ca).map_err(crypto)
}
