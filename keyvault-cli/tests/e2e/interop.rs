//! OpenSSH interop: `ssh-keygen` reads what keyvault writes, and keyvault imports what
//! `ssh-keygen` writes.

use crate::support::{PASS, PASS2, Vault, chmod, key_body, openssh};

#[test]
fn ssh_keygen_reads_every_generated_algorithm() {
    let v = Vault::new();
    for (i, alg) in [
        "ed25519",
        "rsa-3072",
        "rsa-4096",
        "ecdsa-p256",
        "ecdsa-p384",
    ]
    .iter()
    .enumerate()
    {
        let purpose = format!("interop{i}");
        let key = v.new_key(&purpose, &["--algorithm", alg]);
        assert_eq!(key["algorithm"], *alg);
        let path = key["private_key_path"].as_str().expect("path");
        let public = key["public_key"].as_str().expect("public key");

        // The private key decrypts with the passphrase and yields the recorded public key.
        let derived = openssh("ssh-keygen", &["-y", "-f", path], PASS, &v.root).expect(0);
        assert_eq!(key_body(&derived.stdout), key_body(public), "{alg}");
        // The wrong passphrase does not decrypt it.
        let wrong = openssh(
            "ssh-keygen",
            &["-y", "-f", path],
            "not the passphrase",
            &v.root,
        );
        assert_ne!(wrong.code, 0, "{alg} decrypted with a wrong passphrase");

        // ssh-keygen prints the same SHA256 fingerprint.
        let pub_path = key["public_key_path"].as_str().expect("pub path");
        let listed = openssh(
            "ssh-keygen",
            &["-l", "-E", "sha256", "-f", pub_path],
            "",
            &v.root,
        )
        .expect(0);
        let fingerprint = key["fingerprint"].as_str().expect("fingerprint");
        assert_eq!(
            listed.stdout.split_whitespace().nth(1),
            Some(fingerprint),
            "{alg}"
        );

        // The stable path names this key.
        let current = key["current_path"].as_str().expect("current");
        let via_current = openssh("ssh-keygen", &["-y", "-f", current], PASS, &v.root).expect(0);
        assert_eq!(key_body(&via_current.stdout), key_body(public));
        let mode = std::fs::metadata(path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
        assert_eq!(mode.expect("meta"), 0o600);
    }
    v.assert_no_secret_on_disk();
}

#[test]
fn imports_ssh_keygen_keys_of_every_type() {
    let v = Vault::new();
    let cases: &[(&str, &[&str], &str)] = &[
        ("ed25519", &["-t", "ed25519", "-a", "100"], "ed25519"),
        ("rsa3072", &["-t", "rsa", "-b", "3072"], "rsa-3072"),
        (
            "rsa4096",
            &["-t", "rsa", "-b", "4096", "-a", "32"],
            "rsa-4096",
        ),
        ("ecdsa256", &["-t", "ecdsa", "-b", "256"], "ecdsa-p256"),
        ("ecdsa384", &["-t", "ecdsa", "-b", "384"], "ecdsa-p384"),
    ];
    for (name, keygen_args, alg) in cases {
        let file = v.root.join(format!("id_{name}"));
        let mut args = vec![
            "-q",
            "-C",
            "made-by-ssh-keygen",
            "-f",
            file.to_str().expect("utf8"),
        ];
        args.extend_from_slice(keygen_args);
        openssh("ssh-keygen", &args, PASS, &v.root).expect(0);
        let before = std::fs::read(&file).expect("read");
        let expected = openssh(
            "ssh-keygen",
            &[
                "-l",
                "-E",
                "sha256",
                "-f",
                &format!("{}.pub", file.display()),
            ],
            "",
            &v.root,
        )
        .expect(0)
        .stdout;
        let expected_fp = expected
            .split_whitespace()
            .nth(1)
            .expect("fingerprint")
            .to_owned();

        let purpose = format!("imp-{name}");
        let key = v
            .run(&[
                "--json",
                "import",
                file.to_str().expect("utf8"),
                "--purpose",
                &purpose,
                "--passphrase-env",
                "KV_PASS",
            ])
            .expect(0)
            .no_secrets()
            .json();
        assert_eq!(key["fingerprint"], expected_fp.as_str(), "{name}");
        assert_eq!(key["algorithm"], *alg);
        assert_eq!(key["origin"], "imported");
        assert_eq!(key["comment"], "made-by-ssh-keygen");
        // -a 100 is kept; lower rounds are raised to at least 16.
        let rounds = key["kdf_rounds"].as_u64().expect("rounds");
        assert!(rounds >= 16, "{name}: {rounds}");
        if keygen_args.contains(&"100") {
            assert_eq!(rounds, 100);
        }
        // The source is untouched and the vault copy still opens with the same passphrase.
        assert_eq!(std::fs::read(&file).expect("read"), before);
        let path = key["private_key_path"].as_str().expect("path");
        let derived = openssh("ssh-keygen", &["-y", "-f", path], PASS, &v.root).expect(0);
        assert_eq!(
            key_body(&derived.stdout),
            key_body(key["public_key"].as_str().expect("pk"))
        );
    }
}

#[test]
fn unencrypted_import_is_encrypted_on_the_way_in() {
    let v = Vault::new();
    let file = v.root.join("id_plain");
    openssh(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-f", file.to_str().expect("utf8")],
        "",
        &v.root,
    )
    .expect(0);
    let key = v
        .run(&[
            "--json",
            "import",
            file.to_str().expect("utf8"),
            "--purpose",
            "legacy",
            "--passphrase-env",
            "KV_PASS2",
        ])
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(key["protection"], "passphrase");
    let path = key["private_key_path"].as_str().expect("path");
    assert!(
        std::fs::read_to_string(path)
            .expect("read")
            .contains("OPENSSH PRIVATE KEY")
    );
    // Encrypted now: the empty passphrase no longer opens it, the new one does.
    assert_ne!(
        openssh("ssh-keygen", &["-y", "-f", path], "", &v.root).code,
        0
    );
    openssh("ssh-keygen", &["-y", "-f", path], PASS2, &v.root).expect(0);
}

#[test]
fn import_refuses_files_others_can_read_and_wrong_passphrases() {
    let v = Vault::new();
    let file = v.root.join("id_shared");
    openssh(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-f", file.to_str().expect("utf8")],
        PASS,
        &v.root,
    )
    .expect(0);
    chmod(&file, 0o644);
    let run = v
        .run(&[
            "import",
            file.to_str().expect("utf8"),
            "--purpose",
            "shared",
            "--passphrase-env",
            "KV_PASS",
        ])
        .expect(1);
    assert!(
        run.stderr.contains("has mode 0644; expected 0600"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: run `chmod 600"),
        "{}",
        run.stderr
    );
    chmod(&file, 0o600);
    let run = v
        .run(&[
            "import",
            file.to_str().expect("utf8"),
            "--purpose",
            "shared",
            "--passphrase-env",
            "KV_PASS2",
        ])
        .expect(1);
    assert!(
        run.stderr.contains("wrong passphrase or corrupt key file"),
        "{}",
        run.stderr
    );
    assert!(!v.home.exists(), "a failed import created the vault");
}
