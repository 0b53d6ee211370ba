//! Gzip request bodies (RFC 1952), inflated under a hard cap before they are decoded.
//!
//! A body is gzip when it starts with the gzip magic `1f 8b`, whatever its `Content-Type`
//! (a tracker sends it with `sendBeacon` or `fetch` and no headers at all, so that no CORS
//! preflight is needed), or when the request says `Content-Encoding: gzip`. Neither CBOR nor
//! JSON can start with `1f`, so the magic never takes a plain body for gzip.
//!
//! The cap is the receiver's largest batch (`limits.max_batch_bytes`): inflating writes into
//! a buffer that grows up to the cap plus one byte and no further, so a small body that would
//! expand into gigabytes (a zip bomb) costs at most that much memory and is refused as
//! [`IngestError::InflatedTooLarge`] (413) as soon as it passes it. Anything else wrong (the
//! header, the deflate data, the CRC-32 or length in the trailer, a body cut short, bytes after
//! the trailer) is [`IngestError::CorruptGzip`] (400). One member only: what
//! `CompressionStream("gzip")` and every gzip library write for one buffer.

use crate::error::IngestError;
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

/// The first two bytes of every gzip member.
pub const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The body to decode: `body` itself, or its inflated bytes (at most `max`) when it is gzip
/// by its magic or by `content_encoding`.
pub fn body<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    max: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, IngestError> {
    let declared = content_encoding.is_some_and(is_gzip_encoding);
    if declared || body.starts_with(&MAGIC) {
        inflate(body, max).map(std::borrow::Cow::Owned)
    } else {
        Ok(std::borrow::Cow::Borrowed(body))
    }
}

/// Whether a `Content-Encoding` value names gzip (`x-gzip` is its old name, RFC 9110 §8.4.1.3).
pub fn is_gzip_encoding(value: &str) -> bool {
    let v = value.trim();
    v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip")
}

/// Header flags (RFC 1952 §2.3.1).
const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;

/// Inflates one gzip member to at most `max` bytes.
pub fn inflate(gz: &[u8], max: usize) -> Result<Vec<u8>, IngestError> {
    let corrupt = |what: &str| IngestError::CorruptGzip(what.to_owned());
    let truncated = || corrupt("the body ends inside the gzip data");
    let [0x1f, 0x8b, method, flags, _, _, _, _, _, _, rest @ ..] = gz else {
        return Err(if gz.starts_with(&MAGIC) || MAGIC.starts_with(gz) {
            truncated()
        } else {
            corrupt("no gzip header (1f 8b)")
        });
    };
    if *method != 8 {
        return Err(corrupt("compression method is not deflate"));
    }
    if flags & 0xe0 != 0 {
        return Err(corrupt("reserved header flags are set"));
    }
    let mut rest = rest;
    if flags & FEXTRA != 0 {
        let [lo, hi, extra @ ..] = rest else {
            return Err(truncated());
        };
        rest = extra
            .get(usize::from(u16::from_le_bytes([*lo, *hi]))..)
            .ok_or_else(truncated)?;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = rest.iter().position(|b| *b == 0).ok_or_else(truncated)?;
            rest = rest.get(end + 1..).unwrap_or_default();
        }
    }
    if flags & FHCRC != 0 {
        let header = gz.get(..gz.len() - rest.len()).unwrap_or_default();
        let [lo, hi, after @ ..] = rest else {
            return Err(truncated());
        };
        if u16::from_le_bytes([*lo, *hi]) != crc32(header) as u16 {
            return Err(corrupt("the header's CRC-16 does not match"));
        }
        rest = after;
    }
    let (out, used) = deflate(rest, max, trailer_size(gz))?;
    let trailer = rest.get(used..).unwrap_or_default();
    let [c0, c1, c2, c3, s0, s1, s2, s3] = *trailer else {
        return Err(if trailer.len() < 8 {
            truncated()
        } else {
            corrupt("data after the gzip trailer (one member only)")
        });
    };
    if u32::from_le_bytes([c0, c1, c2, c3]) != crc32(&out) {
        return Err(corrupt("the CRC-32 of the inflated data does not match"));
    }
    if u32::from_le_bytes([s0, s1, s2, s3]) != out.len() as u32 {
        return Err(corrupt("the inflated length does not match the trailer's"));
    }
    Ok(out)
}

