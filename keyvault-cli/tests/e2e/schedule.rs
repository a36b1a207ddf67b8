//! `keyvault schedule`: the systemd user timer and service (checked by `systemd-analyze
//! verify`) and the crontab line (through a `crontab` stand-in over a file: the machine's
//! real crontab is never touched). keyvault runs with a PATH of stand-ins only, so which
//! scheduler is "available" is up to each test.

use crate::support::{PASS, Vault, bin};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory of stand-ins that is keyvault's whole PATH.
fn tools(v: &Vault) -> PathBuf {
    let dir = v.root.join("tools");
    std::fs::create_dir_all(&dir).expect("tools dir");
    v.set_env("PATH", dir.to_str().expect("utf-8"));
    dir
}

fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write stand-in");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `systemctl` that logs its arguments (and environment) and answers as a user manager
/// would, or fails to reach one.
fn systemctl(v: &Vault, reachable: bool) -> PathBuf {
    let log = v.root.join("systemctl.log");
    let fail = if reachable {
        ""
    } else {
        "[ \"$2\" = show-environment ] && { echo 'Failed to connect to bus: No medium found' >&2; exit 1; }\n"
    };
    script(
        &tools(v).join("systemctl"),
        &format!(
            "printf '%s\\n' \"$*\" >> '{log}'\n/usr/bin/env >> '{log}.env'\n{fail}\
[ \"$2\" = is-enabled ] && echo enabled\nexit 0\n",
            log = log.display()
        ),
    );
    log
}

/// `crontab -l` / `crontab -` over a file, like cron's (no file: "no crontab for").
fn crontab(v: &Vault) -> PathBuf {
    let file = v.root.join("crontab.txt");
    script(
        &tools(v).join("crontab"),
        &format!(
            "f='{}'\ncase \"$1\" in\n  -l) [ -f \"$f\" ] || {{ echo \"no crontab for $USER\" >&2; exit 1; }}; /bin/cat \"$f\" ;;\n  \
-) /bin/cat > \"$f\" ;;\n  *) echo 'usage: crontab [-l | -]' >&2; exit 1 ;;\nesac\n",
            file.display()
        ),
    );
    file
}

