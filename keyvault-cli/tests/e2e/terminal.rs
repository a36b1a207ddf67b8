//! The terminal layer: colour only where it is asked for (a terminal without NO_COLOR, or
//! CLICOLOR_FORCE anywhere) and never in JSON, and progress lines per pod on a terminal
//! (a pty from util-linux `script`) but never on a pipe. Colour changes no byte of the
//! text, and no secret reaches either stream.

use crate::sshd::Sshd;
use crate::support::{PASS, PASS2, ROTATE_PODS, Run, Vault};
use keyvault_tests::fake_runpod::{FakeRunpod, pod};
use std::io::Read;

/// `text` without its SGR sequences (`ESC [ … m`), the only escapes keyvault writes.
fn strip_sgr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            assert_eq!(chars.next(), Some('['), "not an SGR sequence in {text:?}");
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
                assert!(
                    c.is_ascii_digit() || c == ';',
                    "not an SGR sequence in {text:?}"
                );
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `keyvault args` with extra environment, stdout and stderr piped.
fn run_with(v: &Vault, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = v.cmd(args);
    for (k, val) in env {
        cmd.env(k, val);
    }
    let out = cmd.output().expect("run keyvault");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn colour_only_with_clicolor_force_never_with_no_color_and_never_in_json() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let force = [("CLICOLOR_FORCE", "1")];
    let both = [("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")];

    // A new key announced with CLICOLOR_FORCE on a pipe: its id in bold.
    let created = run_with(
        &v,
        &["new", "--purpose", "team", "--passphrase-env", "KV_PASS"],
        &force,
    )
    .expect(0)
    .no_secrets();
    assert!(
        created.stdout.contains("\u{1b}[1mteam-1\u{1b}[0m"),
        "{:?}",
        created.stdout
    );

    for args in [
        &["list"][..],
        &["list", "--all"],
        &["show", "personal"],
        &["status", "--offline"],
        &["log"],
    ] {
        let plain = run_with(&v, args, &[]).no_secrets();
        let forced = run_with(&v, args, &force).no_secrets();
        let refused = run_with(&v, args, &both).no_secrets();
        assert_eq!(forced.code, plain.code, "{args:?}");
        assert_eq!(refused.code, plain.code, "{args:?}");
        // A pipe gets no colour by default, and NO_COLOR wins over CLICOLOR_FORCE.
        assert!(
            !plain.stdout.contains('\u{1b}'),
            "{args:?}: {:?}",
            plain.stdout
        );
        assert_eq!(refused.stdout, plain.stdout, "{args:?} with NO_COLOR");
        // Colour is the only difference, and stderr never changes.
        assert_eq!(strip_sgr(&forced.stdout), plain.stdout, "{args:?}");
        assert_eq!(forced.stderr, plain.stderr, "{args:?}");
        assert!(
            !forced.stderr.contains('\u{1b}'),
            "{args:?}: {:?}",
            forced.stderr
        );
    }
    // Tables colour their header and states; `show` its field names.
    let list = run_with(&v, &["list"], &force);
    assert!(
        list.stdout.contains("\u{1b}[1mID\u{1b}[0m"),
        "{:?}",
        list.stdout
    );
    assert!(
        list.stdout.contains("\u{1b}[32mactive\u{1b}[0m"),
        "{:?}",
        list.stdout
    );
    let show = run_with(&v, &["show", "personal"], &force);
    assert!(show.stdout.contains("\u{1b}[1m"), "{:?}", show.stdout);

    // JSON is the same bytes whatever the variables say.
    for args in [&["--json", "list"][..], &["--json", "show", "personal"]] {
        let plain = run_with(&v, args, &[]).expect(0);
        let forced = run_with(&v, args, &force).expect(0);
        assert_eq!(forced.stdout, plain.stdout, "{args:?}");
        assert!(!forced.stdout.contains('\u{1b}'), "{args:?}");
    }
}

/// A vault whose personal key is on the account and trusted by two running pods: one a
/// real sshd, one whose endpoint refuses connections.
fn fleet() -> (FakeRunpod, Vault, Sshd) {
    let server = FakeRunpod::start();
    let v = Vault::new();
    v.use_runpod(&server);
    crate::support::isolate_ssh(&v, None, "");
    let key = v.new_key("personal", &[]);
    let line = key["public_key"].as_str().expect("public_key").to_owned();
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    let sshd = Sshd::start_pod(&v.root.join("pod-a"), &format!("{line}\n"));
    let dead_port = crate::support::dead_port();
    server.add_pod(pod(
        "poda",
        "RUNNING",
        &[&line],
        Some(("127.0.0.1", sshd.port)),
    ));
    server.add_pod(pod(
        "dead",
        "RUNNING",
        &[&line],
        Some(("127.0.0.1", dead_port)),
    ));
    (server, v, sshd)
}

/// Runs `args` on a pseudo-terminal; returns the exit code and everything it showed.
fn on_a_terminal(v: &Vault, args: &[&str]) -> (i32, String) {
    let mut child = v.spawn_on_a_terminal(args);
    // Kept open until the command ends: script ends the session at end of input.
    let stdin = child.stdin.take();
    let mut text = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut text)
        .expect("read the terminal");
    drop(stdin);
    let status = child.wait().expect("wait");
    (status.code().unwrap_or(-1), text)
}

#[test]
fn pods_get_a_progress_line_on_a_terminal_and_none_on_a_pipe() {
    let args = ROTATE_PODS;

    // On a pipe: the report on stdout, not a word of progress on stderr.
    let (_server, v, _sshd) = fleet();
    let piped = v.run(&args).expect(0).no_secrets();
    assert!(piped.stdout.contains("poda"), "{}", piped.stdout);
    assert!(!piped.stderr.contains("pod poda:"), "{}", piped.stderr);
    assert!(!piped.stderr.contains("updating"), "{}", piped.stderr);
    assert!(!piped.stderr.contains('\u{1b}'), "{:?}", piped.stderr);

    // On a terminal: each pod's line ends with its outcome.
    let (_server, v, _sshd) = fleet();
    v.set_env("TERM", "xterm");
    let (code, text) = on_a_terminal(&v, &args);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("pod poda: "), "{text}");
    assert!(text.contains("pod poda: removed"), "{text}");
    assert!(text.contains("pod dead: failed"), "{text}");
    assert!(text.contains("rotated personal"), "{text}");
    for secret in [PASS, PASS2, keyvault_tests::fake_runpod::DEFAULT_KEY] {
        assert!(!text.contains(secret), "a secret on the terminal:\n{text}");
    }
    let listed = v.run(&["--json", "show", "personal"]).expect(0).json();
    assert_eq!(listed["id"], "personal-2");
}
