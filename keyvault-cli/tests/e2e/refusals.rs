//! Refusals checked by their reason, not only their exit code: each case leaves one reason
//! standing, asserts the message that names it, and that nothing changed anywhere.

use crate::support::{Vault, snapshot};
use keyvault_tests::fake_runpod::FakeRunpod;

fn ca_init(v: &Vault, extra: &[&str]) {
    let mut args = vec!["ca", "init", "--passphrase-env", "KV_PASS"];
    args.extend_from_slice(extra);
    v.run(&args).expect(0).no_secrets();
}

#[test]
fn a_ca_is_not_trusted_on_a_runpod_account_even_with_credentials() {
    // A live CA and a RunPod account keyvault can reach: only the target kind is wrong.
    let server = FakeRunpod::start();
    let v = Vault::new();
    v.use_runpod(&server);
    ca_init(&v, &[]);
    v.run(&["runpod", "keys"]).expect(0).no_secrets();
    let (before, account) = (snapshot(&v.home), server.keys());
    server.clear_log();
    for target in ["runpod", "runpod:team"] {
        let run = v
            .run(&["ca", "trust", target, "--principals", "root"])
            .expect(2)
            .no_secrets();
        assert_eq!(
            run.stderr.lines().next(),
            Some(
                format!(
                    "error: {target} cannot hold authorized_keys options; trust a CA in a file: or ssh:// target"
                )
                .as_str()
            ),
            "{}",
            run.stderr
        );
        assert_eq!(snapshot(&v.home), before, "{target}");
    }
    assert!(server.log().is_empty(), "a refused trust talked to RunPod");
    assert_eq!(server.keys(), account);
}

#[test]
fn only_a_live_ca_is_trusted_and_a_refusal_changes_nothing() {
    let v = Vault::new();
    let born = chrono::Utc::now();
    v.set_now(born);
    let file = v.root.join("authorized_keys");
    std::fs::write(&file, "# kept\n").expect("write");
    crate::support::chmod(&file, 0o600);
    let target = format!("file:{}", file.display());
    v.new_key("personal", &[]);
    ca_init(&v, &["--ttl", "1d"]);

    // A key that is no CA, and (a day and a second later by keyvault's clock) an expired CA.
    let before = snapshot(&v.home);
    for (now, ca, id) in [
        (born, "personal", "personal-1"),
        (born + chrono::Duration::seconds(86_401), "ca", "ca-1"),
    ] {
        v.set_now(now);
        let run = v
            .run(&["ca", "trust", &target, "--ca", ca, "--principals", "root"])
            .expect(2);
        assert_eq!(
            run.stderr.lines().next(),
            Some(
                format!(
                    "error: key {id} is not a live certificate authority (make one with `keyvault ca init`)"
                )
                .as_str()
            ),
            "{}",
            run.stderr
        );
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "# kept\n");
        assert_eq!(snapshot(&v.home), before, "{ca}");
    }

    // The same CA while it lives is trusted there: the refusals came from the key alone.
    v.set_now(born);
    v.run(&["ca", "trust", &target, "--principals", "root"])
        .expect(0);
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(
        text.lines()
            .any(|l| l.starts_with("cert-authority,principals=\"root\"")
                && l.ends_with("keyvault:ca-1")),
        "{text}"
    );
    v.run(&["log", "--verify"]).expect(0);
}
