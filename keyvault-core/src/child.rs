//! Programs that die with keyvault: every `ssh` keyvault starts is killed the moment
//! keyvault ends, even by `kill -9`, so no login lingers until its own timeout, and neither
//! does a `ProxyCommand` or `ProxyJump` process that `ssh` forks.
//!
//! Every such program runs in one process group for the whole of keyvault, led by a small
//! `sh` keeper ([`keeper`]) whose standard input is a pipe from keyvault: when keyvault
//! ends, however it ends, the pipe closes, and the keeper kills its group (`kill -KILL 0`),
//! the programs' children with it. The keeper leads the group and lives until then, so the
//! group id cannot be taken by anyone else's group in between. A process that leaves the
//! group (`setsid`) is not covered.
//!
//! Where there is no keeper (it could not be started, or someone killed it), a program is
//! started through util-linux's `setpriv --pdeathsig KILL` instead (keyvault-core has no
//! `unsafe`, so it cannot set the parent-death signal between `fork` and `exec` itself),
//! and a small `sh` guard that runs the program only if keyvault is still its parent
//! (keyvault dying before `setpriv` set the signal would otherwise go unnoticed) and
//! replaces itself with it: the program keeps the pid, the pipes and the signal. That
//! costs two more programs per `ssh`, which a pod rotation starts two or three of per pod,
//! so it is the fallback, not the rule. The kernel sends that signal when the *thread*
//! that started the child ends, and keyvault starts logins from worker threads that end
//! before the process does. So every such child is started from one thread of its own
//! ([`spawn`]) that lives as long as the process.
//!
//! Where there is neither (no keeper, and no `setpriv` with `--pdeathsig`: util-linux
//! older than 2.33, or not Linux), programs run in keyvault's own group, unguarded.

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

/// A command for `program` (a name looked up on the child's `PATH`, or a path) that is
/// killed when keyvault ends, once started with [`spawn`]: by the keeper, or where there
/// is none, by the kernel (the `setpriv` guard). Arguments, environment, directory and
/// standard streams are set on it as on `Command::new(program)`.
#[must_use]
pub(crate) fn command(program: &str) -> Command {
    if keeper_runs() {
        return Command::new(program);
    }
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

/// The keeper: reads its standard input, a pipe keyvault never writes to, until
/// end-of-file (keyvault has ended), then kills its process group, itself last.
const KEEPER: &str = "read -r _; kill -s KILL 0";

/// The keeper, started once per process: the pipe keyvault holds open, its process (to see
/// whether it still runs), and its group.
struct Keeper {
    _pipe: std::process::ChildStdin,
    process: std::sync::Mutex<Child>,
    group: i32,
}

/// Whether the keeper runs (started now if it was not): a program that joins its group is
/// killed with keyvault without a guard of its own.
fn keeper_runs() -> bool {
    keeper().is_some_and(|k| {
        k.process
            .lock()
            .is_ok_and(|mut p| matches!(p.try_wait(), Ok(None)))
    })
}

/// The process group every program [`spawn`] starts joins, led by the keeper, started once
/// per process; `None` where it cannot be started.
fn keeper() -> Option<&'static Keeper> {
    static STARTED: OnceLock<Option<Keeper>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            use std::os::unix::process::CommandExt;
            use std::process::Stdio;
            // A fixed shell, no environment, nothing of the user's. Its own group, so a
            // terminal's Ctrl-C does not reach it: keyvault's end does.
            let mut child = Command::new("/bin/sh")
                .args(["-c", KEEPER])
                .env_clear()
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let pipe = child.stdin.take()?;
            let group = i32::try_from(child.id()).ok()?;
            // The pipe lives in a static, for as long as the process; the keeper is waited
            // for only to see whether it still runs: it ends after keyvault, and whoever
            // inherits it reaps it.
            Some(Keeper {
                _pipe: pipe,
                process: std::sync::Mutex::new(child),
                group,
            })
        })
        .as_ref()
}

