//! HTTP/3 over QUIC (quinn + h3), the third transport. A request stream becomes an
//! `http::Request` whose body is fed from the stream, answered by [`crate::http::handle`] like a
//! request of any other transport — same routes, same limits, same errors — and the response
//! (streamed ones included) is written back to the stream.
//!
//! Limits apply as over TCP: body size and time in `handle`; connections share the TCP
//! transports' cap (`http.max_connections`); streams per connection (`http.max_streams`), and
//! an idle timeout (`http.header_timeout_ms`) in the QUIC transport. At shutdown every
//! connection gets a GOAWAY, in-flight requests finish, then the endpoint closes.

use crate::config::HttpConfig;
use crate::http::App;
use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A QUIC endpoint on `addr` (UDP) with `tls` and the connection limits.
pub fn endpoint(
    addr: SocketAddr,
    tls: quinn::crypto::rustls::QuicServerConfig,
    limits: &HttpConfig,
) -> anyhow::Result<quinn::Endpoint> {
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(tls));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(limits.max_streams.into());
    transport.max_idle_timeout(Some(
        Duration::from_millis(limits.header_timeout_ms).try_into()?,
    ));
    config.transport_config(Arc::new(transport));
    Ok(quinn::Endpoint::server(config, addr)?)
}

/// Serves `endpoint` until `stopping` turns true, then lets open connections finish their
/// requests (the caller bounds how long) and closes.
pub async fn serve(endpoint: quinn::Endpoint, app: Arc<App>, mut stopping: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let to_connections = stopping.clone();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let Ok(permit) = app.permits.clone().try_acquire_owned() else {
                    app.metrics().connections_refused.inc();
                    incoming.refuse();
                    continue;
                };
                let (app, stopping) = (app.clone(), to_connections.clone());
                connections.spawn(async move {
                    if let Err(e) = connection(incoming, app, stopping).await {
                        // No peer address: raw IPs never reach the logs.
                        tracing::debug!(error = %e, "HTTP/3 connection ended with an error");
                    }
                    drop(permit);
                });
            }
            _ = stopping.wait_for(|s| *s) => break,
        }
    }
    while connections.join_next().await.is_some() {}
    endpoint.close(0u32.into(), b"shutdown");
    endpoint.wait_idle().await;
}

async fn connection(
    incoming: quinn::Incoming,
    app: Arc<App>,
    mut stopping: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let conn = incoming.await?;
    let peer = conn.remote_address();
    let mut h3 = h3::server::builder()
        .max_field_section_size(app.opts.limits.max_header_bytes as u64)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn))
        .await?;
    let mut requests = JoinSet::new();
    let mut going_away = false;
    loop {
        // After GOAWAY, the connection closes as soon as its last request is answered.
        if going_away && requests.is_empty() {
            break;
        }
        tokio::select! {
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    let app = app.clone();
                    requests.spawn(async move {
                        if let Err(e) = request(resolver, app, peer).await {
                            tracing::debug!(error = %e, "HTTP/3 request ended with an error");
                        }
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "HTTP/3 connection closed");
                    break;
                }
            },
            // GOAWAY: no new requests; the ones in flight finish.
            Some(_) = requests.join_next(), if going_away => {}
            changed = stopping.changed(), if !going_away => {
                let stop = changed.is_err() || *stopping.borrow();
                if stop {
                    going_away = true;
                    h3.shutdown(0).await?;
                }
            }
        }
    }
    while requests.join_next().await.is_some() {}
    Ok(())
}

async fn request(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    app: Arc<App>,
    peer: SocketAddr,
) -> anyhow::Result<()> {
    let (req, stream) = resolver.resolve_request().await?;
    let (mut send, mut recv) = stream.split();
    // The body as the handler reads any body: frames from a channel the stream feeds, so its
    // size and time limits apply unchanged.
    let (mut tx, body) = Channel::<Bytes, std::io::Error>::new(4);
    let pump = tokio::spawn(async move {
        loop {
            match recv.recv_data().await {
                Ok(Some(mut chunk)) => {
                    let bytes = chunk.copy_to_bytes(chunk.remaining());
                    if tx.send_data(bytes).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tx.abort(std::io::Error::other(e.to_string()));
                    return;
                }
            }
        }
    });
    let resp = crate::http::answer(&app, peer, req.map(|()| body)).await;
    pump.abort();
    let (parts, mut body) = resp.into_parts();
    send.send_response(http::Response::from_parts(parts, ()))
        .await?;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            send.send_data(data).await?;
        }
    }
    send.finish().await?;
    Ok(())
}
