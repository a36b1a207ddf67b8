//! Looking at targets without changing them: drift for `status`, the account's keys, and
//! which pods trust which keys.

use crate::error::{Error, Result};
use crate::inventory::{Inventory, KeyId, KeyRecord, Purpose, Step};
use crate::remote::RemoteKey;
use crate::runpod::Pod;
use crate::status::{Finding, FindingKind, Remedy, Severity, TargetSummary, Unchecked};
use crate::target::{TargetSpec, Targets};
use crate::vault::Vault;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// How a remote key relates to the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyMatch {
    /// The key's id, if keyvault manages it.
    pub id: Option<KeyId>,
    /// Its purpose.
    pub purpose: Option<Purpose>,
    /// `active`, `pending`, `retiring`, `revoked`, `expired`; `unmanaged` for keys keyvault
    /// does not know; `unparseable` for lines that are not keys.
    pub state: String,
    /// Its fingerprint.
    #[serde(serialize_with = "crate::names::fingerprint_text::option::serialize")]
    pub fingerprint: Option<ssh_key::Fingerprint>,
    /// The comment on the remote line.
    pub comment: String,
}

/// How to reach a pod over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reach {
    /// `ssh root@host -p port`: full SSH, keys can be updated in place.
    Direct {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// User.
        username: String,
    },
    /// RunPod's proxy only: an interactive shell; changing its keys needs a redeploy.
    ProxyOnly,
    /// Not reachable over SSH now.
    None,
}

/// One pod and the keys it trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodReport {
    /// Pod id.
    pub id: String,
    /// Pod name.
    pub name: String,
    /// Pod status.
    pub status: String,
    /// How to reach it.
    pub reach: Reach,
    /// The keys it trusts: those in its `PUBLIC_KEY`, less those keyvault removed over
    /// SSH, plus those keyvault added over SSH.
    pub keys: Vec<KeyMatch>,
    /// The keys it trusts again whenever it (re)starts: those in its `PUBLIC_KEY`, which a
    /// restart reuses whatever keyvault changed over SSH.
    pub after_restart: Vec<KeyMatch>,
    /// What is wrong, for a pod that is not terminated: old keys it trusts now (running), or
    /// again after a restart (running), once it runs (starting) or when it starts (stopped,
    /// in error).
    pub warnings: Vec<String>,
    /// The severity of each of `warnings`, in order: that of the `status` finding it
    /// belongs to (high for a running pod that trusts a revoked or expired key, or a
    /// starting one about to; medium otherwise, as a restart bringing a key back is).
    #[serde(skip)]
    pub severities: Vec<Severity>,
}

fn classify(inventory: &Inventory, now: DateTime<Utc>, remote: &RemoteKey) -> KeyMatch {
    let Some(fp) = remote.fingerprint() else {
        return KeyMatch {
            id: None,
            purpose: None,
            state: "unparseable".to_owned(),
            fingerprint: None,
            comment: String::new(),
        };
    };
    match inventory.keys().iter().find(|k| k.fingerprint() == fp) {
        Some(k) => KeyMatch {
            id: Some(k.id().clone()),
            purpose: Some(k.purpose().clone()),
            state: k.display_state_at(now).to_owned(),
            fingerprint: Some(*fp),
            comment: remote.comment().to_owned(),
        },
        None => KeyMatch {
            id: None,
            purpose: None,
            state: "unmanaged".to_owned(),
            fingerprint: Some(*fp),
            comment: remote.comment().to_owned(),
        },
    }
}

/// Whether keyvault changed what `record` means to this pod over SSH: added it (`Some(true)`)
/// or removed it (`Some(false)`). A pod's `PUBLIC_KEY` never reflects such edits.
fn edited_over_ssh(record: &KeyRecord, pod: &Pod) -> Option<bool> {
    let here: Vec<&crate::inventory::Deployment> = record
        .deployments()
        .iter()
        .filter(|d| d.target().pod_id() == Some(pod.id.as_str()))
        .collect();
    if here.iter().any(|d| d.removed_at().is_none()) {
        Some(true)
    } else if here.is_empty() {
        None
    } else {
        Some(false)
    }
}

