//! The binary's own surface: version, help with examples, completions.

use std::process::Command;

fn keyvault(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyvault"))
        .args(args)
        .output()
        .expect("run keyvault");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version() {
    let (code, stdout, _) = keyvault(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(stdout, format!("keyvault {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        "new",
        "list",
        "show",
        "import",
        "passwd",
        "status",
        "log",
        "completions",
        "deploy",
        "revoke",
        "rotate",
        "sweep",
        "prune",
        "scan",
        "mint",
    ] {
        let (code, stdout, _) = keyvault(&[cmd, "--help"]);
        assert_eq!(code, 0, "{cmd}");
        assert!(
            stdout.contains("Examples:\n  keyvault "),
            "{cmd} --help has no example:\n{stdout}"
        );
    }
    let (_, top, _) = keyvault(&["--help"]);
    assert!(
        top.contains("Exit codes: 0 success, 1 the operation failed, 2 usage error"),
        "{top}"
    );
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, stdout, _) = keyvault(&["completions", shell]);
        assert_eq!(code, 0, "{shell}");
        assert!(
            stdout.contains("passwd"),
            "{shell} completions lack subcommands"
        );
    }
}

#[test]
fn subcommand_groups_have_help_with_an_example() {
    for (group, cmd) in [
        ("runpod", "keys"),
        ("runpod", "pods"),
        ("agent", "add"),
        ("agent", "remove"),
        ("ca", "init"),
        ("ca", "trust"),
    ] {
        let (code, stdout, _) = keyvault(&[group, cmd, "--help"]);
        assert_eq!(code, 0, "{group} {cmd}");
        assert!(
            stdout.contains("Examples:\n  keyvault "),
            "{group} {cmd} --help has no example:\n{stdout}"
        );
    }
}
