//! The load generator (`pathlight_bench::loadgen`) against the collector: bounded, and what it
//! reports is what the collector stored. Its behaviour against other servers (refused
//! connections, connections the server ends) is tested in tools/tests/it.

use crate::TestServer;
use pathlight_bench::loadgen::{LoadOptions, run};
use std::time::Duration;

#[tokio::test]
async fn the_load_generator_is_bounded_and_its_events_are_stored_once() {
    let server = TestServer::start("loadgen").await;
    for http2 in [false, true] {
        let report = run(LoadOptions {
            url: server.url("/v1/batch"),
            site: "test".into(),
            batch: 20,
            concurrency: 8,
            rate: 0,
            duration: Duration::from_secs(30),
            max_requests: 40,
            http2,
            http3: false,
            insecure: false,
            seed: 7,
        })
        .await
        .unwrap();
        assert_eq!(report.requests, 40, "stops at max_requests");
        assert_eq!(
            report.statuses.get(&204),
            Some(&40),
            "{:?}",
            report.statuses
        );
        assert_eq!(report.events, 800);
        assert!(report.latency_ms[0] > 0.0 && report.latency_ms[0] <= report.latency_ms[4]);
    }
    // Same seed: the second run replays the first run's events, stored once.
    assert_eq!(server.scalar("SELECT count() FROM events FINAL").await, 800);
    server.stop().await;
}
