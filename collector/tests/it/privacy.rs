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
            .header("x-forwarded-for", format!("{ip}, 10.0.0.1"))
            .body(cbor::encode(&batch))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }
    // And one from the peer address itself, without the header.
    let mut batch = batch_now();
    batch.events.iter_mut().for_each(|e| e.id.0[0] = 9);
    let resp = client
        .post(server.url("/v1/batch"))
        .body(cbor::encode(&batch))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
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
