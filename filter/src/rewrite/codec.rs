//! The content codings the rewriter decodes and re-encodes, as Go's `compress/gzip` and
//! `compress/flate` see them (apimachinery `rewriteResponse`).
//!
//! * gzip: every valid member (FEXTRA, FNAME, FCOMMENT, FHCRC), concatenated members decoded as one
//!   stream (Go's default multistream mode), CRC-32 and ISIZE checked, nothing but whole members
//!   allowed after the first one; an empty body is an error (Go: `EOF`). Encoded with Go's 10-byte
//!   header (`1f 8b 08 00 00000000 00 ff`) and miniz_oxide at the default level.
//! * deflate: apimachinery uses `flate.NewReader`/`flate.NewWriter`, i.e. **raw** DEFLATE (RFC
//!   1951), not the zlib wrapping RFC 9110 prescribes; bytes after the final block are ignored as
//!   Go's reader ignores them. Output is raw DEFLATE at the best compression level, as Go writes it.
//!   Deliberate extension: a body that is not valid raw DEFLATE (Go fails the request then) but is a
//!   valid zlib stream (RFC 1950 header, Adler-32 checked) is decoded as zlib and re-encoded as zlib.

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

use super::RewriteError;

/// Largest decoded body the rewriter accepts (a larger one is passed on unchanged).
pub const MAX_DECODED_BODY: usize = 32 << 20;

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 0 {
                c >> 1
            } else {
                0xEDB8_8320 ^ (c >> 1)
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE), continuing from `crc`.
pub(crate) fn crc32(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC_TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8);
    }
    !c
}

fn err(msg: &str) -> RewriteError {
    RewriteError(msg.to_owned())
}

/// Inflates one stream from the start of `input`: the decoded bytes and how many input bytes the
/// stream used (the rest follows the final block).
fn inflate(input: &[u8], zlib: bool, limit: usize) -> Result<(Vec<u8>, usize), RewriteError> {
    let mut flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    if zlib {
        flags |= inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER;
    }
    let mut out = vec![0u8; input.len().saturating_mul(4).clamp(256, limit.max(256))];
    let mut state = Box::<DecompressorOxide>::default();
    let (mut in_pos, mut out_pos) = (0, 0);
    loop {
        let rest = input.get(in_pos..).unwrap_or_default();
        let (status, used, written) = decompress(&mut state, rest, &mut out, out_pos, flags);
        in_pos += used;
        out_pos += written;
        match status {
            TINFLStatus::Done => {
                out.truncate(out_pos);
                return Ok((out, in_pos));
            }
            TINFLStatus::HasMoreOutput => {
                if out.len() >= limit {
                    return Err(err("decoded body too large"));
                }
                out.resize(out.len().saturating_mul(2).min(limit), 0);
            }
            TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
                return Err(err("unexpected EOF"));
            }
            TINFLStatus::Adler32Mismatch => return Err(err("zlib: invalid checksum")),
            _ => return Err(err("flate: corrupt input")),
        }
    }
}

fn le16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(*b.get(at)?) | usize::from(*b.get(at + 1)?) << 8)
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Go `gzip.Reader` reading `body` to EOF (multistream).
pub(crate) fn gunzip(body: &[u8]) -> Result<Vec<u8>, RewriteError> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let eof = || err("gzip: unexpected EOF");
    let mut out = Vec::new();
    let mut input = body;
    let mut first = true;
    loop {
        if input.is_empty() {
            return if first {
                Err(err("gzip: EOF"))
            } else {
                Ok(out)
            };
        }
        let header = input.get(..10).ok_or_else(eof)?;
        if header[..3] != [0x1f, 0x8b, 8] {
            return Err(err("gzip: invalid header"));
        }
        let flags = header[3];
        let mut p = 10;
        if flags & FEXTRA != 0 {
            p += 2 + le16(input, p).ok_or_else(eof)?;
            if p > input.len() {
                return Err(eof());
            }
        }
        for flag in [FNAME, FCOMMENT] {
            if flags & flag != 0 {
                // Go reads the string into a 512-byte buffer, NUL included.
                let rest = input.get(p..).unwrap_or_default();
                match rest.iter().take(512).position(|&b| b == 0) {
                    Some(nul) => p += nul + 1,
                    None if rest.len() >= 512 => return Err(err("gzip: invalid header")),
                    None => return Err(eof()),
                }
            }
        }
        if flags & FHCRC != 0 {
            let want = le16(input, p).ok_or_else(eof)?;
            if want != (crc32(0, &input[..p]) & 0xffff) as usize {
                return Err(err("gzip: invalid header"));
            }
            p += 2;
        }
        let limit = MAX_DECODED_BODY.saturating_sub(out.len());
        let (data, used) = inflate(&input[p..], false, limit)?;
        p += used;
        let (crc, size) = (
            le32(input, p).ok_or_else(eof)?,
            le32(input, p + 4).ok_or_else(eof)?,
        );
        if crc != crc32(0, &data) || size != data.len() as u32 {
            return Err(err("gzip: invalid checksum"));
        }
        out.extend_from_slice(&data);
        input = &input[p + 8..];
        first = false;
    }
}

/// Go `gzip.Writer` output for `data` (default level, Go's header).
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend_from_slice(&crc32(0, data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Whether `b` starts with a valid zlib header (RFC 1950: method 8, window <= 32 KiB, check bits).
fn zlib_header(b: &[u8]) -> bool {
    match b {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// The `deflate` coding: raw DEFLATE as Go's `flate.NewReader`, else zlib (see the module docs).
/// Returns the decoded bytes and whether they were zlib-wrapped.
pub(crate) fn inflate_http(body: &[u8]) -> Result<(Vec<u8>, bool), RewriteError> {
    match inflate(body, false, MAX_DECODED_BODY) {
        Ok((data, _)) => Ok((data, false)),
        Err(e) if zlib_header(body) => match inflate(body, true, MAX_DECODED_BODY) {
            Ok((data, _)) => Ok((data, true)),
            Err(_) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Re-encodes for the `deflate` coding: raw DEFLATE at the best level (Go's
/// `flate.BestCompression`), or zlib when the input was zlib.
pub(crate) fn deflate(data: &[u8], zlib: bool) -> Vec<u8> {
    if zlib {
        miniz_oxide::deflate::compress_to_vec_zlib(data, 9)
    } else {
        miniz_oxide::deflate::compress_to_vec(data, 9)
    }
}
