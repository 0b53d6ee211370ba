//! A queue message: `b"PL"` and the rows' layout as one ASCII digit (`PL2`), the row count
//! (u32 little-endian), then that many rows of RowBinary (`pathlight_ingest::row`). Rows are
//! encoded once, at the edge; the consumer only checks and concatenates them, and ClickHouse
//! reads them as they are. A message a previous deployment queued in an earlier layout (`PL1`,
//! written before the digit named a layout, holds layout 1) is re-encoded in the current one,
//! as the collector's spool does with old segments, so a deployment never dead-letters the
//! messages still queued by the one before.

use pathlight_ingest::{EventRow, Layout};

const MAGIC: &[u8; 2] = b"PL";
/// Magic, layout digit and row count; the rows follow.
const HEADER_LEN: usize = MAGIC.len() + 1 + 4;

/// Queue messages are at most 128 KB; rows go out in messages of at most this many bytes.
pub const MAX_MESSAGE_BYTES: usize = 100 * 1024;

/// The messages for `rows`, each under [`MAX_MESSAGE_BYTES`] unless a single row is larger
/// (a row is bounded by the wire limits, its properties' JSON by `max_props_json_bytes`: some
/// 64 KB at most, below the queue's limit).
pub fn encode(rows: &[EventRow]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current = header();
    let mut count = 0u32;
    let mut row = Vec::with_capacity(512);
    for r in rows {
        row.clear();
        r.write_row_binary(&mut row);
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

fn header() -> Vec<u8> {
    let mut m = Vec::with_capacity(4096);
    m.extend_from_slice(MAGIC);
    m.push(b'0' + Layout::CURRENT.code());
    m.resize(HEADER_LEN, 0);
    m
}

fn finish(mut m: Vec<u8>, count: u32) -> Vec<u8> {
    m[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&count.to_le_bytes());
    m
}

/// A message's rows (RowBinary, in the current layout) and their count, checked: the header,
/// the count, and every row well formed. `Err` names what is wrong: such a message is poison
/// and goes to the dead-letter queue.
pub fn decode(message: &[u8]) -> Result<(Vec<u8>, u32), String> {
    let rest = message
        .strip_prefix(MAGIC)
        .ok_or("not a Pathlight queue message")?;
    let (digit, rest) = rest.split_first().ok_or("no row layout")?;
    let layout = digit
        .checked_sub(b'0')
        .and_then(Layout::from_code)
        .ok_or("rows of a layout this version does not know")?;
    let (count, rows) = rest.split_first_chunk::<4>().ok_or("no row count")?;
    let count = u32::from_le_bytes(*count);
    let parsed = pathlight_ingest::read_rows_of(rows, layout).map_err(|e| e.to_string())?;
    if parsed.len() != count as usize {
        return Err(format!(
            "header says {count} rows, body has {}",
            parsed.len()
        ));
    }
    let rows = if layout == Layout::CURRENT {
        rows.to_vec()
    } else {
        pathlight_ingest::write_rows(&parsed)
    };
    Ok((rows, count))
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
            (pathlight_ingest::write_rows(&[upgraded]), 1)
        );
    }
}
