//! Talking with `ssh`: config values, `ssh -G` options, a child with capped output.

use super::MAX_TARGET_BYTES;

/// A path as one `ssh_config` argument, whatever it holds: double-quoted (ssh splits
/// unquoted values at spaces), `\` and `"` escaped, `%` doubled (ssh expands `%` tokens).
pub(super) fn ssh_config_path(path: &std::path::Path) -> String {
    let mut out = String::from("\"");
    for c in path.to_string_lossy().chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A word for `sh -c`, single-quoted.
fn shell_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The options that reach a host, from `ssh -G` output: host name, port, user, proxy,
/// known hosts. A `ProxyJump` becomes the `ProxyCommand` ssh itself would run, but without
/// `-F`, so the jump hosts are reached with the user's own config and keys.
pub(super) fn reach_options(resolved: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in resolved.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        if value == "none" {
            continue;
        }
        let option = match key {
            "hostname" => "HostName".to_owned(),
            "port" => "Port".to_owned(),
            "user" => "User".to_owned(),
            "proxycommand" => "ProxyCommand".to_owned(),
            "proxyjump" => {
                let (rest, last) = value.rsplit_once(',').unwrap_or(("", value));
                let last = if last.starts_with("ssh://") {
                    last.to_owned()
                } else {
                    format!("ssh://{last}")
                };
                // ssh expands `%` tokens in a ProxyCommand: only %h and %p are meant.
                let word = |w: &str| shell_word(&w.replace('%', "%%"));
                let mut command = "ProxyCommand=ssh -o BatchMode=yes".to_owned();
                if !rest.is_empty() {
                    command.push_str(&format!(" -J {}", word(rest)));
                }
                command.push_str(&format!(" -W '[%h]:%p' -- {}", word(&last)));
                out.push("-o".to_owned());
                out.push(command);
                continue;
            }
            "userknownhostsfile" => "UserKnownHostsFile".to_owned(),
            "globalknownhostsfile" => "GlobalKnownHostsFile".to_owned(),
            "stricthostkeychecking" => "StrictHostKeyChecking".to_owned(),
            "hostkeyalias" => "HostKeyAlias".to_owned(),
            "checkhostip" => "CheckHostIP".to_owned(),
            "addressfamily" => "AddressFamily".to_owned(),
            _ => continue,
        };
        out.push("-o".to_owned());
        out.push(format!("{option}={value}"));
    }
    out
}

/// The last line `ssh` printed to stderr (its reason for failing).
pub(super) fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

/// An `ssh` child keyvault talks with: it reads the host's first answer, then sends its
/// own and reads the rest. stderr is collected on a thread so no pipe fills up.
pub(super) struct Session {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    buffered: Vec<u8>,
}

impl Session {
    pub(super) fn start(mut cmd: std::process::Command) -> std::io::Result<Session> {
        use std::process::Stdio;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = crate::child::spawn(cmd)?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        let stderr = capped_stderr(&mut child);
        Ok(Session {
            child,
            stdout,
            stderr,
            buffered: Vec::new(),
        })
    }

