//! Programs that die with keyvault: every `ssh` keyvault starts is killed by the kernel the
//! moment keyvault ends, even by `kill -9`, so no login lingers until its own timeout.
//!
//! keyvault-core has no `unsafe`, so it cannot set the parent-death signal between `fork`
//! and `exec` itself. util-linux's `setpriv --pdeathsig KILL` does it and then runs a small
//! `sh` guard, which runs the program only if keyvault is still its parent (keyvault dying
//! before `setpriv` set the signal would otherwise go unnoticed), and replaces itself with
//! it: the program keeps the pid, the pipes and the signal.
//!
//! The kernel sends the signal when the *thread* that started the child ends, and keyvault
//! starts logins from worker threads that end before the process does. So every such child
//! is started from one thread of its own ([`spawn`]) that lives as long as the process.
//!
//! Where there is no `setpriv` with `--pdeathsig` (util-linux older than 2.33, or not
//! Linux), programs run as they are, without the guarantee.

use std::io;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;

/// Where `setpriv` is looked for: fixed places, not the child's `PATH` (the user's).
const SETPRIV: &[&str] = &["/usr/bin/setpriv", "/bin/setpriv"];

/// Between `setpriv` and the program: `$1` is keyvault's pid; run the rest only if keyvault
/// is still the parent (the death signal is set by then, so it cannot be missed).
const GUARD: &str = "[ \"$PPID\" = \"$1\" ] || exit 125; shift; exec \"$@\"";

/// The `setpriv` that sets a parent-death signal here, found and tried once per process.
fn setpriv() -> Option<&'static str> {
    static FOUND: OnceLock<Option<&'static str>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        SETPRIV.iter().copied().find(|path| {
            // Runs nothing of the user's: a fixed path, a fixed shell, no arguments.
            Command::new(path)
                .args(["--pdeathsig", "KILL", "--", "/bin/sh", "-c", ":"])
                .env_clear()
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    })
}

/// A command for `program` (a name looked up on the child's `PATH`, or a path) that the
/// kernel kills when keyvault ends, once started with [`spawn`]. Arguments, environment,
/// directory and standard streams are set on it as on `Command::new(program)`.
#[must_use]
pub(crate) fn command(program: &str) -> Command {
    let Some(setpriv) = setpriv() else {
        return Command::new(program);
    };
    let mut cmd = Command::new(setpriv);
    cmd.args([
        "--pdeathsig",
        "KILL",
        "--",
        "/bin/sh",
        "-c",
        GUARD,
        "keyvault",
    ])
    .arg(std::process::id().to_string())
    .arg(program);
    cmd
}

/// A request to the spawning thread: the command, and where to send the child.
type Request = (Command, mpsc::Sender<io::Result<Child>>);

/// Starts `cmd` from keyvault's spawning thread, which lives as long as the process, so a
/// parent-death signal set by [`command`] fires when keyvault ends, not when the calling
/// thread does. Falls back to the calling thread if that thread cannot be had.
///
/// # Errors
///
/// As [`Command::spawn`].
pub(crate) fn spawn(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("keyvault-spawner".to_owned())
            .spawn(move || {
                // Never returns while the process runs: the sender is in a static.
                for (mut cmd, reply) in incoming {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .ok()
            .map(|_| requests)
    });
    let Some(spawner) = spawner else {
        return cmd.spawn();
    };
    let (reply, child) = mpsc::channel();
    match spawner.send((cmd, reply)) {
        Ok(()) => child
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the spawning thread is gone"))),
        Err(mpsc::SendError((mut cmd, _))) => cmd.spawn(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_program_keeps_its_arguments_streams_and_status() {
        let out = spawn({
            let mut c = command("sh");
            c.args(["-c", "read -r line; echo \"$0 got $line\"; exit 3", "x y"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped());
            c
        })
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().expect("stdin").write_all(b"it\n")?;
            child.wait_with_output()
        })
        .expect("run");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "x y got it\n");
        assert_eq!(out.status.code(), Some(3));
    }
}
