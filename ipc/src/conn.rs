//! A connection: frames read from and written to a byte stream, the
//! handshake, and local-socket helpers.
//!
//! Reading is buffered and cancel-safe (a `select!` may drop a pending read
//! without losing bytes): a clean close between frames reads as `None`, a
//! close inside a frame is [`IpcError::Truncated`].

use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use interprocess::local_socket::tokio::prelude::*;
pub use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{self, PREFIX_LEN};
use crate::{IpcError, Role, PROTOCOL_VERSION};

/// Largest read issued at once; the buffer grows by at most this much per
/// read, so a peer must actually send bytes to make fazt hold them.
const READ_CHUNK: usize = 64 * 1024;

/// Smallest read issued: enough for the small frames of a busy connection
/// to arrive several per system call.
const MIN_READ: usize = 8 * 1024;

/// Frames a writer task gathers into one write when they are queued at once.
const BATCH_BYTES: usize = 64 * 1024;

/// Magic bytes opening every connection, so a stray client is told apart
/// from a fazt process of another version.
const MAGIC: [u8; 4] = *b"FAZT";

/// Bytes of the handshake: magic, protocol (u16), role (u8), reserved (u8), pid (u32).
const HELLO_LEN: usize = 12;

/// Bound on how long a peer may take to say hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What each side announces at the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version; both sides must match exactly.
    pub protocol: u16,
    /// The sender's role.
    pub role: Role,
    /// The sender's process id.
    pub pid: u32,
}

impl Hello {
    /// This process's hello in `role`.
    pub fn me(role: Role) -> Hello {
        Hello {
            protocol: PROTOCOL_VERSION,
            role,
            pid: std::process::id(),
        }
    }

    fn to_bytes(self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.protocol.to_be_bytes());
        b[6] = self.role as u8;
        b[8..12].copy_from_slice(&self.pid.to_be_bytes());
        b
    }

    fn from_bytes(b: &[u8; HELLO_LEN]) -> Result<Hello, IpcError> {
        if b[..4] != MAGIC {
            return Err(IpcError::BadMagic);
        }
        let protocol = u16::from_be_bytes([b[4], b[5]]);
        if protocol != PROTOCOL_VERSION {
            return Err(IpcError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: protocol,
            });
        }
        let role = Role::from_u8(b[6]).ok_or(IpcError::UnknownRole(b[6]))?;
        let pid = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        Ok(Hello {
            protocol,
            role,
            pid,
        })
    }
}

/// Reads frames from a byte stream.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::new(),
        }
    }

    /// The next message; `None` when the peer closed cleanly between frames.
    pub async fn read<T: DeserializeOwned>(&mut self) -> Result<Option<T>, IpcError> {
        loop {
            if let Some((msg, used)) = frame::decode(&self.buf)? {
                self.buf.advance(used);
                return Ok(Some(msg));
            }
            // decode() above has already refused an oversize prefix.
            let want = match frame::announced_len(&self.buf)? {
                Some(len) => (PREFIX_LEN + len).saturating_sub(self.buf.len()),
                None => PREFIX_LEN - self.buf.len(),
            };
            if !self.fill(want).await? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(IpcError::Truncated)
                };
            }
        }
    }

    /// Reads `n` raw bytes (the handshake, before any frame).
    async fn read_raw<const N: usize>(&mut self) -> Result<[u8; N], IpcError> {
        while self.buf.len() < N {
            if !self.fill(N - self.buf.len()).await? {
                return Err(IpcError::Truncated);
            }
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[..N]);
        self.buf.advance(N);
        Ok(out)
    }

    /// Reads more bytes toward the `want` still missing; `false` on end of stream.
    async fn fill(&mut self, want: usize) -> Result<bool, IpcError> {
        // Grow only when full, and only by what the current frame still needs
        // (capped), so a prefix that claims 16 MiB costs nothing until the
        // bytes arrive.
        if self.buf.capacity() == self.buf.len() {
            self.buf.reserve(want.clamp(MIN_READ, READ_CHUNK));
        }
        let n = self.inner.read_buf(&mut self.buf).await?;
        Ok(n > 0)
    }

    #[cfg(test)]
    fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// Writes frames to a byte stream.
pub struct FrameWriter<W> {
    inner: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps a writer.
    pub fn new(inner: W) -> Self {
        FrameWriter { inner }
    }

