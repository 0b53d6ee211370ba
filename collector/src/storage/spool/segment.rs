//! The segment files' format: records framed as `len | crc32 | rows` before their RowBinary
//! payload (the spool's module documentation has the layout), how a segment is named, read
//! back record by record, and cut at its last whole record after a crash.

use pathlight_ingest::Layout;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

/// Bytes of a record's frame.
pub(super) const HEADER: usize = 12;

/// One record of a segment in one buffer: `payload` (RowBinary, under 4 GiB) holding `rows`
/// rows, framed as the module's documentation says. For tests, which write segments as a
/// crashed or older process would have left them; the writer sends frame and payload apart.
pub fn record(payload: &[u8], rows: u32) -> Vec<u8> {
    record_of(payload, rows, Layout::CURRENT)
}

/// [`record`] of rows written in `layout`, as an older version left them.
pub fn record_of(payload: &[u8], rows: u32, layout: Layout) -> Vec<u8> {
    let mut r = Vec::with_capacity(HEADER + payload.len());
    r.extend_from_slice(&header_of(payload, rows, layout));
    r.extend_from_slice(payload);
    r
}

/// The frame [`record`] puts before `payload`.
pub(super) fn header(payload: &[u8], rows: u32) -> [u8; HEADER] {
    header_of(payload, rows, Layout::CURRENT)
}

/// Rows per record fit in the low 24 bits of the `rows` word (a request holds far fewer); the
/// top byte is the layout.
const ROWS_MASK: u32 = 0x00ff_ffff;

fn header_of(payload: &[u8], rows: u32, layout: Layout) -> [u8; HEADER] {
    let mut h = [0; HEADER];
    h[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[4..8].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let word = (rows & ROWS_MASK) | u32::from(layout.code()) << 24;
    h[8..].copy_from_slice(&word.to_le_bytes());
    h
}

/// `NNNNNNNNNNNNNNNNNNNN.seg` files of `dir`, oldest first.
pub(super) fn segment_files(dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let seq = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            out.push((seq, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The file of segment `seq` in `dir`.
pub(super) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

/// A record's RowBinary payload in its segment, and the layout its rows were written in (none:
/// a newer version's, after a rollback; shipped as they are, so ClickHouse refuses them and
/// the segment is kept in `dead/` rather than lost).
pub(super) type Payload = (std::ops::Range<usize>, Option<Layout>);

/// The records of a segment that are whole and match their checksum: where their RowBinary
/// payloads are, the number of rows, and the length of that valid prefix.
pub(super) fn parse(data: &[u8]) -> (Vec<Payload>, u64, usize) {
    let mut payloads = Vec::new();
    let (mut rows, mut at) = (0u64, 0usize);
    while let Some(header) = data.get(at..at + HEADER) {
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (len, crc, n) = (word(0) as usize, word(4), word(8));
        let Some(payload) = data.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let layout = Layout::from_code((n >> 24) as u8);
        payloads.push((at + HEADER..at + HEADER + len, layout));
        rows += u64::from(n & ROWS_MASK);
        at += HEADER + len;
    }
    (payloads, rows, at)
}

/// Cuts a segment left by a previous process back to its last whole record; returns its size
/// and its rows.
pub(super) fn recover(path: &Path) -> anyhow::Result<(u64, u64)> {
    let data = fs::read(path)?;
    let (_, rows, valid) = parse(&data);
    if valid < data.len() {
        tracing::warn!(
            ?path,
            cut = data.len() - valid,
            "spool segment ends in a torn record (a crash mid-write, never acknowledged); cutting it off"
        );
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(valid as u64)?;
    }
    Ok((valid as u64, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_at_the_last_whole_record() {
        let mut data = record(b"first", 1);
        data.extend(record(b"second", 2));
        let whole = data.len();
        let (payloads, rows, valid) = parse(&data);
        let body: Vec<u8> = payloads
            .iter()
            .flat_map(|(r, _)| data[r.clone()].to_vec())
            .collect();
        assert_eq!(
            (body.as_slice(), rows, valid),
            (&b"firstsecond"[..], 3, whole)
        );
        // The rows' layout rides in the top byte of the count.
        let old = record_of(b"old", 5, Layout::FIRST);
        assert_eq!(parse(&old).0, [(HEADER..HEADER + 3, Some(Layout::FIRST))]);
        assert_eq!(parse(&old).1, 5);
        // Every cut of a third record leaves the first two.
        let third = record(b"third", 4);
        for cut in 0..third.len() {
            let mut torn = data.clone();
            torn.extend_from_slice(&third[..cut]);
            assert_eq!(parse(&torn).2, whole, "cut at {cut}");
        }
        // A flipped payload byte fails the checksum.
        let mut corrupt = data.clone();
        corrupt[HEADER + 1] ^= 1;
        assert_eq!(parse(&corrupt), (Vec::new(), 0, 0));
    }
}
