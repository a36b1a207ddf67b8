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

/// The subcommands a `--help` text lists under `Commands:` (without `help`): entries are
/// indented two spaces, wrapped descriptions more.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_has_help_with_an_example() {
    // The commands are the ones `keyvault --help` lists, not a copy of that list: each has
    // its own `--help` that runs, names it in its usage line and ends with an example, and
    // a group's (`ca`, `agent`, `runpod`) lists subcommands that do the same.
    let (code, top, _) = keyvault(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        top.contains("Exit codes: 0 success, 1 the operation failed, 2 usage error"),
        "{top}"
    );
    let mut pending: Vec<Vec<String>> =
        listed_commands(&top).into_iter().map(|c| vec![c]).collect();
    let (mut leaves, mut groups) = (0, 0);
    while let Some(path) = pending.pop() {
        let name = path.join(" ");
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (code, stdout, stderr) = keyvault(&args);
        assert_eq!(code, 0, "{name} --help: {stderr}");
        assert!(
            stdout.contains(&format!("\nUsage: keyvault {name} ")),
            "{name} --help does not name it:\n{stdout}"
        );
        let subcommands = listed_commands(&stdout);
        if subcommands.is_empty() {
            leaves += 1;
            assert!(
                stdout.contains("Examples:\n  keyvault "),
                "{name} --help has no example:\n{stdout}"
            );
        } else {
            groups += 1;
            pending.extend(subcommands.into_iter().map(|c| {
                let mut p = path.clone();
                p.push(c);
                p
            }));
        }
    }
    // The reading above found the commands (a changed help layout must not pass vacuously).
    assert!(
        leaves > 10 && groups >= 3,
        "{leaves} commands, {groups} groups in:\n{top}"
    );
    // And a name --help does not list is refused, so the checks above can fail.
    let (code, _, stderr) = keyvault(&["no-such-command", "--help"]);
    assert_eq!(code, 2, "{stderr}");
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
