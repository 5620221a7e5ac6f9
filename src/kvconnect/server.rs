//! `Server`: KV Connect over HTTP/1.1 and HTTP/2 (hyper on tokio), without TLS.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::sync::{mpsc, watch};

use super::datapath::{self, ApiError};
use super::pb;
use super::token::AccessToken;
use crate::watch::RawWatch;
use crate::{Kv, Result};

/// Largest request body accepted (413 beyond): Deno's largest atomic write (800 KiB of
/// mutations, 80 KiB of keys) with room for protobuf framing.
pub const MAX_REQUEST_BODY_BYTES: usize = 2 << 20;
/// The database id the metadata exchange announces (one database per server).
const DATABASE_ID: &str = "00000000-0000-0000-0000-000000000000";
/// How long the metadata (and its token) stays valid for a client.
const METADATA_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// An empty watch frame is sent this often so clients and proxies keep the stream open.
const WATCH_PING: Duration = Duration::from_secs(5);
/// How long shutdown waits for in-flight requests before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A KV Connect server for one database: `Deno.openKv("http://host:port")` and the
/// `@deno/kv` npm client read and write it with the access token.
///
/// It speaks plain HTTP (put a TLS-terminating reverse proxy in front of it to expose it
/// beyond loopback). Handlers never block a runtime thread on a commit.
///
/// # Examples
///
/// ```
/// use valkeyrie::Kv;
/// use valkeyrie::kvconnect::Server;
/// let db = Kv::open_in_memory()?;
/// let server = Server::new(db, "a-token-of-12+-chars")?.log_requests(false);
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// rt.block_on(async {
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
///     // Serves until the shutdown future completes (here: at once).
///     server.serve(listener, async {}).await
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Server {
    kv: Kv,
    token: AccessToken,
    log: bool,
}

/// What every connection's handlers share.
#[derive(Debug)]
struct State {
    server: Server,
    /// Becomes `true` when shutdown starts: open watch streams end.
    stopping: watch::Receiver<bool>,
}

impl Server {
    /// A server for `kv` that requires `access_token` (at least 12 characters).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::kvconnect::Server;
    /// let db = valkeyrie::Kv::open_in_memory()?;
    /// assert!(Server::new(db.clone(), "short").is_err());
    /// assert!(Server::new(db, "long-enough-token").is_ok());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) if the token is shorter than
    /// 12 characters.
    pub fn new(kv: Kv, access_token: &str) -> Result<Server> {
        Ok(Server {
            kv,
            token: AccessToken::new(access_token)?,
            log: false,
        })
    }

    /// Logs one line per request on stderr (peer, method, path, status, milliseconds).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::kvconnect::Server;
    /// let db = valkeyrie::Kv::open_in_memory()?;
    /// let _server = Server::new(db, "long-enough-token")?.log_requests(true);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn log_requests(mut self, on: bool) -> Self {
        self.log = on;
        self
    }

    /// Accepts connections on `listener` until `shutdown` completes, then stops accepting,
    /// ends open watch streams and waits (up to 10 s) for in-flight requests to finish.
    ///
    /// # Examples
    ///
    /// See [`Server`].
    ///
    /// # Errors
    ///
    /// Never at present: failures to accept a connection are retried; kept fallible so that
    /// start-up checks can be added.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = Arc::new(State {
            server: self,
            stopping: stop_rx,
        });
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        eprintln!("valkeyrie serve: cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let state = Arc::clone(&state);
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(state.handle(req, peer).await) }
            });
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                // A connection error (the peer went away) concerns that peer only.
                let _ = conn.await;
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
        Ok(())
    }
}

