//! `pathlight-bench discard`: the transport limit. A request's whole path here is hyper reading
//! the body and answering 204: no decode, no stages, no storage. The load generator against it
//! measures what HTTP alone reaches on the core the collector would have (bench/limits.sh),
//! the latency floor the machine puts under any server at a given rate (bench/half-load.sh),
//! and the generator's own cost (bench/generator.sh).

/// The transport limit for `bench/limits.sh`: a minimal hyper server (HTTP/1.1 and h2c, the
/// collector's settings) that reads each body and answers 204, doing nothing else. What the
/// collector reaches, divided by what this reaches on the same core, is the share of the
/// machine left to HTTP after ingest's own work.
pub async fn run(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let body = http_body_util::Limited::new(req.into_body(), 512 * 1024)
                        .collect()
                        .await;
                    let status = if body.is_ok() { 204 } else { 413 };
                    let mut resp =
                        http::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
                    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
                    Ok::<_, std::convert::Infallible>(resp)
                },
            );
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
