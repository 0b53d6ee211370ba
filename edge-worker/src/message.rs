//! A queue message: `b"PL"` and the rows' layout as one ASCII digit (`PL2`), the row count
//! (u32 little-endian), then that many rows of RowBinary (`pathlight_ingest::row`). Rows are
//! encoded once, at the edge; the consumer only checks and concatenates them, and ClickHouse
//! reads them as they are. A message a previous deployment queued in an earlier layout (`PL1`,
//! written before the digit named a layout, holds layout 1) is re-encoded in the current one,
//! as the collector's spool does with old segments, so a deployment never dead-letters the
//! messages still queued by the one before.
//!
//! Identifies travel the same queue as `PU1`: the count, then users' rows
//! (`pathlight_ingest::write_user_rows`), stored into `users` by the same consumer.

use pathlight_ingest::{EventRow, Layout, UserRow};

const MAGIC: &[u8; 2] = b"PL";
/// Users' rows, in their only layout so far.
const USERS_MAGIC: &[u8; 3] = b"PU1";
/// Magic, layout digit and row count; the rows follow.
const HEADER_LEN: usize = MAGIC.len() + 1 + 4;

/// Queue messages are at most 128 KB; rows go out in messages of at most this many bytes.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;

/// The messages for `rows`, each under [`MAX_MESSAGE_BYTES`] unless a single row is larger
/// (a row is bounded by the wire limits, its properties' JSON by `max_props_json_bytes`: some
/// 64 KB at most, below the queue's limit).
pub fn encode(rows: &[EventRow]) -> Vec<Vec<u8>> {
    let magic = [MAGIC[0], MAGIC[1], b'0' + Layout::CURRENT.code()];
    pack(&magic, rows, EventRow::write_row_binary)
}

/// The messages for users' rows, split as [`encode`] splits events.
pub fn encode_users(rows: &[UserRow]) -> Vec<Vec<u8>> {
    pack(USERS_MAGIC, rows, |r, out| {
        out.extend_from_slice(&pathlight_ingest::write_user_rows(std::slice::from_ref(r)))
    })
}

fn pack<R>(magic: &[u8; 3], rows: &[R], write: impl Fn(&R, &mut Vec<u8>)) -> Vec<Vec<u8>> {
    let header = || {
        let mut m = Vec::with_capacity(4096);
        m.extend_from_slice(magic);
        m.resize(HEADER_LEN, 0);
        m
    };
    let mut messages = Vec::new();
    let mut current = header();
    let mut count = 0u32;
    let mut row = Vec::with_capacity(512);
    for r in rows {
        row.clear();
        write(r, &mut row);
        if count > 0 && current.len() + row.len() > MAX_MESSAGE_BYTES {
            messages.push(finish(current, count));
            current = header();
            count = 0;
        }
        current.extend_from_slice(&row);
        count += 1;
    }
    if count > 0 {
        messages.push(finish(current, count));
    }
    messages
}

fn finish(mut m: Vec<u8>, count: u32) -> Vec<u8> {
    m[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&count.to_le_bytes());
    m
}

/// What a message holds, as RowBinary for its table.
#[derive(Debug, PartialEq, Eq)]
pub enum Rows {
    /// Rows of `events`, in the current layout.
    Events(Vec<u8>),
    /// Rows of `users`.
    Users(Vec<u8>),
}

/// A message's rows and their count, checked: the header, the count, and every row well
/// formed. `Err` names what is wrong: such a message is poison and goes to the dead-letter
/// queue.
pub fn decode(message: &[u8]) -> Result<(Rows, u32), String> {
    if let Some(rest) = message.strip_prefix(USERS_MAGIC) {
        let (count, rows) = counted(rest)?;
        let parsed = pathlight_ingest::read_user_rows(rows).map_err(|e| e.to_string())?;
        check_count(count, parsed.len())?;
        return Ok((Rows::Users(rows.to_vec()), count));
    }
    let rest = message
        .strip_prefix(MAGIC)
        .ok_or("not a Pathlight queue message")?;
    let (digit, rest) = rest.split_first().ok_or("no row layout")?;
    let layout = digit
        .checked_sub(b'0')
        .and_then(Layout::from_code)
        .ok_or("rows of a layout this version does not know")?;
    let (count, rows) = counted(rest)?;
    let parsed = pathlight_ingest::read_rows_of(rows, layout).map_err(|e| e.to_string())?;
    check_count(count, parsed.len())?;
    let rows = if layout == Layout::CURRENT {
        rows.to_vec()
    } else {
        pathlight_ingest::write_rows(&parsed)
    };
    Ok((Rows::Events(rows), count))
}

fn counted(rest: &[u8]) -> Result<(u32, &[u8]), String> {
    let (count, rows) = rest.split_first_chunk::<4>().ok_or("no row count")?;
    Ok((u32::from_le_bytes(*count), rows))
}

fn check_count(count: u32, parsed: usize) -> Result<(), String> {
    if parsed != count as usize {
        return Err(format!("header says {count} rows, body has {parsed}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_into_messages_under_the_limit_and_read_back() {
        let row = EventRow {
            title: "t".repeat(1000),
            ..EventRow::default()
        };
        let rows = vec![row; 300];
        let messages = encode(&rows);
        assert!(messages.len() > 2);
        assert!(messages.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
        let total: u32 = messages.iter().map(|m| decode(m).unwrap().1).sum();
        assert_eq!(total, 300);
        let mut bad = messages[0].clone();
        bad.truncate(bad.len() - 1);
        assert!(decode(&bad).is_err());
        assert!(decode(b"garbage").is_err());
        bad = messages[0].clone();
        bad[3] += 1;
        assert!(decode(&bad).unwrap_err().contains("header says"));
        bad = messages[0].clone();
        bad[2] = b'9';
        assert!(decode(&bad).unwrap_err().contains("layout"));
    }

    #[test]
    fn a_message_queued_in_the_previous_layout_is_read_and_upgraded() {
        let row = EventRow {
            site_id: "s".into(),
            fixed: 1,
            event_title: "checkout".into(),
            ..EventRow::default()
        };
        let message = encode(std::slice::from_ref(&row)).remove(0);
        assert_eq!(&message[..3], b"PL2");
        // The previous deployment's: `PL1`, rows without `event_title` (length byte and 8).
        let old = [b"PL1", &message[3..message.len() - 9]].concat();
        let (rows, count) = decode(&old).unwrap();
        let upgraded = EventRow {
            event_title: String::new(),
            ..row
        };
        assert_eq!(
            (rows, count),
            (Rows::Events(pathlight_ingest::write_rows(&[upgraded])), 1)
        );
    }

    #[test]
    fn users_rows_travel_in_messages_of_their_own() {
        let user = UserRow {
            site_id: "s".into(),
            user_id: "u-1".into(),
            traits: r#"{"plan":"pro"}"#.into(),
            updated_ms: 7,
        };
        let messages = encode_users(&[user.clone(), user.clone()]);
        assert_eq!(messages.len(), 1);
        assert_eq!(&messages[0][..3], b"PU1");
        let rows = pathlight_ingest::write_user_rows(&[user.clone(), user]);
        assert_eq!(decode(&messages[0]), Ok((Rows::Users(rows), 2)));
        let mut short = messages[0].clone();
        short.truncate(short.len() - 1);
        assert!(decode(&short).is_err());
        short = messages[0].clone();
        short[3] = 3;
        assert!(decode(&short).unwrap_err().contains("header says 3 rows"));
    }
}
