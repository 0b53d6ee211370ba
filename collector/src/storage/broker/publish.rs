//! The collector's side of scale-out mode: a request's rows become JetStream messages, one
//! unless they are too large for one (then split between rows).

use super::BrokerConfig;
use crate::error::IngestError;
use crate::storage::clickhouse::EventRow;
use async_nats::jetstream::{self, message::PublishMessage};
use sha2::{Digest, Sha256};

/// Publishes rows to the stream; cheap to share between requests.
pub struct Publisher {
    js: jetstream::Context,
    subject: String,
    stream: String,
}

impl Publisher {
    /// Connects to NATS and creates the stream when it does not exist yet.
    pub async fn connect(cfg: &BrokerConfig) -> anyhow::Result<Publisher> {
        let (js, _) = cfg.connect("pathlight-collector").await?;
        Ok(Publisher {
            js,
            subject: cfg.subject.clone(),
            stream: cfg.stream.clone(),
        })
    }

    /// Whether the client is connected to a NATS server now (it reconnects by itself; while
    /// it is not connected, publishes fail).
    pub fn connected(&self) -> bool {
        self.js.client().connection_state() == async_nats::connection::State::Connected
    }

    /// The stream rows are published to.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Publishes `rows`, encoded as RowBinary in `body`, and returns once the stream has
    /// stored them: from then on they are the loaders' to write.
    pub async fn publish(&self, rows: &[EventRow], body: Vec<u8>) -> Result<(), IngestError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "publishing to JetStream failed");
            IngestError::BrokerUnavailable
        };
        let mut acks = Vec::new();
        for (rows, payload) in messages(rows, body) {
            let message = PublishMessage::build()
                .payload(payload.into())
                .message_id(message_id(rows))
                .header(
                    super::LAYOUT_HEADER,
                    pathlight_ingest::Layout::CURRENT
                        .code()
                        .to_string()
                        .as_str(),
                );
            let ack = self
                .js
                .send_publish(self.subject.clone(), message)
                .await
                .map_err(|e| unavailable(&e))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| unavailable(&e))?;
        }
        Ok(())
    }
}

/// Largest message payload published, under NATS's default `max_payload` (1 MiB), which a
/// batch's rows can pass: a 512 KiB batch of long URLs grows several times as rows, since a
/// row repeats the URL's parts beside it.
const MAX_MESSAGE_BYTES: usize = 512 * 1024;

/// `rows` and their RowBinary as messages of at most [`MAX_MESSAGE_BYTES`] (a single larger
/// row goes alone), split between rows the same way every time: a retried request publishes
/// the same messages, with the same ids, which the stream then drops as duplicates.
fn messages(rows: &[EventRow], body: Vec<u8>) -> Vec<(&[EventRow], Vec<u8>)> {
    if body.len() <= MAX_MESSAGE_BYTES {
        return vec![(rows, body)];
    }
    let mut out = Vec::new();
    let (mut first, mut payload, mut row) = (0, Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        row.clear();
        r.write_row_binary(&mut row);
        if i > first && payload.len() + row.len() > MAX_MESSAGE_BYTES {
            out.push((&rows[first..i], std::mem::take(&mut payload)));
            first = i;
        }
        payload.extend_from_slice(&row);
    }
    out.push((&rows[first..], payload));
    out
}

/// The `Nats-Msg-Id` of a message: a digest of its rows' sites and event ids, so the same
/// batch sent twice (a retry whose answer was lost) is the same message to the stream.
fn message_id(rows: &[EventRow]) -> String {
    let mut h = Sha256::new();
    for r in rows {
        h.update(r.site_id.as_bytes());
        h.update([0]);
        h.update(r.event_id.as_bytes());
    }
    crate::hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_batches_split_between_rows_the_same_way_each_time() {
        let batch = pathlight_wire::sample::typical_batch();
        let ctx = pathlight_wire::RequestContext::default();
        let hasher = pathlight_wire::enrich::VisitorHasher::new(&[], [7; 16]);
        let mut rows = Vec::new();
        for k in 0..400u16 {
            let mut b = batch.clone();
            for e in &mut b.events {
                e.id.0[12..14].copy_from_slice(&k.to_le_bytes());
                e.url = format!("https://shop.example/{}", "p".repeat(2000));
            }
            rows.extend(pathlight_ingest::enrich(b, &[], &ctx, &hasher, |_| {
                "s".into()
            }));
        }
        let body = pathlight_ingest::write_rows(&rows);
        assert!(body.len() > 2 * MAX_MESSAGE_BYTES, "{} bytes", body.len());
        let split = messages(&rows, body.clone());
        assert!(split.len() >= 3);
        assert!(split.iter().all(|(_, p)| p.len() <= MAX_MESSAGE_BYTES));
        // Every row once, in order, each message's payload its own rows.
        assert_eq!(
            split
                .iter()
                .map(|(_, p)| p.as_slice())
                .collect::<Vec<_>>()
                .concat(),
            body
        );
        for (rows, payload) in &split {
            assert_eq!(&pathlight_ingest::write_rows(rows), payload);
        }
        let ids =
            |s: &[(&[EventRow], Vec<u8>)]| s.iter().map(|(r, _)| message_id(r)).collect::<Vec<_>>();
        assert_eq!(
            ids(&split),
            ids(&messages(&rows, body)),
            "a retry publishes the same ids"
        );
        // A small batch stays one message, as before.
        let small = pathlight_ingest::write_rows(&rows[..5]);
        assert_eq!(messages(&rows[..5], small).len(), 1);
    }
}
