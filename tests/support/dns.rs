//! A DNS server for egress tests (`FAZT_NET_NAMESERVER`): answers A, AAAA
//! and CNAME questions from a fixed zone over UDP, on loopback (inside a
//! private network namespace for the SSRF tests).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One record of the zone.
#[derive(Clone, Debug)]
pub enum Rec {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// An alias.
    Cname(&'static str),
}

/// A running server; stops when dropped.
pub struct Dns {
    /// Where it listens.
    pub addr: SocketAddr,
    questions: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dns {
    /// Serves `zone` (name, record) on `bind` (`127.0.0.1:0` for any port).
    pub fn start(bind: &str, zone: Vec<(&'static str, Rec)>) -> Dns {
        let socket = UdpSocket::bind(bind).expect("bind dns");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let addr = socket.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let questions = Arc::new(AtomicUsize::new(0));
        let (stopping, counted) = (stop.clone(), questions.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = answer(&zone, &buf[..n]) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Dns {
            addr,
            questions,
            stop,
            thread: Some(thread),
        }
    }

    /// Questions it received.
    pub fn questions(&self) -> usize {
        self.questions.load(Ordering::Relaxed)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(zone: &[(&'static str, Rec)], query: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let q = query.queries.first()?.clone();
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(q.clone());
    let wanted = q.query_type();
    let mut name = q
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mut known = false;
    // Follow CNAMEs (at most a few), answering each alias on the way.
    for _ in 0..8 {
        let records: Vec<&Rec> = zone
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, r)| r)
            .collect();
        known |= !records.is_empty();
        let owner = Name::from_ascii(format!("{name}.")).ok()?;
        let mut next = None;
        for rec in records {
            let rdata = match (rec, wanted) {
                (Rec::A(ip), RecordType::A) => RData::A(A(*ip)),
                (Rec::Aaaa(ip), RecordType::AAAA) => RData::AAAA(AAAA(*ip)),
                (Rec::Cname(to), _) => {
                    next = Some(to.to_string());
                    RData::CNAME(CNAME(Name::from_ascii(format!("{to}.")).ok()?))
                }
                _ => continue,
            };
            reply.add_answer(Record::from_rdata(owner.clone(), 5, rdata));
        }
        match next {
            Some(n) => name = n,
            None => break,
        }
    }
    if !known {
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    reply.to_vec().ok()
}
