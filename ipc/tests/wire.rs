//! Framing and handshake against hostile and broken input.

use fazt_ipc::conn::{self, FrameReader, FrameWriter};
use fazt_ipc::frame::{self, MAX_FRAME, PREFIX_LEN};
use fazt_ipc::msg::*;
use fazt_ipc::{handshake, Hello, IpcError, Role};
use fazt_shared::ErrorCode;
use tokio::io::AsyncWriteExt;

/// Deterministic pseudo-random bytes (splitmix64), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn sample_messages() -> Vec<FromWorker> {
    vec![
        FromWorker::Ready { lanes: 8 },
        FromWorker::Started { job: JobId(1) },
        FromWorker::Done {
            job: JobId(u64::MAX),
            outcome: Outcome::Response(HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: b"{\"ok\":true}".to_vec(),
            }),
        },
        FromWorker::Done {
            job: JobId(2),
            outcome: Outcome::Error {
                code: ErrorCode::JsTimeout,
                message: "script ran too long".into(),
            },
        },
        FromWorker::Log(LogRecord {
            level: LogLevel::Warn,
            app: "hello".into(),
            request_id: "r-1".into(),
            message: "héllo ✓".into(),
        }),
        FromWorker::Heartbeat {
            seq: 9,
            stats: WorkerStats {
                lanes_busy: 1,
                lanes_total: 8,
                served: 1000,
                js_heap_bytes: 1 << 20,
                p50_us: 120,
                p99_us: 900,
            },
        },
    ]
}

#[test]
fn every_message_round_trips() {
    for msg in sample_messages() {
        let bytes = frame::encode(&msg).expect("encode");
        let (back, used) = frame::decode::<FromWorker>(&bytes)
            .expect("decode")
            .expect("complete");
        assert_eq!(back, msg);
        assert_eq!(used, bytes.len());
    }
    let job = ToWorker::Job(Job {
        id: JobId(3),
        request_id: "abc".into(),
        app: AppRef {
            id: 1,
            name: "hello".into(),
            version: 4,
        },
        request: HttpRequest {
            method: "POST".into(),
            path: "/api/x".into(),
            query: "a=1".into(),
            headers: vec![("x-y".into(), "z".into())],
            body: vec![0, 1, 2, 255],
        },
        timeout_ms: 10_000,
        ticket: fazt_shared::ticket::TicketKey::generate().issue(1, "abc", 5),
    });
    let bytes = frame::encode(&job).expect("encode");
    assert_eq!(
        frame::decode::<ToWorker>(&bytes)
            .expect("decode")
            .map(|x| x.0),
        Some(job)
    );
}

#[test]
fn every_truncation_is_incomplete_never_wrong() {
    for msg in sample_messages() {
        let bytes = frame::encode(&msg).expect("encode");
        for cut in 0..bytes.len() {
            assert!(
                frame::decode::<FromWorker>(&bytes[..cut])
                    .expect("a prefix is not an error")
                    .is_none(),
                "cut at {cut}"
            );
        }
    }
}

#[test]
fn oversize_and_trailing_bytes_are_errors() {
    let mut big = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
    big.push(0);
    assert!(matches!(
        frame::decode::<FromWorker>(&big),
        Err(IpcError::FrameTooLarge { .. })
    ));
    // A valid message with junk inside the frame after it.
    let mut bytes = frame::encode(&5u32).expect("encode");
    bytes.push(0xAA);
    let len = (bytes.len() - PREFIX_LEN) as u32;
    bytes[..PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
    assert!(matches!(
        frame::decode::<u32>(&bytes),
        Err(IpcError::Decode(_))
    ));
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0xFA27);
    for i in 0..20_000 {
        let len = (rng.next() % 96) as usize;
        let mut buf = rng.bytes(len);
        // Half the time, announce a plausible length so the decoder reaches
        // the payload instead of stopping at the prefix.
        if i % 2 == 0 && buf.len() >= PREFIX_LEN {
            let claimed = (buf.len() - PREFIX_LEN) as u32;
            buf[..PREFIX_LEN].copy_from_slice(&claimed.to_be_bytes());
        }
        let _ = frame::decode::<FromWorker>(&buf);
        let _ = frame::decode::<ToWorker>(&buf);
    }
    // Mutations of valid frames: flip bytes inside real messages.
    for msg in sample_messages() {
        let bytes = frame::encode(&msg).expect("encode");
        for _ in 0..500 {
            let mut m = bytes.clone();
            let at = PREFIX_LEN + (rng.next() as usize) % (m.len() - PREFIX_LEN);
            m[at] = rng.next() as u8;
            let _ = frame::decode::<FromWorker>(&m);
        }
    }
}

