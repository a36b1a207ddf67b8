//! `keyvault man DIR`: a page for every command and subcommand (found by walking
//! `--help`, not from a list), each rendered by man-db's `man -l` without a warning.

use crate::support::Vault;
use std::collections::BTreeSet;
use std::process::Command;

/// The subcommands a `--help` lists under "Commands:" (without `help`).
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // An entry starts at column 2; wrapped descriptions are indented further.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

/// `keyvault-a-b.1` for every command path under `path`, from the binary's own help.
fn expected_pages(v: &Vault, path: &mut Vec<String>, out: &mut BTreeSet<String>) {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let help = v.run(&args).expect(0).stdout;
    out.insert(format!(
        "{}.1",
        std::iter::once("keyvault")
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("-")
    ));
    for c in commands(&help) {
        path.push(c);
        expected_pages(v, path, out);
        path.pop();
    }
}

#[test]
fn every_command_and_subcommand_has_a_page_that_man_renders_cleanly() {
    let v = Vault::new();
    let dir = v.root.join("man1");
    let run = v
        .run(&["--json", "man", dir.to_str().expect("utf-8")])
        .expect(0)
        .json();
    let mut expected = BTreeSet::new();
    expected_pages(&v, &mut Vec::new(), &mut expected);
    assert!(
        expected.len() > 20 && expected.contains("keyvault-runpod-login.1"),
        "{expected:?}"
    );
    let written: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("pages")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, expected);
    assert_eq!(run["pages"].as_array().map(Vec::len), Some(expected.len()));
    for page in &expected {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(dir.join(page))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .expect("run man");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success() && stderr.is_empty(),
            "{page}: {stderr}"
        );
        let title = page.trim_end_matches(".1");
        assert!(
            stdout.contains("NAME") && stdout.contains(title),
            "{page}:\n{stdout}"
        );
    }
    // Writing again replaces the pages in place.
    v.run(&["man", dir.to_str().expect("utf-8")]).expect(0);
}