pub(crate) fn pod_report(inventory: &Inventory, now: DateTime<Utc>, pod: &Pod) -> PodReport {
    let keys = trusted_keys(inventory, now, pod);
    let after_restart: Vec<KeyMatch> = pod
        .public_keys()
        .iter()
        .map(|k| classify(inventory, now, k))
        .collect();
    let reach = reach_of(pod);
    let mut warnings = if pod.is_running() {
        pod_warnings(inventory, pod, &keys, &reach)
    } else {
        Vec::new()
    };
    let mut severities = vec![running_severity(&keys); warnings.len()];
    for k in latent_old_keys(pod, &keys, &after_restart) {
        let id = k.id.as_ref().map_or("", KeyId::as_str);
        severities.push(latent_severity(pod, &[k]));
        warnings.push(if pod.is_running() {
            format!(
                "trusts {} key {id} again after a restart: its PUBLIC_KEY holds it; redeploy the pod",
                k.state
            )
        } else if pod.is_starting() {
            format!(
                "{}: will trust {} key {id} once it runs: its PUBLIC_KEY holds it; redeploy \
                 or terminate the pod",
                status_word(&pod.status),
                k.state
            )
        } else {
            format!(
                "{}: trusts {} key {id} again when it starts: its PUBLIC_KEY holds it; redeploy \
                 or terminate the pod",
                status_word(&pod.status),
                k.state
            )
        });
    }
    for k in kept_old_keys(pod, &keys, &after_restart) {
        severities.push(Severity::Medium);
        warnings.push(format!(
            "{}: may trust {} key {} when it starts: keyvault added it over SSH and could not \
             remove it; redeploy or terminate the pod",
            status_word(&pod.status),
            k.state,
            k.id.as_ref().map_or("", KeyId::as_str)
        ));
    }
    PodReport {
        id: pod.id.clone(),
        name: pod.name.clone(),
        status: pod.status.clone(),
        reach,
        keys,
        after_restart,
        warnings,
        severities,
    }
}

/// How urgent it is that a running pod trusts `keys`: high if one is revoked or expired,
/// medium if they are retiring (or it only lacks its purpose's active key).
fn running_severity(keys: &[KeyMatch]) -> Severity {
    if keys.iter().any(|k| is_old(k) && k.state != "retiring") {
        Severity::High
    } else {
        Severity::Medium
    }
}

/// How urgent it is that a pod trusts the old keys `latent` again when it (re)starts:
/// medium (a restart brings them back), but high for a starting pod about to trust a
/// revoked or expired one, as urgent as a running pod that does.
fn latent_severity(pod: &Pod, latent: &[&KeyMatch]) -> Severity {
    if pod.is_starting() && latent.iter().any(|k| k.state != "retiring") {
        Severity::High
    } else {
        Severity::Medium
    }
}

/// Whether a key's state makes it one a pod should no longer trust.
fn is_old(k: &KeyMatch) -> bool {
    k.id.is_some() && matches!(k.state.as_str(), "retiring" | "revoked" | "expired")
}

/// The retiring, revoked or expired keys a pod that is not terminated does not trust now
/// but trusts again when it (re)starts, from its `PUBLIC_KEY`: for a running pod those
/// keyvault removed over SSH (a restart undoes that), for any other every such key there.
fn latent_old_keys<'a>(
    pod: &Pod,
    keys: &[KeyMatch],
    after_restart: &'a [KeyMatch],
) -> Vec<&'a KeyMatch> {
    if pod.is_terminated() {
        return Vec::new();
    }
    after_restart
        .iter()
        .filter(|k| is_old(k))
        .filter(|k| !pod.is_running() || !keys.iter().any(|t| t.id == k.id))
        .collect()
}

