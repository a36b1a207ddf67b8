//! Monitoring: `status --format prometheus` / `--textfile` checked by `promtool` and by
//! parsing the exposition text; the sample alert rules under `promtool`; `log --follow`
//! and `log --since` for log shippers.

use crate::support::{PASS, PRIVATE_KEY_MARKER, Run, Vault, snapshot};
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One sample of the exposition: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text exposition format: `# HELP`/`# TYPE` lines into (name → type), samples
/// with their (unescaped) labels. Panics on anything the format does not allow.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut helps = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("help text");
            helps.insert(name.to_owned(), help.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("type");
            types.insert(name.to_owned(), kind.to_owned());
        } else {
            samples.push(parse_sample(line));
        }
    }
    for (name, _, _) in &samples {
        assert!(helps.contains_key(name), "no HELP for {name}");
        assert!(types.contains_key(name), "no TYPE for {name}");
    }
    (types, samples)
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("name");
    let name = line[..name_end].to_owned();
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(body) => parse_labels(body),
        None => (BTreeMap::new(), &line[name_end..]),
    };
    let value: f64 = rest.trim().parse().expect("value");
    (name, labels, value)
}

/// `k="v",…}` with the format's escapes (`\\`, `\"`, `\n`); the labels and what follows `}`.
fn parse_labels(text: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        rest = rest.strip_prefix(',').unwrap_or(rest);
        let eq = rest.find("=\"").expect("=\"");
        let key = rest[..eq].to_owned();
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest[eq + 2..].char_indices() {
            if escaped {
                value.push(if c == 'n' { '\n' } else { c });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(eq + 2 + i + 1);
                break;
            } else {
                value.push(c);
            }
        }
        labels.insert(key, value);
        rest = &rest[end.expect("closing quote")..];
    }
}

/// The value of the sample of `name` whose labels include `want`.
#[track_caller]
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {want:?} appears {} times",
        found.len()
    );
    found.first().copied()
}