fn unit_dir(v: &Vault) -> PathBuf {
    v.root.join(".config/systemd/user")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Our unit files in the unit directory, by name.
fn our_units(v: &Vault) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(unit_dir(v))
        .map(|d| {
            d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("keyvault-sweep-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `systemd-analyze verify` on the files, with keyvault's own manual on MANPATH (the
/// units' Documentation= names its pages, which verify looks up).
fn verify(v: &Vault, files: &[PathBuf]) {
    let man = v.root.join("man");
    v.run(&["man", man.join("man1").to_str().expect("utf-8")])
        .expect(0);
    let out = Command::new("/usr/bin/systemd-analyze")
        .arg("verify")
        .args(files)
        .env("MANPATH", &man)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

/// Asserts that each of `lines` is a whole line of `text`.
#[track_caller]
fn has_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.lines().any(|l| l == *line), "{line} in\n{text}");
    }
}

/// `schedule install --json` plus `extra`, whose `change` must be `change`.
fn install(v: &Vault, extra: &[&str], change: &str) -> serde_json::Value {
    let mut args = vec!["--json", "schedule", "install"];
    args.extend_from_slice(extra);
    let out = v.run(&args).expect(0).no_secrets().json();
    assert_eq!(out["change"], change, "{out}");
    out
}

#[test]
fn a_systemd_timer_installed_twice_is_one_timer_that_verifies() {
    let v = Vault::new();
    let log = systemctl(&v, true);
    let first = install(&v, &[], "added");
    assert_eq!(
        (first["scheduler"].as_str(), first["enabled"].as_bool()),
        (Some("systemd"), Some(true))
    );
    install(&v, &["--at", "03:30"], "updated");
    let same = install(&v, &["--at", "03:30"], "unchanged");
    let units = our_units(&v);
    assert_eq!(units.len(), 2, "one timer and one service: {units:?}");
    let timer = PathBuf::from(same["timer"].as_str().expect("timer"));
    let service = PathBuf::from(same["service"].as_str().expect("service"));
    let (t, s) = (read(&timer), read(&service));
    has_lines(
        &t,
        &[
            "OnCalendar=*-*-* 03:30:00",
            "Persistent=true",
            "RandomizedDelaySec=1h",
            "WantedBy=timers.target",
        ],
    );
    let exec = format!(
        "ExecStart=\"{}\" \"--home\" \"{}\" \"--no-input\" \"sweep\" \"--rotate-due\"",
        bin().display(),
        v.home.display()
    );
    has_lines(
        &s,
        &[
            &exec,
            "Type=oneshot",
            "StandardOutput=journal",
            "NoNewPrivileges=yes",
        ],
    );
    assert!(!s.contains(PASS) && !read(&log.with_extension("log.env")).contains(PASS));
    verify(&v, &[timer.clone(), service]);
    let calls = read(&log);
    let name = timer
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    for call in [
        "--user daemon-reload".to_owned(),
        format!("--user enable --now {name}"),
    ] {
        assert_eq!(
            calls.lines().filter(|l| *l == call).count(),
            3,
            "{call} in\n{calls}"
        );
    }
    let shown = v.run(&["--json", "schedule", "show"]).expect(0).json();
    assert_eq!(shown["systemd"]["on_calendar"], "*-*-* 03:30:00");
    assert_eq!(shown["systemd"]["enabled"], true);
    assert!(shown["cron"].is_null());
}

#[test]
fn schedule_remove_disables_and_deletes_only_its_own_units() {
    let v = Vault::new();
    let log = systemctl(&v, true);
    std::fs::create_dir_all(unit_dir(&v)).expect("unit dir");
    let other = unit_dir(&v).join("backup.timer");
    std::fs::write(&other, "[Timer]\nOnCalendar=weekly\n").expect("other unit");
    let installed = install(&v, &[], "added");
    let timer = PathBuf::from(installed["timer"].as_str().expect("timer"));
    let name = timer
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let removed = v.run(&["--json", "schedule", "remove"]).expect(0).json();
    assert_eq!(
        removed["removed"]["systemd"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(removed["removed"]["cron"], false);
    has_lines(&read(&log), &[&format!("--user disable --now {name}")]);
    assert!(our_units(&v).is_empty() && !timer.exists());
    assert_eq!(read(&other), "[Timer]\nOnCalendar=weekly\n");
    let nothing = v.run(&["schedule", "remove"]).expect(0);
    assert!(
        nothing.stdout.contains("nothing was scheduled"),
        "{}",
        nothing.stdout
    );
    let shown = v.run(&["schedule", "show"]).expect(0);
    assert!(
        shown.stdout.contains("nothing is scheduled"),
        "{}",
        shown.stdout
    );
}

#[test]
fn two_vaults_get_two_timers_and_removing_one_keeps_the_other() {
    let v = Vault::new();
    systemctl(&v, true);
    let other_home = v.root.join("other vault");
    let other = other_home.to_str().expect("utf-8");
    v.run(&["schedule", "install"]).expect(0);
    v.run(&["--home", other, "schedule", "install"]).expect(0);
    // The same vault named another way is the same schedule.
    let same = format!("{other}/./");
    v.run(&["--home", &same, "schedule", "install"]).expect(0);
    assert_eq!(our_units(&v).len(), 4, "{:?}", our_units(&v));
    v.run(&["schedule", "remove"]).expect(0);
    let left = our_units(&v);
    assert_eq!(left.len(), 2, "{left:?}");
    let service = read(
        &unit_dir(&v).join(
            left.iter()
                .find(|n| n.ends_with(".service"))
                .expect("service"),
        ),
    );
    // The command keeps the home as last named (a vault's keyring entries go by it).
    assert!(
        service.contains(&format!("\"--home\" \"{same}\"")),
        "{service}"
    );
}

#[test]
fn without_a_user_manager_systemd_units_are_written_and_the_commands_printed() {
    let v = Vault::new();
    let log = systemctl(&v, false);
    let run = v
        .run(&["schedule", "install", "--systemd"])
        .expect(0)
        .no_secrets();
    let units = our_units(&v);
    let timer = units
        .iter()
        .find(|n| n.ends_with(".timer"))
        .expect("timer written");
    let command =
        format!("systemctl --user daemon-reload && systemctl --user enable --now {timer}");
    assert!(run.stdout.contains(&command), "{}", run.stdout);
    assert!(
        !read(&log).contains("daemon-reload"),
        "no manager, no reload"
    );
    let files: Vec<PathBuf> = units.iter().map(|n| unit_dir(&v).join(n)).collect();
    verify(&v, &files);
}

#[test]
fn with_neither_systemd_nor_crontab_install_refuses_and_writes_nothing() {
    let v = Vault::new();
    systemctl(&v, false);
    let run = v.run(&["schedule", "install"]).expect(1);
    assert!(
        run.stderr.contains("no systemd user manager") && run.stderr.contains("crontab"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: install cron"), "{}", run.stderr);
    assert!(!unit_dir(&v).exists());
    let run = v
        .run(&["--json", "schedule", "install", "--cron"])
        .expect(1);
    assert!(run.stderr.contains("no crontab program"), "{}", run.stderr);
    v.run(&["schedule", "install", "--at", "24:00"]).expect(2);
    v.run(&["schedule", "install", "--systemd", "--cron"])
        .expect(2);
}

#[test]
fn the_default_home_is_named_to_the_timer_by_xdg_data_home() {
    let v = Vault::new();
    systemctl(&v, true);
    let data = v.root.join("data");
    v.set_env("KEYVAULT_HOME", "");
    v.set_env("XDG_DATA_HOME", data.to_str().expect("utf-8"));
    let out = v.run(&["--json", "schedule", "install"]).expect(0).json();
    assert_eq!(out["home"], data.join("keyvault").to_str().expect("utf-8"));
    let s = read(Path::new(out["service"].as_str().expect("service")));
    let env = format!("Environment=\"XDG_DATA_HOME={}\"", data.display());
    assert!(
        s.lines().any(|l| l == env) && s.contains("Environment=\"KEYVAULT_HOME=\""),
        "{s}"
    );
    assert!(!s.contains("--home"), "{s}");
}

#[test]
fn a_crontab_line_is_added_once_updated_in_place_and_removed_alone() {
    let v = Vault::new();
    let file = crontab(&v);
    let mine = "MAILTO=me@example.com\n# nightly backup\n15 2 * * * /usr/local/bin/backup --all\n";
    std::fs::write(&file, mine).expect("crontab");
    let first = v
        .run(&["--json", "schedule", "install"])
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(
        (first["scheduler"].as_str(), first["change"].as_str()),
        (Some("cron"), Some("added"))
    );
    let again = v
        .run(&["--json", "schedule", "install", "--at", "4:05"])
        .expect(0)
        .json();
    assert_eq!(again["change"], "updated");
    let text = read(&file);
    assert!(text.starts_with(mine), "{text}");
    let marker = format!(
        "# keyvault schedule: sweep --rotate-due for the vault at {}",
        v.home.display()
    );
    assert_eq!(text.matches(&marker).count(), 1, "{text}");
    let line = format!(
        "5 4 * * * {} --home {} --no-input sweep --rotate-due",
        bin().display(),
        v.home.display()
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("sweep --rotate-due") && !l.starts_with('#'))
            .collect::<Vec<_>>(),
        [line.as_str()]
    );
    assert!(!text.contains(PASS));
    let shown = v.run(&["--json", "schedule", "show"]).expect(0).json();
    assert_eq!(shown["cron"]["line"], line.as_str());

    // A second vault's line stays when the first is removed.
    let other = v.root.join("other");
    let other = other.to_str().expect("utf-8");
    v.run(&["--home", other, "schedule", "install", "--cron"])
        .expect(0);
    let removed = v
        .run(&["--json", "schedule", "remove", "--cron"])
        .expect(0)
        .json();
    assert_eq!(removed["removed"]["cron"], true);
    let text = read(&file);
    assert!(text.starts_with(mine) && !text.contains(&marker), "{text}");
    assert!(
        text.contains(&format!("--home {other} --no-input")),
        "{text}"
    );
    v.run(&["--home", other, "schedule", "remove"]).expect(0);
    assert_eq!(read(&file), mine);
}

#[test]
fn a_user_without_a_crontab_gets_one_with_only_our_line() {
    let v = Vault::new();
    let file = crontab(&v);
    systemctl(&v, false);
    let run = v.run(&["schedule", "install"]).expect(0);
    assert!(run.stdout.contains("(crontab, added)"), "{}", run.stdout);
    let text = read(&file);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.ends_with("--no-input sweep --rotate-due\n"), "{text}");
}

/// The command of our crontab line (after the five time fields), with the sweep swapped
/// for `list --json`: what the line runs, pointed at something that shows which vault it
/// reached.
fn cron_command_listing(crontab: &str) -> String {
    let line = crontab
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(" sweep --rotate-due"))
        .expect("our line");
    let command = line.splitn(6, ' ').nth(5).expect("command");
    format!(
        "{} list --json",
        command.trim_end_matches(" sweep --rotate-due")
    )
}

#[test]
fn the_crontab_line_reaches_its_vault_through_sh_whatever_the_path() {
    for (home_name, default_home) in [("it's a vault", false), ("data", true)] {
        let v = Vault::new();
        let home = v.root.join(home_name);
        let data_home = v.root.join("data");
        if default_home {
            v.set_env("KEYVAULT_HOME", "");
            v.set_env("XDG_DATA_HOME", data_home.to_str().expect("utf-8"));
        } else {
            v.set_env("KEYVAULT_HOME", home.to_str().expect("utf-8"));
        }
        let key = v.new_key("personal", &[]);
        let file = crontab(&v);
        v.run(&["schedule", "install", "--cron"]).expect(0);
        let command = cron_command_listing(&read(&file));
        // As cron runs it: sh -c, with an environment of its own.
        let out = Command::new("/bin/sh")
            .args(["-c", &command])
            .env_clear()
            .env("HOME", &v.root)
            .env("PATH", "/usr/bin:/bin")
            .env("KEYVAULT_HOME", v.root.join("elsewhere"))
            .output()
            .expect("run sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: serde_json::Value = serde_json::from_str(&stdout).expect("list JSON");
        assert_eq!(listed["keys"][0]["id"], key["id"], "{command}");
    }
}

/// The job `schedule install` writes, run as cron runs it, is the scheduled rotation: a
/// key past its purpose's `rotate_every` is replaced, unattended, with the passphrase from
/// the purpose's `passphrase_env`, and an `authorized_keys` target holds the new key only.
#[test]
fn the_installed_crontab_line_rotates_a_due_key() {
    let v = Vault::new();
    std::fs::create_dir_all(&v.home).expect("mkdir");
    crate::support::chmod(&v.home, 0o700);
    let config = v.home.join("config.toml");
    std::fs::write(
        &config,
        "[policy]\nrotate_every = \"90d\"\n\n[purpose.personal]\npassphrase_env = \"KV_PASS\"\n",
    )
    .expect("config");
    crate::support::chmod(&config, 0o600);
    let now = chrono::Utc::now();
    v.set_now(now - chrono::TimeDelta::days(100));
    let old = v.new_key("personal", &["--ttl", "200d"]);
    let old_id = old["id"].as_str().expect("id");
    let target = v.root.join("authorized_keys");
    std::fs::write(&target, "").expect("write");
    crate::support::chmod(&target, 0o600);
    let spec = format!("file:{}", target.display());
    v.run(&["deploy", "personal", "--to", &spec]).expect(0);
    let file = crontab(&v);
    v.run(&["schedule", "install", "--cron"]).expect(0);
    let line = read(&file);
    let line = line
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(" sweep --rotate-due"))
        .expect("our line");
    let command = line.splitn(6, ' ').nth(5).expect("command");
    let out = Command::new("/bin/sh")
        .args(["-c", command])
        .env_clear()
        .env("HOME", &v.root)
        .env("PATH", "/usr/bin:/bin")
        .env("KEYVAULT_HOME", &v.home)
        .env("KV_PASS", PASS)
        .env("KEYVAULT_TEST_NOW", now.to_rfc3339())
        .output()
        .expect("run sh");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{command}: {stdout}{stderr}");
    assert!(
        !stdout.contains(PASS) && !stderr.contains(PASS),
        "{stdout}{stderr}"
    );
    v.set_now(now);
    let listed = v.run(&["--json", "list"]).expect(0).json();
    let keys = listed["keys"].as_array().expect("keys");
    let active: Vec<&serde_json::Value> = keys.iter().filter(|k| k["state"] == "active").collect();
    assert_eq!(active.len(), 1, "{listed}");
    let new_id = active[0]["id"].as_str().expect("id");
    assert_ne!(new_id, old_id, "{listed}");
    let held = read(&target);
    let body = |k: &serde_json::Value| {
        crate::support::key_body(k["public_key"].as_str().expect("public key"))
    };
    let shown = |id: &str| v.run(&["--json", "show", id]).expect(0).json();
    assert!(held.contains(&body(&shown(new_id))), "{held}");
    assert!(!held.contains(&body(&shown(old_id))), "{held}");
}