/// The retiring, revoked or expired keys keyvault added over SSH to a pod that does not
/// run but is not terminated, and that its `PUBLIC_KEY` lacks: keyvault cannot remove them
/// while the pod does not run, and it may still trust them when it starts (RunPod does not
/// say whether a stopped pod keeps its `~/.ssh/authorized_keys`).
fn kept_old_keys<'a>(
    pod: &Pod,
    keys: &'a [KeyMatch],
    after_restart: &[KeyMatch],
) -> Vec<&'a KeyMatch> {
    if pod.is_running() || pod.is_terminated() {
        return Vec::new();
    }
    keys.iter()
        .filter(|k| is_old(k))
        .filter(|k| !after_restart.iter().any(|a| a.id == k.id))
        .collect()
}

/// A pod's status as words for a message: the API's status when it is one word of capital
/// letters, as RunPod's are.
pub(crate) fn status_word(status: &str) -> &str {
    let word = !status.is_empty()
        && status.len() <= 32
        && status.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
    if word { status } else { "not running" }
}

/// The keys a pod trusts: its `PUBLIC_KEY` less what keyvault removed over SSH, plus what
/// keyvault added over SSH.
fn trusted_keys(inventory: &Inventory, now: DateTime<Utc>, pod: &Pod) -> Vec<KeyMatch> {
    let mut keys: Vec<KeyMatch> = pod
        .public_keys()
        .iter()
        .map(|k| classify(inventory, now, k))
        // Keys keyvault removed from the pod over SSH are no longer trusted there.
        .filter(|m| {
            m.id.as_ref()
                .and_then(|id| inventory.get(id))
                .and_then(|r| edited_over_ssh(r, pod))
                != Some(false)
        })
        .collect();
    // Keys keyvault added to the pod over SSH are trusted there although PUBLIC_KEY lacks them.
    for record in inventory
        .keys()
        .iter()
        .filter(|r| edited_over_ssh(r, pod) == Some(true))
    {
        if !keys.iter().any(|k| k.id.as_ref() == Some(record.id())) {
            keys.push(KeyMatch {
                id: Some(record.id().clone()),
                purpose: Some(record.purpose().clone()),
                state: record.display_state_at(now).to_owned(),
                fingerprint: Some(record.fingerprint().to_owned()),
                comment: "added over SSH by keyvault".to_owned(),
            });
        }
    }
    keys
}

/// How a pod can be reached over SSH.
fn reach_of(pod: &Pod) -> Reach {
    let ssh = pod.ssh.clone().unwrap_or_default();
    match (&ssh.direct, &ssh.proxy) {
        (Some(d), _) => Reach::Direct {
            host: d.host.clone(),
            port: d.port,
            username: d.username.clone(),
        },
        (None, Some(_)) => Reach::ProxyOnly,
        (None, None) => Reach::None,
    }
}

/// What is wrong with a running pod's keys, and then how to change them.
fn pod_warnings(inventory: &Inventory, pod: &Pod, keys: &[KeyMatch], reach: &Reach) -> Vec<String> {
    let mut warnings = Vec::new();
    for k in keys {
        if let (Some(id), "retiring" | "revoked" | "expired") = (&k.id, k.state.as_str()) {
            warnings.push(format!("trusts {} key {id}", k.state));
        }
    }
    let purposes: BTreeSet<&Purpose> = keys.iter().filter_map(|k| k.purpose.as_ref()).collect();
    for p in purposes {
        if let Some(active) = inventory.active(p)
            && !keys.iter().any(|k| k.id.as_ref() == Some(active.id()))
        {
            warnings.push(format!(
                "does not trust {}, the active key of {p}",
                active.id()
            ));
        }
    }
    if !warnings.is_empty() {
        warnings.push(match reach {
            // An endpoint keyvault would refuse to log in to is never offered as advice.
            Reach::Direct {
                host,
                port,
                username,
            } if endpoint_accepted(&pod.id, username, host, *port) => {
                format!(
                    "reachable at {username}@{host} -p {port}: update its ~/.ssh/authorized_keys"
                )
            }
            Reach::Direct { .. } => {
                "its SSH endpoint is not one keyvault accepts: redeploy the pod to change its keys"
                    .to_owned()
            }
            Reach::ProxyOnly => "proxy-only: redeploy the pod to change its keys".to_owned(),
            Reach::None => "not reachable over SSH: redeploy the pod to change its keys".to_owned(),
        });
    }
    warnings
}