#[tokio::test]
async fn local_socket_handshake_and_exchange() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.sock");
    let listener = conn::listen(&path).expect("listen");
    let server = tokio::spawn(async move {
        use interprocess::local_socket::traits::tokio::Listener as _;
        let stream = listener.accept().await.expect("accept");
        let (mut r, mut w) = conn::split(stream);
        let peer = handshake(&mut r, &mut w, Hello::me(Role::Supervisor), &[Role::Worker])
            .await
            .expect("handshake");
        assert_eq!(peer.role, Role::Worker);
        w.send(&ToWorker::Heartbeat { seq: 1 }).await.expect("send");
        let got: Option<FromWorker> = r.read().await.expect("read");
        assert_eq!(got, Some(FromWorker::Ready { lanes: 2 }));
        assert!(r.read::<FromWorker>().await.expect("eof").is_none());
    });
    let stream = conn::connect(&path).await.expect("connect");
    let (mut r, mut w) = conn::split(stream);
    let peer = handshake(&mut r, &mut w, Hello::me(Role::Worker), &[Role::Supervisor])
        .await
        .expect("handshake");
    assert_eq!(peer.role, Role::Supervisor);
    let msg: Option<ToWorker> = r.read().await.expect("read");
    assert_eq!(msg, Some(ToWorker::Heartbeat { seq: 1 }));
    w.send(&FromWorker::Ready { lanes: 2 }).await.expect("send");
    drop((r, w));
    server.await.expect("server task");
}

#[tokio::test]
async fn garbage_after_handshake_is_a_clear_error() {
    let (client, server) = tokio::io::duplex(1024);
    let (sr, sw) = tokio::io::split(server);
    let (mut sr, mut sw) = (FrameReader::new(sr), FrameWriter::new(sw));
    let (cr, cw) = tokio::io::split(client);
    let (mut cr, mut cw) = (FrameReader::new(cr), FrameWriter::new(cw));
    let (a, b) = tokio::join!(
        handshake(
            &mut sr,
            &mut sw,
            Hello::me(Role::Supervisor),
            &[Role::Egress]
        ),
        handshake(
            &mut cr,
            &mut cw,
            Hello::me(Role::Egress),
            &[Role::Supervisor]
        ),
    );
    a.expect("server side");
    b.expect("client side");
    let mut raw = cw;
    drop(cr);
    // A frame that announces 8 bytes of a variant index no enum has.
    raw.send(&u64::MAX).await.expect("send");
    let err = sr.read::<FromWorker>().await.unwrap_err();
    assert!(matches!(err, IpcError::Decode(_)), "{err}");
    let _ = raw;
}

#[tokio::test]
async fn peer_closing_mid_frame_is_truncated() {
    let (client, server) = tokio::io::duplex(1024);
    let mut r = FrameReader::new(server);
    let mut client = client;
    let bytes = frame::encode(&FromWorker::Ready { lanes: 3 }).expect("encode");
    client
        .write_all(&bytes[..bytes.len() - 1])
        .await
        .expect("write");
    drop(client);
    let err = r.read::<FromWorker>().await.unwrap_err();
    assert!(matches!(err, IpcError::Truncated), "{err}");
}
