//! The scripts an `ssh://` or pod target runs on the host, run here with each POSIX shell.

use super::{SshTarget, sha256_hex};
use crate::target::REFUSED;

/// Runs the edit script for the file `path` locally with `sh`, `answer` on its stdin.
fn run(path: &std::path::Path, answer: &[u8]) -> std::process::Output {
    run_in(&["sh"], path, answer)
}

/// The POSIX shells here to run the scripts with: dash (`sh`), bash, BusyBox's ash.
fn shells() -> Vec<&'static [&'static str]> {
    let found = |program: &str| {
        std::process::Command::new(program)
            .args(["-c", ":"])
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut shells: Vec<&'static [&'static str]> = vec![&["sh"]];
    if found("bash") {
        shells.push(&["bash", "--posix"]);
    }
    if found("busybox") {
        shells.push(&["busybox", "sh"]);
    }
    shells
}

/// [`run`] with `shell` (a program and its first arguments).
fn run_in(shell: &[&str], path: &std::path::Path, answer: &[u8]) -> std::process::Output {
    use std::io::Write;
    let spec = format!("ssh://localhost{}", path.display())
        .parse()
        .expect("spec");
    let target = SshTarget::new(spec);
    let script = SshTarget::edit_script(&target.print_file_script(), "end", "0123abcd");
    let mut child = std::process::Command::new(shell[0])
        .args(&shell[1..])
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(answer).expect("answer");
    drop(stdin);
    child.wait_with_output().expect("wait")
}

#[test]
fn a_write_cut_short_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().canonicalize().expect("canonical");
    let path = dir.join("authorized_keys");
    let before = "ssh-ed25519 AAAA one\nssh-ed25519 BBBB two\n";
    std::fs::write(&path, before).expect("write");
    let new = "ssh-ed25519 AAAA one\nssh-ed25519 BBBB two\nssh-ed25519 CCCC three\n";
    let verb = format!(
        "write {} {}\n",
        sha256_hex(before.as_bytes()),
        sha256_hex(new.as_bytes())
    );
    // The sender dies after part of the content: the host reads end-of-file.
    let cut = [verb.as_bytes(), &new.as_bytes()[..30]].concat();
    let out = run(&path, &cut);
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), before);
    let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
    assert_eq!(left.len(), 1, "temporary file left: {left:?}");
    // Whole, it is written.
    let whole = [verb.as_bytes(), new.as_bytes()].concat();
    let out = run(&path, &whole);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), new);
}

/// `write` for `before` (`None`: no file) to `new`, and `new`.
fn write_answer(before: Option<&str>, new: &str) -> Vec<u8> {
    let expected = before.map_or_else(|| "none".to_owned(), |b| sha256_hex(b.as_bytes()));
    [
        format!("write {expected} {}\n", sha256_hex(new.as_bytes())).as_bytes(),
        new.as_bytes(),
    ]
    .concat()
}

#[test]
fn every_shell_replaces_the_file_keeping_its_mode_and_creates_new_ones_private() {
    use std::os::unix::fs::PermissionsExt;
    for shell in shells() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path().canonicalize().expect("canonical");
        let path = dir.join("authorized_keys");
        let before = "ssh-ed25519 AAAA one\n";
        std::fs::write(&path, before).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let new = "ssh-ed25519 AAAA one\nssh-ed25519 BBBB two\n";
        // A redundant `/` in the path changes nothing.
        let doubled = std::path::PathBuf::from(format!("{}//authorized_keys", dir.display()));
        let out = run_in(shell, &doubled, &write_answer(Some(before), new));
        assert!(out.status.success(), "{shell:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("present\n{before}\nend\nwritten\n"),
            "{shell:?}"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), new);
        let meta = std::fs::metadata(&path).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o644, "{shell:?}");
        let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
        assert_eq!(left.len(), 1, "{shell:?}: temporary file left: {left:?}");

        // A file in directories that do not exist yet: made, the file 0600.
        let deep = dir.join("a/b/authorized_keys");
        let out = run_in(shell, &deep, &write_answer(None, new));
        assert!(out.status.success(), "{shell:?}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "missing\n\nend\nwritten\n",
            "{shell:?}"
        );
        assert_eq!(std::fs::read_to_string(&deep).expect("read"), new);
        let meta = std::fs::metadata(&deep).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{shell:?}");

        // Through a symlinked directory: refused, nothing written.
        std::os::unix::fs::symlink(dir.join("a"), dir.join("link")).expect("symlink");
        let linked = dir.join("link/b/authorized_keys");
        let out = run_in(shell, &linked, &write_answer(Some(new), before));
        assert_eq!(out.status.code(), Some(REFUSED), "{shell:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("passes through a symlink"),
            "{shell:?}: {out:?}"
        );
        assert_eq!(std::fs::read_to_string(&deep).expect("read"), new);
    }
}