    /// Sends one message and flushes it.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), IpcError> {
        let bytes = frame::encode(msg)?;
        self.inner.write_all(&bytes).await?;
        self.inner.flush().await?;
        Ok(())
    }

    /// Writes bytes that are already frames, and flushes them.
    async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), IpcError> {
        self.inner.write_all(bytes).await?;
        self.inner.flush().await?;
        Ok(())
    }
}

/// Exchanges hellos: sends ours, reads the peer's, and checks magic, version
/// and that the peer's role is one of `expect`. Bounded by [`HANDSHAKE_TIMEOUT`].
pub async fn handshake<R, W>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    me: Hello,
    expect: &[Role],
) -> Result<Hello, IpcError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let exchange = async {
        writer.send_raw(&me.to_bytes()).await?;
        let peer = Hello::from_bytes(&reader.read_raw::<HELLO_LEN>().await?)?;
        if !expect.contains(&peer.role) {
            return Err(IpcError::UnexpectedRole(peer.role));
        }
        Ok(peer)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| IpcError::HandshakeTimeout)?
}

/// The read half of a local-socket connection.
pub type ReadHalf = tokio::io::ReadHalf<Stream>;
/// The write half of a local-socket connection.
pub type WriteHalf = tokio::io::WriteHalf<Stream>;

/// Reader and writer halves of one local-socket connection.
pub type Split = (FrameReader<ReadHalf>, FrameWriter<WriteHalf>);

/// What [`spawn_writer_with`] does with a message that cannot be sent.
pub type Unsendable<T> = fn(&T, &IpcError) -> Option<T>;

/// One task owns the writer; everyone else hands it messages through the
/// returned sender. The task ends when every sender is gone or the
/// connection breaks.
pub fn spawn_writer<T, W>(
    writer: FrameWriter<W>,
) -> (
    tokio::sync::mpsc::UnboundedSender<std::sync::Arc<T>>,
    tokio::task::JoinHandle<()>,
)
where
    T: Serialize + Send + Sync + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    spawn_writer_with(writer, |_, _| None)
}

/// As [`spawn_writer`]; a message that cannot be encoded (too large, not
/// encodable: nothing was written, the stream is intact) is replaced by
/// what `unsendable` makes of it, if anything, instead of ending the task.
pub fn spawn_writer_with<T, W>(
    mut writer: FrameWriter<W>,
    unsendable: Unsendable<T>,
) -> (
    tokio::sync::mpsc::UnboundedSender<std::sync::Arc<T>>,
    tokio::task::JoinHandle<()>,
)
where
    T: Serialize + Send + Sync + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<std::sync::Arc<T>>();
    let task = tokio::spawn(async move {
        // Messages queued together go out in one write: under load a
        // worker's answers and the supervisor's jobs arrive in bursts, and a
        // system call (and a wake-up of the reader) per frame was most of
        // the cost of a small request.
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.clear();
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match frame::encode_into(&*msg, &mut batch) {
                    Ok(()) => {}
                    Err(e @ (IpcError::FrameTooLarge { .. } | IpcError::Encode(_))) => {
                        // Nothing of it was written; the stream is intact.
                        if let Some(instead) = unsendable(&msg, &e) {
                            if frame::encode_into(&instead, &mut batch).is_err() {
                                return;
                            }
                        }
                    }
                    Err(_) => return,
                }
                if batch.len() < BATCH_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() && writer.send_raw(&batch).await.is_err() {
                return;
            }
        }
    });
    (tx, task)
}

/// Splits a stream into a frame reader and a frame writer that can be used
/// from different tasks.
pub fn split(stream: Stream) -> Split {
    let (r, w) = tokio::io::split(stream);
    (FrameReader::new(r), FrameWriter::new(w))
}

/// Listens on a filesystem socket at `path` with mode 0600, replacing a stale
/// socket file left by a crashed process.
pub fn listen(path: &Path) -> Result<Listener, IpcError> {
    let name = path.to_fs_name::<GenericFilePath>()?;
    let listener = ListenerOptions::new()
        .name(name)
        .reclaim_name(true)
        .try_overwrite(true)
        .mode(0o600)
        .create_tokio()?;
    Ok(listener)
}

