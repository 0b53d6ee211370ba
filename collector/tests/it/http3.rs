//! TLS and HTTP/3: an h3 client (the h3 crate's client over quinn) posts CBOR batches that
//! land in ClickHouse, bad input over h3 gets the statuses it gets over TCP, and HTTPS over
//! TCP answers with `Alt-Svc` advertising h3 on the same port.

use crate::{TestServer, batch_now};
use bytes::{Buf, Bytes};
use pathlight_wire::cbor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A certificate for 127.0.0.1 in PEM files under a temp dir, and its DER for clients.
fn certificate(
    name: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    rustls::pki_types::CertificateDer<'static>,
) {
    let dir = std::env::temp_dir().join(format!("pathlight-it-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, made.cert.der().clone())
}

fn client_tls(
    cert: &rustls::pki_types::CertificateDer<'static>,
    alpn: &[u8],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    config
}

type SendRequest = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// An HTTP/3 connection to `addr`, retried while the server is still starting.
async fn connect_h3(
    addr: SocketAddr,
    cert: &rustls::pki_types::CertificateDer<'static>,
) -> SendRequest {
    let tls = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls(cert, b"h3")).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(tls)));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match endpoint.connect(addr, "127.0.0.1").unwrap().await {
            Ok(conn) => {
                let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
                    .await
                    .unwrap();
                tokio::spawn(async move {
                    let _ = driver.wait_idle().await;
                });
                return send;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no HTTP/3 connection: {e}"),
        }
    }
}

async fn h3_post(
    send: &mut SendRequest,
    addr: SocketAddr,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let req = http::Request::post(format!("https://127.0.0.1:{}/v1/batch", addr.port()))
        .body(())
        .unwrap();
    let mut stream = send.send_request(req).await.unwrap();
    stream.send_data(Bytes::from(body)).await.unwrap();
    stream.finish().await.unwrap();
    let resp = stream.recv_response().await.unwrap();
    let mut bytes = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        bytes.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (resp.status().as_u16(), json)
}

#[tokio::test]
async fn batches_over_http3_land_and_bad_ones_get_the_same_answers() {
    let (cert_pem, key_pem, cert) = certificate("h3");
    let server = TestServer::start_with("http3", |c| {
        c.tls.cert = Some(cert_pem.clone());
        c.tls.key = Some(key_pem.clone());
        c.tls.http3 = true;
    })
    .await;
    let mut h3 = connect_h3(server.addr, &cert).await;
    // The server may still be migrating when QUIC connects: retry the first batch.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, json) = h3_post(&mut h3, server.addr, cbor::encode(&batch_now())).await;
        if status == 204 {
            break;
        }
        assert!(Instant::now() < deadline, "{status} {json}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut second = batch_now();
    second.events.iter_mut().for_each(|e| e.id.0[0] = 2);
    assert_eq!(
        h3_post(&mut h3, server.addr, cbor::encode(&second)).await.0,
        204
    );
    assert_eq!(server.scalar("SELECT count() FROM events FINAL").await, 10);

    // Bad input: the same statuses and reasons as over TCP.
    let (status, json) = h3_post(&mut h3, server.addr, vec![0xfc, 0, 1]).await;
    assert_eq!(
        (status, json["reason"].as_str()),
        (400, Some("malformed")),
        "{json}"
    );
    let (status, json) = h3_post(&mut h3, server.addr, vec![0xa0; 600 * 1024]).await;
    assert_eq!(
        (status, json["reason"].as_str()),
        (413, Some("too_large")),
        "{json}"
    );
    let mut unknown = batch_now();
    unknown.site_id = "nope".into();
    let (status, json) = h3_post(&mut h3, server.addr, cbor::encode(&unknown)).await;
    assert_eq!(
        (status, json["reason"].as_str()),
        (403, Some("unknown_site")),
        "{json}"
    );

    // The load generator over each protocol on this TLS listener: every request answered 204.
    for (http2, http3) in [(false, false), (true, false), (false, true)] {
        let report = pathlight_bench::loadgen::run(pathlight_bench::loadgen::LoadOptions {
            url: format!("https://127.0.0.1:{}/v1/batch", server.addr.port()),
            site: "test".into(),
            batch: 20,
            concurrency: 4,
            rate: 0,
            duration: Duration::from_secs(30),
            max_requests: 20,
            http2,
            http3,
            insecure: true,
            seed: 3 + u32::from(http2) + 2 * u32::from(http3),
        })
        .await
        .unwrap();
        assert_eq!(
            report.statuses.get(&204),
            Some(&20),
            "h2 {http2} h3 {http3}: {:?}",
            report.statuses
        );
    }
    assert_eq!(
        server.scalar("SELECT count() FROM events FINAL").await,
        10 + 3 * 400
    );

    // HTTPS over TCP: served too, and it advertises h3 on the same port.
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client_tls(&cert, b"http/1.1")));
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut stream = tls
        .connect(
            rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let alt_svc = format!("alt-svc: h3=\":{}\"; ma=86400", server.addr.port());
    assert!(answer.to_ascii_lowercase().contains(&alt_svc), "{answer}");
    server.stop().await;
    if let Some(dir) = cert_pem.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