impl Vault {
    /// Every entry of a target's key list, matched against the inventory.
    ///
    /// # Errors
    ///
    /// Target errors.
    pub fn remote_keys(&self, spec: &TargetSpec, targets: &dyn Targets) -> Result<Vec<KeyMatch>> {
        let inventory = self.store.load(crate::store::View::All)?;
        let now = self.now();
        let list = targets.open(spec)?.list()?;
        Ok(list.iter().map(|k| classify(&inventory, now, k)).collect())
    }

    /// The pods of a RunPod target and the keys each trusts (from its `PUBLIC_KEY`, which
    /// account changes never update), with warnings for running pods that trust retiring,
    /// revoked or expired keys or lack their purpose's active key, and for pods that are not
    /// terminated whose `PUBLIC_KEY` holds such keys they trust again when they (re)start.
    ///
    /// # Errors
    ///
    /// Target errors; [`crate::RequestError::NoPods`] for a target without pods.
    pub fn pods_report(&self, spec: &TargetSpec, targets: &dyn Targets) -> Result<Vec<PodReport>> {
        let inventory = self.store.load(crate::store::View::All)?;
        let now = self.now();
        let pods = targets.open(spec)?.pods()?.ok_or_else(|| {
            Error::from(crate::error::RequestError::NoPods {
                target: spec.to_string(),
            })
        })?;
        Ok(pods
            .iter()
            .map(|p| pod_report(&inventory, now, p))
            .collect())
    }

    pub(crate) fn journal_findings(
        &self,
        inventory: &Inventory,
        now: DateTime<Utc>,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        for e in inventory.journal() {
            if e.step() < Step::Promoted {
                out.push(Finding {
                    severity: Severity::High,
                    kind: FindingKind::Interrupted,
                    key_id: Some(e.new_key().clone()),
                    message: format!(
                        "the rotation of {} to {} stopped before it finished ({:?})",
                        e.purpose(),
                        e.new_key(),
                        e.step()
                    )
                    .to_lowercase(),
                    fix: Remedy::FinishRotation {
                        purpose: e.purpose().clone(),
                    },
                });
            } else if e.grace_until().is_none_or(|g| g <= now) {
                out.push(Finding {
                    severity: Severity::Medium,
                    kind: FindingKind::Interrupted,
                    key_id: Some(e.old().clone()),
                    message: {
                        let pods: Vec<String> = e
                            .targets()
                            .iter()
                            .filter(|(t, p)| t.is_pod() && !p.added)
                            .filter_map(|(t, _)| t.pod_id().map(ToOwned::to_owned))
                            .collect();
                        if pods.is_empty() {
                            format!(
                                "{} is still deployed although its rotation's grace period is over",
                                e.old()
                            )
                        } else {
                            format!(
                                "{} stays retiring: pods {} still trust it, and the rotation has \
                                 yet to add {} there (they could not be reached, or did not run)",
                                e.old(),
                                pods.join(", "),
                                e.new_key()
                            )
                        }
                    },
                    fix: Remedy::RetryPods,
                });
            }
        }
        out
    }