#[test]
fn the_shell_dirname_and_basename_agree_with_the_programs() {
    let spec = "ssh://localhost/x".parse().expect("spec");
    let script = SshTarget::new(spec).print_file_script();
    let functions = &script[..script.find("f=").expect("f=")];
    let paths = [
        "/", "//", "/a", "/a/", "/a/b", "/a//b", "/a/b//", "a", "a/b", "/a/./b", "///a",
    ];
    for shell in shells() {
        for path in paths {
            let out = std::process::Command::new(shell[0])
                .args(&shell[1..])
                .arg("-c")
                .arg(format!(
                    "{functions} dn \"$1\"; printf '%s\\n' \"$r\"; bn \"$1\"; printf '%s\\n' \"$r\""
                ))
                .args(["sh", path])
                .output()
                .expect("shell");
            let want = std::process::Command::new("sh")
                .args(["-c", "dirname -- \"$1\"; basename -- \"$1\"", "sh", path])
                .output()
                .expect("dirname, basename");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&want.stdout),
                "{shell:?} {path}"
            );
        }
    }
}

/// Sets a default ACL on `dir` that gives new files and directories in it to the group
/// (`user::rwx group::rwx other::---`), as a directory shared with a group has; `false`
/// where the file system has no ACLs.
fn share_with_group(dir: &std::path::Path) -> bool {
    let entry = |tag: u16, perm: u16| {
        [
            tag.to_le_bytes().as_slice(),
            &perm.to_le_bytes(),
            &u32::MAX.to_le_bytes(),
        ]
        .concat()
    };
    // POSIX ACL xattr, version 2: USER_OBJ, GROUP_OBJ, OTHER.
    let acl = [
        2u32.to_le_bytes().to_vec(),
        entry(0x01, 7),
        entry(0x04, 7),
        entry(0x20, 0),
    ]
    .concat();
    rustix::fs::setxattr(
        dir,
        "system.posix_acl_default",
        &acl,
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok()
}

#[test]
fn a_new_file_and_its_new_directories_are_private_under_a_default_acl() {
    use std::os::unix::fs::PermissionsExt;
    for shell in shells() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path().canonicalize().expect("canonical");
        if !share_with_group(&dir) {
            eprintln!("no ACLs on {}: skipped", dir.display());
            return;
        }
        // The umask does not apply under a default ACL: a file made without an explicit
        // mode is group-writable, and sshd (StrictModes) ignores it.
        let new = "ssh-ed25519 AAAA one\n";
        for path in [dir.join("authorized_keys"), dir.join("a/b/authorized_keys")] {
            let out = run_in(shell, &path, &write_answer(None, new));
            assert!(out.status.success(), "{shell:?}: {out:?}");
            assert_eq!(std::fs::read_to_string(&path).expect("read"), new);
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{shell:?} {}", path.display());
        }
        for made in [dir.join("a"), dir.join("a/b")] {
            let mode = std::fs::metadata(&made).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{shell:?} {}: {mode:o}", made.display());
        }
    }
}
