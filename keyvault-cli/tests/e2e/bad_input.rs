//! Bad input of every kind gets its documented exit code, a message naming the problem,
//! and leaves the vault exactly as it was.

use crate::support::{PASS, Vault, chmod, openssh, snapshot};
use keyvault_core::ssh_key::{Cipher, Kdf, LineEnding, PrivateKey};

/// A vault with one key, and a directory of hostile input files beside it.
fn setup() -> Vault {
    setup_in(Vault::new())
}

fn setup_in(v: Vault) -> Vault {
    v.new_key("personal", &[]);
    let files = v.root.join("in");
    std::fs::create_dir(&files).expect("mkdir");
    std::fs::write(files.join("binary"), [0u8, 159, 146, 150, 255, 0, 1]).expect("write");
    std::fs::write(files.join("huge"), vec![b'A'; 100 * 1024]).expect("write");
    std::fs::write(
        files.join("public"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIQ9FnOD4kmOaNjCLeXRiKK1aqK1LGBQYNdPk7Xu2EBo x\n",
    )
    .expect("write");
    let good = files.join("good");
    openssh(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-f", good.to_str().expect("utf8")],
        PASS,
        &v.root,
    )
    .expect(0);
    let text = std::fs::read_to_string(&good).expect("read");
    std::fs::write(files.join("truncated"), &text[..text.len() / 2]).expect("write");
    std::fs::write(files.join("rounds"), hostile_rounds_key()).expect("write");
    std::fs::write(
        files.join("dsa"),
        "-----BEGIN DSA PRIVATE KEY-----\nMIIBuwIBAAKBgQD\n-----END DSA PRIVATE KEY-----\n",
    )
    .expect("write");
    for f in ["binary", "huge", "public", "truncated", "rounds", "dsa"] {
        chmod(&files.join(f), 0o600);
    }
    v
}

/// An encrypted key whose header asks for 4 billion bcrypt rounds (made by encrypting with
/// one round and patching the rounds field).
fn hostile_rounds_key() -> String {
    let mut rng =
        keyvault_core::ssh_key::rand_core::UnwrapErr(keyvault_core::ssh_key::getrandom::SysRng);
    let key =
        PrivateKey::random(&mut rng, keyvault_core::ssh_key::Algorithm::Ed25519).expect("key");
    let enc = key
        .encrypt_with(
            Cipher::Aes256Ctr,
            Kdf::Bcrypt {
                salt: vec![7; 16],
                rounds: 1,
            },
            1,
            "x",
        )
        .expect("encrypt");
    let mut bytes = enc.to_bytes().expect("bytes").to_vec();
    let pos = bytes
        .windows(16)
        .position(|w| w == [7u8; 16])
        .expect("salt");
    bytes[pos + 16..pos + 20].copy_from_slice(&u32::MAX.to_be_bytes());
    let hostile = PrivateKey::from_bytes(&bytes).expect("parse");
    hostile
        .to_openssh(LineEnding::LF)
        .expect("encode")
        .to_string()
}

#[test]
fn table_of_bad_flags_values_and_files() {
    let v = setup();
    let f = |name: &str| v.root.join("in").join(name).display().to_string();
    let long = "a".repeat(65);
    let yesterday = (chrono::Utc::now() - chrono::TimeDelta::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let new = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["new", "--passphrase-env", "KV_PASS"]
            .iter()
            .map(ToString::to_string)
            .collect();
        a.extend(extra.iter().map(ToString::to_string));
        a
    };
    let s = |args: &[&str]| -> Vec<String> { args.iter().map(ToString::to_string).collect() };
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            new(&["--purpose", "../x"]),
            2,
            "invalid purpose \"../x\": must start with a lowercase letter or a digit",
        ),
        (new(&["--purpose", "A"]), 2, "invalid purpose \"A\""),
        (
            new(&["--purpose", ""]),
            2,
            "invalid purpose \"\": must not be empty",
        ),
        (
            new(&["--purpose", &long]),
            2,
            "must be at most 64 characters",
        ),
        (new(&["--purpose", "a/b"]), 2, "may contain only a-z, 0-9"),
        (
            new(&["--purpose", "x", "--algorithm", "dsa"]),
            2,
            "unknown algorithm \"dsa\"",
        ),
        (
            new(&["--purpose", "x", "--algorithm", "rsa-2048"]),
            2,
            "cannot generate rsa-2048 keys",
        ),
        (
            new(&["--purpose", "x", "--ttl", "0d"]),
            2,
            "invalid duration \"0d\": must be longer than zero",
        ),
        (
            new(&["--purpose", "x", "--ttl", "forever"]),
            2,
            "invalid duration \"forever\"",
        ),
        (new(&["--purpose", "x", "--ttl", "90"]), 2, "missing unit"),
        (
            new(&["--purpose", "x", "--ttl", "400d"]),
            2,
            "lifetime 400d exceeds the maximum of 365d for purpose x",
        ),
        (
            new(&["--purpose", "x", "--expires", &yesterday]),
            2,
            "is not in the future",
        ),
        (
            new(&["--purpose", "x", "--expires", "31/12/2030"]),
            2,
            "invalid date \"31/12/2030\"",
        ),
        (
            new(&["--purpose", "x", "--kdf-rounds", "0"]),
            2,
            "kdf rounds 0 out of range: expected 1 to 1000",
        ),
        (
            new(&["--purpose", "x", "--kdf-rounds", "100000"]),
            2,
            "kdf rounds 100000 out of range",
        ),
        (
            new(&["--purpose", "x", "--kdf-rounds", "8"]),
            2,
            "kdf rounds 8 are below the minimum of 16",
        ),
        (
            new(&["--purpose", "x", "--kdf-rounds", "many"]),
            2,
            "invalid value 'many'",
        ),
        (
            new(&["--purpose", "x", "--comment", "two\nlines"]),
            2,
            "invalid comment: contains a line break",
        ),
        (
            new(&["--purpose", "x", "--ttl", "1d", "--expires", "2030-01-01"]),
            2,
            "cannot be used with",
        ),
        (
            new(&["--purpose", "x", "--passphrase-stdin"]),
            2,
            "cannot be used with",
        ),
        (
            new(&["--purpose", "x", "--no-passphrase"]),
            2,
            "cannot be used with",
        ),
        (
            s(&["new", "--purpose", "x", "--no-passphrase"]),
            2,
            "purpose x requires passphrase-protected keys",
        ),
        (
            new(&["--purpose", "personal"]),
            1,
            "purpose personal already has an active key (personal-1)",
        ),
        (s(&["new"]), 2, "--purpose <PURPOSE>"),
        (
            s(&["new", "--purpose", "x", "--passphrase", "hunter22"]),
            2,
            "unexpected argument '--passphrase'",
        ),
        (s(&["frobnicate"]), 2, "unrecognized subcommand"),
        (
            s(&["show", "nosuch"]),
            1,
            "no key or purpose named \"nosuch\"",
        ),
        (
            s(&["show", "nosuch-4"]),
            1,
            "no key or purpose named \"nosuch-4\"",
        ),
        (s(&["show", "../etc"]), 2, "not a valid key id or purpose"),
        (
            s(&["list", "--purpose", "BAD"]),
            2,
            "invalid purpose \"BAD\"",
        ),
        (
            s(&["status", "--warn-within", "soon"]),
            2,
            "invalid duration \"soon\"",
        ),
        (s(&["completions", "tcsh"]), 2, "invalid value 'tcsh'"),
        (
            s(&[
                "passwd",
                "nosuch",
                "--passphrase-env",
                "KV_PASS",
                "--new-passphrase-env",
                "KV_PASS2",
            ]),
            1,
            "no key or purpose named",
        ),
        (
            s(&[
                "passwd",
                "personal",
                "--passphrase-env",
                "KV_PASS",
                "--new-passphrase-env",
                "NOPE",
            ]),
            2,
            "environment variable NOPE (--new-passphrase-env) is not set",
        ),
        (
            s(&[
                "passwd",
                "personal",
                "--passphrase-file",
                "/nonexistent/p",
                "--new-passphrase-env",
                "KV_PASS2",
            ]),
            2,
            "passphrase file /nonexistent/p (--passphrase-file) does not exist",
        ),
        (
            s(&[
                "import",
                "/nonexistent/key",
                "--purpose",
                "x",
                "--passphrase-env",
                "KV_PASS",
            ]),
            1,
            "cannot read /nonexistent/key",
        ),
        (
            s(&[
                "import",
                &f("binary"),
                "--purpose",
                "x",
                "--passphrase-env",
                "KV_PASS",
            ]),
            1,
            "is not a readable OpenSSH private key",
        ),
        (
            s(&[
                "import",
                &f("truncated"),
                "--purpose",
                "x",
                "--passphrase-env",
                "KV_PASS",
            ]),
            1,
            "is not a readable OpenSSH private key",
        ),
        (
            s(&[
                "import",
                &f("public"),
                "--purpose",
                "x",
                "--passphrase-env",
                "KV_PASS",
            ]),
            1,
            "is not a readable OpenSSH private key",
        ),
        (
            s(&[
                "import",
                &f("dsa"),
                "--purpose",
                "x",
                "--passphrase-env",
                "KV_PASS",
            ]),
            1,
            "is not a readable OpenSSH private key",
        ),
        (
            s(&[
                "import",
                &f("huge"),
                "--purpose",
                "x",
                "--passphrase-env",
                "KV_PASS",
            ]),
            1,
            "is larger than 65536 bytes",
        ),
        (
            s(&[
                "import",
                &f("rounds"),
                "--purpose",
                "x",
                "--passphrase-env",
                "KV_PASS",
            ]),
            1,
            "asks for 4294967295 kdf rounds; keyvault refuses more than 1000",
        ),
        (
            s(&[
                "import",
                &f("good"),
                "--purpose",
                "x",
                "--passphrase-env",
                "KV_PASS2",
            ]),
            1,
            "wrong passphrase or corrupt key file",
        ),
        (
            s(&[
                "import",
                &f("good"),
                "--purpose",
                "BAD",
                "--passphrase-env",
                "KV_PASS",
            ]),
            2,
            "invalid purpose \"BAD\"",
        ),
        (
            s(&[
                "import",
                &f("good"),
                "--purpose",
                "personal",
                "--passphrase-env",
                "KV_PASS",
            ]),
            1,
            "already has an active key",
        ),
        (
            s(&[
                "import",
                &v.home.join("keys/personal-1").display().to_string(),
                "--purpose",
                "again",
                "--passphrase-env",
                "KV_PASS",
            ]),
            1,
            "this key is already in the vault as personal-1",
        ),
        // export / restore
        (s(&["export"]), 2, "--output"),
        (
            s(&["export", "-o", &f("out.age"), "-r", "age1nope"]),
            2,
            "invalid recipient \"age1nope\"",
        ),
        (
            s(&["export", "-o", &f("out.age"), "-r", "hello"]),
            2,
            "expected an age1… recipient",
        ),
        (
            s(&["export", "-o", &f("out.age"), "-R", &f("binary")]),
            2,
            "cannot read recipients file",
        ),
        (
            s(&["export", "-o", &f("out.age"), "-R", &f("huge")]),
            2,
            "line 1",
        ),
        (
            s(&["export", "-o", &f("good"), "--passphrase-env", "KV_PASS"]),
            2,
            "exists; choose another file or pass --force",
        ),
        (
            s(&[
                "export",
                "-o",
                &f("out.age"),
                "-R",
                &f("public"),
                "--passphrase-env",
                "KV_PASS",
            ]),
            2,
            "give recipients or a passphrase source, not both",
        ),
        (s(&["restore", &f("nosuch")]), 2, "cannot read"),
        (
            s(&["restore", &f("binary"), "-i", &f("good")]),
            2,
            "is not empty",
        ),
        (
            s(&[
                "--home",
                &f("new-home"),
                "restore",
                &f("binary"),
                "-i",
                &f("good"),
            ]),
            1,
            "not an age-encrypted file",
        ),
    ];
    for (args, code, message) in &cases {
        let before = snapshot(&v.home);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = v.run(&argv).no_secrets();
        assert_eq!(run.code, *code, "{args:?}\nstderr: {}", run.stderr);
        assert!(
            run.stderr.contains(message),
            "{args:?}: expected {message:?} in\n{}",
            run.stderr
        );
        assert!(
            run.stdout.is_empty(),
            "{args:?} printed to stdout: {}",
            run.stdout
        );
        assert_eq!(snapshot(&v.home), before, "{args:?} changed the vault");
    }
}

