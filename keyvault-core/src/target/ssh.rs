//! An `authorized_keys` file on a host or a pod, through the system `ssh` client.

use super::SharedAgent;
use super::ssh_session::{
    Session, last_line, reach_options, run_with_input, sha256_hex, ssh_config_path,
};
use super::{Applied, FileTarget, Hook, MAX_TARGET_BYTES, REFUSED, Target, TargetSpec, read_back};
use crate::error::{Error, TargetError};
use crate::remote::{AddKey, RemoteKey};
use std::collections::HashSet;

/// What the host said, fit for a message: without control characters, at most 300.
fn printable(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect()
}

/// The options every keyvault login uses: never prompt, give up after 15 seconds, print
/// errors only, and use a connection the user already shares but never start one that
/// outlives us.
const BATCH: [&str; 8] = [
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=15",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ControlMaster=no",
];

/// An `authorized_keys` file on a host, edited through the system `ssh` client in BatchMode,
/// so the user's `~/.ssh/config`, ProxyJump and known_hosts apply. Edits are atomic on the
/// host (temp file and rename) and refused if the file changed since it was read. A key
/// given with [`Target::load_identity`] goes into a private ssh-agent, and after it is added
/// keyvault proves that it logs in before reporting success. Logins with keyvault's own keys
/// offer exactly those keys, whatever the user's config says about identities (`ssh -F
/// /dev/null`, `IdentitiesOnly`, the reachability options taken from `ssh -G`). As with [`FileTarget`], a symlink or non-regular file at the
/// path is refused, the file is read with a cap, a replaced file keeps its owner, group and
/// mode, and a file with lines that are no `authorized_keys` entries is not edited (unless
/// [`SshTarget::allow_non_key_lines`]).
#[derive(Debug)]
pub struct SshTarget {
    spec: TargetSpec,
    /// keyvault's private agent, perhaps shared with other targets ([`Self::with_agent`]).
    agent: std::sync::Arc<SharedAgent>,
    /// The agent's socket, once a key is loaded into it.
    socket: Option<std::path::PathBuf>,
    /// Each key loaded for this target: its fingerprint and its public half in a file in
    /// the agent's directory (for `-i`). Only these are offered.
    identities: Vec<(ssh_key::Fingerprint, std::path::PathBuf)>,
    extra: Vec<String>,
    /// The environment `ssh` and `ssh-agent` run with (empty unless [`Self::with_env`]).
    env: crate::child_env::ChildEnv,
    /// What the user's config says it takes to reach the host (`ssh -G`), read once.
    reach: std::sync::OnceLock<Vec<String>>,
    /// keyvault's own agent got in where the user's setup did not: go to it first.
    agent_first: std::sync::atomic::AtomicBool,
    /// Log in with this loaded key alone ([`Target::log_in_only_with`]).
    only: Option<ssh_key::Fingerprint>,
    allow_non_key_lines: bool,
}

impl SshTarget {
    /// The host `spec` names (a [`TargetSpec::Ssh`]).
    #[must_use]
    pub fn new(spec: TargetSpec) -> Self {
        SshTarget {
            spec,
            agent: std::sync::Arc::default(),
            socket: None,
            identities: Vec::new(),
            extra: Vec::new(),
            env: crate::child_env::ChildEnv::default(),
            reach: std::sync::OnceLock::new(),
            agent_first: std::sync::atomic::AtomicBool::new(false),
            only: None,
            allow_non_key_lines: false,
        }
    }

    /// Edits the file even if it has lines that are not keys, comments or blank (the
    /// user says it is an `authorized_keys` file).
    #[must_use]
    pub fn allow_non_key_lines(mut self, yes: bool) -> Self {
        self.allow_non_key_lines = yes;
        self
    }

    /// Loads keys into `agent`, which other targets may share: one `ssh-agent` for all the
    /// hosts or pods of a command, not one each. Each target still offers only the keys
    /// loaded for it.
    #[must_use]
    pub fn with_agent(mut self, agent: std::sync::Arc<SharedAgent>) -> Self {
        self.agent = agent;
        self
    }

    /// Runs `ssh` and `ssh-agent` with `env` (by default they get an empty environment).
    #[must_use]
    pub fn with_env(mut self, env: crate::child_env::ChildEnv) -> Self {
        self.env = env;
        self
    }

