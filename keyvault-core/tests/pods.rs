//! `rotate --pods` through the library with in-memory targets: pods are updated in
//! parallel with live progress, a failing pod is reported and keeps the old key retiring,
//! and the old key leaves only the pods that got the new one.

use keyvault_core::remote::{AddKey, RemoteKey};
use keyvault_core::runpod::{PodSsh, SshEndpoint};
use keyvault_core::ssh_key::getrandom::SysRng;
use keyvault_core::ssh_key::rand_core::UnwrapErr;
use keyvault_core::target::{Applied, Hook, Target, TargetSpec, Targets};
use keyvault_core::{
    Error, FixedPassphrase, KeyState, NewKey, Passphrase, Pod, PodProgress, RotateRequest,
    TargetError, Vault,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

const PASS: &str = "plum-Vortex-carpet-71-tundra";

/// authorized_keys text per target name.
type Store = Arc<Mutex<BTreeMap<String, String>>>;

struct Fake {
    spec: TargetSpec,
    store: Store,
    pods: Vec<Pod>,
}

impl Target for Fake {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }
    fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError> {
        let text = self
            .store
            .lock()
            .expect("lock")
            .get(&self.spec.to_string())
            .cloned()
            .unwrap_or_default();
        Ok(text
            .lines()
            .map(|l| {
                RemoteKey::with_fingerprint(l, keyvault_core::authorized_keys::line_fingerprint(l))
            })
            .collect())
    }
    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<keyvault_core::Fingerprint>,
        _hook: Hook<'_>,
    ) -> Result<Applied, Error> {
        if matches!(&self.spec, TargetSpec::Pod { id, .. } if id == "bad") {
            return Err(TargetError::Unreachable {
                target: self.spec.to_string(),
                reason: "connection refused".to_owned(),
            }
            .into());
        }
        let mut store = self.store.lock().expect("lock");
        let text = store.entry(self.spec.to_string()).or_default();
        *text = keyvault_core::authorized_keys::edit(text, add, remove);
        Ok(Applied {
            wrote: true,
            present: keyvault_core::authorized_keys::fingerprints(text),
        })
    }
    fn pods(&mut self) -> Result<Option<Vec<Pod>>, TargetError> {
        Ok(matches!(self.spec, TargetSpec::Runpod { .. }).then(|| self.pods.clone()))
    }
}

struct FakeTargets {
    store: Store,
    pods: Vec<Pod>,
}

impl Targets for FakeTargets {
    fn open(&self, spec: &TargetSpec) -> Result<Box<dyn Target + Send>, Error> {
        Ok(Box::new(Fake {
            spec: spec.clone(),
            store: Arc::clone(&self.store),
            pods: self.pods.clone(),
        }))
    }
}

fn pod(id: &str, public_key: &str, port: u16) -> Pod {
    Pod {
        id: id.to_owned(),
        name: format!("pod-{id}"),
        status: "RUNNING".to_owned(),
        env: BTreeMap::from([("PUBLIC_KEY".to_owned(), public_key.to_owned())]),
        ssh: Some(PodSsh {
            proxy: None,
            direct: Some(SshEndpoint {
                host: "192.0.2.1".to_owned(),
                port,
                username: "root".to_owned(),
            }),
        }),
    }
}

#[test]
fn pods_are_updated_in_parallel_with_progress_and_a_failure_keeps_the_old_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events: Arc<Mutex<Vec<PodProgress>>> = Arc::default();
    let sink = Arc::clone(&events);
    let vault = Vault::open(dir.path().join("vault"))
        .expect("open")
        .with_pod_progress(Arc::new(move |e: &PodProgress| {
            sink.lock().expect("lock").push(e.clone())
        }));
    let mut pass = FixedPassphrase(Passphrase::new(PASS.to_owned()));
    let old = vault
        .create(
            &mut UnwrapErr(SysRng),
            &NewKey::new("personal".parse().expect("p")),
            &mut pass,
        )
        .expect("create");
    let store: Store = Arc::default();
    let pods = ["p1", "p2", "p3", "bad"]
        .iter()
        .enumerate()
        .map(|(i, id)| pod(id, old.public_key(), 2200 + i as u16))
        .collect();
    let targets = FakeTargets {
        store: Arc::clone(&store),
        pods,
    };
    vault
        .deploy(
            &"personal".parse().expect("selector"),
            &"runpod".parse().expect("spec"),
            &targets,
        )
        .expect("deploy");
    // What RunPod's images put in each pod's authorized_keys from PUBLIC_KEY.
    for (i, id) in ["p1", "p2", "p3", "bad"].iter().enumerate() {
        let name = format!("pod:{id}/ssh://root@192.0.2.1:{}", 2200 + i);
        store
            .lock()
            .expect("lock")
            .insert(name, format!("{}\n", old.public_key()));
    }

    let request = RotateRequest::purposes(vec!["personal".parse().expect("p")]).pods(true);
    let report = vault
        .rotate(&mut UnwrapErr(SysRng), &request, &mut pass, &targets)
        .expect("rotate");

    let outcomes: Vec<(String, String)> = report
        .pods
        .iter()
        .map(|p| (p.pod.clone(), p.outcome.to_string()))
        .collect();
    for id in ["p1", "p2", "p3"] {
        assert!(
            outcomes.contains(&(id.to_owned(), "added".to_owned())),
            "{outcomes:?}"
        );
        assert!(
            outcomes.contains(&(id.to_owned(), "removed".to_owned())),
            "{outcomes:?}"
        );
    }
    assert!(
        outcomes.contains(&("bad".to_owned(), "failed".to_owned())),
        "{outcomes:?}"
    );
    let events = events.lock().expect("lock").clone();
    for id in ["p1", "p2", "p3", "bad"] {
        assert!(
            events.contains(&PodProgress::Started { pod: id.to_owned() }),
            "{events:?}"
        );
    }
    assert!(events.contains(&PodProgress::Finished {
        pod: "bad".to_owned(),
        outcome: keyvault_core::PodOutcomeKind::Failed
    }));

    // Updated pods trust only the new key; the failed one keeps the old, which stays retiring.
    let inventory = vault.inventory().expect("inventory");
    let new = inventory
        .active(&"personal".parse().expect("p"))
        .expect("active")
        .clone();
    let store = store.lock().expect("lock");
    for (name, text) in store.iter().filter(|(n, _)| n.starts_with("pod:")) {
        let fps = keyvault_core::authorized_keys::fingerprints(text);
        if name.starts_with("pod:bad/") {
            assert!(
                fps.contains(old.fingerprint()) && !fps.contains(new.fingerprint()),
                "{name}: {text}"
            );
        } else {
            assert!(
                fps.contains(new.fingerprint()) && !fps.contains(old.fingerprint()),
                "{name}: {text}"
            );
        }
    }
    assert_eq!(
        inventory.get(old.id()).expect("old").state(),
        KeyState::Retiring
    );
    assert_eq!(
        inventory.journal().len(),
        1,
        "the rotation waits for the failed pod"
    );
}

