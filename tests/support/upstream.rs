//! Upstreams for egress tests, on loopback only: a well-behaved HTTP/1.1
//! server with a few routes, and a raw one that writes whatever bytes a
//! test scripts (lying lengths, endless heads, silence).

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsAcceptor;

/// A running upstream; stops when dropped.
pub struct Upstream {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    seen: Seen,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    /// The HTTP server. Routes:
    /// - `/echo`: `{method, path, headers: [[name, value]…], body}` as JSON;
    /// - `/json`: `{"hello": "world"}` with two `set-cookie` and two `x-multi`;
    /// - `/status/N`: status N;
    /// - `/redirect?code=N&to=URL`: a redirect;
    /// - `/bytes/N`: N bytes of `x` with their Content-Length;
    /// - `/binary`: the bytes 0 to 255;
    /// - `/slow/MS`: 200 after MS milliseconds;
    /// - `/loop`: a redirect to itself;
    /// - `/respond?h=Name:Value…`: 200 with those headers, the body naming
    ///   the request's Accept-Language.
    pub fn start() -> Upstream {
        Upstream::serve(None)
    }

    /// The same routes over TLS.
    pub fn start_tls(acceptor: TlsAcceptor) -> Upstream {
        Upstream::serve(Some(acceptor))
    }

    fn serve(tls: Option<TlsAcceptor>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let seen: Seen = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let recorded = seen.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::pin!(stopped);
                loop {
                    let (stream, _) = tokio::select! {
                        got = listener.accept() => match got { Ok(x) => x, Err(_) => continue },
                        _ = &mut stopped => return,
                    };
                    let seen = recorded.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            None => answer(stream, seen).await,
                            Some(tls) => {
                                // A failed handshake is the client refusing
                                // the certificate: nothing to serve.
                                if let Ok(stream) = tls.accept(stream).await {
                                    answer(stream, seen).await;
                                }
                            }
                        }
                    });
                }
            });
        });
        Upstream {
            addr,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Requests it received.
    pub fn hits(&self) -> usize {
        self.requests().len()
    }

    /// Every request it received: the path with its query, and the
    /// headers (names lower-case).
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().expect("seen").clone()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection's requests.
/// A request as an upstream received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path and query, as sent.
    pub target: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The values of header `name`.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Seen = Arc<std::sync::Mutex<Vec<Request>>>;

async fn answer<S>(stream: S, seen: Seen)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        seen.lock().expect("seen").push(Request {
            target: req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect(),
        });
        route(req)
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn route(req: hyper::Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let param = |key: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    let mut resp = Response::new(Full::new(Bytes::new()));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["echo"] => {
            let method = req.method().to_string();
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            let full = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let json = serde_json::json!({
                "method": method,
                "path": full,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            });
            *resp.body_mut() = Full::new(Bytes::from(json.to_string()));
            resp.headers_mut()
                .insert("content-type", "application/json".parse().expect("value"));
        }
        ["respond"] => {
            // Headers from `h=Name:Value` parameters; the body names the
            // request's Accept-Language, so a Vary on it can be seen.
            let lang = req
                .headers()
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            *resp.body_mut() = Full::new(Bytes::from(format!("lang={lang} path={path}")));
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                if let (true, Some((name, value))) = (k == "h", v.split_once(':')) {
                    if let (Ok(n), Ok(v)) = (
                        hyper::header::HeaderName::from_bytes(name.trim().as_bytes()),
                        value.trim().parse::<hyper::header::HeaderValue>(),
                    ) {
                        resp.headers_mut().append(n, v);
                    }
                }
            }
        }
        ["json"] => {
            *resp.body_mut() = Full::new(Bytes::from_static(br#"{"hello": "world"}"#));
            let h = resp.headers_mut();
            h.insert("content-type", "application/json".parse().expect("value"));
            h.append("set-cookie", "a=1; Path=/".parse().expect("value"));
            h.append("set-cookie", "b=2; Path=/".parse().expect("value"));
            h.append("x-multi", "1".parse().expect("value"));
            h.append("x-multi", "2".parse().expect("value"));
        }
        ["status", code] => {
            *resp.status_mut() = code
                .parse::<u16>()
                .ok()
                .and_then(|c| hyper::StatusCode::from_u16(c).ok())
                .unwrap_or(hyper::StatusCode::BAD_REQUEST);
            *resp.body_mut() = Full::new(Bytes::from(format!("status {code}")));
        }
        ["redirect"] => {
            let code = param("code").and_then(|c| c.parse().ok()).unwrap_or(302u16);
            *resp.status_mut() =
                hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::FOUND);
            if let Some(to) = param("to") {
                if let Ok(v) = to.parse() {
                    resp.headers_mut().insert("location", v);
                }
            }
        }
        ["loop"] => {
            *resp.status_mut() = hyper::StatusCode::FOUND;
            resp.headers_mut()
                .insert("location", "/loop".parse().expect("value"));
        }
        ["bytes", n] => {
            let n: usize = n.parse().unwrap_or(0);
            *resp.body_mut() = Full::new(Bytes::from(vec![b'x'; n]));
        }
        ["binary"] => {
            *resp.body_mut() = Full::new(Bytes::from((0..=255u8).collect::<Vec<u8>>()));
        }
        ["slow", ms] => {
            let ms: u64 = ms.parse().unwrap_or(0).min(30_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            *resp.body_mut() = Full::new(Bytes::from_static(b"slow"));
        }
        _ => *resp.status_mut() = hyper::StatusCode::NOT_FOUND,
    }
    Ok(resp)
}

/// A raw TCP upstream: for every connection, reads the request head, then
/// plays `script` (writes and pauses), then closes. Stops when dropped.
pub struct RawUpstream {
    /// Where it listens (127.0.0.1).
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One step of a raw upstream's answer.
#[derive(Clone)]
pub enum Step {
    /// Write these bytes.
    Write(Vec<u8>),
    /// Write these bytes again and again, for at most this long.
    Repeat(Vec<u8>, Duration),
    /// Write these bytes again and again until this many bytes are written
    /// (or the peer goes away).
    Stream(Vec<u8>, u64),
    /// Wait.
    Pause(Duration),
}

impl RawUpstream {
    /// Starts answering every connection with `script`.
    pub fn start(script: Vec<Step>) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind raw upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (counted, stopping) = (connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        counted.fetch_add(1, Ordering::Relaxed);
                        let (script, stopping) = (script.clone(), stopping.clone());
                        std::thread::spawn(move || play(stream, &script, &stopping));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RawUpstream {
            addr,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections it accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn play(mut stream: TcpStream, script: &[Step], stop: &std::sync::atomic::AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 1 << 20 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    for step in script {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match step {
            Step::Write(bytes) => {
                if stream.write_all(bytes).is_err() {
                    return;
                }
            }
            Step::Repeat(bytes, within) => {
                let until = std::time::Instant::now() + *within;
                while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    if stream.write_all(bytes).is_err() {
                        return;
                    }
                }
            }
            Step::Stream(bytes, total) => {
                let mut written = 0u64;
                while written < *total && !stop.load(Ordering::Relaxed) {
                    if stream.write_all(bytes).is_err() {
                        return;
                    }
                    written += bytes.len() as u64;
                }
            }
            Step::Pause(d) => {
                let until = std::time::Instant::now() + *d;
                while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}
