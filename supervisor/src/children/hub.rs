//! Where every child starts and connects back: one spawner thread, one
//! socket (`<data>/children.sock`, mode 0600) whose connections are sorted
//! by the peer's pid, and the start sequence each role shares — spawn,
//! wait for the connection (or the child's early exit), send the
//! configuration, wait for "ready" — each step bounded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fazt_ipc::conn::{FrameReader, FrameWriter, ReadHalf, Split, WriteHalf};
use fazt_ipc::{handshake, Hello, Role};
use interprocess::local_socket::traits::StreamCommon as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::process::Child;
use tokio::sync::watch;

use super::{reap, Exit, Rendezvous, Spawner};

/// How long a new child may take to connect, and then to report ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The roles that may connect to the children's socket.
const CHILD_ROLES: &[Role] = &[Role::Worker, Role::Egress];

/// Spawner, socket and rendezvous, shared by every child role.
pub struct Hub {
    spawner: Spawner,
    rendezvous: Rendezvous<Split>,
    socket: PathBuf,
}

/// A child that is running and connected.
pub struct Launched {
    /// The process.
    pub child: Child,
    /// Its pid.
    pub pid: u32,
    /// Frames from it.
    pub reader: FrameReader<ReadHalf>,
    /// Frames to it.
    pub writer: FrameWriter<WriteHalf>,
}

impl Hub {
    /// Starts the spawner thread for `exe` and listens on `socket` until
    /// `stop` turns true.
    pub fn start(
        exe: PathBuf,
        socket: PathBuf,
        stop: watch::Receiver<bool>,
    ) -> std::io::Result<(Arc<Hub>, tokio::task::JoinHandle<()>)> {
        let listener = fazt_ipc::conn::listen(&socket).map_err(std::io::Error::other)?;
        let hub = Arc::new(Hub {
            spawner: Spawner::start(exe, tokio::runtime::Handle::current())?,
            rendezvous: Rendezvous::default(),
            socket,
        });
        let accepting = tokio::spawn(accept_loop(hub.clone(), listener, stop));
        Ok((hub, accepting))
    }

    /// The socket children connect to (passed to them as `--socket`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Spawns `exe args…` and waits for it to connect back. `spawned` hears
    /// the pid as soon as there is one (for status rows).
    pub async fn launch(
        &self,
        args: Vec<String>,
        spawned: impl FnOnce(u32),
    ) -> Result<Launched, Exit> {
        let mut child = self
            .spawner
            .spawn(args)
            .await
            .map_err(|e| Exit::SpawnFailed(e.to_string()))?;
        let Some(pid) = child.id() else {
            return Err(reap(&mut child).await);
        };
        spawned(pid);
        let conn = self.rendezvous.expect(pid);
        let (reader, writer) = tokio::select! {
            got = tokio::time::timeout(START_TIMEOUT, conn) => match got {
                Ok(Ok(split)) => split,
                _ => {
                    self.forget(pid);
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    return Err(Exit::NotReady);
                }
            },
            status = child.wait() => {
                self.forget(pid);
                return Err(Exit::from_status(status));
            }
        };
        Ok(Launched {
            child,
            pid,
            reader,
            writer,
        })
    }

    /// Sends `config` to a launched child and waits, within
    /// [`START_TIMEOUT`], for its first message, which `ready` turns into
    /// the child's ready state; a child that answers otherwise or not at
    /// all is reaped or killed.
    pub async fn configure<C, M, T>(
        &self,
        mut launched: Launched,
        config: &C,
        ready: impl FnOnce(M) -> Option<T>,
    ) -> Result<(Launched, T), Exit>
    where
        C: Serialize,
        M: DeserializeOwned,
    {
        let answered = async {
            launched.writer.send(config).await.ok()?;
            launched.reader.read::<M>().await.ok().flatten()
        };
        match tokio::time::timeout(START_TIMEOUT, answered).await {
            Ok(Some(first)) => match ready(first) {
                Some(value) => Ok((launched, value)),
                None => {
                    let _ = launched.child.start_kill();
                    let _ = launched.child.wait().await;
                    self.forget(launched.pid);
                    Err(Exit::Protocol("the first message was not ready".into()))
                }
            },
            Ok(None) => {
                let exit = reap(&mut launched.child).await;
                self.forget(launched.pid);
                Err(exit)
            }
            Err(_) => {
                let _ = launched.child.start_kill();
                let _ = launched.child.wait().await;
                self.forget(launched.pid);
                Err(Exit::NotReady)
            }
        }
    }

    /// Forgets `pid`: a connection arriving after its child was given up on
    /// (or ended) must not be handed to a later process with the same pid.
    pub fn forget(&self, pid: u32) {
        self.rendezvous.forget(pid);
    }
}

async fn accept_loop(
    hub: Arc<Hub>,
    listener: interprocess::local_socket::tokio::Listener,
    mut stop: watch::Receiver<bool>,
) {
    while let Some(stream) =
        fazt_ipc::conn::accept_until(&listener, &mut stop, "children's socket").await
    {
        let hub = hub.clone();
        tokio::spawn(async move {
            let creds_pid = stream
                .peer_creds()
                .ok()
                .and_then(|c| c.pid())
                .map(|p| p as u32);
            let (mut r, mut w): Split = fazt_ipc::conn::split(stream);
            let hello =
                match handshake(&mut r, &mut w, Hello::me(Role::Supervisor), CHILD_ROLES).await {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!(error = %e, "refused a connection on the children's socket");
                        return;
                    }
                };
            // The kernel's word wins over what the peer says about itself.
            hub.rendezvous
                .arrived(creds_pid.unwrap_or(hello.pid), (r, w));
        });
    }
    let _ = std::fs::remove_file(&hub.socket);
}
