//! The RunPod account's key list as a target.

use super::{Applied, Hook, Target, TargetSpec};
use crate::error::{Error, TargetError};
use crate::remote::{self, AddKey, RemoteKey};
use crate::runpod::{Pod, RunpodClient};
use std::collections::HashSet;

/// A RunPod account's key list.
#[derive(Debug)]
pub struct RunpodTarget {
    spec: TargetSpec,
    client: RunpodClient,
}

impl RunpodTarget {
    /// The account `client` talks to, named `spec`.
    #[must_use]
    pub fn new(spec: TargetSpec, client: RunpodClient) -> Self {
        RunpodTarget { spec, client }
    }

    /// The client (e.g. to count requests).
    #[must_use]
    pub fn client(&self) -> &RunpodClient {
        &self.client
    }

    fn err(&self, source: crate::runpod::RunpodError) -> TargetError {
        TargetError::Runpod {
            target: self.spec.to_string(),
            source,
        }
    }

    fn read(&self) -> Result<Vec<RemoteKey>, TargetError> {
        self.client
            .get_keys()
            .map(|k| remote::parse_list(&k))
            .map_err(|e| self.err(e))
    }

    /// Reads the list back after a write: every added key is there, no removed one is.
    fn verify_written(
        &self,
        name: &str,
        add: &[AddKey],
        remove: &HashSet<ssh_key::Fingerprint>,
    ) -> Result<Applied, Error> {
        let after = self.read()?;
        let present = remote::fingerprints(&after);
        let added = add
            .iter()
            .map(|a| &a.fingerprint)
            .filter(|f| !remove.contains(*f));
        super::check_written(name, &present, added, remove, (&[], ""))?;
        Ok(Applied {
            wrote: true,
            present,
        })
    }
}

/// Refuses a write that would take the list over RunPod's size limit, unless the list is
/// already over it and the write makes it no longer.
fn check_list_size(name: &str, current: &[RemoteKey], desired: &[String]) -> Result<(), Error> {
    let len = remote::encoded_len(desired);
    if len > remote::RUNPOD_LIST_LIMIT
        && len
            > remote::encoded_len(
                &current
                    .iter()
                    .map(|k| k.raw().to_owned())
                    .collect::<Vec<_>>(),
            )
    {
        return Err(TargetError::ListTooLong {
            target: name.to_owned(),
            len,
            limit: remote::RUNPOD_LIST_LIMIT,
            sweepable: None,
        }
        .into());
    }
    Ok(())
}

impl Target for RunpodTarget {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError> {
        self.read()
    }

    fn atomic_swap(&self) -> bool {
        true
    }

    fn carries_options(&self) -> bool {
        false
    }

    fn pods(&mut self) -> Result<Option<Vec<Pod>>, TargetError> {
        self.client.list_pods().map(Some).map_err(|e| self.err(e))
    }

    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<ssh_key::Fingerprint>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error> {
        let name = self.spec.to_string();
        let mut last = None;
        // A write whose outcome is unknown is never replayed blindly: read, recompute, and
        // only then write again.
        for _ in 0..3 {
            let current = self.read()?;
            let desired = remote::merge(&current, add, remove);
            let unchanged = desired.len() == current.len()
                && desired.iter().zip(&current).all(|(d, c)| d == c.raw());
            if unchanged {
                return Ok(Applied {
                    wrote: false,
                    present: remote::fingerprints(&current),
                });
            }
            check_list_size(&name, &current, &desired)?;
            hook(&format!("write:{name}"))?;
            match self.client.put_keys(&desired) {
                Ok(_) => {
                    hook(&format!("written:{name}"))?;
                    // Verify from a fresh read: the write's echo cannot show a concurrent writer.
                    return self.verify_written(&name, add, remove);
                }
                Err(e) if e.outcome_unknown() => last = Some(e),
                Err(e) => return Err(self.err(e).into()),
            }
        }
        Err(self
            .err(last.unwrap_or(crate::runpod::RunpodError::Malformed {
                what: "write",
                reason: "no attempt made".to_owned(),
            }))
            .into())
    }
}
