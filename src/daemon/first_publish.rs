//! A start without a usable scan index (the first start, a new binary, a new configuration)
//! publishes every post: at 100,000 posts that takes hundreds of MB for a while, which glibc
//! keeps after it is freed (crier forbids the `unsafe` that `malloc_trim` would need). So the
//! daemon has `crier build` make that publish in a process of its own, the same program with the
//! same arguments (so the same configuration and scan index key), leaving stale documents for the
//! daemon to find (it answers 410 for them), and then starts from the index the child saved, as it
//! does from the last run's index. The child's memory goes back to the system when it exits.
//! A reload to a new configuration does the same, the child writing into a folder beside the
//! feeds folder ([`INTO_ENV`]) that the daemon then swaps in (see `publisher::apart`).
//!
//! When the child cannot start or leaves no index for this configuration, the daemon publishes
//! in its own process, as it would without it.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::daemon::inbox::Message;
use crate::systemd::Heartbeat;

/// Set in the child's environment: `crier serve` then builds once and exits.
pub const ENV: &str = "CRIER_FIRST_PUBLISH_ONLY";

/// Set in the child's environment as well for a reload: the folder to build into instead of the
/// feeds folder (see [`FeedsDir::staging`](crate::feeds_dir::FeedsDir::staging)).
pub const INTO_ENV: &str = "CRIER_PUBLISH_INTO";

/// Makes the command that runs the first publish.
pub type FirstPublish = Arc<dyn Fn() -> Command + Send + Sync>;

/// What systemd told this process alone: a child that saw it would answer in its name.
const SYSTEMD_ONLY: [&str; 6] =
    ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// The file that holds this process's program, whatever has been put at its path since (a
/// package upgraded while crier runs): a child started from it is the same program, with the
/// same scan index key.
const THIS_PROGRAM: &str = "/proc/self/exe";

/// This program, run again with this process's arguments and [`ENV`] set; its log goes where this
/// process's goes. None when the program's path cannot be known.
pub fn this_program() -> Option<FirstPublish> {
    let path = std::env::current_exe().ok()?;
    let program = if std::path::Path::new(THIS_PROGRAM).exists() { THIS_PROGRAM.into() } else { path.clone() };
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    Some(Arc::new(move || {
        let mut command = Command::new(&program);
        std::os::unix::process::CommandExt::arg0(&mut command, &path);
        command.args(&args).env(ENV, "1").stdin(Stdio::null()).stdout(Stdio::null());
        for name in SYSTEMD_ONLY {
            command.env_remove(name);
        }
        command
    }))
}

/// How the child's run ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited, or was killed, by itself: `crier build`'s exit status.
    Exited(ExitStatus),
    /// It could not be started or waited for.
    Failed(std::io::Error),
    /// The daemon was told to stop meanwhile: the child was killed.
    Stopping,
}

