//! `pathlight-bench loadgen`: a bounded load generator for the batch endpoint. It sends
//! realistic CBOR batches (the sample events, fresh ids and times per batch) over HTTP/1.1,
//! HTTP/2 (cleartext or TLS) or HTTP/3, at a fixed rate or as fast as the collector answers, for
//! a fixed time and at most a fixed number of requests, and reports throughput, latency
//! percentiles and answers by status.

use pathlight_wire::{Id, RawBatch, cbor, sample};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What to send.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// `http://host:port/v1/batch`.
    pub url: String,
    /// Site id of the batches.
    pub site: String,
    /// Events per batch.
    pub batch: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Requests per second over all workers; 0: as fast as answers come.
    pub rate: u64,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many requests.
    pub max_requests: u64,
    /// HTTP/2 (prior knowledge over cleartext, ALPN over TLS) instead of HTTP/1.1.
    pub http2: bool,
    /// HTTP/3 over QUIC; `url` must be `https://`. All workers share one connection, as
    /// HTTP/2's do.
    pub http3: bool,
    /// TLS without certificate checks (a self-signed collector on loopback).
    pub insecure: bool,
    /// Goes into every event id with the request number, so two runs with the same seed send
    /// the same events (a replay) and runs with different seeds distinct ones.
    pub seed: u32,
}

/// What happened.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Requests answered.
    pub requests: u64,
    /// Events in answered-2xx requests.
    pub events: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Answers by HTTP status (0: transport error).
    pub statuses: BTreeMap<u16, u64>,
    /// Latency percentiles (p50, p90, p99, p999, max), ms.
    pub latency_ms: [f64; 5],
}

impl LoadReport {
    /// The Markdown table header of [`LoadReport::row`].
    pub const HEADER: &'static str = "| requests/s | events/s | p50 ms | p90 ms | p99 ms | p999 ms | max ms | non-2xx |\n|---:|---:|---:|---:|---:|---:|---:|---:|";

    /// A Markdown table row: requests/s, events/s, p50, p90, p99, p999, max, non-2xx.
    pub fn row(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let bad: u64 = self
            .statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        let [p50, p90, p99, p999, max] = self.latency_ms;
        format!(
            "| {:.0} | {:.0} | {p50:.2} | {p90:.2} | {p99:.2} | {p999:.2} | {max:.2} | {bad} |",
            self.requests as f64 / secs,
            self.events as f64 / secs
        )
    }
}

/// How requests go out.
enum Sender {
    Tcp(Tcp),
    H3(h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>),
}

/// HTTP/1.1 or HTTP/2 over TCP (cleartext or TLS), on hyper's connection-level client: the
/// generator shares core 1 with ClickHouse in every bench, so each request should cost it a
/// write, a read and little else (no pool, no redirect or decompression layers).
struct Tcp {
    dial: Dial,
    /// HTTP/1.1: the path (origin form, with `host`); HTTP/2: the whole URL.
    target: http::Uri,
    host: http::HeaderValue,
    conn: Conn,
}

type Body = http_body_util::Full<bytes::Bytes>;

/// Where and how a connection is opened.
#[derive(Clone)]
struct Dial {
    addr: std::net::SocketAddr,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
}

enum Conn {
    /// This worker's own connection (one request in flight on each), opened at its first
    /// request and again after an exchange failed.
    H1(Option<hyper::client::conn::http1::SendRequest<Body>>),
    /// This worker's handle on the connection all workers share, and the shared slot. A worker
    /// that finds its handle closed takes the slot's, reopening it first if that is closed
    /// too: one reconnection for all, and one stream's error leaves the connection in use.
    H2(
        hyper::client::conn::http2::SendRequest<Body>,
        Arc<tokio::sync::Mutex<hyper::client::conn::http2::SendRequest<Body>>>,
    ),
}

/// A TCP or TLS stream, boxed so that one handshake serves both.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

impl Clone for Sender {
    /// A worker's copy: HTTP/1.1 workers each open their own connection; HTTP/2 and HTTP/3
    /// workers share the one opened in [`Sender::new`].
    fn clone(&self) -> Sender {
        match self {
            Sender::H3(send) => Sender::H3(send.clone()),
            Sender::Tcp(t) => Sender::Tcp(Tcp {
                dial: t.dial.clone(),
                target: t.target.clone(),
                host: t.host.clone(),
                conn: match &t.conn {
                    Conn::H1(_) => Conn::H1(None),
                    Conn::H2(send, shared) => Conn::H2(send.clone(), shared.clone()),
                },
            }),
        }
    }
}

