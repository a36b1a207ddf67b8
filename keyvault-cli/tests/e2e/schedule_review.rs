//! `keyvault schedule` against awkward crontabs and homes: other lines keep their bytes
//! (CRLF endings, bytes that are not UTF-8, no final newline), and a home whose marker
//! would only look like another vault's touches nothing. Through a `crontab` stand-in over
//! a file, as in `schedule.rs`: the machine's real crontab is never touched.

use crate::support::Vault;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `crontab -l` / `crontab -` over a file, as the only program on keyvault's PATH.
fn crontab(v: &Vault) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tools = v.root.join("tools");
    std::fs::create_dir_all(&tools).expect("tools dir");
    v.set_env("PATH", tools.to_str().expect("utf-8"));
    let file = v.root.join("crontab.txt");
    let program = tools.join("crontab");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\nf='{}'\ncase \"$1\" in\n  -l) [ -f \"$f\" ] || {{ echo \"no crontab for $USER\" >&2; exit 1; }}; /bin/cat \"$f\" ;;\n  \
-) /bin/cat > \"$f\" ;;\n  *) exit 1 ;;\nesac\n",
            file.display()
        ),
    )
    .expect("write stand-in");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    file
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn crlf_lines_and_bytes_that_are_not_utf8_survive_install_and_remove() {
    let v = Vault::new();
    let file = crontab(&v);
    let mine: &[u8] = b"MAILTO=me\r\n# caf\xe9 au lait\r\n15 2 * * * /usr/local/bin/backup";
    std::fs::write(&file, mine).expect("crontab");
    // Nothing of ours there: the crontab is not rewritten at all.
    v.run(&["schedule", "remove", "--cron"]).expect(0);
    assert_eq!(bytes(&file), mine);
    v.run(&["schedule", "install", "--cron"]).expect(0);
    let installed = bytes(&file);
    assert!(
        installed.starts_with(mine),
        "{}",
        String::from_utf8_lossy(&installed)
    );
    v.run(&["schedule", "install", "--cron", "--at", "04:05"])
        .expect(0);
    let shown = v.run(&["--json", "schedule", "show"]).expect(0).json();
    assert!(
        shown["cron"]["line"]
            .as_str()
            .is_some_and(|l| l.starts_with("5 4 * * * ")),
        "{shown}"
    );
    v.run(&["schedule", "remove", "--cron"]).expect(0);
    assert_eq!(bytes(&file), [mine, b"\n"].concat());
}

#[test]
fn a_home_that_is_not_utf8_does_not_remove_the_line_of_its_look_alike() {
    let v = Vault::new();
    let file = crontab(&v);
    let look_alike = v.root.join("\u{fffd}");
    v.run(&[
        "--home",
        look_alike.to_str().expect("utf-8"),
        "schedule",
        "install",
        "--cron",
    ])
    .expect(0);
    let before = bytes(&file);
    let mut raw = v.root.as_os_str().as_bytes().to_vec();
    raw.extend_from_slice(b"/\xff");
    let home = std::ffi::OsStr::from_bytes(&raw);
    for args in [&["schedule", "remove", "--cron"][..], &["schedule", "show"]] {
        let out = v
            .cmd(args)
            .env("KEYVAULT_HOME", home)
            .output()
            .expect("run keyvault");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !stdout.contains("sweep --rotate-due"),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(bytes(&file), before, "{args:?}");
    }
}

#[test]
fn the_line_keeps_the_home_as_named_and_one_vault_named_two_ways_is_one_line() {
    // A vault other than the default finds its keyring passphrases under its home as the
    // user spells it (`personal-1@/x/vault/`), so the job must spell it the same way.
    let v = Vault::new();
    let file = crontab(&v);
    let home = v.home.to_str().expect("utf-8");
    let slashed = format!("{home}/");
    v.set_env("KEYVAULT_HOME", &slashed);
    let first = v
        .run(&["--json", "schedule", "install", "--cron"])
        .expect(0)
        .json();
    assert_eq!(first["home"], home, "{first}");
    let line = format!("--home {slashed} --no-input sweep --rotate-due");
    assert!(read_text(&file).contains(&line), "{}", read_text(&file));
    // The same vault named without the slash: the same entry, found and removed.
    v.set_env("KEYVAULT_HOME", home);
    let shown = v.run(&["--json", "schedule", "show"]).expect(0).json();
    assert!(
        shown["cron"]["line"]
            .as_str()
            .is_some_and(|l| l.ends_with(&line)),
        "{shown}"
    );
    let again = v
        .run(&["--json", "schedule", "install", "--cron"])
        .expect(0)
        .json();
    assert_eq!(again["change"], "updated", "{again}");
    assert_eq!(read_text(&file).matches("# keyvault schedule:").count(), 1);
    v.run(&["schedule", "remove", "--cron"]).expect(0);
    assert!(read_text(&file).is_empty(), "{}", read_text(&file));
}

fn read_text(p: &Path) -> String {
    String::from_utf8_lossy(&bytes(p)).into_owned()
}

#[test]
fn man_replaces_a_symlinked_page_without_following_it_and_refuses_a_file_as_dir() {
    let v = Vault::new();
    let dir = v.root.join("man1");
    std::fs::create_dir_all(&dir).expect("man dir");
    let victim = v.root.join("victim");
    std::fs::write(&victim, "mine\n").expect("victim");
    std::os::unix::fs::symlink(&victim, dir.join("keyvault.1")).expect("symlink");
    v.run(&["man", dir.to_str().expect("utf-8")]).expect(0);
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "mine\n");
    let page = std::fs::symlink_metadata(dir.join("keyvault.1")).expect("page");
    assert!(page.is_file(), "the page is a file of its own now");
    // A file where the directory should be: said as it is, nothing written.
    let file = v.root.join("not-a-dir");
    std::fs::write(&file, "x").expect("file");
    let run = v.run(&["man", file.to_str().expect("utf-8")]).expect(1);
    assert!(
        run.stderr.contains("not a directory") && !run.stderr.contains("symlink"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).expect("file"), "x");
}

/// `keyvault` (a hard link to the binary, else a copy) at `dir/keyvault`: the program path
/// a scheduler gets is the one it was run from.
fn keyvault_at(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("program dir");
    let program = dir.join("keyvault");
    if std::fs::hard_link(crate::support::bin(), &program).is_err() {
        std::fs::copy(crate::support::bin(), &program).expect("copy keyvault");
    }
    program
}

#[test]
fn systemd_runs_the_program_path_as_it_is_or_install_refuses_it() {
    let v = Vault::new();
    let config = v.root.join("config");
    let run = |program: &Path| {
        let mut c = std::process::Command::new(program);
        c.args(["--json", "schedule", "install", "--systemd"])
            .env_clear()
            .env("HOME", &v.root)
            .env("XDG_CONFIG_HOME", &config)
            .env("KEYVAULT_HOME", &v.home)
            .env("PATH", v.root.join("no-tools"));
        c.output().expect("run keyvault")
    };
    // `$` in a directory name: kept as it is (systemd does not expand the program's path).
    let out = run(&keyvault_at(&v.root.join("bin $HOME %h")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let verify = std::process::Command::new("/usr/bin/systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(installed["service"].as_str().expect("service"))
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
    // A quote in it: systemd would refuse the unit; install refuses first, writes nothing.
    let units = config.join("systemd/user");
    std::fs::remove_dir_all(&units).expect("clean units");
    let out = run(&keyvault_at(&v.root.join("it's")));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("quote or a backslash"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!units.exists() || std::fs::read_dir(&units).expect("units").next().is_none());
}
