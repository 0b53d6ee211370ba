//! The collector's side of scale-out mode: a request's rows become one JetStream message.

use super::BrokerConfig;
use crate::error::IngestError;
use crate::sinks::clickhouse::EventRow;
use async_nats::jetstream::{self, message::PublishMessage};
use sha2::{Digest, Sha256};

/// Publishes rows to the stream; cheap to share between requests.
pub struct Publisher {
    js: jetstream::Context,
    subject: String,
}

impl Publisher {
    /// Connects to NATS and creates the stream when it does not exist yet.
    pub async fn connect(cfg: &BrokerConfig) -> anyhow::Result<Publisher> {
        let (js, _) = cfg.connect("pathlight-collector").await?;
        Ok(Publisher {
            js,
            subject: cfg.subject.clone(),
        })
    }

    /// Publishes `rows`, encoded as RowBinary in `body`, and returns once the stream has
    /// stored them: from then on they are the loaders' to write.
    pub async fn publish(&self, rows: &[EventRow], body: Vec<u8>) -> Result<(), IngestError> {
        let message = PublishMessage::build()
            .payload(body.into())
            .message_id(message_id(rows));
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "publishing to JetStream failed");
            IngestError::BrokerUnavailable
        };
        let ack = self
            .js
            .send_publish(self.subject.clone(), message)
            .await
            .map_err(|e| unavailable(&e))?;
        ack.await.map_err(|e| unavailable(&e))?;
        Ok(())
    }
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
