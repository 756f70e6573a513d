//! Execution tickets (SPEC §7), tested from the side of a worker gone
//! bad: this test is the supervisor of a real `fazt egress` (so it knows
//! the key) and then, as a worker, sends egress crafted frames — no
//! ticket, a forged one, one for another app or request, one signed with
//! another key, one replayed after its deadline. Only the genuine, live
//! ones reach the upstream (on loopback, through a pin).

mod support;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use fazt_ipc::msg::{
    CallId, EgressConfig, FromEgress, NetAnswer, NetCall, NetOutcome, NetRequest, Pin, ToEgress,
};
use fazt_ipc::{conn, handshake, FrameReader, FrameWriter, Hello};
use fazt_shared::ticket::{unix_now_ms, Ticket, TicketKey};
use fazt_shared::{ErrorCode, Limits, Probe};
use support::upstream::Upstream;
use support::{bin, net_allow, tmp};

/// A `fazt egress` this test supervises; killed by pid when dropped.
struct Egress {
    child: Child,
    // Held open: egress exits when its supervisor's connection closes.
    _supervisor: (FrameReader<conn::ReadHalf>, FrameWriter<conn::WriteHalf>),
}

impl Drop for Egress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_egress(data: &Path, key: &TicketKey, pin_port: u16) -> Egress {
    let socket = data.join("test-children.sock");
    let listener = conn::listen(&socket).expect("children's socket");
    let child = Command::new(bin())
        .arg("--data-dir")
        .arg(data)
        .args(["egress", "--socket"])
        .arg(&socket)
        .env("FAZT_LOG", "warn")
        .spawn()
        .expect("fazt egress");
    let (_stop, mut stop) = tokio::sync::watch::channel(false);
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        conn::accept_until(&listener, &mut stop, "test"),
    )
    .await
    .expect("egress connected in time")
    .expect("a connection");
    let (mut reader, mut writer) = conn::split(stream);
    handshake(
        &mut reader,
        &mut writer,
        Hello::me(fazt_ipc::Role::Supervisor),
        &[fazt_ipc::Role::Egress],
    )
    .await
    .expect("handshake");
    let config = EgressConfig {
        net: Limits::defaults(&Probe::fixed(1 << 30, 2)).net,
        nameserver: None,
        pins: vec![Pin {
            host: "up.example.com".into(),
            port: pin_port,
            addr: ([127, 0, 0, 1], pin_port).into(),
        }],
        ticket_key: key.clone(),
        restarted: false,
    };
    writer
        .send(&ToEgress::Configure(config))
        .await
        .expect("configure");
    let ready = tokio::time::timeout(Duration::from_secs(10), reader.read::<FromEgress>())
        .await
        .expect("ready in time")
        .expect("read");
    assert_eq!(ready, Some(FromEgress::Ready));
    Egress {
        child,
        _supervisor: (reader, writer),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_answers_only_genuine_live_tickets() {
    let up = Upstream::start();
    let p = up.port();
    let dir = tmp();
    let data = dir.path().join("data");
    net_allow(&data, &[&["up.example.com", "--http"]]);
    let key = TicketKey::generate();
    let _egress = start_egress(&data, &key, p).await;

    let stream = conn::connect(&data.join("egress.sock"))
        .await
        .expect("egress socket");
    let (mut reader, mut writer) = conn::split(stream);
    handshake(
        &mut reader,
        &mut writer,
        Hello::me(fazt_ipc::Role::Worker),
        &[fazt_ipc::Role::Egress],
    )
    .await
    .expect("handshake as a worker");
    let mut next = 0u64;
    let mut call = |app_id: i64, request_id: &str, ticket: Option<Ticket>| {
        next += 1;
        NetCall {
            id: CallId(next),
            app_id,
            app: format!("app{app_id}"),
            request_id: request_id.into(),
            time_left_ms: 10_000,
            ticket,
            request: NetRequest {
                url: format!("http://up.example.com:{p}/json"),
                method: "GET".into(),
                headers: vec![],
                body: vec![],
                timeout_ms: None,
                auth: None,
            },
        }
    };
    let mut ask = async |c: NetCall| -> NetOutcome {
        writer.send(&c).await.expect("send");
        let answer: NetAnswer = tokio::time::timeout(Duration::from_secs(10), reader.read())
            .await
            .expect("an answer in time")
            .expect("read")
            .expect("not closed");
        assert_eq!(answer.id, c.id);
        answer.outcome
    };

    let in_10s = unix_now_ms() + 10_000;
    let genuine = key.issue(1, "r1", in_10s);
    let outcome = ask(call(1, "r1", Some(genuine.clone()))).await;
    assert!(
        matches!(&outcome, NetOutcome::Response(r) if r.status == 200),
        "{outcome:?}"
    );

    let mut flipped = genuine.clone();
    flipped.mac[31] ^= 0x80;
    let mut later = genuine.clone();
    later.deadline_unix_ms += 60_000;
    let cases = [
        (call(1, "r1", None), "no execution ticket", "missing"),
        (call(1, "r1", Some(flipped)), "not valid", "one bit changed"),
        (
            call(1, "r1", Some(later)),
            "not valid",
            "a deadline moved by hand",
        ),
        (
            call(2, "r1", Some(genuine.clone())),
            "not valid",
            "another app",
        ),
        (
            call(1, "r2", Some(genuine.clone())),
            "not valid",
            "another request",
        ),
        (
            call(1, "r1", Some(TicketKey::generate().issue(1, "r1", in_10s))),
            "not valid",
            "another key",
        ),
    ];
    for (c, says, what) in cases {
        match ask(c).await {
            NetOutcome::Failed { code, message } => {
                assert_eq!(code, ErrorCode::NetBlocked, "{what}: {message}");
                assert!(message.contains(says), "{what}: {message}");
            }
            other => panic!("{what}: answered {other:?}"),
        }
    }

    // A short-lived ticket works until its deadline, and a replay after it
    // is refused.
    let short = key.issue(1, "r3", unix_now_ms() + 1_500);
    let outcome = ask(call(1, "r3", Some(short.clone()))).await;
    assert!(matches!(&outcome, NetOutcome::Response(_)), "{outcome:?}");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    match ask(call(1, "r3", Some(short))).await {
        NetOutcome::Failed { code, message } => {
            // Genuine but too late: the app's call, timed out.
            assert_eq!(code, ErrorCode::NetTimeout);
            assert!(message.contains("expired"), "{message}");
        }
        other => panic!("a replay after the deadline: {other:?}"),
    }
    // The worker's own count of time left is not trusted: a call that
    // claims none still runs until the signed deadline, and one that
    // claims more cannot outlive it.
    let mut c = call(1, "r4", Some(key.issue(1, "r4", unix_now_ms() + 10_000)));
    c.time_left_ms = 0;
    let outcome = ask(c).await;
    assert!(
        matches!(&outcome, NetOutcome::Response(r) if r.status == 200),
        "{outcome:?}"
    );
    assert_eq!(up.hits(), 3, "only the genuine, live calls went out");
}
