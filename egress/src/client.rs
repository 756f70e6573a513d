//! Step 10 of SPEC §6: one HTTP/1.1 exchange with an upstream, over a
//! connection to one of the checked addresses (tried in turn), TLS 1.2 or
//! later verified against the system trust store (which honours
//! `SSL_CERT_FILE`). No proxy, no cookie jar, no redirect following (the
//! caller re-checks every hop). The response head is capped at 64 KiB and
//! 100 fields, the body at the call's `max_response` whatever
//! Content-Length says. The caller bounds the whole exchange in time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use crate::refusal::Reason;
use crate::target::{Scheme, Target};

/// Largest response head (status line and headers).
pub const MAX_HEAD: usize = 64 * 1024;
/// Most response header fields.
pub const MAX_FIELDS: usize = 100;

/// What an upstream answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body, at most the call's `max_response`.
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("TLS client: {0}")]
pub struct ClientError(String);

/// One outgoing request, as the caller decided it.
pub struct Outgoing<'a> {
    /// Where it goes.
    pub target: &'a Target,
    /// The method.
    pub method: Method,
    /// Headers after step 9.
    pub headers: &'a [(HeaderName, HeaderValue)],
    /// The body.
    pub body: Bytes,
    /// Largest body accepted.
    pub max_response: u64,
}

/// The HTTP client, shared by every call.
#[derive(Clone)]
pub struct Client {
    tls: tokio_rustls::TlsConnector,
}

impl Client {
    /// A client trusting the system's roots (and `SSL_CERT_FILE`'s).
    pub fn new() -> Result<Client, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A certificate the store cannot parse is skipped, as browsers do.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            tracing::warn!("no trusted root certificates found; https calls will fail");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ClientError(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Client {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Sends `out` over a connection to the first of `addrs` that answers.
    pub async fn send(&self, addrs: &[SocketAddr], out: Outgoing<'_>) -> Result<Answer, Reason> {
        let tcp = connect(addrs).await?;
        let _ = tcp.set_nodelay(true);
        match out.target.scheme {
            Scheme::Http => exchange(tcp, out).await,
            Scheme::Https => {
                let name = rustls::pki_types::ServerName::try_from(out.target.host.to_string())
                    .map_err(|_| Reason::BadHost)?;
                let tls = self
                    .tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Reason::Tls(tls_reason(&e)))?;
                exchange(tls, out).await
            }
        }
    }
}

/// How long one address may take to accept while others are left to try;
/// the last one has the rest of the call's time.
const CONNECT_ATTEMPT: Duration = Duration::from_secs(3);

/// The first address that accepts a connection.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, Reason> {
    for (i, addr) in addrs.iter().enumerate() {
        let attempt = TcpStream::connect(addr);
        let result = if i + 1 < addrs.len() {
            tokio::time::timeout(CONNECT_ATTEMPT, attempt)
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        } else {
            attempt.await
        };
        match result {
            Ok(tcp) => return Ok(tcp),
            Err(e) => tracing::debug!(%addr, error = %e, "connect failed; trying the next address"),
        }
    }
    Err(Reason::ConnectFailed)
}

/// A short reason for a TLS failure, without addresses.
fn tls_reason(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(c)) => format!("invalid certificate ({c:?})"),
        Some(other) => other.to_string(),
        None => e.kind().to_string(),
    }
}

async fn exchange<S>(stream: S, out: Outgoing<'_>) -> Result<Answer, Reason>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_headers(MAX_FIELDS)
        .max_buf_size(MAX_HEAD)
        .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| Reason::Upstream(e.to_string()))?;
    // The connection's task ends with this exchange: aborted once the body
    // is read (or refused), or when the call's timeout drops this future,
    // so a server that keeps sending is cut off.
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    request(&mut sender, out).await
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn request(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    out: Outgoing<'_>,
) -> Result<Answer, Reason> {
    let target = out.target;
    let head = out.method == Method::HEAD;
    let default_port = match target.scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    };
    let host = if target.port == default_port {
        target.host.to_string()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let path = match target.url.query() {
        Some(q) => format!("{}?{q}", target.url.path()),
        None => target.url.path().to_string(),
    };
    let mut req = Request::builder()
        .method(out.method)
        .uri(path)
        .body(Full::new(out.body))
        .map_err(|e| Reason::Upstream(e.to_string()))?;
    let headers = req.headers_mut();
    headers.insert(
        HOST,
        HeaderValue::from_str(&host).map_err(|_| Reason::BadHost)?,
    );
    for (name, value) in out.headers {
        headers.append(name.clone(), value.clone());
    }
    let resp = sender.send_request(req).await.map_err(|e| {
        if e.is_parse_too_large() {
            Reason::HeadTooLarge
        } else {
            Reason::Upstream(e.to_string())
        }
    })?;
    let status = resp.status().as_u16();
    // A declared length says how much is coming, except where no body
    // comes at all (HEAD, 1xx, 204, 304); the bytes read are capped anyway.
    let bodiless = head || status < 200 || status == 204 || status == 304;
    if let Some(declared) = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        if declared > out.max_response && !bodiless {
            return Err(Reason::ResponseTooLarge {
                max: out.max_response,
            });
        }
    }
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Reason::Upstream(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() as u64 + data.len() as u64 > out.max_response {
                return Err(Reason::ResponseTooLarge {
                    max: out.max_response,
                });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Answer {
        status,
        headers,
        body: buf.to_vec(),
    })
}
