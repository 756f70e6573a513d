//! One client connection's bounds (SPEC §3, `capacity`): how long it may
//! take to send a request head, stay idle between requests, or stall while
//! a response is written; and the accept side: a cap on open connections
//! and a back-off when the process runs out of file descriptors.
//!
//! [`TimedIo`] wraps the socket and sees every read and write; the service
//! marks a request [`InFlight`] from its first byte of handling until the
//! response body is done. While a request is in flight, reads have no
//! deadline here (the request's own deadline and the body stall timeout
//! bound it); otherwise a read waits at most until the head deadline (when
//! bytes of a head have arrived) or the idle deadline. A write that makes
//! no progress for the write timeout fails. When the server drains, a
//! connection with no request in flight is closed at once.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// The timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From a head's first byte to its end (`capacity.header_timeout_ms`).
    pub header: Duration,
    /// Between requests on a kept-alive connection (`capacity.idle_timeout_ms`).
    pub idle: Duration,
    /// A write without progress (`capacity.write_timeout_ms`).
    pub write: Duration,
}

/// What the service and the socket wrapper share about a connection.
pub struct ConnState {
    born: Instant,
    in_flight: AtomicU32,
    requests: AtomicU64,
    /// When the connection last became idle, in ms since `born`.
    idle_since_ms: AtomicU64,
}

impl ConnState {
    /// The state of a connection accepted now.
    pub fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            born: Instant::now(),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// Marks a request in flight until the returned guard drops.
    pub fn enter(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    fn idle_since(&self) -> Instant {
        self.born + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
    }
}

/// A request in flight on a connection; dropping it makes the connection
/// idle again (when it was the last one).
pub struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.0;
        let now = s.born.elapsed().as_millis() as u64;
        s.idle_since_ms.store(now, Ordering::Release);
        s.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A timer that is re-aimed lazily: progress never touches it, so a busy
/// connection costs no timer operation per read or write. Aimed too early
/// (at an older deadline), it fires, finds the deadline moved and re-aims;
/// aimed too late, it is pulled in at once.
struct Deadline {
    sleep: Pin<Box<Sleep>>,
    /// Where `sleep` is aimed; `None` when it fired or was never aimed.
    aimed: Option<Instant>,
}

impl Deadline {
    fn new() -> Deadline {
        Deadline {
            // Not registered with the timer until first polled.
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            aimed: None,
        }
    }

