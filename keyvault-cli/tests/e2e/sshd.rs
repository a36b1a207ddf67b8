//! A real OpenSSH server on 127.0.0.1 for tests (recipe in shared/DEPENDENCIES.md): sshd
//! as root on an ephemeral port with its own config, host key and authorized_keys file.

use crate::support::{Run, askpass};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    child: Child,
    pub port: u16,
    pub authorized_keys: PathBuf,
    dir: PathBuf,
}

impl Sshd {
    /// Starts sshd in `dir` (which must exist) with `dir/authorized_keys` as the only
    /// authorized_keys file.
    pub fn start(dir: &Path) -> Sshd {
        Self::start_with(dir, "")
    }

    /// A pod as keyvault reaches it: sshd in `dir` (made here) whose sessions see
    /// `KEYVAULT_AUTHORIZED_KEYS` pointing at its authorized_keys file, which holds
    /// `authorized_keys`.
    pub fn start_pod(dir: &Path, authorized_keys: &str) -> Sshd {
        std::fs::create_dir(dir).expect("mkdir");
        let sshd = Self::start_with(
            dir,
            &format!(
                "SetEnv KEYVAULT_AUTHORIZED_KEYS={}\n",
                dir.join("authorized_keys").display()
            ),
        );
        std::fs::write(&sshd.authorized_keys, authorized_keys).expect("write authorized_keys");
        sshd
    }

    /// As [`Sshd::start`], with `extra` appended to sshd_config.
    pub fn start_with(dir: &Path, extra: &str) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "/usr/sbin/sshd is missing: install openssh-server (bash .ci/run does)"
        );
        std::fs::create_dir_all("/run/sshd").expect("privilege separation directory /run/sshd");
        let host_key = dir.join("ssh_host_ed25519_key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .status()
            .expect("ssh-keygen");
        assert!(status.success());
        let authorized_keys = dir.join("authorized_keys");
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "HostKey {}\nPidFile {}\nAuthorizedKeysFile {}\nStrictModes no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n{extra}",
                host_key.display(),
                dir.join("sshd.pid").display(),
                authorized_keys.display()
            ),
        )
        .expect("write sshd_config");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let child = Command::new(sshd)
            .args([
                "-D",
                "-p",
                &port.to_string(),
                "-o",
                "ListenAddress=127.0.0.1",
                "-f",
            ])
            .arg(&config)
            .arg("-h")
            .arg(&host_key)
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "sshd did not start: see {}",
                dir.join("sshd.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Sshd {
            child,
            port,
            authorized_keys,
            dir: dir.to_owned(),
        }
    }

    /// Runs `command` on the server as root with `key` (its passphrase, if any, through
    /// askpass, never argv).
    pub fn ssh(&self, key: &Path, passphrase: &str, command: &str) -> Run {
        let out = Command::new("setsid")
            .args([
                "-w",
                "ssh",
                "-F",
                "/dev/null",
                "-p",
                &self.port.to_string(),
                "-i",
            ])
            .arg(key)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "PreferredAuthentications=publickey",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=5",
                "root@127.0.0.1",
                command,
            ])
            .env("SSH_ASKPASS", askpass(&self.dir))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("KV_ASK", passphrase)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .output()
            .expect("run ssh");
        crate::support::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
