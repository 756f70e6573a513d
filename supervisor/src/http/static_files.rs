//! Static files straight from SQLite (SPEC §2, §5): never touches a worker.
//! `index.html` for directories, the MIME type stored at deploy, ETag from
//! the content hash with `If-None-Match` → 304, HEAD.
//!
//! Files up to [`MAX_INLINE`] are read whole and kept in an LRU keyed by app
//! id, deploy version and path, so a redeploy never serves a stale byte.
//! Larger files stream: chunk by chunk with incremental BLOB reads, each
//! chunk read only once the client has taken the ones before, so memory per
//! download is bounded whatever the file size and a client that stops
//! reading holds no database connection (the write timeout ends it).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fazt_shared::store::apps::{self, AppRow};
use fazt_shared::{ErrorCode, FilePath, PublicPath, Store};
use hyper::header::{
    HeaderMap, HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use hyper::{Method, Response, StatusCode};
use lru::LruCache;
use tokio::sync::mpsc;

use super::path::RequestPath;
use super::reply::{self, Body};

/// Files up to this size are read whole and cached; larger ones stream.
pub const MAX_INLINE: u64 = 1024 * 1024;
/// Bytes of file content the cache may hold.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Bytes per streamed chunk.
const CHUNK: u64 = 128 * 1024;
/// Chunks read ahead of the client per download.
const AHEAD: usize = 2;

/// A file ready to send.
pub struct CachedFile {
    content: Content,
    mime: HeaderValue,
    etag: HeaderValue,
}

enum Content {
    /// The bytes.
    Inline(Bytes),
    /// Streamed from row `id`.
    Large { id: i64, size: u64 },
}

impl CachedFile {
    /// Bytes it holds in memory.
    fn weight(&self) -> usize {
        match &self.content {
            Content::Inline(b) => b.len(),
            Content::Large { .. } => 0,
        }
    }
}

/// App id, app version, path.
type Key = (i64, i64, String);

/// Files (and misses, as `None`) by key, bounded in bytes.
struct FileCache {
    lru: LruCache<Key, Option<Arc<CachedFile>>>,
    bytes: usize,
}

impl FileCache {
    fn insert(&mut self, key: Key, file: Option<Arc<CachedFile>>) {
        self.bytes += file.as_ref().map_or(0, |f| f.weight());
        if let Some((_, Some(old))) = self.lru.push(key, file) {
            self.bytes = self.bytes.saturating_sub(old.weight());
        }
        while self.bytes > CACHE_BYTES {
            match self.lru.pop_lru() {
                Some((_, Some(old))) => self.bytes = self.bytes.saturating_sub(old.weight()),
                Some((_, None)) => {}
                None => break,
            }
        }
    }
}

/// The static file cache.
pub struct StaticFiles {
    store: Store,
    cache: Mutex<FileCache>,
}

impl StaticFiles {
    /// An empty cache.
    pub fn new(store: Store) -> StaticFiles {
        StaticFiles {
            store,
            cache: Mutex::new(FileCache {
                lru: LruCache::new(NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN)),
                bytes: 0,
            }),
        }
    }

    /// Answers a request for `path` of `app`.
    pub async fn serve(
        &self,
        app: AppRow,
        method: &Method,
        path: &RequestPath,
        headers: &HeaderMap,
    ) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut resp = reply::app_error(
                ErrorCode::MethodNotAllowed,
                "static files answer GET and HEAD only",
            );
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let Some(file) = self.find(app, path).await else {
            return reply::app_error(ErrorCode::NotFound, "not found");
        };
        let mut resp = if etag_matches(headers, &file.etag) {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            let mut r = match &file.content {
                Content::Inline(bytes) => Response::new(Body::full(bytes.clone())),
                Content::Large { size, .. } if method == Method::HEAD => {
                    let mut r = Response::new(Body::empty());
                    r.headers_mut()
                        .insert(CONTENT_LENGTH, HeaderValue::from(*size));
                    r
                }
                Content::Large { id, size } => {
                    Response::new(Body::stream(self.stream(*id, *size), *size))
                }
            };
            r.headers_mut().insert(CONTENT_TYPE, file.mime.clone());
            r
        };
        resp.headers_mut().insert(ETAG, file.etag.clone());
        // Revalidate every time: the next deploy may change any file.
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }

    /// The file for `path`: itself, or its `index.html` for a folder.
    /// Only a [`PublicPath`] is ever looked up.
    async fn find(&self, app: AppRow, path: &RequestPath) -> Option<Arc<CachedFile>> {
        let rel = path.relative();
        if !path.is_folder() {
            let public = FilePath::parse(rel).ok().and_then(PublicPath::new)?;
            if let Some(found) = self.load(app, public).await {
                return Some(found);
            }
        }
        let index = if rel.is_empty() {
            "index.html".to_string()
        } else {
            format!("{rel}/index.html")
        };
        let public = FilePath::parse(&index).ok().and_then(PublicPath::new)?;
        self.load(app, public).await
    }

    async fn load(&self, app: AppRow, path: PublicPath) -> Option<Arc<CachedFile>> {
        let key = (app.id, app.version, path.as_str().to_string());
        if let Some(hit) = self.lock().lru.get(&key) {
            return hit.clone();
        }
        let store = self.store.clone();
        let stored = tokio::task::spawn_blocking(move || {
            apps::file(&*store.conn()?, app.id, &path, MAX_INLINE)
        })
        .await
        .ok()?
        .map_err(|e| tracing::warn!(error = %e, "reading a static file failed"))
        .ok()?;
        let file = stored.map(|f| {
            Arc::new(CachedFile {
                mime: HeaderValue::from_str(&f.mime)
                    .unwrap_or(HeaderValue::from_static(fazt_shared::mime::FALLBACK)),
                etag: HeaderValue::from_str(&format!("\"{}\"", f.hash))
                    .unwrap_or(HeaderValue::from_static("\"\"")),
                content: match f.content {
                    Some(bytes) => Content::Inline(Bytes::from(bytes)),
                    None => Content::Large {
                        id: f.id,
                        size: f.size,
                    },
                },
            })
        });
        self.lock().insert(key, file.clone());
        file
    }

    /// The chunks of file `id`, each read once the client took the ones
    /// before (the channel holds at most [`AHEAD`]).
    fn stream(&self, id: i64, size: u64) -> mpsc::Receiver<std::io::Result<Bytes>> {
        let (tx, rx) = mpsc::channel(AHEAD);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut offset = 0u64;
            while offset < size {
                // Room first: nothing is read for a client that does not read.
                let Ok(room) = tx.reserve().await else {
                    return; // the client went away
                };
                let store = store.clone();
                let len = CHUNK.min(size - offset) as usize;
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; len];
                    apps::read_chunk(&*store.conn()?, id, offset, &mut buf).map(|n| {
                        n.map(|n| {
                            buf.truncate(n);
                            buf
                        })
                    })
                })
                .await;
                match read {
                    Ok(Ok(Some(buf))) if !buf.is_empty() => {
                        offset += buf.len() as u64;
                        room.send(Ok(Bytes::from(buf)));
                    }
                    other => {
                        match other {
                            Ok(Ok(_)) => {
                                tracing::debug!(file = id, "a file changed while it was sent")
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(file = id, error = %e, "reading a file chunk failed")
                            }
                            Err(e) => {
                                tracing::warn!(file = id, error = %e, "file chunk task failed")
                            }
                        }
                        room.send(Err(std::io::Error::other(
                            "the file could not be read to its end",
                        )));
                        return;
                    }
                }
            }
        });
        rx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FileCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `If-None-Match` against our strong ETag (`*`, lists and `W/` included).
fn etag_matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(ours) = etag.to_str() else {
        return false;
    };
    headers.get_all(IF_NONE_MATCH).iter().any(|v| {
        v.to_str().is_ok_and(|list| {
            list.split(',').any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours
            })
        })
    })
}
