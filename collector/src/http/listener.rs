//! The listeners: HTTP/1.1 and HTTP/2 over TCP (plain, or TLS with ALPN), and HTTP/3 over
//! QUIC on the same port (`quic.rs`). Each accepts connections, holds a connection permit
//! for each, and hands every request to [`answer`]; at shutdown they stop accepting
//! and let open connections finish.

use crate::http::{App, HttpOptions, answer};
use crate::pipeline::Pipeline;
use crate::query::QueryApi;
use http::{HeaderValue, header};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::either::Either;

/// Serves connections from `listener` until `shutdown` resolves, then stops accepting and
/// gives open connections up to ten seconds to finish their requests.
pub async fn run(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    query: Arc<QueryApi>,
    opts: HttpOptions,
    shutdown: impl Future<Output = ()>,
) {
    let limits = opts.limits.clone();
    let app = Arc::new(App::new(pipeline, query, opts));
    let tls = match &app.opts.tls {
        Some(cert) => match cert.tcp() {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                tracing::error!(error = %e, "TLS configuration refused; not serving");
                return;
            }
        },
        None => None,
    };
    // Set once the server stops: every connection, TCP or QUIC, then finishes what it has.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut quic = None;
    let mut alt_svc = None;
    if let (Some(cert), true) = (&app.opts.tls, app.opts.http3) {
        match (listener.local_addr(), cert.quic()) {
            (Ok(addr), Ok(config)) => match crate::http::quic::endpoint(addr, config, &limits) {
                Ok(endpoint) => {
                    alt_svc =
                        HeaderValue::from_str(&format!("h3=\":{}\"; ma=86400", addr.port())).ok();
                    quic = Some(tokio::spawn(crate::http::quic::serve(
                        endpoint,
                        app.clone(),
                        stopping.clone(),
                    )));
                }
                Err(e) => tracing::error!(error = %e, "cannot serve HTTP/3 on UDP {addr}"),
            },
            (_, Err(e)) => tracing::error!(error = %e, "QUIC TLS configuration refused"),
            (Err(e), _) => tracing::error!(error = %e, "listener has no address"),
        }
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms))
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // A silent peer is found out and its connection (and permit) released.
        .keep_alive_interval(Duration::from_millis(limits.header_timeout_ms))
        .keep_alive_timeout(Duration::from_millis(limits.header_timeout_ms));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Answers are small writes: without this, Nagle's algorithm holds them until the
                // client's delayed ACK (40 ms), which stalls every HTTP/2 stream on the
                // connection (measured: p50 44 ms, 1.7 k requests/s over h2, bench/results/http3.md).
                let _ = stream.set_nodelay(true);
                let Ok(permit) = app.permits.clone().try_acquire_owned() else {
                    app.metrics().connections_refused.inc();
                    drop(stream);
                    continue;
                };
                let app = app.clone();
                let alt_svc = alt_svc.clone();
                let activity = Arc::new(Activity::new());
                let svc = {
                    let activity = activity.clone();
                    service_fn(move |req| {
                        let busy = activity.begin();
                        let app = app.clone();
                        let alt_svc = alt_svc.clone();
                        async move {
                            let mut resp = answer(&app, peer, req).await;
                            if let Some(v) = alt_svc {
                                resp.headers_mut().insert(header::ALT_SVC, v);
                            }
                            drop(busy);
                            Ok::<_, Infallible>(resp)
                        }
                    })
                };
                let (builder, tls, stopping) = (builder.clone(), tls.clone(), stopping.clone());
                let idle = Duration::from_millis(limits.header_timeout_ms);
                tokio::spawn(async move {
                    let io = match tls {
                        None => Either::Left(stream),
                        // The handshake runs in the connection's task, bounded like headers are.
                        Some(acceptor) => match tokio::time::timeout(idle, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => Either::Right(stream),
                            _ => return,
                        },
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
                    if let Err(e) = serve_until_idle(conn, &activity, idle, stopping).await {
                        // No peer address: raw IPs never reach the logs.
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    stop.send_replace(true);
    let mut websockets = app.websockets.subscribe();
    let drained = async {
        // Every connection holds a permit until it has ended: all of them back, all ended.
        let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
        let _ = app.permits.acquire_many(all).await;
        let _ = websockets.wait_for(|open| *open == 0).await;
        if let Some(quic) = quic {
            let _ = quic.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; closing them");
    }
}

/// What one TCP connection is doing, so it can be closed once idle: HTTP/2 keep-alive pings
/// find a silent peer out, but a peer that answers them and sends nothing would keep its
/// connection (and one of `http.max_connections`) for ever. HTTP/1.1 has its header timeout.
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<tokio::time::Instant>,
}

/// A request of the connection, from its headers to its answer.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: 0.into(),
            last: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Busy(self.clone())
    }

    /// When the connection will have been idle for `idle`, if nothing happens meanwhile; `None`
    /// while a request is in flight.
    fn quiet_at(&self, idle: Duration) -> Option<tokio::time::Instant> {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        (self.in_flight.load(std::sync::atomic::Ordering::Relaxed) == 0).then_some(last + idle)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.last.lock().unwrap_or_else(|e| e.into_inner()) = tokio::time::Instant::now();
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Serves `conn` until it ends; asks it to finish what it has (HTTP/2: GOAWAY, streams in
/// flight complete) once the server stops or once it has had no request in flight for `idle`.
async fn serve_until_idle<C: GracefulConnection>(
    conn: C,
    activity: &Activity,
    idle: Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(), C::Error> {
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    loop {
        // While a request runs past `idle` (a slow query), look again an `idle` later rather
        // than at a moment already past, which would wake this loop at once, over and over.
        let now = tokio::time::Instant::now();
        let look_at = activity.quiet_at(idle).unwrap_or(now + idle);
        tokio::select! {
            ended = conn.as_mut() => return ended,
            _ = stopping.wait_for(|stop| *stop), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep_until(look_at), if !closing => {
                if activity.quiet_at(idle).is_some_and(|at| at <= tokio::time::Instant::now()) {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}