/// Runs promtool with `args`, `stdin` on its standard input.
fn promtool(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

/// A vault at `t0` with keys in several states: `ci-1` retiring (rotated with a grace
/// period, which records a rotation), `ci-2` active, `db-1` expired and still live (its
/// target broken so that the sweep two days later fails), `web-1` expiring within the
/// warning window, `old-1` revoked.
fn vault_in_several_states(t0: DateTime<Utc>) -> Vault {
    let v = Vault::new();
    let ak = v.root.join("authorized_keys");
    std::fs::write(&ak, "").expect("authorized_keys");
    let target = format!("file:{}", ak.display());
    v.set_now(t0);
    v.new_key("ci", &["--ttl", "90d"]);
    v.run(&["deploy", "ci", "--to", &target]).expect(0);
    v.run(&[
        "rotate",
        "ci",
        "--grace",
        "5d",
        "--passphrase-env",
        "KV_PASS",
    ])
    .expect(0);
    v.new_key("db", &["--ttl", "1d"]);
    v.run(&["deploy", "db", "--to", &target]).expect(0);
    v.new_key("old", &[]);
    v.run(&["revoke", "old"]).expect(0);
    v.set_now(t0 + TimeDelta::days(2));
    v.new_key("web", &["--ttl", "10d"]);
    // The expired key's target is now a directory: the sweep cannot remove it there.
    std::fs::remove_file(&ak).expect("remove");
    std::fs::create_dir(&ak).expect("dir");
    v.run(&["sweep"]).expect(1);
    v
}

/// `status --offline --format prometheus` (exit 0, no secret in it), checked by `promtool
/// check metrics`, parsed; `_total` names are exactly the counters.
fn metrics_of(v: &Vault) -> Vec<Sample> {
    let run = v
        .run(&["status", "--offline", "--format", "prometheus"])
        .expect(0)
        .no_secrets();
    let check = promtool(&["check", "metrics"], &run.stdout);
    assert_eq!(
        check.code, 0,
        "{}{}\n{}",
        check.stdout, check.stderr, run.stdout
    );
    let (types, samples) = parse(&run.stdout);
    for (name, kind) in &types {
        assert_eq!(
            name.ends_with("_total"),
            kind == "counter",
            "{name} is a {kind}"
        );
    }
    samples
}

/// Every live key of `list --all --json` has its creation and expiry time with its id,
/// purpose, state and algorithm; revoked keys have none.
#[track_caller]
fn assert_keys_as_listed(v: &Vault, samples: &[Sample]) {
    let list = v.run(&["--json", "list", "--all"]).expect(0).json();
    let keys = list["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 5, "{list}");
    for k in keys {
        let id = k["id"].as_str().expect("id");
        let state = k["state"].as_str().expect("state");
        let want = [("id", id), ("purpose", k["purpose"].as_str().expect("p"))];
        let created = value(samples, "keyvault_key_created_timestamp_seconds", &want);
        let expiry = value(samples, "keyvault_key_expiry_timestamp_seconds", &want);
        if state == "revoked" {
            assert_eq!((created, expiry), (None, None), "{id} is revoked");
            continue;
        }
        let labels = [want[0], want[1], ("state", state), ("algorithm", "ed25519")];
        let time = |field: &str| Some(at(k[field].as_str().expect("time")).timestamp() as f64);
        for (name, field) in [
            ("keyvault_key_created_timestamp_seconds", "created_at"),
            ("keyvault_key_expiry_timestamp_seconds", "expires_at"),
        ] {
            assert_eq!(value(samples, name, &labels), time(field), "{id} {name}");
        }
    }
}

#[test]
fn prometheus_metrics_pass_promtool_and_carry_each_keys_times_and_state() {
    let t0 = at("2031-03-01T10:00:00Z");
    let v = vault_in_several_states(t0);
    // Plain status says "problems" (3); the metrics were produced, so 0.
    v.run(&["status", "--offline"]).expect(3);
    let samples = metrics_of(&v);
    assert_keys_as_listed(&v, &samples);
    let state_of = |id: &str| {
        let s = samples
            .iter()
            .find(|(n, l, _)| n == "keyvault_key_expiry_timestamp_seconds" && l["id"] == id);
        s.map(|(_, l, _)| l["state"].clone())
    };
    assert_eq!(state_of("ci-1").as_deref(), Some("retiring"));
    assert_eq!(state_of("db-1").as_deref(), Some("active"));
    let one = |name: &str| value(&samples, name, &[]);
    let now = (t0 + TimeDelta::days(2)).timestamp() as f64;
    assert_eq!(one("keyvault_status_timestamp_seconds"), Some(now));
    for (state, n) in [("active", 3.0), ("retiring", 1.0), ("revoked", 1.0)] {
        let count = value(&samples, "keyvault_keys", &[("state", state)]);
        assert_eq!(count, Some(n), "{state}");
    }
    let finding = |sev, kind| {
        let labels = [("severity", sev), ("kind", kind)];
        value(&samples, "keyvault_findings", &labels)
    };
    // db-1 expired a day ago; web-1 expires within the 14-day warning window.
    assert_eq!(finding("high", "expired"), Some(1.0));
    assert_eq!(finding("medium", "expiring"), Some(1.0));
    assert_eq!(one("keyvault_audit_chain_verified"), Some(1.0));
    // The sweep at t0 + 2d failed at the broken target; the rotation at t0 was promoted.
    assert_eq!(one("keyvault_last_sweep_success"), Some(0.0));
    assert_eq!(one("keyvault_last_sweep_timestamp_seconds"), Some(now));
    assert_eq!(one("keyvault_last_rotation_success"), Some(1.0));
    let rotated = Some(t0.timestamp() as f64);
    assert_eq!(one("keyvault_last_rotation_timestamp_seconds"), rotated);
    // A sweep that succeeds shows as such (the target is a file again).
    let ak = v.root.join("authorized_keys");
    std::fs::remove_dir(&ak).expect("rmdir");
    std::fs::write(&ak, "").expect("file");
    v.run(&["sweep"]).expect(0);
    let samples = metrics_of(&v);
    assert_eq!(
        value(&samples, "keyvault_last_sweep_success", &[]),
        Some(1.0)
    );
}

#[test]
fn textfile_replaces_the_old_file_atomically_and_a_broken_chain_shows() {
    let v = Vault::new();
    v.new_key("web", &[]);
    let dir = v.root.join("textfile");
    std::fs::create_dir(&dir).expect("dir");
    let prom = dir.join("keyvault.prom");
    std::fs::write(&prom, "stale\n").expect("old file");
    let old_inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&prom).expect("m"));
    let dir_arg = dir.to_str().expect("utf-8");
    let run = v
        .run(&["status", "--offline", "--textfile", dir_arg])
        .expect(0);
    assert_eq!(run.stdout, "", "the metrics go to the file only");
    let text = std::fs::read_to_string(&prom).expect("written");
    assert!(
        !text.contains(PASS) && !text.contains(PRIVATE_KEY_MARKER),
        "{text}"
    );
    assert_eq!(promtool(&["check", "metrics"], &text).code, 0, "{text}");
    let (_, samples) = parse(&text);
    assert!(
        value(
            &samples,
            "keyvault_key_created_timestamp_seconds",
            &[("id", "web-1")]
        )
        .is_some()
    );
    let meta = std::fs::metadata(&prom).expect("meta");
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    // Renamed over the old file, never written in place; nothing else left in the dir.
    assert_ne!(meta.ino(), old_inode);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("keyvault.prom")]);
    // An edited audit log: the chain no longer verifies, and no sweep/rotation is read from it.
    crate::sqlite_store::tamper(
        &v.home,
        "UPDATE audit SET line = replace(line, '\"ok\"', '\"failed\"')",
    );
    v.run(&["status", "--offline", "--textfile", dir_arg])
        .expect(0);
    let (_, samples) = parse(&std::fs::read_to_string(&prom).expect("again"));
    assert_eq!(
        value(&samples, "keyvault_audit_chain_verified", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "keyvault_findings", &[("kind", "audit-broken")]),
        Some(1.0)
    );
    // With --json it is a usage error; a missing directory is a failure, and nothing is made.
    v.run(&["--json", "status", "--format", "prometheus"])
        .expect(2);
    let missing = v.root.join("no-such-dir");
    v.run(&[
        "status",
        "--offline",
        "--textfile",
        missing.to_str().expect("utf-8"),
    ])
    .expect(1);
    assert!(!missing.exists());
}

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/prometheus")
}

