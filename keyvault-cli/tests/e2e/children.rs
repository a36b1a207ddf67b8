//! Nothing keyvault starts outlives it: an `ssh` waiting on a host that never answers dies
//! with keyvault when keyvault is killed with SIGKILL (no destructor, no signal handler).

use crate::support::{Vault, isolate_ssh};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A process by pid and start time (a pid alone may be reused).
#[derive(Debug, Clone, PartialEq)]
struct Proc {
    pid: u32,
    start: String,
}

/// `/proc/PID/stat` after the command name: state, ppid, ..., start time (field 22).
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(rest.split(' ').map(str::to_owned).collect())
}

/// The `ssh` processes whose parent is `parent`.
fn ssh_children(parent: u32) -> Vec<Proc> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let Some(fields) = stat_fields(&pid) else {
            continue;
        };
        if comm.trim() == "ssh" && fields[1] == parent.to_string() {
            found.push(Proc {
                pid: pid.parse().expect("pid"),
                start: fields[19].clone(),
            });
        }
    }
    found
}

/// Whether `p` still runs (a zombie nobody reaps has ended).
fn alive(p: &Proc) -> bool {
    stat_fields(&p.pid.to_string()).is_some_and(|f| f[0] != "Z" && f[19] == p.start)
}

/// `keyvault deploy personal --to target`, started and left running.
fn deploy(v: &Vault, target: &str) -> std::process::Child {
    v.cmd(&["deploy", "personal", "--to", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keyvault")
}

/// Kills `keyvault` with SIGKILL and expects every one of `procs` gone within seconds;
/// any left over is killed before the test fails.
fn kill_and_expect_gone(mut keyvault: std::process::Child, procs: &[Proc]) {
    keyvault.kill().expect("kill -9");
    let status = keyvault.wait().expect("wait");
    assert!(status.code().is_none(), "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let left = loop {
        let left: Vec<_> = procs.iter().filter(|p| alive(p)).cloned().collect();
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for p in &left {
        // The test's own leftovers (pid and start time checked just above).
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &p.pid.to_string()])
            .status();
    }
    assert!(left.is_empty(), "outlived keyvault: {left:?}");
}

#[test]
fn an_ssh_waiting_on_a_silent_host_dies_when_keyvault_is_killed() {
    let v = Vault::new();
    isolate_ssh(&v, None, "");
    v.new_key("personal", &[]);
    // The kernel accepts connections into the backlog; nothing ever answers them, so ssh
    // waits for a banner until its ConnectTimeout (15 seconds).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = silent.local_addr().expect("addr").port();
    let target = format!("ssh://root@127.0.0.1:{port}/tmp/authorized_keys");
    let mut keyvault = deploy(&v, &target);
    let pid = keyvault.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ssh = loop {
        let found = ssh_children(pid);
        if !found.is_empty() {
            break found;
        }
        let exited = keyvault.try_wait().expect("try_wait");
        assert!(exited.is_none(), "keyvault ended without ssh: {exited:?}");
        assert!(Instant::now() < deadline, "keyvault started no ssh");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The kernel kills them at once; ssh's own timeout would take 15 seconds.
    kill_and_expect_gone(keyvault, &ssh);
    drop(silent);
}

/// The processes whose command line holds `marker`, and their children.
fn marked_with_children(marker: &str) -> Vec<Proc> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        let Some(fields) = stat_fields(&pid) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let marked = String::from_utf8_lossy(&cmdline).contains(marker);
        all.push((pid, fields, marked));
    }
    let marked: Vec<&str> = all
        .iter()
        .filter(|(_, _, m)| *m)
        .map(|(pid, _, _)| pid.as_str())
        .collect();
    all.iter()
        .filter(|(_, fields, m)| *m || marked.contains(&fields[1].as_str()))
        .map(|(pid, fields, _)| Proc {
            pid: pid.parse().expect("pid"),
            start: fields[19].clone(),
        })
        .collect()
}

#[test]
fn a_proxy_command_dies_with_its_ssh_when_keyvault_is_killed() {
    let v = Vault::new();
    isolate_ssh(&v, None, "");
    v.new_key("personal", &[]);
    // ssh starts the proxy, a shell that starts a `sleep` and names the vault (to be found
    // by), and waits for the host's banner from it, which never comes.
    let marker = v.root.join("proxy-marker").display().to_string();
    let config = v.root.join("user-ssh/config");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "  ProxyCommand /bin/sh -c 'sleep 300; echo {marker}'\n"
    ));
    std::fs::write(&config, text).expect("config");
    let mut keyvault = deploy(&v, "ssh://root@proxied.invalid/tmp/authorized_keys");
    let pid = keyvault.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (ssh, proxy) = loop {
        let ssh = ssh_children(pid);
        let proxy = marked_with_children(&marker);
        // The proxy's shell and its `sleep`.
        if !ssh.is_empty() && proxy.len() >= 2 {
            break (ssh, proxy);
        }
        let exited = keyvault.try_wait().expect("try_wait");
        assert!(exited.is_none(), "keyvault ended first: {exited:?}");
        assert!(Instant::now() < deadline, "keyvault started no proxied ssh");
        std::thread::sleep(Duration::from_millis(20));
    };
    let all: Vec<Proc> = ssh.into_iter().chain(proxy).collect();
    kill_and_expect_gone(keyvault, &all);
}
