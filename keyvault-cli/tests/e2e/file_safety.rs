//! Issue 12, items 4, 5 and the read caps of 8: nothing is written through a link, with a
//! mode the umask chose, or with an owner keyvault changed; a file that is no
//! authorized_keys file is not edited; target files are read with a cap, never blocking.

use crate::sshd::Sshd;
use crate::support::{PASS, Vault, chmod};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNMANAGED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com";

/// A vault whose `ci` purpose allows unencrypted keys.
fn vault() -> Vault {
    let v = Vault::new();
    v.write_config(crate::support::CI_CONFIG);
    v
}

/// `v.cmd(args)` run by `sh` under umask 000.
fn run_with_umask_000(v: &Vault, args: &[&str]) -> crate::support::Run {
    let c = v.cmd(args);
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear()
        .stdin(Stdio::null());
    for (k, val) in c.get_envs() {
        if let Some(val) = val {
            sh.env(k, val);
        }
    }
    let out = sh.output().expect("run sh");
    crate::support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("meta").mode() & 0o7777
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// No key was minted: the inventory holds no `ci` key and the audit log no `mint`.
fn nothing_minted(v: &Vault) {
    let keys = v.run(&["--json", "list", "--all"]).expect(0).json();
    assert!(
        keys["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .all(|k| k["purpose"] != "ci"),
        "{keys}"
    );
    assert!(!v.audit_text().contains("\"mint\""), "{}", v.audit_text());
}

#[test]
fn mint_refuses_a_certificate_path_that_is_a_symlink_and_writes_exact_modes_under_umask_000() {
    let v = vault();
    v.run(&["ca", "init", "--passphrase-env", "KV_PASS"])
        .expect(0);
    let out = v.root.join("minted");
    let outside = v.root.join("outside");
    std::fs::write(&outside, "precious\n").expect("write");
    std::os::unix::fs::symlink(&outside, v.root.join("minted-cert.pub")).expect("symlink");
    let mint = crate::support::mint_ci_cert(&out);
    let run = run_with_umask_000(&v, &mint).expect(2).no_secrets();
    assert!(
        run.stderr
            .contains("minted-cert.pub exists; keyvault will not overwrite it"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&outside).expect("read"),
        "precious\n"
    );
    assert!(std::fs::symlink_metadata(&out).is_err());
    nothing_minted(&v);

    // Without the link, the key and certificate get exactly 0600 and 0644 under umask 000.
    std::fs::remove_file(v.root.join("minted-cert.pub")).expect("rm");
    run_with_umask_000(&v, &mint).expect(0).no_secrets();
    assert_eq!(mode(&out), 0o600);
    assert_eq!(mode(&v.root.join("minted-cert.pub")), 0o644);
    let cert = std::fs::read_to_string(v.root.join("minted-cert.pub")).expect("cert");
    assert!(
        cert.starts_with("ssh-ed25519-cert-v01@openssh.com "),
        "{cert}"
    );
    assert_eq!(
        std::fs::read_to_string(&outside).expect("read"),
        "precious\n"
    );
}

#[test]
fn mint_into_a_missing_directory_fails_before_anything_is_minted_or_deployed() {
    let v = vault();
    let ak = v.root.join("authorized_keys");
    std::fs::write(&ak, format!("{UNMANAGED}\n")).expect("write");
    let target = format!("file:{}", ak.display());
    let out = v.root.join("missing_dir/key");
    let run = v
        .run(&[
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--no-passphrase",
            "--deploy",
            &target,
            "--private-key-out",
            s(&out),
        ])
        .expect(2)
        .no_secrets();
    assert!(
        run.stderr.contains(&format!(
            "cannot write the private key to {}: {} is not a directory; nothing was minted",
            out.display(),
            v.root.join("missing_dir").display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&ak).expect("read"),
        format!("{UNMANAGED}\n")
    );
    nothing_minted(&v);
}

/// The output directory exists when keyvault checks it and is gone when it writes (removed
/// while keyvault waits for its passphrase on a FIFO): the error says what was recorded
/// and deployed, and how to undo it.
#[test]
fn mint_whose_key_file_cannot_be_written_late_says_what_was_recorded_and_deployed() {
    let v = vault();
    let ak = v.root.join("authorized_keys");
    std::fs::write(&ak, format!("{UNMANAGED}\n")).expect("write");
    let target = format!("file:{}", ak.display());
    let dir = v.root.join("out");
    std::fs::create_dir(&dir).expect("mkdir");
    let out = dir.join("key");
    let fifo = v.root.join("passphrase.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let child = v
        .cmd(&[
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--passphrase-file",
            s(&fifo),
            "--deploy",
            &target,
            "--private-key-out",
            s(&out),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        // Opening blocks until keyvault opens the FIFO to read the passphrase: by then it
        // has checked the output path.
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open fifo");
        std::fs::remove_dir(&dir).expect("rmdir");
        writeln!(w, "{PASS}").expect("write passphrase");
    }
    let out_ = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out_.stderr);
    assert_eq!(out_.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains(PASS));
    assert!(
        stderr.contains(&format!(
            "done: ci-1 recorded in the vault and deployed to {target}; not done: writing {}",
            out.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("`keyvault revoke ci-1` removes the key everywhere"),
        "{stderr}"
    );
    assert!(
        std::fs::read_to_string(&ak)
            .expect("read")
            .contains("keyvault:ci-1")
    );
}

#[test]
fn a_home_others_can_write_owned_by_another_user_or_named_link_slash_is_refused() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let inventory = v.inventory_text();

    chmod(&v.home, 0o777);
    let run = v.run(&["list"]).expect(1).no_secrets();
    assert!(
        run.stderr.contains(&format!(
            "{} has mode 0777; expected 0700",
            v.home.display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("hint: run `chmod 700 {}`", v.home.display())),
        "{}",
        run.stderr
    );
    chmod(&v.home, 0o700);

    std::os::unix::fs::chown(&v.home, Some(65534), Some(65534)).expect("chown");
    let run = v
        .run(&["new", "--purpose", "work", "--passphrase-env", "KV_PASS"])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr.contains(&format!(
            "{} is owned by user 65534, not by the user running keyvault",
            v.home.display()
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: run `chown "), "{}", run.stderr);
    std::os::unix::fs::chown(&v.home, Some(0), Some(0)).expect("chown back");
    assert_eq!(v.inventory_text(), inventory);

    // KEYVAULT_HOME=link/ resolves the link; keyvault must not write through it.
    let link = v.root.join("link");
    std::os::unix::fs::symlink(&v.home, &link).expect("symlink");
    v.set_env("KEYVAULT_HOME", &format!("{}/", link.display()));
    let run = v
        .run(&["new", "--purpose", "work", "--passphrase-env", "KV_PASS"])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr.contains(&format!(
            "{} is a symlink or not a regular file; keyvault does not write through it",
            link.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(v.inventory_text(), inventory);
    v.set_env("KEYVAULT_HOME", s(&v.home));
    v.run(&["list"]).expect(0);
}

#[test]
fn a_file_target_keeps_its_owner_group_and_mode() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let dir = v.root.join("home-u/.ssh");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let ak = dir.join("authorized_keys");
    std::fs::write(&ak, format!("{UNMANAGED}\n")).expect("write");
    std::os::unix::fs::chown(&ak, Some(65534), Some(65534)).expect("chown");
    chmod(&ak, 0o640);
    v.run(&[
        "deploy",
        "personal",
        "--to",
        &format!("file:{}", ak.display()),
    ])
    .expect(0)
    .no_secrets();
    let meta = std::fs::metadata(&ak).expect("meta");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (65534, 65534, 0o640)
    );
    let text = std::fs::read_to_string(&ak).expect("read");
    assert!(text.starts_with(&format!("{UNMANAGED}\n")) && text.contains("keyvault:personal-1"));
}

#[test]
fn a_file_that_is_no_authorized_keys_file_is_not_edited_unless_allowed() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let shadow = v.root.join("shadow");
    let content = "# accounts\nroot:*:19000:0:99999:7:::\n";
    std::fs::write(&shadow, content).expect("write");
    let target = format!("file:{}", shadow.display());
    let run = v
        .run(&["deploy", "personal", "--to", &target])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr
            .contains(&format!("{target}: line 2 is not an authorized_keys entry")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--allow-non-key-lines"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&shadow).expect("read"), content);
    // The user says it is an authorized_keys file: keyvault edits it, keeping the line.
    v.run(&[
        "deploy",
        "personal",
        "--to",
        &target,
        "--allow-non-key-lines",
    ])
    .expect(0);
    let text = std::fs::read_to_string(&shadow).expect("read");
    assert!(
        text.starts_with(content) && text.contains("keyvault:personal-1"),
        "{text}"
    );
}

/// Waits for `child` at most 20 s; a hang (a FIFO, an endless host) fails the test.
fn wait_bounded(mut child: std::process::Child) -> std::process::Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("keyvault did not finish within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn file_targets_are_read_with_a_cap_and_a_fifo_never_blocks() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let fifo = v.root.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let target = format!("file:{}", fifo.display());
    for args in [
        vec!["deploy", "personal", "--to", target.as_str()],
        vec!["status"],
    ] {
        let child = v
            .cmd(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = wait_bounded(child);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if args[0] == "deploy" {
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains(&format!(
                    "{} is a symlink or not a regular file",
                    fifo.display()
                )),
                "{stderr}"
            );
        }
    }
    // A huge (sparse) file is refused from its size, not read.
    let big = v.root.join("big");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(64 << 30))
        .expect("sparse file");
    let run = v
        .run(&[
            "deploy",
            "personal",
            "--to",
            &format!("file:{}", big.display()),
        ])
        .expect(1);
    assert!(
        run.stderr.contains("file is larger than 16777216 bytes"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::metadata(&big).expect("meta").len(), 64 << 30);
}

/// A test host reached with an admin key through the user's own SSH setup, and the
/// ssh:// target naming `path` on it.
fn ssh_host(v: &Vault) -> (Sshd, PathBuf) {
    let server = v.root.join("server");
    std::fs::create_dir(&server).expect("mkdir");
    let sshd = Sshd::start(&server);
    let admin = v.root.join("admin_key");
    crate::support::openssh(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-f", s(&admin)],
        "",
        &v.root,
    )
    .expect(0);
    let host_pub = std::fs::read_to_string(server.join("ssh_host_ed25519_key.pub")).expect("pub");
    crate::support::isolate_ssh(
        v,
        Some(&admin),
        &format!("[127.0.0.1]:{} {host_pub}", sshd.port),
    );
    std::fs::copy(v.root.join("admin_key.pub"), &sshd.authorized_keys).expect("admin key");
    (sshd, server)
}

fn ssh_target(sshd: &Sshd, path: &Path) -> String {
    format!("ssh://root@127.0.0.1:{}{}", sshd.port, path.display())
}

#[test]
fn an_ssh_target_that_is_a_symlink_or_no_authorized_keys_file_is_refused() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let (sshd, server) = ssh_host(&v);

    let elsewhere = server.join("elsewhere");
    std::fs::write(&elsewhere, "# not the file you think\n").expect("write");
    let link = server.join("link_authorized_keys");
    std::os::unix::fs::symlink(&elsewhere, &link).expect("symlink");
    let run = v
        .run(&["deploy", "personal", "--to", &ssh_target(&sshd, &link)])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr.contains(&format!(
            "{} is a symlink or not a regular file; keyvault does not write through it",
            link.display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(&elsewhere).expect("read"),
        "# not the file you think\n"
    );

    let shadow = server.join("shadow");
    let content = "root:*:19000:0:99999:7:::\n";
    std::fs::write(&shadow, content).expect("write");
    let run = v
        .run(&["deploy", "personal", "--to", &ssh_target(&sshd, &shadow)])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr
            .contains("line 1 is not an authorized_keys entry"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&shadow).expect("read"), content);

    // Over the cap: refused once the cap and a byte have been read, nothing written.
    let big = server.join("big");
    let line = format!("# {}\n", "x".repeat(1021));
    std::fs::write(&big, line.repeat(17 * 1024)).expect("write");
    let run = v
        .run(&["deploy", "personal", "--to", &ssh_target(&sshd, &big)])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr
            .contains(&format!("{} is larger than 16777216 bytes", big.display())),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::metadata(&big).expect("meta").len(),
        17 * 1024 * 1024
    );
}

#[test]
fn an_ssh_target_keeps_its_owner_group_and_mode() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let (sshd, server) = ssh_host(&v);
    let ak = server.join("user_authorized_keys");
    std::fs::write(&ak, format!("{UNMANAGED}\n")).expect("write");
    std::os::unix::fs::chown(&ak, Some(65534), Some(65534)).expect("chown");
    chmod(&ak, 0o604);
    v.run(&["deploy", "personal", "--to", &ssh_target(&sshd, &ak)])
        .expect(0)
        .no_secrets();
    let meta = std::fs::metadata(&ak).expect("meta");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (65534, 65534, 0o604)
    );
    let text = std::fs::read_to_string(&ak).expect("read");
    assert!(text.starts_with(&format!("{UNMANAGED}\n")) && text.contains("keyvault:personal-1"));
}

#[test]
fn an_ssh_target_whose_directory_is_a_symlink_is_refused() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let (sshd, server) = ssh_host(&v);
    // A user points their .ssh at root's: keyvault running as root must not follow it.
    let victim = server.join("victim/.ssh");
    std::fs::create_dir_all(&victim).expect("mkdir");
    let victim_ak = victim.join("authorized_keys");
    std::fs::write(&victim_ak, format!("{UNMANAGED}\n")).expect("write");
    let user = server.join("u");
    std::fs::create_dir(&user).expect("mkdir");
    std::os::unix::fs::symlink(&victim, user.join(".ssh")).expect("symlink");
    let ak = user.join(".ssh/authorized_keys");
    let run = v
        .run(&["deploy", "personal", "--to", &ssh_target(&sshd, &ak)])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr.contains(&format!(
            "{}: {} is or passes through a symlink",
            ak.display(),
            user.join(".ssh").display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&victim_ak).expect("read"),
        format!("{UNMANAGED}\n")
    );
    // A link higher up, with the directory to be created below it: refused, nothing made.
    let up = server.join("up");
    std::os::unix::fs::symlink(server.join("victim"), &up).expect("symlink");
    let run = v
        .run(&[
            "deploy",
            "personal",
            "--to",
            &ssh_target(&sshd, &up.join("new/authorized_keys")),
        ])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr.contains("is or passes through a symlink"),
        "{}",
        run.stderr
    );
    assert!(!server.join("victim/new").exists());
}

#[test]
fn a_new_authorized_keys_file_made_as_root_belongs_to_the_parent_directorys_owner() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let (sshd, server) = ssh_host(&v);
    let user = server.join("home-nobody");
    std::fs::create_dir(&user).expect("mkdir");
    std::os::unix::fs::chown(&user, Some(65534), Some(65534)).expect("chown");
    let ak = user.join(".ssh/authorized_keys");
    v.run(&["deploy", "personal", "--to", &ssh_target(&sshd, &ak)])
        .expect(0)
        .no_secrets();
    for (path, want) in [(user.join(".ssh"), 0o700), (ak.clone(), 0o600)] {
        let meta = std::fs::symlink_metadata(&path).expect("meta");
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (65534, 65534, want),
            "{}",
            path.display()
        );
    }
    assert!(
        std::fs::read_to_string(&ak)
            .expect("read")
            .contains("keyvault:personal-1")
    );
}

#[test]
fn a_home_named_link_dot_or_through_dot_dot_is_refused() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let inventory = v.inventory_text();
    let link = v.root.join("link");
    std::os::unix::fs::symlink(&v.home, &link).expect("symlink");
    for named in [
        format!("{}/.", link.display()),
        format!("{}/./", link.display()),
        format!("{}//.//", link.display()),
    ] {
        v.set_env("KEYVAULT_HOME", &named);
        let run = v
            .run(&["new", "--purpose", "work", "--passphrase-env", "KV_PASS"])
            .expect(1)
            .no_secrets();
        assert!(
            run.stderr.contains(&format!(
                "{} is a symlink or not a regular file; keyvault does not write through it",
                link.display()
            )),
            "{named}: {}",
            run.stderr
        );
        assert_eq!(v.inventory_text(), inventory);
    }
    let dotdot = format!(
        "{}/../{}",
        link.display(),
        link.file_name().expect("name").to_str().expect("utf8")
    );
    v.set_env("KEYVAULT_HOME", &dotdot);
    let run = v.run(&["list"]).expect(1).no_secrets();
    assert!(
        run.stderr
            .contains("a vault home named with `..` is refused"),
        "{}",
        run.stderr
    );
    v.set_env("KEYVAULT_HOME", s(&v.home));
    v.run(&["list"]).expect(0);
}

#[test]
fn keys_are_added_despite_tabs_and_revoked_despite_non_key_lines() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let ak = v.root.join("authorized_keys");
    // sshd reads runs of spaces and tabs between the fields.
    let (kind, rest) = UNMANAGED.split_once(' ').expect("fields");
    let spaced = format!("{kind}\t{rest}\n  {kind}  {}\n", rest.replace(' ', "\t "));
    std::fs::write(&ak, &spaced).expect("write");
    let target = format!("file:{}", ak.display());
    v.run(&["deploy", "personal", "--to", &target])
        .expect(0)
        .no_secrets();
    let text = std::fs::read_to_string(&ak).expect("read");
    assert!(
        text.starts_with(&spaced) && text.contains("keyvault:personal-1"),
        "{text}"
    );
    // A line that is no key does not block removing one: a compromised key goes now.
    let odd = "this line is no key\n";
    std::fs::write(&ak, format!("{text}{odd}")).expect("write");
    v.run(&["revoke", "personal-1"]).expect(0).no_secrets();
    let text = std::fs::read_to_string(&ak).expect("read");
    assert_eq!(text, format!("{spaced}{odd}"));
}

#[test]
fn a_file_target_in_a_directory_someone_else_linked_is_refused() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    // User 65534 points their .ssh at root's: keyvault running as root must not follow it.
    let victim = v.root.join("victim/.ssh");
    std::fs::create_dir_all(&victim).expect("mkdir");
    let victim_ak = victim.join("authorized_keys");
    std::fs::write(&victim_ak, format!("{UNMANAGED}\n")).expect("write");
    let user = v.root.join("u");
    std::fs::create_dir(&user).expect("mkdir");
    std::os::unix::fs::chown(&user, Some(65534), Some(65534)).expect("chown");
    let link = user.join(".ssh");
    std::os::unix::fs::symlink(&victim, &link).expect("symlink");
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).expect("lchown");
    let target = format!("file:{}", link.join("authorized_keys").display());
    for args in [
        vec!["deploy", "personal", "--to", target.as_str()],
        vec![
            "deploy",
            "personal",
            "--to",
            target.as_str(),
            "--allow-non-key-lines",
        ],
    ] {
        let run = v.run(&args).expect(1).no_secrets();
        assert!(
            run.stderr.contains(&format!(
                "{} is a symlink or not a regular file; keyvault does not write through it",
                link.display()
            )),
            "{}",
            run.stderr
        );
    }
    assert_eq!(
        std::fs::read_to_string(&victim_ak).expect("read"),
        format!("{UNMANAGED}\n")
    );
    assert_eq!(
        std::fs::metadata(&victim_ak).expect("meta").uid(),
        0,
        "the victim's file keeps its owner"
    );
}

#[test]
fn a_new_file_target_made_as_root_belongs_to_the_parent_directorys_owner() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let user = v.root.join("home-nobody");
    std::fs::create_dir(&user).expect("mkdir");
    std::os::unix::fs::chown(&user, Some(65534), Some(65534)).expect("chown");
    let ak = user.join(".ssh/authorized_keys");
    run_with_umask_000(
        &v,
        &[
            "deploy",
            "personal",
            "--to",
            &format!("file:{}", ak.display()),
        ],
    )
    .expect(0)
    .no_secrets();
    for (path, want) in [(user.join(".ssh"), 0o700), (ak.clone(), 0o600)] {
        let meta = std::fs::symlink_metadata(&path).expect("meta");
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (65534, 65534, want),
            "{}",
            path.display()
        );
    }
    assert!(
        std::fs::read_to_string(&ak)
            .expect("read")
            .contains("keyvault:personal-1")
    );
}

#[test]
fn a_host_that_never_stops_talking_is_cut_off() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let (sshd, server) = ssh_host(&v);
    let ak = server.join("user_authorized_keys");
    let target = ssh_target(&sshd, &ak);
    v.run(&["deploy", "personal", "--to", &target]).expect(0);
    let admin = std::fs::read_to_string(v.root.join("admin_key.pub")).expect("admin key");
    // The host floods stdout, stderr, or stdout after keyvault's own script ran.
    for command in ["yes", "yes 1>&2", "eval \\\"$SSH_ORIGINAL_COMMAND\\\"; yes"] {
        std::fs::write(
            &sshd.authorized_keys,
            format!("command=\"{command}\" {admin}"),
        )
        .expect("write");
        for args in [
            vec!["status"],
            vec!["deploy", "personal", "--to", target.as_str()],
            vec!["revoke", "personal-1"],
        ] {
            let child = v
                .cmd(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            let out = wait_bounded(child);
            assert!(
                out.stdout.len() + out.stderr.len() < 64 * 1024,
                "{command} {args:?}: {} bytes",
                out.stdout.len() + out.stderr.len()
            );
        }
    }
}

#[test]
fn mint_into_a_directory_that_takes_no_files_fails_before_anything_is_minted() {
    // Even root cannot create files in sysfs.
    let dir = Path::new("/sys/kernel");
    assert!(dir.is_dir(), "the test needs /sys mounted");
    let v = vault();
    let ak = v.root.join("authorized_keys");
    std::fs::write(&ak, format!("{UNMANAGED}\n")).expect("write");
    let out = dir.join("keyvault_key");
    let run = v
        .run(&[
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--no-passphrase",
            "--deploy",
            &format!("file:{}", ak.display()),
            "--private-key-out",
            s(&out),
        ])
        .expect(2)
        .no_secrets();
    assert!(
        run.stderr.contains(&format!(
            "cannot write the private key to {}: cannot create a file in {}",
            out.display(),
            dir.display()
        )) && run.stderr.contains("nothing was minted"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&ak).expect("read"),
        format!("{UNMANAGED}\n")
    );
    nothing_minted(&v);
}

/// The host's script uses only what BusyBox offers (no GNU `--reference`, `stat -c` or
/// `stat -f`): run under `busybox sh` with only BusyBox applets on the PATH, it keeps an
/// owner and mode, gives a new file its directory's owner, and refuses a linked directory.
#[test]
fn the_ssh_script_works_with_busybox_alone() {
    let Some(busybox) = ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        // .ci/run installs busybox: in CI a missing one is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "busybox is not installed (.ci/run installs it)"
        );
        eprintln!("busybox is not installed; skipping");
        return;
    };
    let v = Vault::new();
    v.new_key("personal", &[]);
    let (sshd, server) = ssh_host(&v);
    let applets = server.join("bb");
    std::fs::create_dir(&applets).expect("mkdir");
    assert!(
        Command::new(busybox)
            .arg("--install")
            .arg("-s")
            .arg(&applets)
            .status()
            .expect("busybox --install")
            .success()
    );
    let admin = std::fs::read_to_string(v.root.join("admin_key.pub")).expect("admin key");
    std::fs::write(
        &sshd.authorized_keys,
        format!(
            "command=\"PATH={}; export PATH; exec {} sh -c \\\"$SSH_ORIGINAL_COMMAND\\\"\" {admin}",
            applets.display(),
            busybox.display()
        ),
    )
    .expect("write");

    let ak = server.join("user_authorized_keys");
    std::fs::write(&ak, format!("{UNMANAGED}\n")).expect("write");
    std::os::unix::fs::chown(&ak, Some(65534), Some(65534)).expect("chown");
    chmod(&ak, 0o604);
    v.run(&["deploy", "personal", "--to", &ssh_target(&sshd, &ak)])
        .expect(0)
        .no_secrets();
    let meta = std::fs::metadata(&ak).expect("meta");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (65534, 65534, 0o604)
    );
    assert!(
        std::fs::read_to_string(&ak)
            .expect("read")
            .contains("keyvault:personal-1")
    );

    let user = server.join("home-nobody");
    std::fs::create_dir(&user).expect("mkdir");
    std::os::unix::fs::chown(&user, Some(65534), Some(65534)).expect("chown");
    let new = user.join(".ssh/authorized_keys");
    v.run(&["deploy", "personal", "--to", &ssh_target(&sshd, &new)])
        .expect(0)
        .no_secrets();
    for (path, want) in [(user.join(".ssh"), 0o700), (new.clone(), 0o600)] {
        let meta = std::fs::symlink_metadata(&path).expect("meta");
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (65534, 65534, want),
            "{}",
            path.display()
        );
    }

    let linked = server.join("linked");
    std::os::unix::fs::symlink(&user, &linked).expect("symlink");
    let run = v
        .run(&[
            "deploy",
            "personal",
            "--to",
            &ssh_target(&sshd, &linked.join(".ssh/authorized_keys")),
        ])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr.contains("is or passes through a symlink"),
        "{}",
        run.stderr
    );
}

/// Found by the second review of issue 12: a root-owned link (trusted) whose target runs
/// through a link user 65534 made was followed whole by the kernel, so root's own
/// `authorized_keys` was edited. A trusted link's target is walked with the same rules.
#[test]
fn a_trusted_link_whose_target_runs_through_someone_elses_link_is_refused() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let victim = v.root.join("vic");
    std::fs::create_dir_all(victim.join(".ssh")).expect("mkdir");
    let victim_ak = victim.join(".ssh/authorized_keys");
    std::fs::write(&victim_ak, format!("{UNMANAGED}\n")).expect("write");
    let user = v.root.join("u");
    std::fs::create_dir(&user).expect("mkdir");
    std::os::unix::fs::chown(&user, Some(65534), Some(65534)).expect("chown");
    let theirs = user.join("home");
    std::os::unix::fs::symlink(&victim, &theirs).expect("symlink");
    std::os::unix::fs::lchown(&theirs, Some(65534), Some(65534)).expect("lchown");
    // root's own link, trusted, to the user's directory.
    let ours = v.root.join("rootlink");
    std::os::unix::fs::symlink(&theirs, &ours).expect("symlink");
    let target = format!("file:{}", ours.join(".ssh/authorized_keys").display());
    let run = v
        .run(&["deploy", "personal", "--to", target.as_str()])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr.contains(&format!(
            "{} is a symlink or not a regular file; keyvault does not write through it",
            theirs.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&victim_ak).expect("read"),
        format!("{UNMANAGED}\n")
    );
    // A trusted link to a trusted directory still works.
    let mine = v.root.join("mylink");
    std::os::unix::fs::symlink(&victim, &mine).expect("symlink");
    let target = format!("file:{}", mine.join(".ssh/authorized_keys").display());
    v.run(&["deploy", "personal", "--to", target.as_str()])
        .expect(0);
    assert!(
        std::fs::read_to_string(&victim_ak)
            .expect("read")
            .contains("keyvault:personal-1")
    );
}

/// Found by the second review of issue 12: a home below a directory another user owns or
/// can write (not sticky) could be swapped for that user's vault between commands, and root
/// ran on their inventory. Every directory above the home is checked as sshd's StrictModes
/// checks those above `authorized_keys`.
#[test]
fn a_home_below_a_directory_someone_else_owns_or_can_write_is_refused() {
    let v = Vault::new();
    let theirs = v.root.join("u");
    std::fs::create_dir(&theirs).expect("mkdir");
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).expect("chown");
    let open = v.root.join("open");
    std::fs::create_dir(&open).expect("mkdir");
    crate::support::chmod(&open, 0o777);
    for (home, why) in [
        (theirs.join("h"), "owned by uid 65534"),
        (open.join("h"), "0777"),
    ] {
        let run = v
            .run(&["--home", home.to_str().expect("utf8"), "list"])
            .no_secrets();
        assert_ne!(run.code, 0, "{}: {}", home.display(), run.stdout);
        assert!(
            run.stderr.contains(&theirs.display().to_string())
                || run.stderr.contains(&open.display().to_string()),
            "{why}: {}",
            run.stderr
        );
        assert!(!home.exists(), "nothing is created in {}", home.display());
    }
    // Sticky and shared, like /tmp: fine.
    crate::support::chmod(&open, 0o1777);
    v.run(&["--home", open.join("h").to_str().expect("utf8"), "list"])
        .expect(0);
}