#[test]
fn json_errors_go_to_stderr_as_json() {
    let v = setup();
    let run = v.run(&["--json", "show", "nosuch"]).expect(1);
    assert!(run.stdout.is_empty());
    let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("json error");
    assert_eq!(err["error"]["kind"], "failure");
    assert_eq!(
        err["error"]["message"],
        "no key or purpose named \"nosuch\""
    );
    let run = v.run(&["--json", "new", "--purpose", "../x"]).expect(2);
    let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("json error");
    assert_eq!(err["error"]["kind"], "usage");
}

#[test]
fn vault_files_with_wrong_permissions_or_content_are_refused_not_overwritten() {
    let v = setup_in(Vault::files());
    let inventory = v.home.join("inventory.json");

    chmod(&inventory, 0o644);
    let before = snapshot(&v.home);
    let run = v.run(&["list"]).expect(1);
    assert!(
        run.stderr
            .contains("inventory.json has mode 0644; expected 0600"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("hint: run `chmod 600 {}`", inventory.display())),
        "{}",
        run.stderr
    );
    v.run(&["new", "--purpose", "x", "--passphrase-env", "KV_PASS"])
        .expect(1);
    assert_eq!(snapshot(&v.home), before);
    chmod(&inventory, 0o600);

    let good = std::fs::read(&inventory).expect("read");
    for (name, content, message) in [
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "is corrupt: not valid JSON",
        ),
        ("binary", vec![0, 1, 2, 255], "is corrupt"),
        (
            "version",
            String::from_utf8_lossy(&good)
                .replacen("\"version\": 1", "\"version\": 99", 1)
                .into_bytes(),
            "has version 99; this keyvault reads version 1",
        ),
        (
            "unknown field",
            String::from_utf8_lossy(&good)
                .replacen("\"keys\"", "\"extra\": 1, \"keys\"", 1)
                .into_bytes(),
            "unknown field `extra`",
        ),
    ] {
        std::fs::write(&inventory, &content).expect("write");
        chmod(&inventory, 0o600);
        let before = snapshot(&v.home);
        for args in [
            &["list"][..],
            &["new", "--purpose", "x", "--passphrase-env", "KV_PASS"],
            &["status"],
        ] {
            let run = v.run(args);
            assert_eq!(run.code, 1, "{name} {args:?}: {}", run.stderr);
            assert!(run.stderr.contains(message), "{name}: {}", run.stderr);
        }
        assert_eq!(
            snapshot(&v.home),
            before,
            "{name}: the inventory was touched"
        );
    }
    std::fs::write(&inventory, &good).expect("restore");
    v.run(&["list"]).expect(0);
}

