//! The baseline: the smallest hyper server that answers what the fazt bench
//! app answers (`{"hello":"world"}` as JSON), built with the same hyper and
//! tokio as fazt. Prints `listening on ADDR` and serves until killed.
//! Also the upstream of the egress benches: `bare-hyper ADDR DELAY_MS
//! [BODY_BYTES]` answers every request after DELAY_MS milliseconds, with a
//! body of BODY_BYTES bytes of `x` when given.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let delay = std::time::Duration::from_millis(
        std::env::args()
            .nth(2)
            .map(|d| d.parse())
            .transpose()?
            .unwrap_or(0),
    );
    let size: Option<usize> = std::env::args().nth(3).map(|n| n.parse()).transpose()?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let body = match size {
        Some(n) => Bytes::from(vec![b'x'; n]),
        None => Bytes::from_static(br#"{"hello":"world"}"#),
    };
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let mut resp = Response::new(Full::new(body.clone()));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