/// A started child, or the command back with why it could not start.
type Spawned = Result<Child, Box<(Command, io::Error)>>;

/// A request to the spawning thread: the command, and where to send the child.
type Request = (Command, mpsc::Sender<Spawned>);

/// Starts `cmd` from keyvault's spawning thread, which lives as long as the process, so a
/// parent-death signal set by [`command`] fires when keyvault ends, not when the calling
/// thread does. Falls back to the calling thread if that thread cannot be had.
///
/// # Errors
///
/// As [`Command::spawn`].
pub(crate) fn spawn(mut cmd: Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // A keeper that was killed leaves a group nobody kills: not joined (the command was
    // made with the `setpriv` guard then, unless it was killed in between).
    let grouped = keeper()
        .filter(|_| keeper_runs())
        .map(|k| cmd.process_group(k.group))
        .is_some();
    match spawn_here_or_there(cmd) {
        // The keeper's group is gone (it was killed after the check above): it cannot be
        // joined. The program runs in keyvault's own group, as without a keeper.
        Err(failed) if grouped && failed.1.raw_os_error() == Some(libc::EPERM) => {
            let (mut cmd, _) = *failed;
            cmd.process_group(rustix::process::getpgrp().as_raw_pid());
            spawn_here_or_there(cmd).map_err(|failed| failed.1)
        }
        other => other.map_err(|failed| failed.1),
    }
}

/// [`spawn`]'s work: on the spawning thread, or on the calling one if that thread cannot
/// be had; on failure, the command back with the error.
fn spawn_here_or_there(cmd: Command) -> Spawned {
    static SPAWNER: OnceLock<Option<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("keyvault-spawner".to_owned())
            .spawn(move || {
                // Never returns while the process runs: the sender is in a static.
                for (cmd, reply) in incoming {
                    let _ = reply.send(spawn_now(cmd));
                }
            })
            .ok()
            .map(|_| requests)
    });
    let Some(spawner) = spawner else {
        return spawn_now(cmd);
    };
    let (reply, child) = mpsc::channel();
    match spawner.send((cmd, reply)) {
        Ok(()) => child.recv().unwrap_or_else(|_| {
            Err(Box::new((
                Command::new("/"),
                io::Error::other("the spawning thread is gone"),
            )))
        }),
        Err(mpsc::SendError((cmd, _))) => spawn_now(cmd),
    }
}

/// Starts `cmd` on this thread.
fn spawn_now(mut cmd: Command) -> Spawned {
    cmd.spawn().map_err(|e| Box::new((cmd, e)))
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

    #[test]
    fn a_program_is_guarded_by_the_kernel_once_the_keeper_is_gone() {
        // With the keeper, a program runs as itself, in the keeper's group.
        assert!(keeper_runs(), "no keeper");
        assert_eq!(command("true").get_program(), "true");
        let keeper = keeper().expect("keeper");
        keeper
            .process
            .lock()
            .expect("lock")
            .kill()
            .expect("kill the keeper");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while keeper_runs() {
            assert!(
                std::time::Instant::now() < deadline,
                "the keeper still runs"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Without it, through `setpriv --pdeathsig` and the guard, in keyvault's group.
        let cmd = command("sh");
        let guarded = setpriv().expect("util-linux setpriv");
        assert_eq!(cmd.get_program(), guarded);
        let out = spawn({
            let mut c = cmd;
            c.args(["-c", "echo \"$PPID\"; cut -d' ' -f5 /proc/$$/stat"])
                .stdout(std::process::Stdio::piped());
            c
        })
        .and_then(std::process::Child::wait_with_output)
        .expect("run");
        let out = String::from_utf8_lossy(&out.stdout);
        let mut lines = out.lines().map(str::trim);
        assert_eq!(lines.next(), Some(std::process::id().to_string().as_str()));
        assert_eq!(
            lines.next(),
            Some(rustix::process::getpgrp().as_raw_pid().to_string().as_str()),
            "{out}"
        );
    }
}
