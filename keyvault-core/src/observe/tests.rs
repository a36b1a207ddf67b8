//! `runpod pods` reports as the library builds them.

use super::{PodReport, Reach, pod_report};
use crate::callbacks::FixedPassphrase;
use crate::inventory::Inventory;
use crate::runpod::{Pod, PodSsh, SshEndpoint};
use crate::store::memory::MemoryStore;
use crate::vault::{Expiry, NewKey, Vault};
use crate::{Passphrase, Span};
use chrono::{TimeDelta, Utc};
use std::sync::Arc;

const UNMANAGED: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl someone@else";

/// An inventory holding one unencrypted key `web-1` that expires in 30 days.
fn inventory() -> (tempfile::TempDir, Inventory) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = crate::store::memory::home(
        dir.path(),
        "vault",
        "[purpose.web]\npassphrase = \"optional\"\n",
    );
    let store = MemoryStore::default();
    let vault = Vault::open(&home)
        .expect("open")
        .with_store(Arc::new(store.clone()));
    let ttl: Span = "30d".parse().expect("span");
    vault
        .create(
            &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
            &NewKey::new("web".parse().expect("purpose"))
                .unencrypted(true)
                .expiry(Expiry::After(ttl)),
            &mut FixedPassphrase(Passphrase::new("unused".to_owned())),
        )
        .expect("create");
    let inventory = store.saved().state.clone();
    (dir, inventory)
}

fn pod(status: &str, keys: &[&str], ssh: Option<PodSsh>) -> Pod {
    Pod {
        id: "p1".to_owned(),
        name: "pod-p1".to_owned(),
        status: status.to_owned(),
        env: [("PUBLIC_KEY".to_owned(), keys.join("\n"))].into(),
        ssh,
    }
}

fn endpoint(host: &str, username: &str) -> SshEndpoint {
    SshEndpoint {
        host: host.to_owned(),
        port: 2222,
        username: username.to_owned(),
    }
}

fn report(inventory: &Inventory, status: &str, ssh: Option<PodSsh>) -> PodReport {
    let line = inventory.keys()[0].public_key().to_owned();
    let later = Utc::now() + TimeDelta::days(60);
    pod_report(inventory, later, &pod(status, &[UNMANAGED, &line], ssh))
}

/// A running pod that trusts an expired key: the keys as classified, one warning per
/// problem, then how to change its keys, for each way it can be reached.
#[test]
fn pod_reports_read_as_before() {
    let (_dir, inventory) = inventory();
    let direct = |host: &str, user: &str| PodSsh {
        direct: Some(endpoint(host, user)),
        proxy: Some(endpoint("proxy.example", "p1-x")),
    };
    let r = report(&inventory, "RUNNING", Some(direct("127.0.0.1", "root")));
    let states: Vec<(Option<&str>, &str, &str)> = r
        .keys
        .iter()
        .map(|k| {
            (
                k.id.as_ref().map(crate::inventory::KeyId::as_str),
                k.state.as_str(),
                k.comment.as_str(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (None, "unmanaged", "someone@else"),
            (Some("web-1"), "expired", "keyvault:web-1")
        ]
    );
    assert_eq!(
        r.reach,
        Reach::Direct {
            host: "127.0.0.1".to_owned(),
            port: 2222,
            username: "root".to_owned()
        }
    );
    assert_eq!(
        r.warnings,
        [
            "trusts expired key web-1",
            "reachable at root@127.0.0.1 -p 2222: update its ~/.ssh/authorized_keys"
        ]
    );
    let r = report(
        &inventory,
        "RUNNING",
        Some(direct("-oProxyCommand=x", "root")),
    );
    assert_eq!(
        r.warnings[1],
        "its SSH endpoint is not one keyvault accepts: redeploy the pod to change its keys"
    );
    let proxy = PodSsh {
        direct: None,
        proxy: Some(endpoint("proxy.example", "p1-x")),
    };
    let r = report(&inventory, "RUNNING", Some(proxy));
    assert_eq!(r.reach, Reach::ProxyOnly);
    assert_eq!(
        r.warnings[1],
        "proxy-only: redeploy the pod to change its keys"
    );
    let r = report(&inventory, "RUNNING", None);
    assert_eq!(r.reach, Reach::None);
    assert_eq!(
        r.warnings[1],
        "not reachable over SSH: redeploy the pod to change its keys"
    );
    // A stopped pod trusts the expired key again when it starts; a terminated one never.
    assert_eq!(
        report(&inventory, "EXITED", None).warnings,
        [
            "EXITED: trusts expired key web-1 again when it starts: its PUBLIC_KEY holds it; \
          redeploy or terminate the pod"
        ]
    );
    assert!(report(&inventory, "TERMINATED", None).warnings.is_empty());
    // A pod trusting only live keys is not flagged.
    let line = inventory.keys()[0].public_key().to_owned();
    let now = pod_report(&inventory, Utc::now(), &pod("RUNNING", &[&line], None));
    assert!(now.warnings.is_empty(), "{:?}", now.warnings);
}
