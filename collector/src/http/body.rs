//! Reading a request's body under the limits every route shares: its size, the time it may
//! take to arrive, and the bytes all bodies together may hold (`http.max_body_bytes_in_flight`).

use super::{App, ReqBody};
use crate::error::IngestError;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use pathlight_ingest::rules;
use std::time::Duration;

/// How long a request waits for room under `http.max_body_bytes_in_flight`. Shorter than the
/// body timeout: a budget full for a second means bodies arrive faster than they are stored,
/// and a prompt 503 with Retry-After sheds the load better than a queue of waiters would.
const BODY_BUDGET_WAIT: Duration = Duration::from_secs(1);

/// The whole body, at most `max` bytes, arriving within `http.body_timeout_ms`, and its bytes'
/// share of `http.max_body_bytes_in_flight`, to hold until the request is answered. Taken as
/// the bytes arrive, not as declared: a client that declares much and sends little holds only
/// what it sent. Each piece waits up to [`BODY_BUDGET_WAIT`] for room, else 503.
pub async fn read_body<B: ReqBody>(
    app: &App,
    body: B,
    max: usize,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), IngestError> {
    let timeout = Duration::from_millis(app.opts.limits.body_timeout_ms);
    let wait = BODY_BUDGET_WAIT.min(timeout);
    let read = async {
        let mut body = std::pin::pin!(Limited::new(body, max));
        let mut parts: Vec<Bytes> = Vec::new();
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return Err(rules::too_large(max + 1, max));
                }
                Err(e) => return Err(IngestError::Body(e.to_string())),
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            let n = u32::try_from(data.len()).unwrap_or(u32::MAX);
            let permit = tokio::time::timeout(wait, app.body_budget.clone().acquire_many_owned(n))
                .await
                // Closed never happens (the semaphore lives with the app); a full budget past
                // the wait is an overload, answered like a full queue.
                .map_err(|_| IngestError::QueueFull)?
                .map_err(|_| IngestError::QueueFull)?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            parts.push(data);
        }
        // Most bodies come as one frame, kept as it is; only pieces are copied together.
        let body = match parts.len() {
            0 => Bytes::new(),
            1 => parts.pop().unwrap_or_default(),
            _ => Bytes::from(parts.concat()),
        };
        Ok((body, held))
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(IngestError::BodyTimeout))
}

/// At most this much of a refused body is read from a trusted proxy (see [`linger`]).
pub const MAX_DRAIN_BYTES: usize = 16 << 20;

/// At most this much of a refused body is read from any other client (see [`linger`]): twice
/// the default batch limit, so a batch a little too large still gets its answer.
pub const LINGER_BYTES: usize = 1 << 20;

/// How long a refused body is read from a client other than a trusted proxy.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Reads and drops a body refused from its headers (declared too large, encoded), so that the
/// client reads the refusal. Answering while the client still sends and then closing makes the
/// kernel reset the connection, and the client sees a network error (EPIPE, ECONNRESET)
/// instead of the JSON reason; nginx's lingering close exists for the same. A reverse proxy
/// named in `trusted_proxies` sends the whole body before it reads the answer (closing on it
/// mid-body turns the answer into the proxy's 502), and its own limit bounds the body: up to
/// [`MAX_DRAIN_BYTES`] within `http.body_timeout_ms`. Anyone else: up to [`LINGER_BYTES`]
/// within [`LINGER_TIME`], and nothing when the body is declared larger than that.
async fn linger<B: ReqBody>(app: &App, peer: std::net::IpAddr, declared: Option<&str>, body: B) {
    let timeout = Duration::from_millis(app.opts.limits.body_timeout_ms);
    let (bound, time) = if app.opts.trusted_proxies.contains(&peer) {
        (MAX_DRAIN_BYTES, timeout)
    } else {
        (LINGER_BYTES, LINGER_TIME.min(timeout))
    };
    if declared
        .and_then(|n| n.trim().parse::<usize>().ok())
        .is_some_and(|n| n > bound)
    {
        return;
    }
    let _ = tokio::time::timeout(time, drain(body, bound)).await;
}

/// Reads and drops up to `max` bytes of `body`.
pub async fn drain<B: ReqBody>(body: B, max: usize) {
    let mut body = std::pin::pin!(body);
    let mut seen = 0;
    while seen <= max {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

/// The body of a request to an ingest route, at most `max` bytes, read by [`read_body`] once
/// its headers pass `rules::precheck` (a declared size within `max`, no encoding but gzip
/// where the route inflates it: `gzip`). A body refused by its headers is read and dropped
/// first ([`linger`]), so the client reads the refusal.
pub async fn checked_body<B: ReqBody>(
    app: &App,
    peer: std::net::IpAddr,
    headers: &http::HeaderMap,
    body: B,
    max: usize,
    gzip: bool,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), IngestError> {
    let declared = super::header_str(headers, http::header::CONTENT_LENGTH);
    let encoding = super::header_str(headers, http::header::CONTENT_ENCODING);
    if let Err(e) = rules::precheck(declared, encoding, max, gzip) {
        linger(app, peer, declared, body).await;
        return Err(e);
    }
    read_body(app, body, max).await
}