#[test]
fn never_writes_through_a_symlink_out_of_the_home() {
    let v = setup_in(Vault::files());
    let outside = v.root.join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    let keys = v.home.join("keys");
    std::fs::rename(&keys, v.root.join("keys-moved")).expect("move");
    std::os::unix::fs::symlink(&outside, &keys).expect("symlink");
    let run = v
        .run(&["new", "--purpose", "x", "--passphrase-env", "KV_PASS"])
        .expect(1);
    assert!(
        run.stderr.contains("is a symlink or not a regular file"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_dir(&outside).expect("ls").count(),
        0,
        "wrote outside the home"
    );

    // A symlinked inventory is not read either.
    std::fs::remove_file(&keys).expect("rm");
    std::fs::rename(v.root.join("keys-moved"), &keys).expect("move back");
    let inventory = v.home.join("inventory.json");
    let elsewhere = v.root.join("inventory-elsewhere.json");
    std::fs::rename(&inventory, &elsewhere).expect("move");
    std::os::unix::fs::symlink(&elsewhere, &inventory).expect("symlink");
    let run = v.run(&["list"]).expect(1);
    assert!(run.stderr.contains("is a symlink"), "{}", run.stderr);
}

/// Arguments, extra environment, exit code, and a part of the message.
type LifecycleCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);