/// The next connection on `listener`, or `None` once `stop` changes. An
/// accept error (out of file descriptors, say) is logged and retried after a
/// short pause instead of spinning or ending the loop.
pub async fn accept_until(
    listener: &Listener,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    what: &str,
) -> Option<Stream> {
    use interprocess::local_socket::traits::tokio::Listener as _;
    loop {
        tokio::select! {
            s = listener.accept() => match s {
                Ok(s) => return Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "{what} accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return None,
        }
    }
}

/// How long a child waits for its configuration after the handshake.
pub const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(10);

/// The child's side of the start sequence (the supervisor's side is
/// `children::Hub`): connect to the supervisor's `socket`, exchange hellos
/// as `role`, and read the first message — its configuration — within
/// [`CONFIGURE_TIMEOUT`]. `None` when the supervisor closed first (it is
/// stopping).
pub async fn join_supervisor<T: DeserializeOwned>(
    socket: &Path,
    role: Role,
) -> Result<Option<(Split, T)>, IpcError> {
    let (mut reader, mut writer) = split(connect(socket).await?);
    handshake(
        &mut reader,
        &mut writer,
        Hello::me(role),
        &[Role::Supervisor],
    )
    .await?;
    match tokio::time::timeout(CONFIGURE_TIMEOUT, reader.read::<T>()).await {
        Ok(Ok(Some(first))) => Ok(Some(((reader, writer), first))),
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(IpcError::ConfigureTimeout),
    }
}

/// Connects to a filesystem socket at `path`.
pub async fn connect(path: &Path) -> Result<Stream, IpcError> {
    let name = path.to_fs_name::<GenericFilePath>()?;
    Ok(Stream::connect(name).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MAX_FRAME;

    fn reader(bytes: Vec<u8>) -> FrameReader<std::io::Cursor<Vec<u8>>> {
        FrameReader::new(std::io::Cursor::new(bytes))
    }

    #[tokio::test]
    async fn a_claimed_length_is_not_allocated_before_the_bytes_arrive() {
        let mut bytes = ((MAX_FRAME - 1) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[7u8; 100]);
        let mut r = reader(bytes);
        let err = r.read::<u64>().await.unwrap_err();
        assert!(matches!(err, IpcError::Truncated), "{err}");
        assert!(
            r.buffered_capacity() <= 2 * READ_CHUNK,
            "buffer grew to {}",
            r.buffered_capacity()
        );
    }

    #[tokio::test]
    async fn an_oversize_prefix_is_refused_at_once() {
        let mut r = reader(u32::MAX.to_be_bytes().to_vec());
        let err = r.read::<u64>().await.unwrap_err();
        assert!(matches!(err, IpcError::FrameTooLarge { .. }), "{err}");
    }

    #[tokio::test]
    async fn clean_close_between_frames_is_none() {
        let mut bytes = frame::encode(&5u64).expect("encode");
        bytes.extend(frame::encode(&6u64).expect("encode"));
        let mut r = reader(bytes);
        assert_eq!(r.read::<u64>().await.expect("first"), Some(5));
        assert_eq!(r.read::<u64>().await.expect("second"), Some(6));
        assert_eq!(r.read::<u64>().await.expect("end"), None);
    }

    #[tokio::test]
    async fn handshake_checks_magic_version_and_role() {
        async fn peer_says(bytes: Vec<u8>, expect: &[Role]) -> Result<Hello, IpcError> {
            let mut r = reader(bytes);
            let mut w = FrameWriter::new(Vec::new());
            handshake(&mut r, &mut w, Hello::me(Role::Supervisor), expect).await
        }
        let good = Hello::me(Role::Worker).to_bytes().to_vec();
        let peer = peer_says(good.clone(), &[Role::Worker]).await.expect("ok");
        assert_eq!(peer.role, Role::Worker);
        assert_eq!(peer.pid, std::process::id());

        let err = peer_says(good, &[Role::Egress]).await.unwrap_err();
        assert!(
            matches!(err, IpcError::UnexpectedRole(Role::Worker)),
            "{err}"
        );

        let mut old = Hello::me(Role::Worker).to_bytes();
        old[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_be_bytes());
        let err = peer_says(old.to_vec(), &[Role::Worker]).await.unwrap_err();
        assert!(matches!(err, IpcError::VersionMismatch { .. }), "{err}");
        assert!(err.to_string().contains("protocol"), "{err}");

        let err = peer_says(b"GET / HTTP/1.1\r\n".to_vec(), &[Role::Worker])
            .await
            .unwrap_err();
        assert!(matches!(err, IpcError::BadMagic), "{err}");

        let mut role = Hello::me(Role::Worker).to_bytes();
        role[6] = 200;
        let err = peer_says(role.to_vec(), &[Role::Worker]).await.unwrap_err();
        assert!(matches!(err, IpcError::UnknownRole(200)), "{err}");

        let err = peer_says(b"FAZT".to_vec(), &[Role::Worker])
            .await
            .unwrap_err();
        assert!(matches!(err, IpcError::Truncated), "{err}");
    }
}
