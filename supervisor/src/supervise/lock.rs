//! One supervisor per data dir: an exclusive `flock` on `<data>/supervise.lock`,
//! held for the life of the process and released by the kernel on any exit,
//! `kill -9` included.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{anyhow, Context, Result};
use fazt_shared::DataDir;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// Takes the lock, or says that another supervisor holds it.
pub fn acquire(data: &DataDir) -> Result<Flock<File>> {
    let path = data.path().join("supervise.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => anyhow!(
            "another fazt supervisor is already running on data dir {}",
            data.path().display()
        ),
        other => anyhow!("locking {}: {other}", path.display()),
    })
}