#[test]
fn table_of_bad_input_for_lifecycle_commands_and_environment() {
    use keyvault_tests::fake_runpod::FakeRunpod;
    let server = FakeRunpod::start();
    server.set_keys(&["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com"]);
    let v = Vault::new();
    v.use_runpod(&server);
    v.new_key("personal", &[]);
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    let remote = server.keys();
    let no_env: &[(&str, &str)] = &[];
    let cases: Vec<LifecycleCase<'_>> = vec![
        (
            &["deploy", "personal", "--to", "nowhere"],
            no_env,
            2,
            "invalid target \"nowhere\": expected runpod, runpod:PROFILE, file:/path/to/authorized_keys or ssh://[user@]host[:port][/path]",
        ),
        (
            &[
                "deploy",
                "personal",
                "--to",
                "ssh://-oProxyCommand=touch_pwned",
            ],
            no_env,
            2,
            "the host may contain only letters",
        ),
        (
            &["deploy", "personal", "--to", "ssh://host:99999"],
            no_env,
            2,
            "the port must be a number from 1 to 65535",
        ),
        (
            &["deploy", "personal", "--to", "ssh://host/../etc/passwd"],
            no_env,
            2,
            "the path must be absolute, without '..'",
        ),
        (
            &["deploy", "personal", "--to", "ssh://host/a'b"],
            no_env,
            2,
            "the path must be absolute",
        ),
        (
            &["deploy", "personal", "--to", "ssh://us$er@host"],
            no_env,
            2,
            "the user may contain only letters",
        ),
        (
            &[
                "deploy",
                "personal",
                "--to",
                "file:relative/authorized_keys",
            ],
            no_env,
            2,
            "a file target needs an absolute path",
        ),
        (
            &["deploy", "personal", "--to", "file:/tmp/../etc/x"],
            no_env,
            2,
            "the path may not contain '..'",
        ),
        (
            &["mint", "--purpose", "ci", "--ttl", "1h"],
            no_env,
            2,
            "no passphrase for minted key for purpose ci",
        ),
        (
            &[
                "mint",
                "--purpose",
                "ci",
                "--ttl",
                "never",
                "--passphrase-env",
                "KV_PASS",
            ],
            no_env,
            2,
            "invalid duration \"never\"",
        ),
        (
            &["mint", "--purpose", "ci", "--ttl", "1h", "--no-passphrase"],
            no_env,
            2,
            "purpose ci requires passphrase-protected keys",
        ),
        (
            &[
                "mint",
                "--purpose",
                "ci",
                "--ttl",
                "1h",
                "--from",
                "10.0.0.1\" x",
                "--passphrase-env",
                "KV_PASS",
            ],
            no_env,
            2,
            "invalid --from entry",
        ),
        (
            &[
                "mint",
                "--purpose",
                "ci",
                "--ttl",
                "1h",
                "--force-command",
                "a\nb",
                "--passphrase-env",
                "KV_PASS",
            ],
            no_env,
            2,
            "invalid --force-command",
        ),
        (
            &[
                "mint",
                "--purpose",
                "ci",
                "--ttl",
                "1h",
                "--deploy",
                "nowhere",
                "--passphrase-env",
                "KV_PASS",
            ],
            no_env,
            2,
            "invalid target \"nowhere\"",
        ),
        (
            &[
                "mint",
                "--purpose",
                "ci",
                "--ttl",
                "1h",
                "--private-key-out",
                "/etc/hostname",
                "--passphrase-env",
                "KV_PASS",
            ],
            no_env,
            2,
            "/etc/hostname exists; keyvault will not overwrite it",
        ),
        (
            &["deploy", "personal", "--to", "runpod:BAD"],
            no_env,
            2,
            "invalid target \"runpod:BAD\"",
        ),
        (
            &["deploy", "personal", "--to", ""],
            no_env,
            2,
            "invalid target \"\"",
        ),
        (&["deploy", "personal"], no_env, 2, "--to <TARGET>"),
        (
            &["deploy", "nosuch", "--to", "runpod"],
            no_env,
            1,
            "no key or purpose named \"nosuch\"",
        ),
        (
            &["revoke", "nosuch"],
            no_env,
            1,
            "no key or purpose named \"nosuch\"",
        ),
        (
            &["revoke", "../x"],
            no_env,
            2,
            "not a valid key id or purpose",
        ),
        (&["rotate"], no_env, 2, "<PURPOSES>"),
        (&["rotate", "../x"], no_env, 2, "invalid purpose \"../x\""),
        (
            &["rotate", "nosuch", "--passphrase-env", "KV_PASS"],
            no_env,
            1,
            "no key or purpose named \"nosuch\"",
        ),
        (
            &["rotate", "personal", "--grace", "forever"],
            no_env,
            2,
            "invalid duration \"forever\"",
        ),
        (
            &["rotate", "personal", "--all"],
            no_env,
            2,
            "cannot be used with",
        ),
        (
            &[
                "rotate",
                "personal",
                "--ttl",
                "900d",
                "--passphrase-env",
                "KV_PASS",
            ],
            no_env,
            2,
            "lifetime 900d exceeds the maximum",
        ),
        (
            &["rotate", "--abort", "personal"],
            no_env,
            2,
            "purpose personal has no rotation in progress",
        ),
        (
            &["rotate", "personal", "--passphrase-env", "NOPE"],
            no_env,
            2,
            "environment variable NOPE (--passphrase-env) is not set",
        ),
        (
            &["rotate", "personal", "--passphrase-env", "WEAK"],
            &[("WEAK", "letmein")],
            2,
            "is too weak",
        ),
        (
            &["rotate", "personal", "--passphrase-env", "KV_PASS"],
            &[("KEYVAULT_RUNPOD_TIMEOUT", "soon")],
            2,
            "KEYVAULT_RUNPOD_TIMEOUT must be a number of seconds",
        ),
        (
            &["runpod", "keys", "--target", "bogus"],
            no_env,
            2,
            "invalid target \"bogus\"",
        ),
        (
            &["runpod", "keys"],
            &[("RUNPOD_API_URL", "::not a url::")],
            1,
            "cannot reach RunPod at ::not a url::",
        ),
        (
            &["runpod", "pods"],
            &[("RUNPOD_API_KEY", "")],
            2,
            "no credentials for runpod",
        ),
        (
            &["runpod", "keys"],
            &[("RUNPOD_API_KEY", "rpa_NOT_THE_KEY_000")],
            1,
            "RunPod rejected the API key",
        ),
        (&["runpod"], no_env, 2, "Usage: keyvault runpod"),
        (
            &["scan", "--max-age", "soon"],
            no_env,
            2,
            "invalid duration \"soon\"",
        ),
        (
            &["status", "--warn-within", "0d"],
            no_env,
            2,
            "must be longer than zero",
        ),
        (
            &["log", "--verify", "extra"],
            no_env,
            2,
            "unexpected argument 'extra'",
        ),
        (&["completions"], no_env, 2, "<SHELL>"),
        (
            &["prune", "--yes", "--no"],
            no_env,
            2,
            "unexpected argument '--no'",
        ),
    ];
    for (args, env, code, message) in cases {
        let before = snapshot(&v.home);
        let mut cmd = v.cmd(args);
        for (k, val) in env {
            cmd.env(k, val);
        }
        let out = cmd.output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in\n{stderr}"
        );
        assert!(
            !stderr.contains(keyvault_tests::fake_runpod::DEFAULT_KEY)
                && !stderr.contains(crate::support::PASS)
        );
        assert_eq!(snapshot(&v.home), before, "{args:?} changed the vault");
        assert_eq!(server.keys(), remote, "{args:?} changed the account");
    }
}