/// A response body: all at once, or a watch's frames as they come.
enum ResBody {
    Full(Full<Bytes>),
    Frames(mpsc::Receiver<Bytes>),
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResBody::Full(full) => Pin::new(full).poll_frame(cx),
            ResBody::Frames(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Full(full) => full.is_end_stream(),
            ResBody::Frames(_) => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ResBody::Full(full) => full.size_hint(),
            ResBody::Frames(_) => hyper::body::SizeHint::default(),
        }
    }
}

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<ResBody> {
    let mut res = Response::new(ResBody::Full(Full::new(body.into())));
    *res.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = content_type.parse() {
        res.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    res
}

fn error_response(err: &ApiError) -> Response<ResBody> {
    respond(err.status, "text/plain; charset=utf-8", err.message.clone())
}

fn protobuf(msg: &impl Message) -> Response<ResBody> {
    respond(200, "application/x-protobuf", msg.encode_to_vec())
}

impl State {
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let res = match self.route(req).await {
            Ok(res) => res,
            Err(err) => error_response(&err),
        };
        if self.server.log {
            eprintln!(
                "{peer} {method} {path} {} {:.1}ms",
                res.status().as_u16(),
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        res
    }

    async fn route(
        self: &Arc<Self>,
        req: Request<Incoming>,
    ) -> std::result::Result<Response<ResBody>, ApiError> {
        let path = req.uri().path();
        if path == "/healthz" {
            return Ok(respond(200, "text/plain; charset=utf-8", "ok\n"));
        }
        let endpoint = match path {
            "/" => None,
            "/v2/snapshot_read" | "/v2/atomic_write" | "/v2/watch" => Some(path.to_owned()),
            _ => {
                return Err(ApiError {
                    status: 404,
                    message: "Resource not found.".to_owned(),
                });
            }
        };
        if req.method() != Method::POST {
            return Err(ApiError {
                status: 405,
                message: "Method not allowed: use POST.".to_owned(),
            });
        }
        let authorization = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .map(hyper::header::HeaderValue::as_bytes);
        if !self.server.token.accepts(authorization) {
            return Err(ApiError {
                status: 401,
                message: "Invalid access token.".to_owned(),
            });
        }
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let body = read_body(req.into_body()).await?;
        match endpoint.as_deref() {
            None => self.metadata(&body, host.as_deref()),
            Some("/v2/snapshot_read") => {
                let msg = decode::<pb::SnapshotRead>(&body)?;
                let kv = self.server.kv.clone();
                let out = blocking(move || datapath::snapshot_read(&kv, &msg)).await?;
                Ok(protobuf(&out))
            }
            Some("/v2/atomic_write") => {
                let msg = decode::<pb::AtomicWrite>(&body)?;
                // The committer thread completes the future: no thread waits for the commit.
                let outcome = datapath::atomic_write(&self.server.kv, &msg)?
                    .commit_async()
                    .await?;
                Ok(protobuf(&datapath::write_output(outcome)))
            }
            _ => {
                let msg = decode::<pb::Watch>(&body)?;
                self.watch(&msg)
            }
        }
    }

    /// The metadata exchange: picks the highest protocol version both sides speak.
    fn metadata(
        &self,
        body: &[u8],
        host: Option<&str>,
    ) -> std::result::Result<Response<ResBody>, ApiError> {
        let supported: Vec<u64> = if body.iter().all(u8::is_ascii_whitespace) {
            vec![1]
        } else {
            let v: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("Invalid metadata request: {e}")))?;
            v.get("supportedVersions")
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| {
                    ApiError::bad_request("Invalid metadata request: supportedVersions is missing.")
                })?
                .iter()
                .filter_map(serde_json::Value::as_u64)
                .collect()
        };
        let version = [3, 2, 1]
            .into_iter()
            .find(|v| supported.contains(v))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "The server could not negotiate a protocol version: it speaks 1, 2 and 3.",
                )
            })?;
        // Version 1 clients do not resolve relative endpoint URLs.
        let url = match (version, host) {
            (1, Some(host)) => format!("http://{host}/v2"),
            _ => "/v2".to_owned(),
        };
        let expires = SystemTime::now()
            .checked_add(METADATA_TTL)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let json = serde_json::json!({
            "version": version,
            "databaseId": DATABASE_ID,
            "endpoints": [{ "url": url, "consistency": "strong" }],
            "token": self.server.token.as_str(),
            "expiresAt": super::time::iso8601(expires),
        });
        Ok(respond(200, "application/json", json.to_string()))
    }

    /// Starts a watch stream: length-prefixed `WatchOutput` frames (u32 little-endian
    /// length), the first with every key, then one per change; empty frames as pings.
    fn watch(&self, msg: &pb::Watch) -> std::result::Result<Response<ResBody>, ApiError> {
        let keys = datapath::watch_keys(&self.server.kv, msg)?;
        let mut watcher = RawWatch::new(&self.server.kv, keys.clone())?;
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let mut last: Option<Vec<Option<crate::Versionstamp>>> = None;
            let mut ping = tokio::time::interval(WATCH_PING);
            ping.tick().await;
            loop {
                let frame = tokio::select! {
                    item = std::future::poll_fn(|cx| watcher.poll_next(cx)) => match item {
                        Some(Ok(values)) => {
                            let stamps: Vec<_> =
                                values.iter().map(|v| v.as_ref().map(|v| v.versionstamp)).collect();
                            let out = pb::WatchOutput {
                                status: pb::SnapshotReadStatus::SrSuccess as i32,
                                keys: keys
                                    .iter()
                                    .zip(values)
                                    .enumerate()
                                    .map(|(i, (key, value))| {
                                        let changed = last.as_ref().is_none_or(|l| l.get(i) != stamps.get(i));
                                        if changed {
                                            datapath::watch_entry(key, value)
                                        } else {
                                            pb::WatchKeyOutput::default()
                                        }
                                    })
                                    .collect(),
                            };
                            last = Some(stamps);
                            out.encode_to_vec()
                        }
                        // The database closed or failed: end the stream.
                        _ => break,
                    },
                    _ = ping.tick() => Vec::new(),
                    _ = stopping.changed() => break,
                    () = tx.closed() => break,
                };
                let mut buf = Vec::with_capacity(4 + frame.len());
                buf.extend_from_slice(
                    &u32::try_from(frame.len()).unwrap_or(u32::MAX).to_le_bytes(),
                );
                buf.extend_from_slice(&frame);
                if tx.send(Bytes::from(buf)).await.is_err() {
                    break;
                }
            }
        });
        let mut res = Response::new(ResBody::Frames(rx));
        res.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/octet-stream"),
        );
        Ok(res)
    }
}

async fn read_body(body: Incoming) -> std::result::Result<Bytes, ApiError> {
    match Limited::new(body, MAX_REQUEST_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError {
            status: 413,
            message: format!("The request body exceeds {MAX_REQUEST_BODY_BYTES} bytes."),
        }),
        Err(e) => Err(ApiError::bad_request(format!(
            "Cannot read the request body: {e}"
        ))),
    }
}

fn decode<M: Message + Default>(body: &[u8]) -> std::result::Result<M, ApiError> {
    M::decode(body).map_err(|e| ApiError::bad_request(format!("Invalid request protobuf: {e}")))
}

/// Runs a read on tokio's blocking pool, off the runtime's worker threads (a redb read
/// blocks on disk I/O and takes the engine's locks).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
) -> std::result::Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError {
            status: 500,
            message: format!("internal error: {e}"),
        })
    })
}