/// Runs `command` to its end, beating `heartbeat` meanwhile. The messages that arrive meanwhile
/// are returned, in order, for the publisher's loop; a [`Message::Shutdown`] among them ends the
/// child at once.
pub fn run(mut command: Command, heartbeat: &Heartbeat, receiver: &Receiver<Message>) -> (Ended, Vec<Message>) {
    let mut held = Vec::new();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return (Ended::Failed(error), held),
    };
    loop {
        heartbeat.beat();
        match child.try_wait() {
            // Killed by a signal: most likely the one that stops crier too (systemd signals the
            // whole control group, a terminal's Ctrl-C the whole process group), whose shutdown
            // may be a moment behind.
            Ok(Some(status)) if status.code().is_none() && shutdown_within(receiver, &mut held, SIGNAL_GRACE) => {
                return (Ended::Stopping, held);
            }
            Ok(Some(status)) => return (Ended::Exited(status), held),
            Ok(None) => {}
            Err(error) => return (end(child, Ended::Failed(error)), held),
        }
        match receiver.recv_timeout(Duration::from_millis(20)) {
            Ok(Message::Shutdown) => {
                held.push(Message::Shutdown);
                return (end(child, Ended::Stopping), held);
            }
            Ok(message) => held.push(message),
            Err(RecvTimeoutError::Timeout) => {}
            // The publisher's own sender is alive while it runs; without one, nothing will come.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// How long a shutdown may follow the signal that killed the child.
const SIGNAL_GRACE: Duration = Duration::from_secs(1);

/// Whether a [`Message::Shutdown`] comes within `grace`; every message that comes is held.
fn shutdown_within(receiver: &Receiver<Message>, held: &mut Vec<Message>, grace: Duration) -> bool {
    let deadline = std::time::Instant::now() + grace;
    while let Ok(message) = receiver.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
        let shutdown = matches!(message, Message::Shutdown);
        held.push(message);
        if shutdown {
            return true;
        }
    }
    false
}

/// Kills and reaps `child`.
fn end(mut child: Child, ended: Ended) -> Ended {
    let _ = child.kill();
    let _ = child.wait();
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::mpsc;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn messages_that_come_meanwhile_are_handed_back_in_order() {
        let (sender, receiver) = mpsc::channel();
        sender.send(Message::Tick).unwrap();
        sender.send(Message::Written).unwrap();
        let (ended, held) = run(shell("sleep 0.2; exit 3"), &Heartbeat::new(), &receiver);
        assert!(matches!(ended, Ended::Exited(status) if status.code() == Some(3)), "{ended:?}");
        assert!(matches!(held[..], [Message::Tick, Message::Written]), "{held:?}");
    }

    #[test]
    fn a_shutdown_kills_the_child_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let (sender, receiver) = mpsc::channel();
        let pid = {
            let pid_file = pid_file.clone();
            std::thread::spawn(move || {
                while std::fs::read_to_string(&pid_file).map_or(true, |pid| !pid.ends_with('\n')) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                sender.send(Message::Shutdown).unwrap();
                std::fs::read_to_string(&pid_file).unwrap().trim().to_owned()
            })
        };
        let script = format!("echo $$ > {}; exec sleep 600", pid_file.display());
        let (ended, held) = run(shell(&script), &Heartbeat::new(), &receiver);
        assert!(matches!(ended, Ended::Stopping), "{ended:?}");
        assert!(matches!(held[..], [Message::Shutdown]), "{held:?}");
        // Killed and reaped: not even a zombie is left.
        let pid = pid.join().unwrap();
        assert!(!Path::new("/proc").join(&pid).exists(), "process {pid} still there");
    }

    #[test]
    fn a_child_killed_by_a_signal_is_a_stop_when_the_shutdown_follows() {
        let (sender, receiver) = mpsc::channel();
        let later = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            sender.send(Message::Shutdown).unwrap();
            sender
        });
        let (ended, held) = run(shell("kill -TERM $$"), &Heartbeat::new(), &receiver);
        assert!(matches!(ended, Ended::Stopping), "{ended:?}");
        assert!(matches!(held[..], [Message::Shutdown]), "{held:?}");
        // No shutdown follows: the child's end is reported as it is.
        let _sender = later.join().unwrap();
        let (ended, held) = run(shell("kill -TERM $$"), &Heartbeat::new(), &receiver);
        assert!(matches!(ended, Ended::Exited(status) if status.code().is_none()), "{ended:?}");
        assert!(held.is_empty());
    }

    #[test]
    fn a_program_that_cannot_start_is_reported() {
        let (_sender, receiver) = mpsc::channel();
        let (ended, held) = run(Command::new("/nonexistent/crier"), &Heartbeat::new(), &receiver);
        assert!(matches!(ended, Ended::Failed(ref error) if error.kind() == std::io::ErrorKind::NotFound), "{ended:?}");
        assert!(held.is_empty());
    }

    #[test]
    fn the_child_is_this_program_file_with_these_arguments_and_none_of_systemds_variables() {
        let command = this_program().unwrap()();
        // The file this process runs, even once its path holds another (an upgrade).
        assert_eq!(command.get_program(), THIS_PROGRAM);
        assert_eq!(command.get_args().collect::<Vec<_>>(), std::env::args_os().skip(1).collect::<Vec<_>>());
        let envs: Vec<_> = command.get_envs().collect();
        assert!(envs.contains(&(std::ffi::OsStr::new(ENV), Some(std::ffi::OsStr::new("1")))), "{envs:?}");
        for name in SYSTEMD_ONLY {
            assert!(envs.contains(&(std::ffi::OsStr::new(name), None)), "{name} removed: {envs:?}");
        }
    }
}