/// The trailer's length field (the inflated size mod 2^32), a first guess at the buffer to
/// allocate: only a guess, since a sender may lie, and never above the cap.
fn trailer_size(gz: &[u8]) -> usize {
    gz.last_chunk::<4>()
        .map_or(0, |s| u32::from_le_bytes(*s) as usize)
}

/// Inflates raw deflate data into at most `max` bytes; the output and the input bytes the
/// deflate stream took.
fn deflate(input: &[u8], max: usize, hint: usize) -> Result<(Vec<u8>, usize), IngestError> {
    let cap = max.saturating_add(1);
    let mut out = vec![0; hint.clamp(256, cap.max(256)).min(cap)];
    let mut state = Box::<DecompressorOxide>::default();
    let (mut used, mut written) = (0, 0);
    // Without TINFL_FLAG_HAS_MORE_INPUT: all of the input is here, so running out of it is
    // an error (a cut body), not a request for more.
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    loop {
        let (status, read, wrote) = decompress(
            &mut state,
            input.get(used..).unwrap_or_default(),
            &mut out,
            written,
            flags,
        );
        used += read;
        written += wrote;
        match status {
            TINFLStatus::Done if written < cap => {
                out.truncate(written);
                return Ok((out, used));
            }
            TINFLStatus::Done | TINFLStatus::HasMoreOutput if out.len() >= cap => {
                return Err(IngestError::InflatedTooLarge { max });
            }
            TINFLStatus::HasMoreOutput => out.resize(out.len().saturating_mul(2).min(cap), 0),
            TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
                return Err(IngestError::CorruptGzip(
                    "the body ends inside the gzip data".into(),
                ));
            }
            _ => {
                return Err(IngestError::CorruptGzip(
                    "the deflate data is corrupt".into(),
                ));
            }
        }
    }
}