impl Sender {
    async fn new(opts: &LoadOptions) -> anyhow::Result<Sender> {
        let tls = opts.url.starts_with("https:");
        let url: http::Uri = opts.url.parse()?;
        // `Uri::host` keeps an IPv6 literal's brackets, which neither a lookup nor a TLS
        // server name takes.
        let host = url.host().unwrap_or("127.0.0.1");
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = url.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .next()
            .ok_or_else(|| anyhow::anyhow!("{host} has no address"))?;
        if opts.http3 {
            anyhow::ensure!(tls, "--http3 needs an https:// URL");
            let config = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls(
                opts.insecure,
                b"h3",
            ))?;
            let mut endpoint = quinn::Endpoint::client(if addr.is_ipv4() {
                "0.0.0.0:0".parse()?
            } else {
                "[::]:0".parse()?
            })?;
            endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(config)));
            let conn = endpoint.connect(addr, &host)?.await?;
            let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
            tokio::spawn(async move {
                let _ = driver.wait_idle().await;
            });
            return Ok(Sender::H3(send));
        }
        let tls = if tls {
            let alpn: &[u8] = if opts.http2 { b"h2" } else { b"http/1.1" };
            let config = Arc::new(client_tls(opts.insecure, alpn));
            let name = rustls::pki_types::ServerName::try_from(host)?;
            Some((tokio_rustls::TlsConnector::from(config), name))
        } else {
            None
        };
        let authority = url
            .authority()
            .ok_or_else(|| anyhow::anyhow!("{} has no host", opts.url))?;
        let mut tcp = Tcp {
            dial: Dial { addr, tls },
            target: if opts.http2 {
                url.clone()
            } else {
                url.path_and_query().map_or("/", |p| p.as_str()).parse()?
            },
            host: http::HeaderValue::from_str(authority.as_str())?,
            conn: Conn::H1(None),
        };
        if opts.http2 {
            let send = tcp.dial.open_h2().await?;
            tcp.conn = Conn::H2(send.clone(), Arc::new(tokio::sync::Mutex::new(send)));
        }
        Ok(Sender::Tcp(tcp))
    }

    /// Posts `body`; the answer's status, 0 for a transport error.
    async fn post(&mut self, url: &str, body: Vec<u8>) -> u16 {
        match self {
            Sender::Tcp(tcp) => tcp.post(body).await.unwrap_or(0),
            Sender::H3(send) => {
                let exchange = async {
                    let req = http::Request::post(url).body(())?;
                    let mut stream = send.send_request(req).await?;
                    stream.send_data(bytes::Bytes::from(body)).await?;
                    stream.finish().await?;
                    let status = stream.recv_response().await?.status().as_u16();
                    while stream.recv_data().await?.is_some() {}
                    anyhow::Ok(status)
                };
                exchange.await.unwrap_or(0)
            }
        }
    }
}

impl Dial {
    async fn stream(&self) -> anyhow::Result<hyper_util::rt::TokioIo<Box<dyn Stream>>> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(stream),
            Some((connector, name)) => Box::new(connector.connect(name.clone(), stream).await?),
        };
        Ok(hyper_util::rt::TokioIo::new(stream))
    }

    /// A new HTTP/1.1 connection, ready for its first request.
    async fn ready_h1(&self) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Body>> {
        let (mut send, conn) = hyper::client::conn::http1::handshake(self.stream().await?).await?;
        tokio::spawn(conn);
        send.ready().await?;
        Ok(send)
    }

    async fn open_h2(&self) -> anyhow::Result<hyper::client::conn::http2::SendRequest<Body>> {
        let executor = hyper_util::rt::TokioExecutor::new();
        let (send, conn) =
            hyper::client::conn::http2::handshake(executor, self.stream().await?).await?;
        tokio::spawn(conn);
        Ok(send)
    }
}

impl Tcp {
    async fn post(&mut self, body: Vec<u8>) -> anyhow::Result<u16> {
        let mut req = http::Request::post(self.target.clone())
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
        match &mut self.conn {
            Conn::H1(slot) => {
                req.headers_mut()
                    .insert(http::header::HOST, self.host.clone());
                // Taken for the exchange and put back only after all of it: a failed one
                // leaves the slot empty, and the next request opens another connection.
                let mut kept = slot.take();
                if let Some(send) = &mut kept
                    && send.ready().await.is_err()
                {
                    // The server ended keep-alive after the last answer.
                    kept = None;
                }
                let mut send = match kept {
                    Some(send) => send,
                    None => self.dial.ready_h1().await?,
                };
                let resp = match send.try_send_request(req).await {
                    Ok(resp) => resp,
                    // The connection closed before the request went out: it was never sent,
                    // so it goes once more, on a new one.
                    Err(mut e) => match e.take_message() {
                        Some(req) => {
                            send = self.dial.ready_h1().await?;
                            send.send_request(req).await?
                        }
                        None => return Err(e.into_error().into()),
                    },
                };
                let status = status(resp).await?;
                *slot = Some(send);
                Ok(status)
            }
            Conn::H2(send, shared) => {
                let mut resent = false;
                loop {
                    if send.is_closed() {
                        let mut current = shared.lock().await;
                        if current.is_closed() {
                            *current = self.dial.open_h2().await?;
                        }
                        *send = current.clone();
                    }
                    match send.try_send_request(req).await {
                        Ok(resp) => return status(resp).await,
                        // Queued when the connection ended (after a GOAWAY, hyper notices
                        // only at the next request) and never sent: once more, on the
                        // connection that replaces it.
                        Err(mut e) => match e.take_message() {
                            Some(again) if !resent => {
                                req = again;
                                resent = true;
                            }
                            _ => return Err(e.into_error().into()),
                        },
                    }
                }
            }
        }
    }
}

