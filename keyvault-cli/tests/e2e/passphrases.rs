//! Passphrase sources, strength, `passwd`, and secrets kept out of every output.

use crate::support::{PASS, PASS2, Vault, key_body, openssh, snapshot};

#[test]
fn every_source_works_and_none_leaks() {
    let v = Vault::new();
    v.run(&["new", "--purpose", "env", "--passphrase-env", "KV_PASS"])
        .expect(0)
        .no_secrets();
    let file = v.root.join("pass.txt");
    std::fs::write(&file, format!("{PASS}\n")).expect("write");
    crate::support::chmod(&file, 0o600);
    v.run(&[
        "new",
        "--purpose",
        "file",
        "--passphrase-file",
        file.to_str().expect("utf8"),
    ])
    .expect(0)
    .no_secrets();
    v.run_stdin(
        &["new", "--purpose", "stdin", "--passphrase-stdin"],
        &format!("{PASS}\r\n"),
    )
    .expect(0)
    .no_secrets();
    // The trailing newline is not part of the passphrase: every key opens with PASS.
    for purpose in ["env", "file", "stdin"] {
        let path = v.home.join(format!("keys/{purpose}-1"));
        openssh(
            "ssh-keygen",
            &["-y", "-f", path.to_str().expect("utf8")],
            PASS,
            &v.root,
        )
        .expect(0);
    }
    for args in [
        &["list"][..],
        &["--json", "list"],
        &["log"],
        &["--json", "log"],
        &["show", "env"],
        &["status"],
    ] {
        v.run(args).expect(0).no_secrets();
    }
    v.assert_no_secret_on_disk();
}

#[test]
fn no_input_and_missing_sources_fail_clearly() {
    let v = Vault::new();
    let run = v
        .run(&["--no-input", "new", "--purpose", "personal"])
        .expect(2);
    assert_eq!(
        run.stderr,
        "error: no passphrase for new key for purpose personal: --no-input is set; use --passphrase-env VAR, \
--passphrase-file FILE or --passphrase-stdin\n"
    );
    // The documented environment form, as scripts set it.
    for value in ["1", "true"] {
        let run = v
            .cmd(&["new", "--purpose", "personal"])
            .env("KEYVAULT_NO_INPUT", value)
            .output()
            .expect("run");
        assert_eq!(run.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains("--no-input is set"), "{value}: {stderr}");
    }
    // Without a terminal keyvault does not try to prompt.
    let run = v.run(&["new", "--purpose", "personal"]).expect(2);
    assert!(
        run.stderr.contains("standard input is not a terminal"),
        "{}",
        run.stderr
    );
    let run = v
        .run(&[
            "new",
            "--purpose",
            "personal",
            "--passphrase-env",
            "UNSET_VAR",
        ])
        .expect(2);
    assert!(
        run.stderr
            .contains("environment variable UNSET_VAR (--passphrase-env) is not set"),
        "{}",
        run.stderr
    );
    assert!(!v.home.exists(), "a failed command created the vault");
}

#[test]
fn weak_and_empty_passphrases_are_refused() {
    let v = Vault::new();
    for (weak, why) in [
        ("password1", "too weak"),
        ("", "environment variable WEAK (--passphrase-env) is empty"),
    ] {
        let run = v
            .cmd(&["new", "--purpose", "personal", "--passphrase-env", "WEAK"])
            .env("WEAK", weak)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        if !weak.is_empty() {
            assert!(
                !stderr.contains(weak),
                "the passphrase is in the error: {stderr}"
            );
        }
    }
    assert!(!v.home.exists());
}

#[test]
fn passwd_changes_the_passphrase_atomically() {
    let v = Vault::new();
    let key = v.new_key("personal", &[]);
    let path = std::path::PathBuf::from(key["private_key_path"].as_str().expect("path"));
    let before = std::fs::read(&path).expect("read");

    // A wrong old passphrase leaves the file byte for byte as it was.
    let wrong = v
        .run(&[
            "passwd",
            "personal",
            "--passphrase-env",
            "KV_PASS2",
            "--new-passphrase-env",
            "KV_PASS",
        ])
        .expect(1)
        .no_secrets();
    assert_eq!(
        wrong.stderr.lines().next(),
        Some("error: cannot decrypt key personal-1: wrong passphrase or corrupt key file")
    );
    assert_eq!(std::fs::read(&path).expect("read"), before);

    // A weak new passphrase is refused, also without writing.
    let weak = v
        .cmd(&[
            "passwd",
            "personal",
            "--passphrase-env",
            "KV_PASS",
            "--new-passphrase-env",
            "WEAK",
        ])
        .env("WEAK", "qwerty")
        .output()
        .expect("run");
    assert_eq!(weak.status.code(), Some(2));
    assert_eq!(std::fs::read(&path).expect("read"), before);

    // Old from a file, new from stdin.
    let old = v.root.join("old");
    std::fs::write(&old, PASS).expect("write");
    crate::support::chmod(&old, 0o600);
    v.run_stdin(
        &[
            "passwd",
            "personal-1",
            "--passphrase-file",
            old.to_str().expect("utf8"),
            "--new-passphrase-stdin",
        ],
        PASS2,
    )
    .expect(0)
    .no_secrets();
    let after = std::fs::read(&path).expect("read");
    assert_ne!(after, before);
    let derived = openssh(
        "ssh-keygen",
        &["-y", "-f", path.to_str().expect("utf8")],
        PASS2,
        &v.root,
    )
    .expect(0);
    assert_eq!(
        key_body(&derived.stdout),
        key_body(key["public_key"].as_str().expect("pk"))
    );
    assert_ne!(
        openssh(
            "ssh-keygen",
            &["-y", "-f", path.to_str().expect("utf8")],
            PASS,
            &v.root
        )
        .code,
        0
    );
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("m").permissions()
        ) & 0o777,
        0o600
    );
    // Both from stdin is a usage error.
    let before = snapshot(&v.home);
    v.run(&[
        "passwd",
        "personal",
        "--passphrase-stdin",
        "--new-passphrase-stdin",
    ])
    .expect(2);
    assert_eq!(snapshot(&v.home), before);
    let log = v.run(&["--json", "log"]).expect(0).json();
    assert_eq!(log["events"][1]["action"], "passwd");
    v.assert_no_secret_on_disk();
}
