//! Raw client addresses never reach storage: after batches from known addresses (the peer
//! and a trusted forwarding header, IPv4 and IPv6), no column of any table in the site's
//! database holds them in any usual spelling.

use crate::{TestServer, batch_now};
use pathlight_wire::cbor;

#[tokio::test]
async fn no_ip_address_is_stored_in_any_column() {
    let server = TestServer::start_with("privacy", |c| {
        c.client_ip_header = "x-forwarded-for".into();
    })
    .await;
    let client = reqwest::Client::new();
    let forwarded = ["203.0.113.77", "2001:db8::1f2e:3d4c"];
    for (i, ip) in forwarded.iter().enumerate() {
        let mut batch = batch_now();
        for e in &mut batch.events {
            e.id.0[0] = i as u8 + 1;
        }
        let resp = client
            .post(server.url("/v1/batch"))
            // A client-written entry, then the one the proxy appended: the client's address.
            .header("x-forwarded-for", format!("10.0.0.1, {ip}"))
            .body(cbor::encode(&batch))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    // And one from the peer address itself, without the header.
    let mut batch = batch_now();
    batch.events.iter_mut().for_each(|e| e.id.0[0] = 9);
    let url = server.url("/v1/batch");
    assert_eq!(
        crate::post(&client, &url, None, cbor::encode(&batch))
            .await
            .0,
        204
    );
    assert_eq!(server.scalar("SELECT count() FROM events").await, 15);

    // Every column of every table, as text (numbers too: an address could hide in an integer).
    let columns = server
        .db
        .query("SELECT table, name FROM system.columns WHERE database = currentDatabase()")
        .fetch_all::<(String, String)>()
        .await
        .unwrap();
    assert!(columns.len() > 50, "{columns:?}");
    let spellings = [
        "203.0.113.77",
        "2001:db8::1f2e:3d4c",
        "2001:0db8",
        "127.0.0.1",
        "10.0.0.1",
        // 203.0.113.77 and 127.0.0.1 as 32-bit integers.
        &u32::from(std::net::Ipv4Addr::new(203, 0, 113, 77)).to_string(),
        &u32::from(std::net::Ipv4Addr::LOCALHOST).to_string(),
    ];
    for (table, column) in &columns {
        for s in spellings {
            let n = server
                .scalar(&format!(
                    "SELECT count() FROM {table} WHERE position(toString({column}), '{s}') > 0"
                ))
                .await;
            assert_eq!(n, 0, "{table}.{column} holds {s}");
        }
    }
    server.stop().await;
}

/// Visitor-id salts: one random salt per day shared through storage (two collectors hash
/// alike), and salts older than yesterday deleted (past ids cannot be linked or reversed).
#[tokio::test]
async fn salts_are_shared_per_day_and_old_ones_forgotten() {
    use pathlight_collector::pipeline::salts;
    let server = TestServer::start("salts").await;
    let today = pathlight_collector::dates::now_ms().div_euclid(86_400_000);
    // A salt left from last week, as if it had not been forgotten yet.
    server
        .db
        .query("INSERT INTO salts (day, salt) SELECT toDate(?), ?")
        .bind(today - 7)
        .bind("00112233445566778899aabbccddeeff")
        .execute()
        .await
        .unwrap();
    let first = salts::current(&server.db, today).await.unwrap();
    let second = salts::current(&server.db, today).await.unwrap();
    assert_eq!(first, second, "a second collector gets the same salt");
    assert!(first.iter().any(|(d, _)| *d == today));
    assert!(first.iter().all(|(d, _)| *d >= today - 1));
    // The old salt is gone from storage once the delete (a mutation) has run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server
        .scalar("SELECT count() FROM salts WHERE toUInt16(day) < toUInt16(today()) - 1")
        .await
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "last week's salt was not deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Two collectors' hashers agree on today's visitors.
    let (a, b) = (
        salts::hasher(&server.db, today).await.unwrap().0,
        salts::hasher(&server.db, today).await.unwrap().0,
    );
    let ip = Some("198.51.100.1".parse().unwrap());
    let now = pathlight_collector::dates::now_ms();
    assert_eq!(
        a.visitor_id("s", ip, "ua", now),
        b.visitor_id("s", ip, "ua", now)
    );
    // Last month has no salt: each process hashes it with its own random fallback.
    let old = now - 30 * 86_400_000;
    assert_ne!(
        a.visitor_id("s", ip, "ua", old),
        b.visitor_id("s", ip, "ua", old)
    );
    server.stop().await;
}

// Behind one trusted proxy that appends the address it saw, only the last entry of
// X-Forwarded-For is the client's: two requests that differ in what the client wrote before it
// are the same visitor (the visitor id hashes the address), so a spoofed entry neither splits a
// visitor nor escapes the per-address limit.
#[tokio::test]
async fn only_the_proxy_written_forwarded_entry_counts() {
    let server = TestServer::start_with("forwarded_last", |c| {
        c.client_ip_header = "x-forwarded-for".into();
    })
    .await;
    let client = reqwest::Client::new();
    // What the client wrote differs each time; what the proxy wrote does not. The last one
    // comes from a proxy that adds a header line of its own rather than appending.
    let forwarded: [&[&str]; 3] = [
        &["198.51.100.1, 203.0.113.9"],
        &["198.51.100.2, 203.0.113.9"],
        &["198.51.100.3", "203.0.113.9"],
    ];
    for (i, lines) in forwarded.iter().enumerate() {
        let mut batch = batch_now();
        batch.events.truncate(1);
        batch.events[0].id.0[0] = 0x70 + i as u8;
        let mut request = client.post(server.url("/v1/batch")).header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
        );
        for line in *lines {
            request = request.header("x-forwarded-for", *line);
        }
        let resp = request.body(cbor::encode(&batch)).send().await.unwrap();
        assert_eq!(resp.status(), 204);
    }
    assert_eq!(server.scalar("SELECT count() FROM events").await, 3);
    let visitors = server
        .scalar("SELECT uniqExact(visitor_id) FROM events")
        .await;
    assert_eq!(visitors, 1);
    server.stop().await;
}
