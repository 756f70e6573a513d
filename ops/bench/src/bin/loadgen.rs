//! A bounded closed-loop HTTP/1.1 load generator: `C` keep-alive
//! connections each send GET after GET for a fixed time, then it prints one
//! JSON line: requests/s, p50/p99 latency in µs, non-2xx/3xx and errors.
//!
//! usage: loadgen URL [--connections C] [--seconds S] [--warmup S] [--host H]
//! Loopback only: it refuses any address that is not 127.0.0.0/8 or ::1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

struct Args {
    addr: SocketAddr,
    path: String,
    host: String,
    connections: usize,
    seconds: u64,
    warmup: u64,
}

fn parse_args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .context("usage: loadgen URL [--connections C] [--seconds S] [--warmup S] [--host H]")?;
    let rest = url.strip_prefix("http://").context("only http:// URLs")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = fazt_bench::loopback_target(authority, "loadgen")?;
    let mut a = Args {
        addr,
        path: path.to_string(),
        host: authority.to_string(),
        connections: 32,
        seconds: 10,
        warmup: 2,
    };
    for (flag, value) in fazt_bench::flag_pairs(args)? {
        match flag.as_str() {
            "--connections" => a.connections = value.parse()?,
            "--seconds" => a.seconds = value.parse()?,
            "--warmup" => a.warmup = value.parse()?,
            "--host" => a.host = value,
            other => bail!("unknown flag {other}"),
        }
    }
    if a.connections == 0 || a.connections > 1024 || a.seconds == 0 || a.seconds > 600 {
        bail!("connections must be 1..=1024 and seconds 1..=600");
    }
    Ok(a)
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    bad_status: u64,
    errors: u64,
}

/// One connection's loop until `end`; only requests started after `measure_from` count.
async fn run_conn(args: std::sync::Arc<Args>, measure_from: Instant, end: Instant) -> Tally {
    let mut tally = Tally::default();
    'reconnect: while Instant::now() < end {
        let Ok(stream) = tokio::net::TcpStream::connect(args.addr).await else {
            tally.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            tally.errors += 1;
            continue;
        };
        tokio::spawn(conn);
        while Instant::now() < end {
            let req = Request::get(args.path.as_str())
                .header("host", args.host.as_str())
                .body(Empty::<Bytes>::new());
            let Ok(req) = req else {
                tally.errors += 1;
                return tally;
            };
            let started = Instant::now();
            let result = async {
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                resp.into_body().collect().await?;
                Ok::<_, hyper::Error>(status)
            }
            .await;
            let took = started.elapsed();
            match result {
                Ok(status) if started >= measure_from => {
                    if status.is_success() || status.is_redirection() {
                        tally
                            .latencies_us
                            .push(took.as_micros().min(u32::MAX as u128) as u32);
                    } else {
                        tally.bad_status += 1;
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    tally.errors += 1;
                    continue 'reconnect;
                }
            }
        }
    }
    tally
}

fn main() -> Result<()> {
    let args = std::sync::Arc::new(parse_args()?);
    // One thread: the generator must not take the cores the server needs more
    // than one client machine would.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tally, measured) = runtime.block_on(async {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs(args.warmup);
        let end = measure_from + Duration::from_secs(args.seconds);
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(run_conn(args.clone(), measure_from, end)))
            .collect();
        let mut all = Tally::default();
        for t in tasks {
            if let Ok(t) = t.await {
                all.latencies_us.extend(t.latencies_us);
                all.bad_status += t.bad_status;
                all.errors += t.errors;
            }
        }
        (all, Duration::from_secs(args.seconds))
    });
    let mut lat = tally.latencies_us;
    lat.sort_unstable();
    let pct = |p: usize| {
        lat.get((lat.len().saturating_sub(1) * p) / 100)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": lat.len(),
            "rps": lat.len() as f64 / measured.as_secs_f64(),
            "p50_us": pct(50),
            "p99_us": pct(99),
            "bad_status": tally.bad_status,
            "errors": tally.errors,
            "connections": args.connections,
            "seconds": args.seconds,
        })
    );
    Ok(())
}