/// The answer's status, once its body has been read.
async fn status(resp: http::Response<hyper::body::Incoming>) -> anyhow::Result<u16> {
    use http_body_util::BodyExt;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

/// TLS 1.2/1.3 with ring, offering `alpn`; with `insecure`, any certificate is accepted.
fn client_tls(insecure: bool, alpn: &[u8]) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions");
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

/// Accepts any server certificate (signatures are still checked): `--insecure`, loopback only.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Runs the load and reports.
pub async fn run(opts: LoadOptions) -> anyhow::Result<LoadReport> {
    let client = Sender::new(&opts).await?;
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + opts.duration;
    // Every request ends by then, even when the server stops answering or a connection never
    // opens.
    let give_up: tokio::time::Instant = (deadline + Duration::from_secs(5)).into();
    let mut workers = Vec::new();
    for _ in 0..opts.concurrency {
        let (mut client, opts, sent) = (client.clone(), opts.clone(), sent.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut events = 0u64;
            // Each worker's own batch, restamped in place per request: cloning it would cost
            // the generator's core, shared with ClickHouse, more than encoding it.
            let mut batch = template(&opts.site, opts.batch);
            let mut backoff = Duration::ZERO;
            loop {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                if n >= opts.max_requests || Instant::now() >= deadline {
                    break;
                }
                if opts.rate > 0 {
                    // Request n is due at start + n / rate: a fixed schedule, so a slow answer
                    // does not lower the offered rate (no coordinated omission).
                    let due = start + Duration::from_secs_f64(n as f64 / opts.rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = batch_bytes(&mut batch, opts.seed, n);
                let t = Instant::now();
                let status = tokio::time::timeout_at(give_up, client.post(&opts.url, body))
                    .await
                    .unwrap_or(0);
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                *statuses.entry(status).or_default() += 1;
                if (200..300).contains(&status) {
                    events += opts.batch as u64;
                }
                // As fast as answers come, a server that refuses connections would answer
                // "transport error" in microseconds: without a pause each worker would spin
                // on connect until the deadline, on the core it shares with ClickHouse. A
                // single stray error (a reset stream) costs its worker 10 ms.
                if status == 0 && opts.rate == 0 {
                    backoff =
                        (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                    tokio::time::sleep_until((Instant::now() + backoff).min(deadline).into()).await;
                } else {
                    backoff = Duration::ZERO;
                }
            }
            (latencies, statuses, events)
        }));
    }
    let mut report = LoadReport::default();
    let mut all = Vec::new();
    for w in workers {
        let (latencies, statuses, events) = w.await?;
        report.requests += latencies.len() as u64;
        report.events += events;
        all.extend(latencies);
        for (s, n) in statuses {
            *report.statuses.entry(s).or_default() += n;
        }
    }
    report.elapsed = start.elapsed();
    all.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    report.latency_ms = [
        pick(0.5),
        pick(0.9),
        pick(0.99),
        pick(0.999),
        all.last().copied().unwrap_or(0.0),
    ];
    Ok(report)
}

/// The sample events, repeated to `batch` of them, for `site`.
pub(crate) fn template(site: &str, batch: usize) -> RawBatch {
    let mut b = sample::typical_batch();
    b.site_id = site.to_owned();
    let kinds = b.events.clone();
    b.events = (0..batch).map(|i| kinds[i % kinds.len()].clone()).collect();
    b
}

/// `b` with ids unique to (seed, request number, event) and times of now, encoded.
pub(crate) fn batch_bytes(b: &mut RawBatch, seed: u32, n: u64) -> Vec<u8> {
    let now = pathlight_collector::dates::now_ms();
    b.sent_at = now;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[8..12].copy_from_slice(&seed.to_be_bytes());
    b.batch_id = Id(id);
    for (i, e) in b.events.iter_mut().enumerate() {
        id[12..16].copy_from_slice(&(i as u32).to_be_bytes());
        e.id = Id(id);
        e.timestamp = now - 1_000 + i as i64;
    }
    cbor::encode(b)
}
