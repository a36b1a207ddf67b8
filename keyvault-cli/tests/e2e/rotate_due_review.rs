//! A review of `sweep --rotate-due`: what `--dry-run` promises matches what the real run
//! does, for passphrase sources that would fail.

use crate::support::{PASS, Vault, chmod, snapshot};
use chrono::{TimeDelta, Utc};

fn result<'a>(out: &'a serde_json::Value, purpose: &str) -> &'a serde_json::Value {
    out["rotations"]
        .as_array()
        .expect("rotations")
        .iter()
        .find(|r| r["purpose"] == purpose)
        .unwrap_or_else(|| panic!("no rotation of {purpose}: {out}"))
}

/// A dry run checks the passphrase each due key's rotation would get, as the real run
/// does: an unset `passphrase_env`, an empty one and a `passphrase_file` others can read
/// are listed as failing, not as planned, and the real run agrees key by key.
#[test]
fn dry_run_lists_a_rotation_whose_passphrase_would_fail_as_failed() {
    let v = Vault::new();
    std::fs::create_dir_all(&v.home).expect("mkdir");
    chmod(&v.home, 0o700);
    let open_file = v.root.join("ci.pass");
    std::fs::write(&open_file, format!("{PASS}\n")).expect("write");
    chmod(&open_file, 0o644);
    std::fs::write(
        v.home.join("config.toml"),
        format!(
            "[policy]\nrotate_every = \"90d\"\n\n[purpose.ok]\npassphrase_env = \"KV_PASS\"\n\n\
             [purpose.team]\npassphrase_env = \"UNSET_PASS\"\n\n[purpose.blank]\npassphrase_env = \"BLANK_PASS\"\n\n\
             [purpose.ci]\npassphrase_file = \"{}\"\n",
            open_file.display()
        ),
    )
    .expect("config");
    chmod(&v.home.join("config.toml"), 0o600);
    v.set_env("BLANK_PASS", "");
    let authorized = v.root.join("authorized_keys");
    std::fs::write(&authorized, "").expect("write");
    let target = format!("file:{}", authorized.display());
    let now = Utc::now();
    v.set_now(now - TimeDelta::days(100));
    let purposes = ["ok", "team", "blank", "ci"];
    for purpose in purposes {
        v.new_key(purpose, &["--ttl", "200d"]);
        v.run(&["deploy", purpose, "--to", &target]).expect(0);
    }
    v.set_now(now);

    let before = (
        snapshot(&v.home),
        std::fs::read_to_string(&authorized).expect("read"),
    );
    let plan = v
        .run(&["--json", "--no-input", "sweep", "--rotate-due", "--dry-run"])
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(result(&plan, "ok")["result"], "planned", "{plan}");
    for purpose in ["team", "blank", "ci"] {
        assert_eq!(
            result(&plan, purpose)["result"],
            "failed",
            "{purpose}: {plan}"
        );
        assert_eq!(result(&plan, purpose)["severity"], "high");
    }
    let message = |out: &serde_json::Value, p: &str| result(out, p)["error"]["message"].to_string();
    assert!(message(&plan, "team").contains("UNSET_PASS"), "{plan}");
    assert!(message(&plan, "blank").contains("empty"), "{plan}");
    assert!(
        result(&plan, "ci")["error"]["hint"]
            .to_string()
            .contains("chmod 600"),
        "{plan}"
    );
    let words = v
        .run(&["--no-input", "sweep", "--rotate-due", "--dry-run"])
        .expect(0)
        .no_secrets();
    assert!(
        words.stderr.contains("the rotation of team would fail"),
        "{}",
        words.stderr
    );
    assert_eq!(
        (
            snapshot(&v.home),
            std::fs::read_to_string(&authorized).expect("read")
        ),
        before,
        "the dry run changed something"
    );

    // The real run does what the dry run said, key by key.
    let out = v
        .run(&["--json", "--no-input", "sweep", "--rotate-due"])
        .expect(1)
        .no_secrets()
        .json();
    for purpose in purposes {
        let planned = result(&plan, purpose)["result"] == "planned";
        let rotated = result(&out, purpose)["result"] == "rotated";
        assert_eq!(planned, rotated, "{purpose}: {plan}\n{out}");
        assert_eq!(message(&plan, purpose), message(&out, purpose), "{purpose}");
    }
    for id in ["team-1", "blank-1", "ci-1"] {
        let shown = v.run(&["--json", "show", id]).expect(0).json();
        assert_eq!(shown["state"], "active", "{id}");
    }
}

/// `status` does not promise that `sweep --rotate-due` rotates a due key whose passphrase
/// only a person can give (the sweep only reports it): its fix names `keyvault rotate`.
#[test]
fn status_of_a_due_key_needing_a_person_does_not_count_on_the_sweep() {
    let v = Vault::new();
    std::fs::create_dir_all(&v.home).expect("mkdir");
    chmod(&v.home, 0o700);
    std::fs::write(
        v.home.join("config.toml"),
        "[policy]\nrotate_every = \"90d\"\n\n[purpose.team]\npassphrase_env = \"KV_PASS\"\n",
    )
    .expect("config");
    chmod(&v.home.join("config.toml"), 0o600);
    let now = Utc::now();
    v.set_now(now - TimeDelta::days(100));
    v.new_key("personal", &["--ttl", "200d"]);
    v.new_key("team", &["--ttl", "200d"]);
    v.set_now(now);
    let status = v
        .run(&["--json", "status", "--offline"])
        .expect(3)
        .no_secrets()
        .json();
    let fix = |id: &str| {
        status["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["kind"] == "rotation-due" && f["key_id"] == id)
            .unwrap_or_else(|| panic!("no rotation-due finding of {id}: {status}"))["fix"]
            .as_str()
            .expect("fix")
            .to_owned()
    };
    let personal = fix("personal-1");
    assert!(
        personal.contains("cannot rotate it")
            && personal.ends_with("run: keyvault rotate personal"),
        "{personal}"
    );
    assert!(
        fix("team-1").contains("sweep --rotate-due rotates it"),
        "{status}"
    );
    // And the sweep indeed only reports it.
    let out = v
        .run(&["--json", "--no-input", "sweep", "--rotate-due"])
        .expect(3)
        .no_secrets()
        .json();
    assert_eq!(result(&out, "personal")["result"], "needs-person", "{out}");
    assert_eq!(result(&out, "team")["result"], "rotated", "{out}");
}
