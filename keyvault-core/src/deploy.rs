//! Deploying a key to targets.

use crate::error::{InputError, Result};
use crate::inventory::{Inventory, KeyRecord, KeyState};
use crate::names::KeySelector;
use crate::report::{Deployed, Report};
use crate::run::{Opened, add_key, draft, key_mut};
use crate::target::{TargetSpec, Targets};
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

impl Vault {
    /// Trusts a key at a target: adds it (idempotent), verifies, records the deployment.
    ///
    /// # Errors
    ///
    /// As [`Vault::find`]; [`InputError::Request`] for revoked or expired keys and keys
    /// in a rotation; target errors.
    pub fn deploy(
        &self,
        selector: &KeySelector,
        spec: &TargetSpec,
        targets: &dyn Targets,
    ) -> Result<Report> {
        let _lock = self.lock()?;
        let mut inventory = self.store.load()?;
        let record = self.find(&inventory, selector)?.clone();
        let now = self.now();
        self.check_deployable(&inventory, &record, now)?;
        let mut opened = Opened::new(targets);
        let name = spec;
        let target = opened.get(name)?;
        let line = add_key(target.as_ref(), &record);
        let applied = target
            .apply(&[line], &HashSet::new(), &self.hook_fn())
            .map_err(|e| self.explain(&inventory, e))?;
        key_mut(&mut inventory, record.id())?.mark_deployed(name, now);
        let detail = if applied.wrote {
            format!("added to {name}")
        } else {
            format!("already at {name}; verified")
        };
        self.record(&mut inventory, &[draft("deploy", &record, detail)])?;
        Ok(Report {
            deployed: vec![Deployed {
                key: record.id().clone(),
                target: name.clone(),
            }],
            ..Report::default()
        })
    }

    pub(crate) fn check_deployable(
        &self,
        inventory: &Inventory,
        record: &KeyRecord,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if record.state() == KeyState::Revoked || record.is_expired_at(now) {
            return Err(InputError::Request {
                message: format!(
                    "key {} is {}; deploy a live key",
                    record.id(),
                    record.display_state_at(now)
                ),
            }
            .into());
        }
        self.check_not_rotating(inventory, record)
    }
}
