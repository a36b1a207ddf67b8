//! Deploying a key to targets.

use crate::error::{RequestError, Result};
use crate::inventory::{Inventory, KeyRecord, KeyState};
use crate::names::KeySelector;
use crate::report::Report;
use crate::run::{Opened, add_key, draft, key_mut};
use crate::store::Txn;
use crate::target::{TargetSpec, Targets};
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

impl Vault {
    /// Trusts a key at a target: adds it (idempotent), verifies, records the deployment.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; [`RequestError::NotDeployable`] for revoked or expired keys,
    /// [`RequestError::InRotation`] for keys in a rotation; target errors.
    pub fn deploy(
        &self,
        selector: &KeySelector,
        spec: &TargetSpec,
        targets: &dyn Targets,
    ) -> Result<Report> {
        let (mut txn, record, now) = self.begin_deploy(selector)?;
        let mut opened = Opened::new(targets);
        let name = spec;
        let target = opened.get(name)?;
        let line = add_key(target.as_ref(), &record);
        let applied = target
            .apply(&[line], &HashSet::new(), &self.hook_fn())
            .map_err(|e| self.explain(&txn, e))?;
        key_mut(&mut txn, record.id())?.mark_deployed(name, now);
        let detail = if applied.wrote {
            format!("added to {name}")
        } else {
            format!("already at {name}; verified")
        };
        txn.record([draft("deploy", &record, detail)]);
        txn.commit()?;
        Ok(Report::deployed_once(record.id().clone(), name.clone()))
    }

    /// The first steps of every deploy: begins the transaction, finds the key, and checks
    /// that it may be deployed now (not revoked or expired, not in a rotation).
    pub(crate) fn begin_deploy(
        &self,
        selector: &KeySelector,
    ) -> Result<(Txn, KeyRecord, DateTime<Utc>)> {
        self.begin_deploy_in(selector, crate::store::View::Live)
    }

    /// As [`Vault::begin_deploy`], loading `view`.
    pub(crate) fn begin_deploy_in(
        &self,
        selector: &KeySelector,
        view: crate::store::View,
    ) -> Result<(Txn, KeyRecord, DateTime<Utc>)> {
        let mut txn = self.begin(view)?;
        let record = self.find_in(&mut txn, selector)?;
        let now = self.now();
        self.check_deployable(&txn, &record, now)?;
        Ok((txn, record, now))
    }

    fn check_deployable(
        &self,
        inventory: &Inventory,
        record: &KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if record.state() == KeyState::Revoked || record.is_expired_at(now) {
            return Err(RequestError::NotDeployable {
                id: record.id().to_string(),
                state: record.display_state_at(now),
            }
            .into());
        }
        self.check_not_rotating(inventory, record)
    }
}
