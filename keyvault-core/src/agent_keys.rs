//! Loading a vault key into the user's own ssh-agent (for a lifetime, optionally with
//! confirmation) and taking it out again.

use crate::audit::{Draft, Outcome};
use crate::callbacks::{Callbacks, PassphraseKind};
use crate::error::KeyError;
use crate::error::{RequestError, Result};
use crate::inventory::{KeyRecord, KeyState};
use crate::names::KeySelector;
use crate::span::Span;
use crate::vault::Vault;
use std::path::Path;

impl Vault {
    /// Loads a key into the ssh-agent at `socket`: decrypted with the passphrase from
    /// `callbacks`, sent over the agent's socket only, for at most `lifetime` and never
    /// beyond the key's expiry (default: the shorter of the remaining validity and 8 hours),
    /// with `confirm` asking before each use. Returns the record and the lifetime set, in
    /// seconds. Revoked and expired keys are refused.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; [`RequestError::NotForAgent`] for revoked or expired keys;
    /// [`KeyError::Decrypt`]; errors from the agent.
    pub fn agent_add(
        &self,
        selector: &KeySelector,
        socket: &Path,
        lifetime: Option<Span>,
        confirm: bool,
        callbacks: &mut dyn Callbacks,
    ) -> Result<(KeyRecord, u32)> {
        let inventory = self.store.load(crate::store::View::Live)?;
        let record = self.find_record(&inventory, selector)?;
        let now = self.now();
        if record.state() == KeyState::Revoked || record.is_expired_at(now) {
            return Err(RequestError::NotForAgent {
                id: record.id().to_string(),
                state: record.display_state_at(now),
            }
            .into());
        }
        let wanted = lifetime.map_or(8 * 3600, Span::as_secs);
        let remaining = record.expires_at().map_or(u64::MAX, |at| {
            u64::try_from((at - now).num_seconds()).unwrap_or(0)
        });
        let secs = u32::try_from(wanted.min(remaining).max(1)).unwrap_or(u32::MAX);
        let subject = format!("key {}", record.id());
        let plain = self.unlock(&record, callbacks, &subject, PassphraseKind::Existing)?;
        crate::agent::add_identity_with(socket, &plain, Some(secs), confirm)?;
        let mut txn = self.begin(crate::store::View::Live)?;
        let detail = format!(
            "loaded into ssh-agent for {}{}",
            Span::from_secs(u64::from(secs)),
            if confirm { ", confirm each use" } else { "" }
        );
        txn.record([Draft {
            action: "agent-add",
            key_id: Some(record.id().to_string()),
            fingerprint: Some(record.fingerprint().to_string()),
            outcome: Outcome::Ok,
            detail: Some(detail),
        }]);
        txn.commit()?;
        Ok((record, secs))
    }

    /// Removes a key from the ssh-agent at `socket`.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; errors from the agent (e.g. it does not hold the key).
    pub fn agent_remove(&self, selector: &KeySelector, socket: &Path) -> Result<KeyRecord> {
        let inventory = self.store.load(crate::store::View::Live)?;
        let record = self.find_record(&inventory, selector)?;
        let public = ssh_key::PublicKey::from_openssh(record.public_key()).map_err(|e| {
            KeyError::Crypto {
                operation: "parse",
                reason: e.to_string(),
            }
        })?;
        crate::agent::remove_identity(socket, &public)?;
        Ok(record)
    }
}