    /// A pod (a [`TargetSpec::Pod`]): its host keys go to `known_hosts` (keyvault's own,
    /// accepting new ones, since pods are short-lived and new).
    #[must_use]
    pub fn for_pod(spec: TargetSpec, known_hosts: &std::path::Path) -> Self {
        SshTarget {
            spec,
            agent: std::sync::Arc::default(),
            socket: None,
            identities: Vec::new(),
            extra: vec![
                "-o".to_owned(),
                format!("UserKnownHostsFile={}", ssh_config_path(known_hosts)),
                "-o".to_owned(),
                "StrictHostKeyChecking=accept-new".to_owned(),
            ],
            env: crate::child_env::ChildEnv::default(),
            reach: std::sync::OnceLock::new(),
            // A pod trusts only keys keyvault holds: its own agent is the way in.
            agent_first: std::sync::atomic::AtomicBool::new(true),
            only: None,
            allow_non_key_lines: false,
        }
    }

    fn parts(&self) -> (Option<&str>, &str, Option<u16>, String) {
        match &self.spec {
            TargetSpec::Ssh {
                user,
                host,
                port,
                path,
            } => (
                user.as_deref(),
                host.as_str(),
                *port,
                path.as_ref().map_or_else(
                    || "\"$HOME/.ssh/authorized_keys\"".to_owned(),
                    |p| format!("'{p}'"),
                ),
            ),
            // RunPod's images keep the keys in root's ~/.ssh/authorized_keys; a session may
            // point elsewhere with KEYVAULT_AUTHORIZED_KEYS (the tests' sshd does).
            TargetSpec::Pod {
                user, host, port, ..
            } => (
                Some(user.as_str()),
                host.as_str(),
                Some(*port),
                "\"${KEYVAULT_AUTHORIZED_KEYS:-$HOME/.ssh/authorized_keys}\"".to_owned(),
            ),
            _ => (None, "", None, String::new()),
        }
    }

    /// `ssh` in the target's environment, killed when keyvault ends (see `child`).
    fn ssh(&self) -> std::process::Command {
        let mut c = crate::child::command("ssh");
        self.env.apply(&mut c);
        c
    }

