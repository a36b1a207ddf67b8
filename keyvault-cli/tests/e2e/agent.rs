//! `keyvault agent add/remove` against a real OpenSSH ssh-agent started by the test.

use crate::support::Vault;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Agent {
    child: Child,
    socket: std::path::PathBuf,
}

impl Agent {
    fn start(dir: &std::path::Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { child, socket }
    }

    fn listed(&self) -> String {
        let out = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .expect("ssh-add");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn keys_go_into_the_agent_for_a_limited_time_and_come_out() {
    let v = Vault::new();
    let agent = Agent::start(&v.root);
    v.set_env("SSH_AUTH_SOCK", agent.socket.to_str().expect("utf8"));
    let key = v.new_key("personal", &[]);
    let fp = key["fingerprint"].as_str().expect("fp").to_owned();

    // A short lifetime is honoured by the agent itself.
    let out = v
        .run(&[
            "agent",
            "add",
            "personal",
            "--lifetime",
            "2s",
            "--passphrase-env",
            "KV_PASS",
        ])
        .expect(0)
        .no_secrets();
    assert_eq!(out.stdout, "added personal-1 to the agent for 2s\n");
    assert!(agent.listed().contains(&fp), "{}", agent.listed());
    // The lifetime runs on ssh-agent's own clock (its `-t`): only waiting can show it ends.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !agent.listed().contains(&fp),
        "the key outlived its lifetime"
    );

    // The default is 8 hours for a key valid longer than that; remove takes it out.
    let added = v
        .run(&[
            "--json",
            "agent",
            "add",
            "personal",
            "--passphrase-env",
            "KV_PASS",
        ])
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(added["lifetime_secs"], 8 * 3600);
    assert!(agent.listed().contains(&fp));
    v.run(&["agent", "remove", "personal"]).expect(0);
    assert!(!agent.listed().contains(&fp));

    // Never beyond the key's own expiry.
    v.new_key("short", &["--ttl", "10m"]);
    let added = v
        .run(&[
            "--json",
            "agent",
            "add",
            "short",
            "--passphrase-env",
            "KV_PASS",
        ])
        .expect(0)
        .json();
    assert!(
        added["lifetime_secs"].as_u64().expect("secs") <= 600,
        "{added}"
    );

    // A wrong passphrase adds nothing; revoked keys and a missing agent are refused.
    v.run(&["agent", "remove", "short"]).expect(0);
    let wrong = v
        .run(&["agent", "add", "personal", "--passphrase-env", "KV_PASS2"])
        .expect(1)
        .no_secrets();
    assert!(
        wrong.stderr.contains("wrong passphrase"),
        "{}",
        wrong.stderr
    );
    assert!(!agent.listed().contains(&fp));
    v.run(&["revoke", "short"]).expect(0);
    let revoked = v
        .run(&["agent", "add", "short-1", "--passphrase-env", "KV_PASS"])
        .expect(2);
    assert!(
        revoked
            .stderr
            .contains("key short-1 is revoked; only live keys go into an agent"),
        "{}",
        revoked.stderr
    );
    v.set_env("SSH_AUTH_SOCK", "");
    let none = v
        .run(&["agent", "add", "personal", "--passphrase-env", "KV_PASS"])
        .expect(2);
    assert!(
        none.stderr.contains("SSH_AUTH_SOCK is not set"),
        "{}",
        none.stderr
    );
    let log = v.run(&["--json", "log"]).expect(0).json();
    assert!(
        log["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["action"] == "agent-add")
    );
    v.assert_no_secret_on_disk();
}
