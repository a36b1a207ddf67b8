//! A private D-Bus session bus with a real, unlocked gnome-keyring (the Secret Service) for
//! one test: nothing is shared with other tests or with the machine's own session.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SecretService {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bus: Child,
    daemon: Option<Child>,
    /// `DBUS_SESSION_BUS_ADDRESS` of the private bus.
    pub address: String,
}

const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

fn need(tool: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{tool} is not installed: `bash .ci/run` installs dbus, gnome-keyring and libsecret-tools"
    )
}

impl SecretService {
    /// A bus with gnome-keyring's Secret Service on it, its login collection unlocked.
    pub fn start() -> Self {
        Self::launch(true)
    }

    /// A bus on which nothing provides the Secret Service (it has no service files, so
    /// nothing is activated either): "no keyring reachable".
    pub fn without_keyring() -> Self {
        Self::launch(false)
    }

    fn launch(keyring: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        let config = root.join("bus.conf");
        std::fs::write(
            &config,
            BUS_CONFIG.replace("SOCKET", &root.join("bus").display().to_string()),
        )
        .expect("bus config");
        let mut bus = Command::new(need("dbus-daemon"))
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().expect("stdout"))
            .read_line(&mut address)
            .expect("bus address");
        let address = address.trim().to_owned();
        assert!(address.starts_with("unix:"), "dbus-daemon said {address:?}");
        let mut this = SecretService {
            _dir: dir,
            root,
            bus,
            daemon: None,
            address,
        };
        if keyring {
            this.start_keyring();
        }
        this
    }

    fn start_keyring(&mut self) {
        let run = self.root.join("run");
        std::fs::create_dir_all(&run).expect("runtime dir");
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
        let mut daemon = Command::new(need("gnome-keyring-daemon"))
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.root)
            .env("XDG_DATA_HOME", self.root.join("data"))
            .env("XDG_RUNTIME_DIR", &run)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon");
        // The login keyring's password, on stdin (never argv), then EOF.
        let mut stdin = daemon.stdin.take().expect("stdin");
        stdin.write_all(b"keyring-test-login").expect("unlock");
        drop(stdin);
        self.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.has_secret_service() {
            assert!(
                Instant::now() < deadline,
                "gnome-keyring did not come up on the private bus"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn has_secret_service(&self) -> bool {
        let out = Command::new(need("dbus-send"))
            .args([
                "--session",
                "--dest=org.freedesktop.DBus",
                "--print-reply",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.secrets",
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("dbus-send");
        String::from_utf8_lossy(&out.stdout).contains("boolean true")
    }

    /// The secret stored under service `keyvault` and `account`, read with libsecret's
    /// `secret-tool`, independently of keyvault.
    pub fn lookup(&self, account: &str) -> Option<String> {
        let out = Command::new(need("secret-tool"))
            .args(["lookup", "service", "keyvault", "username", account])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("secret-tool");
        let secret = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !secret.is_empty()).then_some(secret)
    }

    /// Deletes an entry behind keyvault's back.
    pub fn clear(&self, account: &str) {
        let status = Command::new(need("secret-tool"))
            .args(["clear", "service", "keyvault", "username", account])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .status()
            .expect("secret-tool");
        assert!(status.success());
    }

    /// Every account stored under service `keyvault`.
    pub fn accounts(&self) -> Vec<String> {
        let out = Command::new(need("secret-tool"))
            .args(["search", "--all", "service", "keyvault"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .expect("secret-tool");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text.lines()
            .filter_map(|l| l.strip_prefix("attribute.username = "))
            .map(ToOwned::to_owned)
            .collect()
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        if let Some(d) = &mut self.daemon {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}