    /// Everything before `marker`, once the host has printed it; `None` if the output
    /// ended without it.
    pub(super) fn read_until(&mut self, marker: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        let mut chunk = [0u8; 8192];
        loop {
            if self.buffered.ends_with(marker) {
                let head = self.buffered[..self.buffered.len() - marker.len()].to_vec();
                self.buffered.clear();
                return Ok(Some(head));
            }
            let n = self.stdout.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            // The host prints at most the capped file and a little framing.
            if self.buffered.len() as u64 > MAX_TARGET_BYTES + 4096 {
                return Err(std::io::Error::other(format!(
                    "the host sent more than {MAX_TARGET_BYTES} bytes"
                )));
            }
            self.buffered.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends `answer` (none: just closes stdin), then waits: the exit status (`None` if it
    /// could not be had), the rest of stdout, and all of stderr.
    pub(super) fn finish(
        mut self,
        answer: Option<&[u8]>,
    ) -> (Option<std::process::ExitStatus>, Vec<u8>, Vec<u8>) {
        use std::io::{Read, Write};
        if let (Some(data), Some(pipe)) = (answer, self.child.stdin.as_mut()) {
            // A host that stopped reading shows in the exit status.
            let _ = pipe.write_all(data);
        }
        drop(self.child.stdin.take());
        let mut rest = std::mem::take(&mut self.buffered);
        let room = (MAX_OUTPUT_BYTES + 1).saturating_sub(rest.len() as u64);
        let _ = Read::by_ref(&mut self.stdout)
            .take(room)
            .read_to_end(&mut rest);
        if rest.len() as u64 > MAX_OUTPUT_BYTES {
            // A host that keeps talking gets no more of our memory: end the login.
            let _ = self.child.kill();
            rest.clear();
        }
        let status = self.child.wait().ok();
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        (status, rest, stderr)
    }
}

pub(super) fn run_with_input(
    mut cmd: std::process::Command,
    stdin: Option<&[u8]>,
) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    use std::process::Stdio;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = crate::child::spawn(cmd)?;
    let stderr = capped_stderr(&mut child);
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data)?;
    }
    let mut stdout = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        std::io::Read::read_to_end(
            &mut std::io::Read::take(pipe, MAX_OUTPUT_BYTES + 1),
            &mut stdout,
        )?;
    }
    if stdout.len() as u64 > MAX_OUTPUT_BYTES {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::io::Error::other(format!(
            "the host sent more than {MAX_OUTPUT_BYTES} bytes"
        )));
    }
    let status = child.wait()?;
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}

/// The most a host may print on stdout: the capped file and a little framing.
const MAX_OUTPUT_BYTES: u64 = MAX_TARGET_BYTES + 64 * 1024;

/// The most of a host's stderr keyvault keeps (only its last line is ever shown).
const MAX_STDERR_BYTES: u64 = 64 * 1024;

/// Reads `child`'s stderr in a thread, keeping at most [`MAX_STDERR_BYTES`]; a child that
/// prints more is killed (it could go on for ever), and the rest is discarded.
fn capped_stderr(child: &mut std::process::Child) -> Option<std::thread::JoinHandle<Vec<u8>>> {
    use std::io::Read;
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).ok()?)?;
    child.stderr.take().map(|pipe| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut pipe = pipe;
            let _ = Read::by_ref(&mut pipe)
                .take(MAX_STDERR_BYTES + 1)
                .read_to_end(&mut kept);
            if kept.len() as u64 > MAX_STDERR_BYTES {
                // Not yet waited for, so the pid is still this child's.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
                kept.truncate(usize::try_from(MAX_STDERR_BYTES).unwrap_or(usize::MAX));
            }
            kept
        })
    })
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    use ssh_key::sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod ssh_option_tests {
    use super::{reach_options, ssh_config_path};

    /// `ssh -G` with no config and `options`: its resolved settings.
    fn resolved(options: &[String]) -> String {
        let out = std::process::Command::new("ssh")
            .args(["-G", "-F", "/dev/null"])
            .args(options)
            .arg("example.invalid")
            .output()
            .expect("ssh -G (openssh-client)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn any_path_is_one_ssh_config_value() {
        for path in [
            "/tmp/my vault/known_hosts",
            "/tmp/a\"b/k h",
            "/tmp/50%h/known_hosts",
            "/tmp/back\\slash/x",
        ] {
            let option = format!(
                "UserKnownHostsFile={}",
                ssh_config_path(std::path::Path::new(path))
            );
            let got = resolved(&["-o".to_owned(), option]);
            assert!(
                got.lines()
                    .any(|l| l == format!("userknownhostsfile {path}")),
                "{path}:\n{got}"
            );
        }
    }

    #[test]
    fn proxy_jump_becomes_a_proxy_command_that_keeps_the_users_config() {
        let options = reach_options(
            "hostname 10.0.0.5\nport 2222\nuser deploy\nproxyjump admin@bastion:2200,inner\nidentityfile ~/.ssh/id_rsa\nidentitiesonly yes\n",
        );
        assert!(
            !options.iter().any(|o| o.to_lowercase().contains("identit")),
            "{options:?}"
        );
        let got = resolved(&options);
        for want in [
            "hostname 10.0.0.5",
            "port 2222",
            "user deploy",
            "proxycommand ssh -o BatchMode=yes -J 'admin@bastion:2200' -W '[%h]:%p' -- 'ssh://inner'",
        ] {
            assert!(got.lines().any(|l| l == want), "{want}:\n{got}");
        }
    }
}