#[test]
fn deploy_and_revoke_reach_pods_through_the_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let vault = Vault::open(dir.path().join("vault")).expect("open");
    let mut pass = FixedPassphrase(Passphrase::new(PASS.to_owned()));
    let old = vault
        .create(
            &mut UnwrapErr(SysRng),
            &NewKey::new("personal".parse().expect("p")),
            &mut pass,
        )
        .expect("create");
    let store: Store = Arc::default();
    let pods: Vec<Pod> = ["p1", "bad"]
        .iter()
        .enumerate()
        .map(|(i, id)| pod(id, old.public_key(), 2300 + i as u16))
        .collect();
    for (i, id) in ["p1", "bad"].iter().enumerate() {
        store.lock().expect("lock").insert(
            format!("pod:{id}/ssh://root@192.0.2.1:{}", 2300 + i),
            format!("{}\n", old.public_key()),
        );
    }
    let targets = FakeTargets {
        store: Arc::clone(&store),
        pods,
    };
    // Rotated without pods: the pods still trust only the old key.
    let request = RotateRequest::purposes(vec!["personal".parse().expect("p")]);
    vault
        .rotate(&mut UnwrapErr(SysRng), &request, &mut pass, &targets)
        .expect("rotate");
    let new = vault
        .inventory()
        .expect("inventory")
        .active(&"personal".parse().expect("p"))
        .expect("active")
        .clone();
    let account: TargetSpec = "runpod".parse().expect("spec");

    let report = vault
        .deploy_to_pods(
            &"personal".parse().expect("selector"),
            &account,
            &targets,
            &mut pass,
        )
        .expect("deploy to pods");
    let outcome = |r: &keyvault_core::Report, id: &str| {
        r.pods
            .iter()
            .find(|p| p.pod == id)
            .map(|p| p.outcome.to_string())
    };
    assert_eq!(
        outcome(&report, "p1").as_deref(),
        Some("added"),
        "{report:?}"
    );
    assert_eq!(
        outcome(&report, "bad").as_deref(),
        Some("failed"),
        "{report:?}"
    );
    assert!(report.pods_incomplete());
    let p1 = "pod:p1/ssh://root@192.0.2.1:2300";
    let fps = keyvault_core::authorized_keys::fingerprints(&store.lock().expect("lock")[p1]);
    assert!(fps.contains(new.fingerprint()) && fps.contains(old.fingerprint()));

    // Vault::revoke asks for no passphrase, so it cannot log in to the pod the key was added to.
    let e = vault
        .revoke(&"personal".parse().expect("selector"), &targets)
        .expect_err("needs a passphrase");
    assert!(matches!(e, Error::PassphraseUnavailable { .. }), "{e}");

    // revoke_with on the old, already revoked key retries the pods only.
    let report = vault
        .revoke_with(&old.id().into(), Some(&account), &targets, &mut pass)
        .expect("revoke from pods");
    assert_eq!(
        outcome(&report, "p1").as_deref(),
        Some("removed"),
        "{report:?}"
    );
    assert_eq!(
        outcome(&report, "bad").as_deref(),
        Some("failed"),
        "{report:?}"
    );
    assert!(report.revoked.is_empty(), "it was revoked already");
    let fps = keyvault_core::authorized_keys::fingerprints(&store.lock().expect("lock")[p1]);
    assert!(fps.contains(new.fingerprint()) && !fps.contains(old.fingerprint()));
    assert_eq!(
        vault
            .inventory()
            .expect("inventory")
            .get(old.id())
            .expect("old")
            .state(),
        KeyState::Revoked
    );
}