    /// Whether `deadline` has passed; arranges a wake-up for it otherwise.
    fn passed(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        loop {
            if self.aimed.is_none_or(|at| at > deadline) {
                self.sleep.as_mut().reset(deadline);
                self.aimed = Some(deadline);
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            self.aimed = None;
            if Instant::now() >= deadline {
                return true;
            }
        }
    }
}

/// A socket with the connection's deadlines.
pub struct TimedIo<T> {
    io: T,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    seen_requests: u64,
    head_started: Option<Instant>,
    read_timer: Deadline,
    /// When a write last made progress.
    last_write: Option<Instant>,
    /// Since when writes have made no progress.
    write_blocked: Option<Instant>,
    write_timer: Deadline,
    drain: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<T> TimedIo<T> {
    /// Wraps `io`; `draining` turns true when the server stops.
    pub fn new(
        io: T,
        state: Arc<ConnState>,
        timeouts: Timeouts,
        mut draining: watch::Receiver<bool>,
    ) -> TimedIo<T> {
        TimedIo {
            io,
            state,
            timeouts,
            seen_requests: 0,
            head_started: None,
            read_timer: Deadline::new(),
            last_write: None,
            write_blocked: None,
            write_timer: Deadline::new(),
            drain: Some(Box::pin(async move {
                let _ = draining.wait_for(|d| *d).await;
            })),
        }
    }

    /// A new request started since we last looked: its head is complete.
    fn sync(&mut self) {
        let requests = self.state.requests.load(Ordering::Acquire);
        if requests != self.seen_requests {
            self.seen_requests = requests;
            self.head_started = None;
        }
    }

    /// A read is pending: check the deadline that applies now.
    fn read_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sync();
        if self.state.busy() {
            // The request's own bounds apply. Look again within an idle
            // period, so the idle deadline is armed once the request is
            // over even if nothing else polls this read.
            let _ = self
                .read_timer
                .passed(Instant::now() + self.timeouts.idle, cx);
            return Poll::Pending;
        }
        if let Some(drain) = &mut self.drain {
            if drain.as_mut().poll(cx).is_ready() {
                self.drain = None;
            }
        }
        if self.drain.is_none() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server is shutting down",
            )));
        }
        let (deadline, what) = match self.head_started {
            Some(t) => (t + self.timeouts.header, "the request head took too long"),
            // Idle since the last request ended, or since its answer was
            // last written to, whichever is later.
            None => (
                self.state
                    .idle_since()
                    .max(self.last_write.unwrap_or(self.state.born))
                    + self.timeouts.idle,
                "idle for too long",
            ),
        };
        if self.read_timer.passed(deadline, cx) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
        }
        Poll::Pending
    }

    /// A write made progress.
    fn wrote(&mut self) {
        self.write_blocked = None;
        self.last_write = Some(Instant::now());
    }

    /// A write is pending: fail it once writes made no progress for too long.
    fn write_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let since = *self.write_blocked.get_or_insert_with(Instant::now);
        if self.write_timer.passed(since + self.timeouts.write, cx) {
            return Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.sync();
                    if this.head_started.is_none() && !this.state.busy() {
                        this.head_started = Some(Instant::now());
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.read_deadline(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Ready(result) => {
                this.wrote();
                Poll::Ready(result)
            }
            Poll::Pending => this.write_deadline(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.wrote();
                Poll::Ready(result)
            }
            Poll::Pending => this.write_deadline(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Back-off for a failing `accept`: out of file descriptors (or memory) the
/// call fails at once every time, so retrying in a loop would spin and log
/// without end. Waits double from 10 ms to 1 s; one log line at the first
/// failure and then at most one summary every 10 s.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    delay: Duration,
    failures: u64,
    unlogged: u64,
    logged_at: Option<std::time::Instant>,
}

/// Most time between two accept attempts while they fail.
const MAX_ACCEPT_DELAY: Duration = Duration::from_secs(1);
/// Least time between two log lines about failing accepts.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

impl AcceptBackoff {
    /// An accept failed; returns how long to wait before the next one.
    pub fn failed(&mut self, e: &io::Error) -> Duration {
        // A connection reset before it was accepted is the peer's business.
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
        ) {
            return Duration::ZERO;
        }
        self.failures += 1;
        self.unlogged += 1;
        self.delay = (self.delay * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_DELAY);
        let due = self
            .logged_at
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY);
        if due {
            tracing::warn!(
                error = %e,
                failures = self.unlogged,
                retry_in = ?self.delay,
                "accepting connections fails (out of file descriptors?); backing off"
            );
            self.unlogged = 0;
            self.logged_at = Some(std::time::Instant::now());
        }
        self.delay
    }

    /// An accept worked again.
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "accepting connections again");
            *self = AcceptBackoff::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Timeouts = Timeouts {
        header: Duration::from_millis(300),
        idle: Duration::from_millis(200),
        write: Duration::from_millis(200),
    };

    fn wrap(
        io: tokio::io::DuplexStream,
    ) -> (
        TimedIo<tokio::io::DuplexStream>,
        Arc<ConnState>,
        watch::Sender<bool>,
    ) {
        let state = ConnState::new();
        let (drain, rx) = watch::channel(false);
        (TimedIo::new(io, state.clone(), T, rx), state, drain)
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_times_out() {
        let (server, _client) = tokio::io::duplex(64);
        let (mut io, _, _drain) = wrap(server);
        let err = io.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("idle"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_must_be_complete_in_time_even_when_it_trickles() {
        let (server, mut client) = tokio::io::duplex(64);
        let (mut io, _, _drain) = wrap(server);
        let started = Instant::now();
        let feeder = tokio::spawn(async move {
            for _ in 0..10 {
                if client.write_all(b"a").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = client;
        });
        let mut buf = [0u8; 8];
        let err = loop {
            match io.read(&mut buf).await {
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("head"), "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(450),
            "{:?}",
            started.elapsed()
        );
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn no_read_deadline_while_a_request_is_in_flight_then_idle_again() {
        let (server, mut client) = tokio::io::duplex(64);
        let (mut io, state, _drain) = wrap(server);
        client.write_all(b"x").await.expect("write");
        assert_eq!(io.read_u8().await.expect("read"), b'x');
        let busy = state.enter();
        let reader = tokio::spawn(async move {
            let r = io.read_u8().await;
            (r, Instant::now())
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!reader.is_finished(), "a read timed out during a request");
        let done = Instant::now();
        drop(busy);
        let (r, at) = reader.await.expect("reader");
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        let waited = at - done;
        assert!(waited >= T.idle && waited < T.idle * 2, "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn draining_closes_an_idle_connection_at_once() {
        let (server, mut client) = tokio::io::duplex(64);
        let (mut io, _, drain) = wrap(server);
        client.write_all(b"GET / HT").await.expect("write");
        let mut buf = [0u8; 8];
        let _ = io.read(&mut buf).await.expect("read");
        let reader = tokio::spawn(async move { io.read(&mut buf).await });
        tokio::task::yield_now().await;
        drain.send_replace(true);
        let err = reader.await.expect("reader").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_without_progress_fails() {
        let (server, _client) = tokio::io::duplex(16);
        let (mut io, _, _drain) = wrap(server);
        let err = io.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn accept_failures_back_off_and_log_rarely() {
        let mut b = AcceptBackoff::default();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let delays: Vec<Duration> = (0..10).map(|_| b.failed(&emfile)).collect();
        assert_eq!(delays[0], Duration::from_millis(10));
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*delays.last().expect("delay"), MAX_ACCEPT_DELAY);
        assert_eq!(b.unlogged, 9, "one line for ten failures in a row");
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(b.failed(&reset), Duration::ZERO);
        b.succeeded();
        assert_eq!(b.failures, 0);
    }
}