    pub(crate) fn target_findings(
        &self,
        inventory: &Inventory,
        targets: &dyn Targets,
        now: DateTime<Utc>,
        findings: &mut Vec<Finding>,
    ) -> (Vec<TargetSummary>, Vec<Unchecked>) {
        let by_fp: HashMap<&ssh_key::Fingerprint, &KeyRecord> = inventory
            .keys()
            .iter()
            .map(|k| (k.fingerprint(), k))
            .collect();
        let mut summaries = Vec::new();
        let mut unchecked = Vec::new();
        for name in deployed_targets(inventory) {
            let (list, pods, intended) = match read_target(inventory, targets, name) {
                Ok(r) => r,
                Err(e) => {
                    unchecked.push(Unchecked {
                        target: name.to_string(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let present: BTreeSet<&ssh_key::Fingerprint> =
                list.iter().filter_map(RemoteKey::fingerprint).collect();
            for k in inventory.keys() {
                findings.extend(key_findings(
                    inventory, now, name, &list, &present, &intended, k,
                ));
            }
            findings.extend(unsure_line_findings(name, &list));
            summaries.push(summary(name, &list, &by_fp));
            for pod in pods.iter().flatten() {
                findings.extend(pod_findings(inventory, now, pod));
            }
        }
        (summaries, unchecked)
    }
}

/// The options keyvault writes for each key deployed to a target, by fingerprint.
type Intended = HashMap<ssh_key::Fingerprint, Option<String>>;

/// Every target a key was ever deployed to, except pods.
fn deployed_targets(inventory: &Inventory) -> BTreeSet<&TargetSpec> {
    inventory
        .keys()
        .iter()
        .flat_map(|k| {
            k.deployments()
                .iter()
                .map(crate::inventory::Deployment::target)
        })
        // Pods are checked through their account's pod list, never by logging in to them.
        .filter(|t| !t.is_pod())
        .collect()
}

/// A target's key list, its pods where it has a pods API, and the options keyvault writes
/// there for each key deployed to it.
fn read_target(
    inventory: &Inventory,
    targets: &dyn Targets,
    name: &TargetSpec,
) -> Result<(Vec<RemoteKey>, Option<Vec<Pod>>, Intended)> {
    let mut target = targets.open(name)?;
    let list = target.list()?;
    // Without REST v2 there is no pods API: check the key list alone.
    let pods = match target.pods() {
        Err(crate::error::TargetError::Runpod {
            source: crate::runpod::RunpodError::NotFound { .. },
            ..
        }) => None,
        other => other?,
    };
    // The options keyvault writes for each key deployed here.
    let intended = inventory
        .keys()
        .iter()
        .filter(|k| {
            k.deployments()
                .iter()
                .any(|d| d.target() == name && d.removed_at().is_none())
        })
        .map(|k| {
            let line = target.line(k);
            let options = match crate::authorized_keys::read_line(line.as_bytes()) {
                crate::authorized_keys::Reading::Key { options, .. } => options,
                _ => None,
            };
            (k.fingerprint().to_owned(), options)
        })
        .collect();
    Ok((list, pods, intended))
}

/// Whether a key takes part in a rotation the journal still holds.
fn in_journal(inventory: &Inventory, id: &KeyId) -> bool {
    inventory
        .journal()
        .iter()
        .any(|e| e.new_key() == id || e.old() == id)
}

/// What is wrong with one key on a target: missing although deployed, deployed with other
/// options than keyvault wrote, or still trusted although removed.
fn key_findings(
    inventory: &Inventory,
    now: DateTime<Utc>,
    name: &TargetSpec,
    list: &[RemoteKey],
    present: &BTreeSet<&ssh_key::Fingerprint>,
    intended: &Intended,
    k: &KeyRecord,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let here = k.deployments().iter().filter(|d| d.target() == name);
    let live = here.clone().any(|d| d.removed_at().is_none());
    let ever = here.count() > 0;
    let is_present = present.contains(k.fingerprint());
    if live && !is_present && !in_journal(inventory, k.id()) {
        findings.push(Finding {
            severity: Severity::High,
            kind: FindingKind::Missing,
            key_id: Some(k.id().clone()),
            message: format!(
                "{name} does not hold {}, which the inventory says is deployed there",
                k.id()
            ),
            fix: Remedy::Deploy {
                key: k.id().clone(),
                target: name.clone(),
            },
        });
    }
    if let Some(intended) = intended.get(k.fingerprint()).filter(|_| live) {
        findings.extend(options_drift(name, list, k, intended.as_deref()));
    }
    if ever && !live && is_present && !in_journal(inventory, k.id()) {
        findings.push(Finding {
            severity: Severity::High,
            kind: FindingKind::StillTrusted,
            key_id: Some(k.id().clone()),
            message: format!(
                "{name} still trusts {} ({}), which keyvault removed from it",
                k.id(),
                k.display_state_at(now)
            ),
            fix: Remedy::Revoke {
                key: k.id().clone(),
            },
        });
    }
    findings
}

/// A live key whose lines on a target carry other options than keyvault wrote: high when
/// any of them trusts more.
fn options_drift(
    name: &TargetSpec,
    list: &[RemoteKey],
    k: &KeyRecord,
    intended: Option<&str>,
) -> Option<Finding> {
    let drifted = list
        .iter()
        .filter(|r| r.fingerprint() == Some(k.fingerprint()) && r.options() != intended);
    let wider = drifted
        .map(|r| crate::authorized_keys::options_wider(intended, r.options()))
        .reduce(|a, b| a || b)?;
    Some(Finding {
        severity: if wider {
            Severity::High
        } else {
            Severity::Medium
        },
        kind: FindingKind::OptionsDrift,
        key_id: Some(k.id().clone()),
        message: format!(
            "{name} holds {} with other options than keyvault wrote ({})",
            k.id(),
            if wider { "they trust more" } else { "narrower" }
        ),
        fix: Remedy::Deploy {
            key: k.id().clone(),
            target: name.clone(),
        },
    })
}

/// Lines of a target's key list keyvault cannot be sure how sshd reads.
fn unsure_line_findings(name: &TargetSpec, list: &[RemoteKey]) -> Vec<Finding> {
    list.iter()
        .filter(|r| r.unsure())
        .map(|r| {
            let raw: String = r.raw().chars().take(80).collect();
            Finding {
                severity: Severity::Medium,
                kind: FindingKind::UnsureLine,
                key_id: None,
                message: format!(
                    "{name} has a line keyvault cannot be sure how sshd reads (kept as it is): {}",
                    raw.escape_debug()
                ),
                fix: Remedy::CheckLine {
                    target: name.clone(),
                },
            }
        })
        .collect()
}

/// How many of a target's lines are managed, unmanaged and unparseable.
fn summary(
    name: &TargetSpec,
    list: &[RemoteKey],
    by_fp: &HashMap<&ssh_key::Fingerprint, &KeyRecord>,
) -> TargetSummary {
    let managed = list
        .iter()
        .filter(|r| r.fingerprint().is_some_and(|f| by_fp.contains_key(f)))
        .count();
    let unparseable = list.iter().filter(|r| r.fingerprint().is_none()).count();
    TargetSummary {
        target: name.clone(),
        managed,
        unmanaged: list.len() - managed - unparseable,
        unparseable,
    }
}

/// A running pod that still trusts retiring, revoked or expired keys: high unless all are
/// retiring; removed over SSH where keyvault accepts the pod's endpoint, else redeployed.
/// And a pod that is not terminated whose `PUBLIC_KEY` holds such keys it does not trust
/// now (removed over SSH, or the pod is stopped): medium, it trusts them again when it
/// (re)starts, and only a redeploy changes that; high for a starting pod about to trust a
/// revoked or expired key. And a stopped pod that may keep such keys keyvault added over
/// SSH: medium, keyvault cannot remove them while it does not run.
fn pod_findings(inventory: &Inventory, now: DateTime<Utc>, pod: &Pod) -> Vec<Finding> {
    let report = pod_report(inventory, now, pod);
    let latent = latent_old_keys(pod, &report.keys, &report.after_restart);
    let kept = kept_old_keys(pod, &report.keys, &report.after_restart);
    [
        running_finding(pod, &report),
        latent_finding(pod, &report, &latent),
        kept_finding(pod, &report, &kept),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// A running pod that still trusts old keys, and how to remove them.
fn running_finding(pod: &Pod, report: &PodReport) -> Option<Finding> {
    let old: Vec<&KeyMatch> = report.keys.iter().filter(|k| is_old(k)).collect();
    if !pod.is_running() || old.is_empty() {
        return None;
    }
    Some(Finding {
        severity: running_severity(&report.keys),
        kind: FindingKind::PodTrustsOldKey,
        key_id: old[0].id.clone(),
        message: format!(
            "running pod {} ({}) still trusts {}",
            report.id,
            report.name,
            key_list(&old)
        ),
        fix: match &report.reach {
            Reach::Direct {
                host,
                port,
                username,
            } if endpoint_accepted(&report.id, username, host, *port) => Remedy::RemoveFromPod {
                user: username.clone(),
                host: host.clone(),
                port: *port,
            },
            _ => Remedy::RedeployPod,
        },
    })
}

/// A pod whose `PUBLIC_KEY` brings back the old keys `latent` when it (re)starts.
fn latent_finding(pod: &Pod, report: &PodReport, latent: &[&KeyMatch]) -> Option<Finding> {
    let first = latent.first()?;
    let message = if pod.is_running() {
        format!(
            "running pod {} ({}) trusts {} again after a restart: its PUBLIC_KEY holds it, and \
             keyvault removed it over SSH only",
            report.id,
            report.name,
            key_list(latent)
        )
    } else {
        let keys = key_list(latent);
        let when = if pod.is_starting() {
            format!("will trust {keys} once it runs")
        } else {
            format!("trusts {keys} again when it starts")
        };
        format!(
            "pod {} ({}), {}, {when}: its PUBLIC_KEY holds it",
            report.id,
            report.name,
            status_word(&pod.status),
        )
    };
    Some(Finding {
        severity: latent_severity(pod, latent),
        kind: FindingKind::PodTrustsOldKey,
        key_id: first.id.clone(),
        message,
        fix: Remedy::RedeployPodEnv,
    })
}

/// A stopped pod that may keep the old keys `kept` keyvault added over SSH.
fn kept_finding(pod: &Pod, report: &PodReport, kept: &[&KeyMatch]) -> Option<Finding> {
    let first = kept.first()?;
    Some(Finding {
        severity: Severity::Medium,
        kind: FindingKind::PodTrustsOldKey,
        key_id: first.id.clone(),
        message: format!(
            "pod {} ({}), {}, may trust {} when it starts: keyvault added it over SSH and could \
             not remove it",
            report.id,
            report.name,
            status_word(&pod.status),
            key_list(kept)
        ),
        fix: Remedy::RedeployPod,
    })
}

/// Keys as `ID (state), …` for a message.
fn key_list(keys: &[&KeyMatch]) -> String {
    keys.iter()
        .map(|k| format!("{} ({})", k.id.as_ref().map_or("", KeyId::as_str), k.state))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether keyvault would log in to a pod's direct endpoint (the target name it makes of
/// it parses back).
fn endpoint_accepted(id: &str, user: &str, host: &str, port: u16) -> bool {
    crate::TargetSpec::Pod {
        id: id.to_owned(),
        user: user.to_owned(),
        host: host.to_owned(),
        port,
    }
    .to_string()
    .parse::<crate::TargetSpec>()
    .is_ok()
}

#[cfg(test)]
mod tests;