#[test]
fn the_sample_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = contrib();
    let rules = dir.join("keyvault.rules.yml");
    let check = promtool(&["check", "rules", rules.to_str().expect("utf-8")], "");
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("SUCCESS"), "{}", check.stdout);
    let tests = dir.join("keyvault.rules.test.yml");
    let test = promtool(&["test", "rules", tests.to_str().expect("utf-8")], "");
    assert_eq!(test.code, 0, "{}{}", test.stdout, test.stderr);
}

/// Lines a child prints, read on a thread.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the child to exit (at most 10 s); its exit status.
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn log_follow_prints_events_other_commands_append_then_stops_on_sigint() {
    let v = Vault::new();
    v.new_key("first", &[]);
    let before = snapshot(&v.home);
    let mut child = v
        .cmd(&["--json", "log", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let rx = lines_of(&mut child);
    let first: serde_json::Value = serde_json::from_str(
        &rx.recv_timeout(Duration::from_secs(10))
            .expect("first line"),
    )
    .expect("a JSON line");
    assert_eq!(first["key_id"], "first-1");
    // Writers go on while it follows (it holds no lock), and it sees what they append.
    v.new_key("second", &[]);
    v.run(&["revoke", "second"]).expect(0);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("appended event");
        let e: serde_json::Value = serde_json::from_str(&line).expect("whole JSON lines only");
        seen.push((e["action"].clone(), e["key_id"].clone()));
    }
    assert_eq!(seen[0], ("create".into(), "second-1".into()));
    assert_eq!(seen[1].1, "second-1");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = wait_exit(&mut child);
    // Interrupted: ended by the signal (as `tail -f` is), holding nothing.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(2), "{status:?}");
    // Nothing left behind: the home has only what the two commands wrote.
    let after = snapshot(&v.home);
    let new_names: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(
        new_names
            .iter()
            .all(|p| p.to_string_lossy().contains("second")),
        "{new_names:?}"
    );
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn log_follow_ends_when_its_reader_goes_away() {
    let v = Vault::new();
    v.new_key("web", &[]);
    let mut child = v
        .cmd(&["log", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("first line");
    assert!(line.contains("create") && line.contains("web-1"), "{line}");
    drop(reader);
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn log_since_keeps_events_from_that_time_on_and_refuses_bad_dates() {
    let v = Vault::new();
    v.set_now(at("2031-01-10T08:00:00Z"));
    v.new_key("early", &[]);
    v.set_now(at("2031-01-12T09:30:00Z"));
    v.new_key("late", &[]);
    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--json", "log"];
        all.extend_from_slice(args);
        v.run(&all).expect(0).json()["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["key_id"].as_str().unwrap_or("-").to_owned())
            .collect()
    };
    assert_eq!(ids(&[]), ["early-1", "late-1"]);
    assert_eq!(ids(&["--since", "2031-01-11"]), ["late-1"]);
    assert_eq!(ids(&["--since", "2031-01-12T09:30:00Z"]), ["late-1"]);
    assert_eq!(
        ids(&["--since", "2031-01-12T11:30:01+02:00"]),
        Vec::<String>::new()
    );
    assert_eq!(ids(&["--since", "2031-01-10"]), ["early-1", "late-1"]);
    let human = v.run(&["log", "--since", "2031-02-01"]).expect(0);
    assert_eq!(human.stdout, "no audit events since 2031-02-01 00:00 UTC\n");
    for bad in ["yesterday", "2031-13-01", "2031-01-10 08:00"] {
        let run = v.run(&["log", "--since", bad]).expect(2);
        assert!(run.stderr.contains("invalid date"), "{bad}: {}", run.stderr);
    }
    v.run(&["log", "--since", "2031-01-11", "--verify"])
        .expect(2);
}