/// CRC-32 (ISO-HDLC, as gzip uses), a table a byte at a time: 1 KB of table in the edge
/// worker's wasm rather than a crate's 16.
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    !data.iter().fold(!0u32, |c, b| {
        TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// A gzip member of `data` with the given header flags and fields (and its header CRC when
/// `flags` asks for one), for tests.
#[cfg(test)]
pub(crate) fn gzip_with(data: &[u8], flags: u8, fields: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(fields);
    if flags & FHCRC != 0 {
        out.extend_from_slice(&(crc32(&out) as u16).to_le_bytes());
    }
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// `data` as gzip, for tests.
#[cfg(test)]
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_with(data, 0, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Records the largest allocation made on a thread while it watches: the proof that a
    /// bomb never makes the inflater allocate past its cap.
    struct Watch;
    thread_local! {
        static WATCHING: Cell<bool> = const { Cell::new(false) };
    }
    static LARGEST: AtomicUsize = AtomicUsize::new(0);
    // Test-only: forwards every call to the system allocator unchanged, only noting sizes.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Watch {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if WATCHING.with(Cell::get) {
                LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
            }
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if WATCHING.with(Cell::get) {
                LARGEST.fetch_max(new_size, Ordering::Relaxed);
            }
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
    #[global_allocator]
    static ALLOC: Watch = Watch;

    /// `printf 'hello, pathlight\n' > hello.txt; gzip -9 hello.txt`: with the file's name.
    const FROM_GZIP: &str = "1f8b0808465f176b020368656c6c6f2e74787400cb48cdc9c9d75128482cc9c8c94ccf28e102003e0a708111000000";
    /// Python's `gzip.compress(b'hello, pathlight\n', mtime=0)`: no name.
    const FROM_PYTHON: &str =
        "1f8b0800000000000203cb48cdc9c9d75128482cc9c8c94ccf28e102003e0a708111000000";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn reason(r: Result<Vec<u8>, IngestError>) -> (u16, &'static str) {
        let e = r.expect_err("refused");
        (e.status().as_u16(), e.reason())
    }

    #[test]
    fn crc32_is_gzips() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn gzip_from_other_tools_inflates() {
        for gz in [FROM_GZIP, FROM_PYTHON] {
            assert_eq!(inflate(&hex(gz), 100).unwrap(), b"hello, pathlight\n");
        }
        let data = b"x".repeat(100_000);
        assert_eq!(inflate(&gzip(&data), 100_000).unwrap(), data);
        assert_eq!(inflate(&gzip(b""), 0).unwrap(), b"");
    }

    #[test]
    fn optional_header_fields_are_skipped_and_the_header_crc_checked() {
        let fields = [
            &[3, 0, b'a', b'b', b'c'][..],
            b"name.cbor\0",
            b"a comment\0",
        ]
        .concat();
        let gz = gzip_with(b"payload", FEXTRA | FNAME | FCOMMENT | FHCRC, &fields);
        assert_eq!(inflate(&gz, 100).unwrap(), b"payload");
        let mut bad = gz.clone();
        bad[12] ^= 1; // inside the extra field, under the header CRC
        assert_eq!(reason(inflate(&bad, 100)), (400, "corrupt_gzip"));
    }

    #[test]
    fn every_truncation_and_broken_part_is_corrupt_gzip() {
        let gz = gzip_with(b"hello, hello, hello", FNAME, b"x\0");
        for cut in 0..gz.len() {
            assert_eq!(
                reason(inflate(&gz[..cut], 100)),
                (400, "corrupt_gzip"),
                "cut {cut}"
            );
        }
        let n = gz.len();
        for (what, at, flip) in [
            ("magic", 1, 0x01),
            ("method", 2, 0x01),
            ("reserved flag", 3, 0x80),
            ("crc", n - 8, 0x01),
            ("length", n - 4, 0x01),
            ("deflate block type", 12, 0x06),
        ] {
            let mut bad = gz.clone();
            bad[at] ^= flip;
            assert_eq!(reason(inflate(&bad, 100)), (400, "corrupt_gzip"), "{what}");
        }
        let two_members = [gz.clone(), gz.clone()].concat();
        assert_eq!(reason(inflate(&two_members, 100)), (400, "corrupt_gzip"));
        assert_eq!(reason(inflate(b"{\"a\":1}", 100)), (400, "corrupt_gzip"));
    }

    #[test]
    fn a_bomb_is_refused_past_the_cap_without_allocating_past_it() {
        let max = 512 * 1024;
        // 16 MiB of zeros in 16 KB, its trailer claiming the truth (and so a large buffer).
        let bomb = gzip(&vec![0; 16 << 20]);
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        LARGEST.store(0, Ordering::Relaxed);
        WATCHING.with(|w| w.set(true));
        let got = inflate(&bomb, max);
        WATCHING.with(|w| w.set(false));
        assert_eq!(reason(got), (413, "inflated_too_large"));
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(
            largest <= max + 1,
            "allocated {largest} B with a cap of {max}"
        );
        // Exactly the cap is fine; one byte more is not.
        assert_eq!(inflate(&gzip(&vec![7; 1000]), 1000).unwrap().len(), 1000);
        assert_eq!(
            reason(inflate(&gzip(&vec![7; 1001]), 1000)),
            (413, "inflated_too_large")
        );
    }

    #[test]
    fn bodies_are_gzip_by_magic_or_by_header() {
        let plain = b"\xa5\x00\x01";
        assert!(matches!(
            body(plain, None, 10),
            Ok(std::borrow::Cow::Borrowed(_))
        ));
        assert!(matches!(
            body(plain, Some("identity"), 10),
            Ok(std::borrow::Cow::Borrowed(_))
        ));
        let gz = gzip(plain);
        assert_eq!(&*body(&gz, None, 10).unwrap(), plain);
        assert_eq!(&*body(&gz, Some("gzip"), 10).unwrap(), plain);
        let e = body(plain, Some("gzip"), 10).unwrap_err();
        assert_eq!((e.status().as_u16(), e.reason()), (400, "corrupt_gzip"));
        assert_eq!(e.to_string(), "corrupt gzip body: no gzip header (1f 8b)");
    }
}
