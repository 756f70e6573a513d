//! Starting children: the same executable re-executed with a hidden
//! subcommand (SPEC §2), never a bare `fork()` of this threaded process.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that spawned a child exits
//! (CRATES.md), so every child is spawned from one dedicated thread that
//! lives as long as the supervisor, never from tokio's blocking pool.

use std::path::PathBuf;
use std::sync::mpsc;

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// One request to the spawner thread.
struct Request {
    args: Vec<String>,
    reply: oneshot::Sender<std::io::Result<Child>>,
}

/// Handle to the spawner thread.
#[derive(Clone)]
pub struct Spawner {
    tx: mpsc::Sender<Request>,
}

impl Spawner {
    /// Starts the spawner thread for `exe`, whose children run on `handle`'s reactor.
    pub fn start(exe: PathBuf, handle: tokio::runtime::Handle) -> std::io::Result<Spawner> {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("fazt-spawner".into())
            .spawn(move || {
                let _guard = handle.enter();
                let parent = std::process::id();
                for req in rx {
                    let _ = req.reply.send(spawn(&exe, &req.args, parent));
                }
            })?;
        Ok(Spawner { tx })
    }

    /// Spawns `exe args…`.
    pub async fn spawn(&self, args: Vec<String>) -> std::io::Result<Child> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { args, reply })
            .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
        rx.await
            .map_err(|_| std::io::Error::other("spawner thread dropped the request"))?
    }
}

fn spawn(exe: &PathBuf, args: &[String], parent: u32) -> std::io::Result<Child> {
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        // systemd talks to the supervisor only (NotifyAccess=main).
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe syscalls (prctl, getppid, _exit) run
    // between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            // The parent may have died before prctl took effect: then no
            // signal will ever come, so leave now.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}
