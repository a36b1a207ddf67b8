//! Every command, run with every diagnostic switch there is, never shows a passphrase, an
//! API key or private key material, and none reaches the vault's files.

use crate::support::{PASS, PASS2, Vault, openssh};
use keyvault_tests::fake_runpod::{DEFAULT_KEY, FakeRunpod, pod};

#[test]
fn every_command_keeps_secrets_out_of_output_and_files() {
    let server = FakeRunpod::start();
    let v = Vault::new();
    v.use_runpod(&server);
    // keyvault has no verbose mode; these are the switches Rust programs commonly honour.
    v.set_env("RUST_LOG", "trace");
    v.set_env("RUST_BACKTRACE", "full");
    let file = v.root.join("pass2");
    std::fs::write(&file, PASS2).expect("write");
    crate::support::chmod(&file, 0o600);
    let ssh = v.root.join(".ssh");
    std::fs::create_dir(&ssh).expect("mkdir");
    let imported = ssh.join("id_ed25519");
    openssh(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-f",
            imported.to_str().expect("utf8"),
        ],
        PASS,
        &v.root,
    )
    .expect(0);
    let imported = imported.to_str().expect("utf8").to_owned();
    let pass_file = file.to_str().expect("utf8").to_owned();
    v.set_env("KEYVAULT_TEST_SCRYPT_LOG_N", "10");
    let archive = v.root.join("backup.age").to_str().expect("utf8").to_owned();
    let restored = v.root.join("restored").to_str().expect("utf8").to_owned();
    let runs: Vec<Vec<&str>> = vec![
        vec![
            "new",
            "--purpose",
            "personal",
            "--passphrase-env",
            "KV_PASS",
        ],
        vec![
            "new",
            "--purpose",
            "rsa",
            "--algorithm",
            "rsa-3072",
            "--passphrase-file",
            &pass_file,
        ],
        vec![
            "import",
            &imported,
            "--purpose",
            "imported",
            "--passphrase-env",
            "KV_PASS",
        ],
        vec![
            "passwd",
            "personal",
            "--passphrase-env",
            "KV_PASS",
            "--new-passphrase-file",
            &pass_file,
        ],
        vec![
            "passwd",
            "personal",
            "--passphrase-env",
            "KV_PASS",
            "--new-passphrase-env",
            "KV_PASS",
        ],
        vec!["list", "--all"],
        vec!["show", "personal"],
        vec!["deploy", "personal", "--to", "runpod"],
        vec!["deploy", "rsa", "--to", "runpod"],
        vec!["rotate", "personal", "--passphrase-env", "KV_PASS2"],
        vec!["rotate", "--all", "--dry-run"],
        vec!["revoke", "rsa"],
        vec!["sweep"],
        vec!["prune", "--yes"],
        vec!["runpod", "keys"],
        vec!["runpod", "pods"],
        vec!["status"],
        vec!["scan"],
        vec!["log"],
        vec!["log", "--verify"],
        vec!["completions", "bash"],
        vec![
            "export",
            "-o",
            &archive,
            "--passphrase-env",
            "KV_PASS2",
            "--force",
        ],
        vec![
            "--home",
            &restored,
            "restore",
            &archive,
            "--passphrase-env",
            "KV_PASS2",
            "--force",
        ],
        // Failures too: their messages are where secrets usually leak.
        vec![
            "passwd",
            "personal",
            "--passphrase-env",
            "KV_PASS",
            "--new-passphrase-env",
            "KV_PASS",
        ],
        vec!["new", "--purpose", "weak", "--passphrase-env", "RUST_LOG"],
        vec![
            "--home",
            &restored,
            "restore",
            &archive,
            "--passphrase-env",
            "KV_PASS",
        ],
    ];
    server.add_pod(pod("p1", "RUNNING", &[], None));
    for args in &runs {
        for json in [false, true] {
            let mut a: Vec<&str> = if json { vec!["--json"] } else { vec![] };
            a.extend(args.iter().copied());
            if json
                && matches!(args[0], "new" | "import" | "rotate" | "prune")
                && !args.contains(&"--dry-run")
            {
                continue; // not repeatable
            }
            v.run(&a).no_secrets();
        }
    }
    // A bad API key is not echoed either.
    v.set_env("RUNPOD_API_KEY", "rpa_WRONGKEY_0000000000");
    let run = v.run(&["runpod", "keys"]).expect(1).no_secrets();
    assert!(!run.stderr.contains("rpa_WRONGKEY"));
    v.assert_no_secret_on_disk();
    for text in [v.inventory_text(), v.audit_text()] {
        assert!(!text.contains(DEFAULT_KEY) && !text.contains(PASS) && !text.contains(PASS2));
        assert!(!text.contains("OPENSSH PRIVATE KEY"));
    }
}
