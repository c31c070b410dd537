//! The proxy-wasm header-map wire format (cpp-host `pairs_util.cc`).
//!
//! `u32 count`, then `count × (u32 key_len, u32 value_len)`, then per pair key, NUL, value, NUL;
//! all integers little-endian, lengths without the NUL. Malformed input decodes as an empty map,
//! as cpp-host does. This module knows bytes only: no guest memory, no HTTP.

use super::HeaderList;

/// cpp-host's limit on an encoded map (1 MiB).
pub(crate) const MAX_MAP_BYTES: usize = 1024 * 1024;
/// cpp-host's limit on the number of pairs.
pub(crate) const MAX_PAIRS: usize = 1024;

/// Encodes `pairs`; an empty map is 4 zero bytes (callers hand `(0, 0)` to the guest instead).
pub(crate) fn encode(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let data: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len_u32(k.len()).to_le_bytes());
        out.extend_from_slice(&len_u32(v.len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Decodes a map; anything malformed (too big, too many pairs, overrun, missing NUL, trailing
/// bytes) is the empty map. Empty input is the empty map too.
pub(crate) fn decode(bytes: &[u8]) -> HeaderList {
    decode_strict(bytes).unwrap_or_default()
}

fn decode_strict(bytes: &[u8]) -> Option<HeaderList> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    if bytes.len() > MAX_MAP_BYTES {
        return None;
    }
    let mut cursor = Cursor { bytes, pos: 0 };
    let count = usize::try_from(cursor.u32()?).ok()?;
    if count > MAX_PAIRS {
        return None;
    }
    let mut sizes = Vec::with_capacity(count);
    for _ in 0..count {
        let k = usize::try_from(cursor.u32()?).ok()?;
        let v = usize::try_from(cursor.u32()?).ok()?;
        sizes.push((k, v));
    }
    let mut pairs = Vec::with_capacity(count);
    for (k, v) in sizes {
        let key = cursor.take_nul_terminated(k)?;
        let value = cursor.take_nul_terminated(v)?;
        pairs.push((key.to_vec(), value.to_vec()));
    }
    (cursor.pos == bytes.len()).then_some(pairs)
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn u32(&mut self) -> Option<u32> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b))
    }

    fn take_nul_terminated(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.take(n)?;
        (self.take(1)? == [0]).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderList {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    /// The Rust SDK's `SERIALIZED_MAP` fixture (v0.2.5 `src/hostcalls.rs`), field by field.
    #[rustfmt::skip]
    const SERIALIZED_MAP: &[u8] = &[
        4, 0, 0, 0,                                      // count: 4 pairs
        7, 0, 0, 0, 3, 0, 0, 0,                          // pair 1 lengths: ":method" 7, "GET" 3
        5, 0, 0, 0, 8, 0, 0, 0,                          // pair 2 lengths: ":path" 5, "/bytes/1" 8
        10, 0, 0, 0, 11, 0, 0, 0,                        // pair 3 lengths: ":authority" 10, "httpbin.org" 11
        10, 0, 0, 0, 10, 0, 0, 0,                        // pair 4 lengths: "Powered-By" 10, "proxy-wasm" 10
        58, 109, 101, 116, 104, 111, 100, 0,             // ":method" NUL
        71, 69, 84, 0,                                   // "GET" NUL
        58, 112, 97, 116, 104, 0,                        // ":path" NUL
        47, 98, 121, 116, 101, 115, 47, 49, 0,           // "/bytes/1" NUL ('1' is 0x31, not the spec's 0x49)
        58, 97, 117, 116, 104, 111, 114, 105, 116, 121, 0, // ":authority" NUL
        104, 116, 116, 112, 98, 105, 110, 46, 111, 114, 103, 0, // "httpbin.org" NUL
        80, 111, 119, 101, 114, 101, 100, 45, 66, 121, 0, // "Powered-By" NUL (the wire keeps case)
        112, 114, 111, 120, 121, 45, 119, 97, 115, 109, 0, // "proxy-wasm" NUL
    ];

    #[test]
    fn golden_sdk_serialized_map() {
        let map = h(&[
            (":method", "GET"),
            (":path", "/bytes/1"),
            (":authority", "httpbin.org"),
            ("Powered-By", "proxy-wasm"),
        ]);
        assert_eq!(encode(&map), SERIALIZED_MAP);
        assert_eq!(decode(SERIALIZED_MAP), map);
    }

    #[test]
    fn golden_single_method_pair() {
        #[rustfmt::skip]
        let bytes = [
            1, 0, 0, 0,                                   // count 1
            7, 0, 0, 0, 3, 0, 0, 0,                       // lengths 7 and 3
            0x3a, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64, 0,  // ":method" NUL
            0x47, 0x45, 0x54, 0,                          // "GET" NUL
        ];
        assert_eq!(encode(&h(&[(":method", "GET")])), bytes);
    }

    #[track_caller]
    fn check(input: &[u8], expected: &HeaderList) {
        assert_eq!(&decode(input), expected, "decode({input:?})");
    }

    #[test]
    fn decode_table() {
        let ok = encode(&h(&[("a", "1"), ("a", "2")]));
        check(&ok, &h(&[("a", "1"), ("a", "2")]));
        check(&[], &h(&[]));
        check(&[0, 0, 0, 0], &h(&[]));
        // malformed => empty
        check(&[1, 0, 0], &h(&[]));
        let mut trailing = ok.clone();
        trailing.push(0);
        check(&trailing, &h(&[]));
        let mut missing_nul = ok.clone();
        if let Some(last) = missing_nul.last_mut() {
            *last = b'x';
        }
        check(&missing_nul, &h(&[]));
        let overrun = [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        check(&overrun, &h(&[]));
        let too_many = 2000u32.to_le_bytes();
        check(&too_many, &h(&[]));
        // raw, non-UTF-8 bytes survive
        let raw = vec![(b"k".to_vec(), vec![0xff, 0xfe])];
        check(&encode(&raw), &raw);
    }
}
