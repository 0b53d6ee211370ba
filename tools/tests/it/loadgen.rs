//! The load generator against servers that misbehave: one that refuses connections, and ones
//! that end them after each answer (HTTP/1.1) or after a few (HTTP/2 GOAWAY). What it does
//! against the real collector is tested in collector/tests/it/loadgen.rs.

use pathlight_bench::loadgen::{LoadOptions, run};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test]
async fn the_load_generator_backs_off_from_a_server_that_refuses_connections() {
    // A port bound but not listening, for the whole test (so no other test can take it):
    // every connect is refused at once.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}/v1/batch", socket.local_addr().unwrap());
    let report = run(LoadOptions {
        url,
        site: "test".into(),
        batch: 20,
        concurrency: 4,
        rate: 0,
        duration: Duration::from_secs(1),
        max_requests: u64::MAX,
        http2: false,
        http3: false,
        insecure: false,
        seed: 7,
    })
    .await
    .unwrap();
    // Each worker pauses 10, 20, 40 … ms after each refusal: at most 7 tries in the second,
    // where spinning would make thousands.
    assert!(report.requests <= 4 * 7, "{} requests", report.requests);
    assert_eq!(report.statuses.get(&0), Some(&report.requests));
    assert_eq!(report.events, 0);
    assert!(
        report.elapsed < Duration::from_secs(3),
        "{:?}",
        report.elapsed
    );
    drop(socket);
}

/// A server on 127.0.0.1 answering 204 to everything that ends each connection after
/// `per_conn` answers (HTTP/1.1: keep-alive off, one answer; HTTP/2: GOAWAY after `per_conn`),
/// counting the connections it accepted. It stops with the test's runtime.
async fn closing_server(http2: bool, per_conn: usize) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/batch", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let io = hyper_util::rt::TokioIo::new(stream);
            let served = Arc::new(AtomicUsize::new(0));
            let enough = Arc::new(tokio::sync::Notify::new());
            let service = {
                let enough = enough.clone();
                hyper::service::service_fn(move |_req| {
                    if served.fetch_add(1, Ordering::SeqCst) + 1 == per_conn {
                        enough.notify_one();
                    }
                    let answer = http::Response::builder()
                        .status(204)
                        .body(http_body_util::Empty::<bytes::Bytes>::new());
                    async move { answer }
                })
            };
            tokio::spawn(async move {
                if http2 {
                    let conn = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(io, service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = enough.notified() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (url, accepted)
}

/// A server that ends connections does not cost requests: an HTTP/1.1 worker opens another
/// after `Connection: close`, and HTTP/2's workers, sharing one connection, reopen it once
/// between them after GOAWAY rather than each its own.
#[tokio::test]
async fn the_load_generator_reopens_connections_the_server_ends() {
    let options = |url: String, http2| LoadOptions {
        url,
        site: "test".into(),
        batch: 5,
        concurrency: 4,
        rate: 0,
        duration: Duration::from_secs(30),
        max_requests: 60,
        http2,
        http3: false,
        insecure: false,
        seed: 1,
    };
    let (url, accepted) = closing_server(false, 1).await;
    let report = run(options(url, false)).await.unwrap();
    assert_eq!(
        report.statuses.get(&204),
        Some(&60),
        "{:?}",
        report.statuses
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        60,
        "one connection per answer"
    );

    let (url, accepted) = closing_server(true, 20).await;
    let report = run(options(url, true)).await.unwrap();
    // A request queued as a GOAWAY arrived is sent again, so none is lost.
    assert_eq!(
        report.statuses.get(&204),
        Some(&60),
        "{:?}",
        report.statuses
    );
    // Each connection answers 20 and at most the 3 more already in flight at its GOAWAY,
    // and the last gets no more requests once its 20th is answered: 3 for 60, not one a
    // worker after each GOAWAY.
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
