//! The queue consumer: one ClickHouse insert per message batch, with explicit rules for what
//! is retried and what is dead-lettered.
//!
//! 1. Each message is checked (`message::decode`). One that is not well formed is poison: it is
//!    sent to the dead-letter queue and acknowledged, so it neither blocks nor takes the good
//!    messages of its batch down with it.
//! 2. The rows of all good messages go in one insert per table (`events`, and `users` for the
//!    identifies' messages). Success acknowledges them all.
//! 3. A transient failure (ClickHouse unreachable, overloaded, restarting) retries them all
//!    after a delay that grows with the oldest message's age: `RETRY_DELAY_SECONDS` at first,
//!    then roughly doubling, capped at 5 minutes. After `max_retries` (wrangler.toml) the queue
//!    itself moves them to the dead-letter queue: nothing is dropped silently.
//! 4. A final failure (ClickHouse refused the data) inserts message by message, so only the
//!    messages ClickHouse refuses go to the dead-letter queue.
//!
//! An insert that ClickHouse committed but whose answer was lost is retried and its rows are
//! stored twice, as with the collector's replayed spool: `events` is a ReplacingMergeTree keyed
//! by event id, so the copy collapses at merge, and the queries count events by id.

use crate::clickhouse::{self, Failure};
use crate::message::{self, Rows};
use crate::settings::{ClickHouse, DEAD_LETTER_QUEUE, Settings};
use pathlight_ingest::retry::Decision;
use wasm_bindgen::JsCast;
use worker::{
    Env, MessageBatch, MessageExt, QueueContentType, QueueRetryOptionsBuilder, RawMessage,
    RawMessageBuilder, Result,
};

const MAX_DELAY_SECS: u32 = 300;

/// Handles one delivery of queue messages.
pub async fn consume(batch: MessageBatch<()>, env: Env, settings: &Settings) -> Result<()> {
    let Some(ch) = &settings.clickhouse else {
        batch.retry_all();
        return Err("the queue consumer needs CLICKHOUSE_URL".into());
    };
    let now = worker::Date::now().as_millis();
    // Each good message with its rows (RowBinary, the header stripped), by table.
    let mut events: Vec<(RawMessage, Vec<u8>)> = Vec::new();
    let mut users: Vec<(RawMessage, Vec<u8>)> = Vec::new();
    for msg in batch.raw_iter() {
        let bytes = msg
            .body()
            .dyn_into::<js_sys::Uint8Array>()
            .map(|a| a.to_vec())
            .or_else(|v| {
                v.dyn_into::<js_sys::ArrayBuffer>()
                    .map(|b| js_sys::Uint8Array::new(&b).to_vec())
            });
        let rows = bytes
            .map_err(|_| "not bytes".to_string())
            .and_then(|b| message::decode(&b).map(|(rows, _)| rows));
        match rows {
            Ok(Rows::Events(rows)) => events.push((msg, rows)),
            Ok(Rows::Users(rows)) => users.push((msg, rows)),
            Err(why) => dead_letter(&env, &msg, &why).await,
        }
    }
    store(&env, settings, ch, Table::Events, events, now).await;
    store(&env, settings, ch, Table::Users, users, now).await;
    Ok(())
}

/// The table a group of messages goes to.
#[derive(Clone, Copy)]
enum Table {
    Events,
    Users,
}

impl Table {
    async fn insert(self, ch: &ClickHouse, rows: Vec<u8>) -> std::result::Result<(), Failure> {
        match self {
            Table::Events => clickhouse::insert(ch, rows, &[]).await,
            Table::Users => clickhouse::insert_users(ch, rows).await,
        }
    }
}

/// Stores one table's good messages: one insert, retried or isolated as the module says.
async fn store(
    env: &Env,
    settings: &Settings,
    ch: &ClickHouse,
    table: Table,
    good: Vec<(RawMessage, Vec<u8>)>,
    now: u64,
) {
    if good.is_empty() {
        return;
    }
    let all = good.iter().flat_map(|(_, rows)| rows).copied().collect();
    match table.insert(ch, all).await {
        Ok(()) => good.iter().for_each(|(m, _)| m.ack()),
        Err(f) if f.decision == Decision::Retry => {
            worker::console_error!(
                "insert failed, retrying {} messages: {}",
                good.len(),
                f.message
            );
            let oldest = good
                .iter()
                .map(|(m, _)| m.timestamp().as_millis())
                .min()
                .unwrap_or(now);
            let age = (now.saturating_sub(oldest) / 1000) as u32;
            let delay = age.max(settings.retry_delay_secs).min(MAX_DELAY_SECS);
            let options = QueueRetryOptionsBuilder::new()
                .with_delay_seconds(delay)
                .build();
            good.iter()
                .for_each(|(m, _)| m.retry_with_options(&options));
        }
        Err(Failure { message, .. }) => {
            worker::console_error!("ClickHouse refused a batch, isolating: {message}");
            for (m, rows) in &good {
                match table.insert(ch, rows.clone()).await {
                    Ok(()) => m.ack(),
                    Err(f) if f.decision == Decision::Retry => m.retry(),
                    Err(f) => dead_letter(env, m, &f.message).await,
                }
            }
        }
    }
}

/// Moves a message to the dead-letter queue as it came, then acknowledges it; if even that
/// fails, the message is retried rather than lost.
async fn dead_letter(env: &Env, msg: &RawMessage, why: &str) {
    worker::console_error!("dead-lettering message {}: {why}", msg.id());
    let sent = match env.queue(DEAD_LETTER_QUEUE) {
        Ok(q) => q
            .send_raw(
                RawMessageBuilder::new(msg.body()).build_with_content_type(QueueContentType::V8),
            )
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match sent {
        Ok(()) => msg.ack(),
        Err(e) => {
            worker::console_error!("dead-letter queue {DEAD_LETTER_QUEUE} unavailable: {e}");
            msg.retry();
        }
    }
}