    /// The target's own port and user, where it names them, as `-p` and `-l`.
    fn port_and_user(&self, c: &mut std::process::Command) {
        let (user, _, port, _) = self.parts();
        if let Some(p) = port {
            c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = user {
            c.arg("-l").arg(u);
        }
    }

    /// A login with the user's own SSH setup (their config, agent and keys).
    fn command(&self, remote: &str) -> std::process::Command {
        let (_, host, _, _) = self.parts();
        let mut c = self.ssh();
        c.args(BATCH);
        c.args(&self.extra);
        self.port_and_user(&mut c);
        c.arg("--").arg(host).arg(remote);
        c
    }

    /// What it takes to reach the host by the user's config, as `-o` options: the host's
    /// `ssh -G` settings (target's user and port first), less everything about identities.
    fn reach(&self) -> Result<&[String], TargetError> {
        if let Some(reach) = self.reach.get() {
            return Ok(reach);
        }
        let (_, host, _, _) = self.parts();
        let mut probe = self.ssh();
        probe.arg("-G");
        self.port_and_user(&mut probe);
        probe.arg("--").arg(host);
        let resolved = run_with_input(probe, None).map_err(|e| self.unreachable(&e.to_string()))?;
        if !resolved.status.success() {
            let why = last_line(&resolved.stderr);
            return Err(self.unreachable(if why.is_empty() {
                "ssh -G failed"
            } else {
                &why
            }));
        }
        let resolved = String::from_utf8_lossy(&resolved.stdout).into_owned();
        Ok(self.reach.get_or_init(|| reach_options(&resolved)))
    }

    /// A login with keyvault's own keys only: `ssh -F /dev/null` (no user config, so no
    /// `IdentitiesOnly`, `IdentityFile`, `IdentityAgent`, `CertificateFile`, algorithm
    /// list or `Match` of theirs applies), the private agent as the only agent, and
    /// `IdentitiesOnly` with the public half of each key in `keys` (fingerprints), so ssh
    /// offers exactly those. Host name, port, user, proxy and known hosts come from the
    /// user's config through [`Self::reach`].
    fn own_login(
        &self,
        keys: Option<&ssh_key::Fingerprint>,
        remote: &str,
    ) -> Result<std::process::Command, TargetError> {
        let Some(socket) = &self.socket else {
            return Err(self.unreachable("no key of keyvault's to log in with"));
        };
        let (_, host, _, _) = self.parts();
        let reach = self.reach()?;
        let mut c = self.ssh();
        c.args(["-F", "/dev/null"]);
        c.args(BATCH);
        c.args([
            "-o",
            "ControlPath=none",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PreferredAuthentications=publickey",
        ]);
        c.arg("-o")
            .arg(format!("IdentityAgent={}", ssh_config_path(socket)));
        for (fingerprint, public) in &self.identities {
            if keys.is_none_or(|k| k == fingerprint) {
                c.arg("-i").arg(public);
            }
        }
        // Options given first win: the target's own (a pod's known_hosts) before the user's.
        c.args(&self.extra);
        c.args(reach);
        c.arg("--").arg(host).arg(remote);
        Ok(c)
    }

    /// The ways to log in, in the order to try them: `false` for the user's own setup,
    /// `true` for keyvault's own keys.
    fn attempts(&self) -> Vec<bool> {
        use std::sync::atomic::Ordering;
        if self.only.is_some() {
            // The login is the proof that this key works: keyvault's agent, that key alone.
            return vec![true];
        }
        let mut attempts = vec![false];
        // Once a rotation has made the new key active, the user's own setup may only know
        // the (encrypted) new key: fall back to keyvault's agent, which holds it decrypted.
        // Where that agent is the way in (a pod, or it already worked here), it goes first,
        // which saves a failed login per command.
        if self.socket.is_some() {
            if self.agent_first.load(Ordering::Relaxed) {
                attempts.insert(0, true);
            } else {
                attempts.push(true);
            }
        }
        attempts
    }

    /// The command for one of [`Self::attempts`].
    fn attempt(&self, own: bool, remote: &str) -> Result<std::process::Command, TargetError> {
        if own {
            self.own_login(self.only.as_ref(), remote)
        } else {
            Ok(self.command(remote))
        }
    }

    /// Remembers that keyvault's agent got in (`own` came from [`Self::attempts`]).
    fn logged_in_with(&self, own: bool) {
        if own {
            self.agent_first
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn run(&self, remote: &str, stdin: Option<&[u8]>) -> Result<Vec<u8>, TargetError> {
        let mut last = String::new();
        for own in self.attempts() {
            let out = run_with_input(self.attempt(own, remote)?, stdin)
                .map_err(|e| self.unreachable(&e.to_string()))?;
            if out.status.success() {
                self.logged_in_with(own);
                return Ok(out.stdout);
            }
            last = last_line(&out.stderr);
            if out.status.code() == Some(REFUSED) {
                return Err(self.refused(&last));
            }
            if out.status.code() != Some(255) {
                break;
            }
        }
        Err(self.no_login(&last))
    }

    /// Reads the file, lets `decide` choose its new content (`None`: leave it), and writes
    /// that, all in one login. The write is a compare-and-swap: the host replaces the file
    /// only if it still has the content keyvault read, and only with content that hashes to
    /// what keyvault sent. Returns what was read, and what was written (the host checked
    /// its hash before renaming it into place, so no second login reads it back).
    fn edit(
        &self,
        decide: &mut dyn FnMut(Option<&str>) -> Option<String>,
        hook: Hook<'_>,
    ) -> Result<(Option<String>, Option<String>), Error> {
        let print = self.print_file_script();
        // Ends what the host prints before it waits for keyvault's answer; random, so no
        // file content can fake it.
        let mut nonce = [0u8; 16];
        ssh_key::rand_core::TryRng::try_fill_bytes(&mut ssh_key::getrandom::SysRng, &mut nonce)
            .map_err(|e| self.unreachable(&e.to_string()))?;
        let end = format!("keyvault-end-{}", sha256_hex(&nonce));
        // The temporary file's name: fresh per login, so the host creates it new
        // (`set -C`) without a `mktemp`; from the same random bytes, but not the marker.
        let tag = sha256_hex(end.as_bytes());
        let script = Self::edit_script(&print, &end, &tag[..16]);
        let mut last = String::new();
        for own in self.attempts() {
            let mut session = Session::start(self.attempt(own, &script)?)
                .map_err(|e| self.unreachable(&e.to_string()))?;
            let Some(head) = session
                .read_until(format!("\n{end}\n").as_bytes())
                .map_err(|e| self.unreachable(&e.to_string()))?
            else {
                // No answer: the login failed (255: try the next way in) or the host refused.
                let (status, _, stderr) = session.finish(None);
                last = last_line(&stderr);
                if status.is_some_and(|s| s.code() == Some(REFUSED)) {
                    return Err(self.refused(&last).into());
                }
                if status.is_some_and(|s| s.code() != Some(255)) {
                    break;
                }
                continue;
            };
            self.logged_in_with(own);
            let before = self.printed_file(head)?;
            let Some(text) = decide(before.as_deref()) else {
                let _ = session.finish(Some(b"keep\n"));
                return Ok((before, None));
            };
            let name = self.spec.to_string();
            if let Err(stop) = hook(&format!("write:{name}")) {
                // Closing without an answer leaves the file as it was.
                let _ = session.finish(None);
                return Err(stop);
            }
            let expected = before
                .as_ref()
                .map_or_else(|| "none".to_owned(), |t| sha256_hex(t.as_bytes()));
            // The new content's hash too: a write cut short (keyvault or its ssh killed
            // while sending) must not replace the file with part of it.
            let mut answer =
                format!("write {expected} {}\n", sha256_hex(text.as_bytes())).into_bytes();
            answer.extend_from_slice(text.as_bytes());
            let (status, written, stderr) = session.finish(Some(&answer));
            if status.is_some_and(|s| s.code() == Some(REFUSED)) {
                return Err(self.refused(&last_line(&stderr)).into());
            }
            if !status.is_some_and(|s| s.success()) {
                let why = last_line(&stderr);
                return Err(self
                    .unreachable(if why.is_empty() { "ssh failed" } else { &why })
                    .into());
            }
            if written != b"written\n" {
                return Err(self.unreachable("unexpected answer from the host").into());
            }
            hook(&format!("written:{name}"))?;
            // The host renamed into place a file that hashes to `text`'s hash.
            return Ok((before, Some(text)));
        }
        Err(self.no_login(&last).into())
    }

    /// No way in worked; `last` is ssh's last word on it.
    fn no_login(&self, last: &str) -> TargetError {
        let last = if last.is_empty() { "ssh failed" } else { last };
        if self.only.is_some() {
            self.unreachable(&format!(
                "the new key does not log in ({last}); the old key was left in place"
            ))
        } else {
            self.unreachable(last)
        }
    }

    /// The script [`Self::edit`] runs: `print` (from [`Self::print_file_script`]), the
    /// line `end`, then the answer: `keep`, or `write SHA256 NEW` and the new content,
    /// written only if the file still hashes to SHA256 and the content arrived whole
    /// (hashes to NEW). `tag` names the temporary file (random per login).
    ///
    /// Every login runs it, so it runs as few programs as it can: in the common case (the
    /// file and its directory exist) `cat`, one `sha256sum` for both files, one `stat` for
    /// both, and `mv`; the owner, group and mode are set only where they differ, and `id`
    /// and the owner of the nearest directory are looked up only to create something. What
    /// it creates gets its mode explicitly (a file 0600, each directory 0700): under a
    /// default ACL the umask does not apply, and sshd ignores a group-writable file.
    /// The temporary file is removed whenever the script ends without renaming it (a trap
    /// on `EXIT`: a refusal, a failed `mv`, `chown` or `chmod`).
    fn edit_script(print: &str, end: &str, tag: &str) -> String {
        format!(
            "{print}; printf '\\n{end}\\n'; \
             IFS= read -r verb || exit 0; case \"$verb\" in 'write '*) ;; *) exit 0;; esac; \
             set -e; umask 077; o=; \
             if [ ! -f \"$d/$b\" ] && [ \"$(id -u)\" = 0 ]; then o=$(stat -c %u:%g -- \"$e\" 2>/dev/null || stat -f %u:%g -- \"$e\"); fi; \
             md() {{ if [ ! -d \"$1\" ]; then dn \"$1\"; md \"$r\"; mkdir -m 700 -- \"$1\"; \
             if [ -n \"$o\" ]; then chown -h -- \"$o\" \"$1\"; fi; fi; }}; md \"$d\"; \
             cd -P -- \"$d\"; if [ \"$PWD\" != \"$d\" ]; then \
             echo \"$f: $d is or passes through a symlink; keyvault does not write through it\" >&2; exit {REFUSED}; fi; a=./$b; \
             t=./.authorized_keys.keyvault.{tag}; trap 'rm -f -- \"$t\"' EXIT; set -C; cat > \"$t\"; set +C; \
             if [ -L \"$a\" ] || {{ [ -e \"$a\" ] && [ ! -f \"$a\" ]; }}; then \
             echo \"$f is a symlink or not a regular file; keyvault does not write through it\" >&2; exit {REFUSED}; fi; \
             set -f; if [ -f \"$a\" ]; then set -- $(sha256sum -- \"$t\" \"$a\"); else set -- $(sha256sum -- \"$t\") none; fi; \
             w=${{1#\\\\}}; cur=${{3#\\\\}}; if [ \"${{verb##* }}\" != \"$w\" ]; then \
             echo \"$f: the new content did not arrive whole; nothing was written\" >&2; exit 4; fi; \
             if [ \"write $cur $w\" != \"$verb\" ]; then echo \"$f changed since keyvault read it\" >&2; exit 4; fi; \
             if [ -f \"$a\" ]; then \
             set -- $(stat -c %u:%g:%a -- \"$a\" \"$t\" 2>/dev/null || stat -f %u:%g:%Lp -- \"$a\" \"$t\" 2>/dev/null); \
             if [ $# != 2 ] || {{ [ \"${{1%:*}}\" != \"${{2%:*}}\" ] && ! chown -- \"${{1%:*}}\" \"$t\" 2>/dev/null; }}; then \
             echo \"cannot keep the owner and group of $f; nothing was written\" >&2; exit {REFUSED}; fi; \
             if [ \"${{1##*:}}\" != \"${{2##*:}}\" ]; then chmod -- \"${{1##*:}}\" \"$t\"; fi; \
             else chmod 600 \"$t\"; if [ -n \"$o\" ]; then chown -- \"$o\" \"$t\"; fi; fi; \
             mv -f -- \"$t\" \"$a\"; trap - EXIT; printf 'written\\n'"
        )
    }

    /// The host refused (exit [`REFUSED`]): `reason` is its last line on stderr.
    fn refused(&self, reason: &str) -> TargetError {
        TargetError::Refused {
            target: self.spec.to_string(),
            reason: printable(reason),
        }
    }

    fn unreachable(&self, reason: &str) -> TargetError {
        TargetError::Unreachable {
            target: self.spec.to_string(),
            reason: printable(reason),
        }
    }

    /// The file's content, `None` if it does not exist.
    fn read(&self) -> Result<Option<String>, TargetError> {
        let out = self.run(&self.print_file_script(), None)?;
        self.printed_file(out)
    }

    /// A shell script that sets `f` to the file and prints `present` and its content, or
    /// `missing` (exit [`REFUSED`] for a symlink or something that is not a regular file).
    /// At most [`MAX_TARGET_BYTES`] and a byte are printed: a file over the cap is refused
    /// by [`Self::printed_file`]. It runs one program, `head`; `dirname` and `basename` are
    /// the shell functions `dn` and `bn` (POSIX's rules, result in `r`), and paths are made
    /// canonical with `cd -P`, which sets `PWD` to the physical path.
    fn print_file_script(&self) -> String {
        let (_, _, _, path) = self.parts();
        format!(
            "trim() {{ while case \"$r\" in ?*/) true;; *) false;; esac; do r=${{r%/}}; done; }}; \
             dn() {{ r=$1; trim; case \"$r\" in */*) r=${{r%/*}}; trim; r=${{r:-/}};; *) r=.;; esac; }}; \
             bn() {{ r=$1; trim; case \"$r\" in /) ;; *) r=${{r##*/}};; esac; }}; \
             f={path}; dn \"$f\"; d=$r; bn \"$f\"; b=$r; a=$f; \
             case \"$d\" in \"$HOME\"|\"$HOME\"/*) if cd -P -- \"$HOME\" 2>/dev/null; then d=$PWD${{d#\"$HOME\"}}; fi;; esac; \
             e=$d; while [ ! -d \"$e\" ] && [ \"$e\" != / ] && [ \"$e\" != . ]; do dn \"$e\"; e=$r; done; \
             if ! cd -P -- \"$e\" 2>/dev/null || [ \"$PWD\" != \"$e\" ]; then \
             echo \"$f: $e is or passes through a symlink (or is no canonical path); keyvault does not write through it\" >&2; exit {REFUSED}; fi; \
             if [ -d \"$d\" ]; then cd -P -- \"$d\" || exit {REFUSED}; a=./$b; fi; \
             if [ -L \"$a\" ] || {{ [ -e \"$a\" ] && [ ! -f \"$a\" ]; }}; then \
             echo \"$f is a symlink or not a regular file; keyvault does not write through it\" >&2; exit {REFUSED}; \
             elif [ -f \"$a\" ]; then printf 'present\\n'; head -c {cap} -- \"$a\"; else printf 'missing\\n'; fi",
            cap = MAX_TARGET_BYTES + 1
        )
    }

    /// The file as [`Self::print_file_script`] printed it; `None` if it does not exist.
    fn printed_file(&self, out: Vec<u8>) -> Result<Option<String>, TargetError> {
        if out.len() as u64 > MAX_TARGET_BYTES + "present\n".len() as u64 {
            let file = match &self.spec {
                TargetSpec::Ssh { path: Some(p), .. } => p.as_str(),
                _ => "~/.ssh/authorized_keys",
            };
            return Err(self.refused(&format!("{file} is larger than {MAX_TARGET_BYTES} bytes")));
        }
        let text =
            String::from_utf8(out).map_err(|_| self.unreachable("the file is not UTF-8 text"))?;
        match text.split_once('\n') {
            Some(("present", rest)) => Ok(Some(rest.to_owned())),
            Some(("missing", "")) => Ok(None),
            _ => Err(self.unreachable("unexpected answer from the host")),
        }
    }

    /// Proves that the key with this fingerprint logs in, offering it alone.
    fn verify_login(&self, fingerprint: &ssh_key::Fingerprint) -> Result<(), TargetError> {
        if self.socket.is_none() {
            return Ok(());
        }
        let out = run_with_input(self.own_login(Some(fingerprint), "true")?, None)
            .map_err(|e| self.unreachable(&e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.unreachable(
                "the new key was added but does not log in; the old key was left in place",
            ))
        }
    }
}

impl Target for SshTarget {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError> {
        Ok(FileTarget::entries(&self.read()?.unwrap_or_default()))
    }

    fn line(&self, record: &crate::KeyRecord) -> String {
        record.authorized_keys_line()
    }

    fn best_effort(&self) -> bool {
        matches!(self.spec, TargetSpec::Pod { .. })
    }

    fn log_in_only_with(&mut self, key: Option<ssh_key::Fingerprint>) -> bool {
        self.only = key;
        true
    }

    fn load_identity(&mut self, key: &ssh_key::PrivateKey) -> Result<(), Error> {
        let fingerprint = key.public_key().fingerprint(ssh_key::HashAlg::Sha256);
        // Loaded again even where this target has it: its lifetime in the agent starts anew.
        let (socket, public) = self.agent.load(key, &self.env)?;
        self.socket = Some(socket);
        if !self.identities.iter().any(|(fp, _)| *fp == fingerprint) {
            self.identities.push((fingerprint, public));
        }
        Ok(())
    }

    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<ssh_key::Fingerprint>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error> {
        let name = self.spec.to_string();
        let allow_non_key_lines = self.allow_non_key_lines;
        let mut non_key_line = None;
        // One login reads, edits and writes; the host renames into place only content that
        // hashes to what keyvault sent, so the read-back needs no login of its own either.
        // That matters once the key keyvault logged in with has just been removed.
        let (before, written) = self.edit(
            &mut |current| {
                let text = current.unwrap_or_default();
                let edited = crate::authorized_keys::edit(text, add, remove);
                let change = current.is_none() || edited != text;
                if change && !allow_non_key_lines && !add.is_empty() {
                    non_key_line = crate::authorized_keys::first_non_entry_line(text);
                }
                (change && non_key_line.is_none()).then_some(edited)
            },
            hook,
        )?;
        if let Some(line) = non_key_line {
            return Err(TargetError::NotAuthorizedKeys { target: name, line }.into());
        }
        let wrote = written.is_some();
        let after = written.or(before).unwrap_or_default();
        let present = read_back(&name, &after, add, remove)?;
        // Prove that every added key keyvault holds decrypted logs in.
        for a in add {
            if self.identities.iter().any(|(fp, _)| fp == &a.fingerprint) {
                self.verify_login(&a.fingerprint)?;
            }
        }
        Ok(Applied { wrote, present })
    }
}

#[cfg(test)]
#[path = "ssh_tests.rs"]
mod tests;
