//! Go's `parseRange` and the `multipart/byteranges` body of `serveContent` for several ranges.
//!
//! Pure: it parses headers and frames bytes handed to it; it must not open files.

use std::hash::{BuildHasher as _, RandomState};
use std::time::SystemTime;

/// Why a `Range` header is refused with `416`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RangeError {
    /// Malformed: `invalid range`.
    Invalid,
    /// Every range starts past the end: `invalid range: failed to overlap`.
    NoOverlap,
}

/// One satisfiable range: `(start, length)`.
pub(super) type ByteRange = (u64, u64);

/// Go's `parseRange`: the ranges in request order (empty for no header).
pub(super) fn parse(header: &str, size: u64) -> Result<Vec<ByteRange>, RangeError> {
    if header.is_empty() {
        return Ok(Vec::new());
    }
    let spec = header.strip_prefix("bytes=").ok_or(RangeError::Invalid)?;
    let mut ranges = Vec::new();
    let mut overlap = false;
    for s in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (a, b) = s.split_once('-').ok_or(RangeError::Invalid)?;
        let (a, b) = (a.trim(), b.trim());
        let number = |t: &str| t.parse::<u64>().map_err(|_| RangeError::Invalid);
        let range = if a.is_empty() {
            let n = number(b)?;
            if n == 0 {
                overlap = true;
                continue;
            }
            let n = n.min(size);
            (size - n, n)
        } else {
            let start = number(a)?;
            if start >= size {
                overlap = true;
                continue;
            }
            let end = if b.is_empty() {
                size - 1
            } else {
                number(b)?.min(size - 1)
            };
            if end < start {
                return Err(RangeError::Invalid);
            }
            (start, end - start + 1)
        };
        ranges.push(range);
    }
    if ranges.is_empty() && overlap {
        return Err(RangeError::NoOverlap);
    }
    Ok(ranges)
}

/// `bytes START-END/SIZE`.
pub(super) fn content_range((start, len): ByteRange, size: u64) -> String {
    format!("bytes {start}-{}/{size}", start + len - 1)
}

/// Go's `multipart.randomBoundary`: 60 hex digits (not secret, only unlikely in the payload).
pub(super) fn boundary() -> String {
    let mut out = String::with_capacity(64);
    for i in 0u8..4 {
        let word = RandomState::new().hash_one((i, SystemTime::now()));
        out.push_str(&format!("{word:016x}"));
    }
    out.truncate(60);
    out
}

/// The `multipart/byteranges` body: one part per range with `Content-Range` and `Content-Type`
/// (Go's sorted MIME header order), then the closing delimiter.
pub(super) fn multipart(
    boundary: &str,
    content_type: &str,
    size: u64,
    parts: &[(ByteRange, Vec<u8>)],
) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (range, bytes)) in parts.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Range: {}\r\nContent-Type: {content_type}\r\n\r\n",
                content_range(*range, size)
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}
