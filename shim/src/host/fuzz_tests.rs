//! Property tests (the host's "fuzz targets", `proptest` on stable) for what the host decodes
//! from a guest: the header-map wire format (`pairs`) and guest-memory bounds (`memory`).
//!
//! The memory checks run the real `memory::read`/`memory::write` through a hand-assembled
//! module whose exports call back into the host, in a `Store` with a memory of 0–3 pages; far
//! larger sizes go through the pure `memory::range`. Case counts: `PROPTEST_CASES` (default
//! [`DEFAULT_CASES`]); failures are not persisted to disk.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::{Arc, Mutex, OnceLock};

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use wasmtime::{Caller, Engine, Instance, Linker, Module, Store};

use super::HeaderList;
use super::PluginOptions;
use super::memory::{self, MemError};
use super::pairs::{MAX_MAP_BYTES, MAX_PAIRS, decode, encode};
use super::state::{HostState, Shared};

/// Cases per property without `PROPTEST_CASES`.
const DEFAULT_CASES: u32 = 512;

fn runner(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// === pairs ===

fn header_list() -> impl Strategy<Value = HeaderList> {
    let bytes = prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..12),
        "[a-z:-]{1,10}".prop_map(String::into_bytes),
    ];
    prop::collection::vec((bytes.clone(), bytes), 0..8)
}

/// The byte offsets of every NUL terminator in `encode(pairs)`.
fn terminators(pairs: &HeaderList) -> Vec<usize> {
    let mut pos = 4 + 8 * pairs.len();
    let mut out = Vec::new();
    for (k, v) in pairs {
        pos += k.len();
        out.push(pos);
        pos += 1 + v.len();
        out.push(pos);
        pos += 1;
    }
    out
}

proptest! {
    #![proptest_config(runner(DEFAULT_CASES))]

    /// Arbitrary bytes never panic; what decodes re-encodes to the same bytes.
    #[test]
    fn pairs_decode_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let pairs = decode(&bytes);
        if !pairs.is_empty() {
            prop_assert_eq!(encode(&pairs), bytes);
        }
    }

    /// Arbitrary byte-shaped headers (plausible count and lengths) never panic either.
    #[test]
    fn pairs_decode_structured_garbage(
        count in prop_oneof![0u32..4, Just(u32::MAX), Just(1025), Just(1024)],
        lengths in prop::collection::vec(prop_oneof![0u32..6, Just(u32::MAX), Just(u32::MAX - 1)], 0..8),
        tail in prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..40),
    ) {
        let mut bytes = count.to_le_bytes().to_vec();
        for l in lengths {
            bytes.extend_from_slice(&l.to_le_bytes());
        }
        bytes.extend_from_slice(&tail);
        let pairs = decode(&bytes);
        if !pairs.is_empty() {
            prop_assert_eq!(encode(&pairs), bytes);
        }
    }

    /// `decode(encode(x)) == x`, including empty and non-UTF-8 names and values.
    #[test]
    fn pairs_round_trip(pairs in header_list()) {
        prop_assert_eq!(decode(&encode(&pairs)), pairs);
    }

    /// Malformed maps decode as the empty map, as in cpp-host: truncated, overlong count,
    /// a missing NUL, trailing bytes.
    #[test]
    fn pairs_malformed_is_empty(
        pairs in header_list().prop_filter("non-empty", |p| !p.is_empty()),
        cut in any::<prop::sample::Index>(),
        nul in any::<prop::sample::Index>(),
        junk in 1u8..=255,
        extra in prop::collection::vec(any::<u8>(), 1..6),
    ) {
        let good = encode(&pairs);
        let truncated = &good[..cut.index(good.len())];
        prop_assert_eq!(decode(truncated), Vec::new(), "truncated to {}", truncated.len());
        let mut overlong = good.clone();
        let count = u32::try_from(pairs.len()).unwrap() + 1;
        overlong[..4].copy_from_slice(&count.to_le_bytes());
        prop_assert_eq!(decode(&overlong), Vec::new(), "count + 1");
        let mut no_nul = good.clone();
        let at = terminators(&pairs);
        no_nul[at[nul.index(at.len())]] = junk;
        prop_assert_eq!(decode(&no_nul), Vec::new(), "missing NUL");
        let mut trailing = good;
        trailing.extend_from_slice(&extra);
        prop_assert_eq!(decode(&trailing), Vec::new(), "trailing bytes");
    }
}

#[test]
fn pairs_limits() {
    // More than MAX_PAIRS empty pairs: well-formed but refused.
    let many: HeaderList = vec![(Vec::new(), Vec::new()); MAX_PAIRS + 1];
    assert_eq!(decode(&encode(&many)), Vec::new());
    let most: HeaderList = vec![(Vec::new(), Vec::new()); MAX_PAIRS];
    assert_eq!(decode(&encode(&most)), most);
    // An encoding over MAX_MAP_BYTES is refused; one at the limit is not.
    let fixed = 4 + 8 + 2;
    let at_limit: HeaderList = vec![(b"k".to_vec(), vec![b'v'; MAX_MAP_BYTES - fixed - 1])];
    assert_eq!(encode(&at_limit).len(), MAX_MAP_BYTES);
    assert_eq!(decode(&encode(&at_limit)), at_limit);
    let over: HeaderList = vec![(b"k".to_vec(), vec![b'v'; MAX_MAP_BYTES - fixed])];
    assert_eq!(decode(&encode(&over)), Vec::new());
}

// === memory ===

/// Offsets and lengths biased to the edges: 0, page boundaries, and near `u32::MAX`.
fn edge_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        0u32..=70_000,
        (0u32..=4).prop_map(|p| p * 65_536),
        (0u32..=4, 0u32..=8).prop_map(|(p, d)| (p * 65_536).wrapping_sub(d)),
        (u32::MAX - 70_000)..=u32::MAX,
        any::<u32>(),
    ]
}

fn mem_len() -> impl Strategy<Value = usize> {
    const GIB4: usize = 1 << 32;
    prop_oneof![
        Just(0usize),
        (0usize..=4).prop_map(|p| p * 65_536),
        0usize..=300_000,
        (GIB4 - 70_000)..=(GIB4 + 70_000),
        Just(usize::MAX),
        any::<usize>(),
    ]
}

/// The range check in u64 arithmetic.
fn in_bounds(mem_len: usize, ptr: u32, len: u32) -> bool {
    u64::from(ptr) + u64::from(len) <= u64::try_from(mem_len).unwrap()
}

/// `(module (import "env" "read" (func (param i32 i32))) (import "env" "write" (func (param
/// i32 i32))) (memory (export "memory") 0) (func (export "read") (param i32 i32) local.get 0
/// local.get 1 call 0) (func (export "write") (param i32 i32) local.get 0 local.get 1 call 1))`
#[rustfmt::skip]
const MODULE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,             // magic, version 1
    0x01, 0x06, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x00,             // type 0: (i32, i32) -> ()
    0x02, 0x18, 0x02,                                           // 2 imports
    0x03, b'e', b'n', b'v', 0x04, b'r', b'e', b'a', b'd', 0x00, 0x00,
    0x03, b'e', b'n', b'v', 0x05, b'w', b'r', b'i', b't', b'e', 0x00, 0x00,
    0x03, 0x03, 0x02, 0x00, 0x00,                               // 2 functions of type 0
    0x05, 0x03, 0x01, 0x00, 0x00,                               // memory, min 0 pages
    0x07, 0x19, 0x03,                                           // 3 exports
    0x06, b'm', b'e', b'm', b'o', b'r', b'y', 0x02, 0x00,
    0x04, b'r', b'e', b'a', b'd', 0x00, 0x02,
    0x05, b'w', b'r', b'i', b't', b'e', 0x00, 0x03,
    0x0a, 0x13, 0x02,                                           // 2 bodies
    0x08, 0x00, 0x20, 0x00, 0x20, 0x01, 0x10, 0x00, 0x0b,       // read: call 0
    0x08, 0x00, 0x20, 0x00, 0x20, 0x01, 0x10, 0x01, 0x0b,       // write: call 1
];

/// The byte the write callback stores.
const FILL: u8 = 0xa5;

type Outcome = Arc<Mutex<Option<Result<Vec<u8>, String>>>>;

fn engine_and_module() -> &'static (Engine, Module) {
    static CELL: OnceLock<(Engine, Module)> = OnceLock::new();
    CELL.get_or_init(|| {
        let engine = Engine::default();
        let module = Module::new(&engine, MODULE).expect("the test module compiles");
        (engine, module)
    })
}

fn mem_result(r: Result<Vec<u8>, MemError>) -> Result<Vec<u8>, String> {
    r.map_err(|e| e.to_string())
}

/// A store with `pages` of guest memory whose `read`/`write` exports run `memory::read` /
/// `memory::write` on the given `(ptr, len)` and record the outcome.
fn instance(pages: u64) -> (Store<HostState>, Instance, Outcome) {
    let (engine, module) = engine_and_module();
    let outcome: Outcome = Arc::default();
    let mut linker: Linker<HostState> = Linker::new(engine);
    let out = outcome.clone();
    linker
        .func_wrap(
            "env",
            "read",
            move |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
                let r = memory::read(&mut caller, ptr.cast_unsigned(), len.cast_unsigned());
                *out.lock().unwrap() = Some(mem_result(r));
            },
        )
        .unwrap();
    let out = outcome.clone();
    linker
        .func_wrap(
            "env",
            "write",
            move |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
                let bytes = vec![FILL; usize::try_from(len.cast_unsigned()).unwrap()];
                let r = memory::write(&mut caller, ptr.cast_unsigned(), &bytes);
                *out.lock().unwrap() = Some(mem_result(r.map(|()| bytes)));
            },
        )
        .unwrap();
    let state = HostState::new(Arc::new(Shared::new(PluginOptions::default())));
    let mut store = Store::new(engine, state);
    let instance = linker.instantiate(&mut store, module).unwrap();
    let mem = instance.get_memory(&mut store, "memory").unwrap();
    mem.grow(&mut store, pages).unwrap();
    (store, instance, outcome)
}

fn call(store: &mut Store<HostState>, instance: &Instance, name: &str, ptr: u32, len: u32) {
    let f = instance
        .get_typed_func::<(i32, i32), ()>(&mut *store, name)
        .unwrap();
    f.call(&mut *store, (ptr.cast_signed(), len.cast_signed()))
        .unwrap();
}

proptest! {
    #![proptest_config(runner(DEFAULT_CASES))]

    /// `range` never panics and accepts exactly the in-bounds ranges.
    #[test]
    fn memory_range_accepts_exactly_in_bounds(mem_len in mem_len(), ptr in edge_u32(), len in edge_u32()) {
        let expected = in_bounds(mem_len, ptr, len).then(|| {
            let start = usize::try_from(ptr).unwrap();
            start..start + usize::try_from(len).unwrap()
        });
        prop_assert_eq!(memory::range(mem_len, ptr, len), expected);
    }

    /// The real guest-memory accessors on a real memory: an in-bounds read returns the bytes
    /// there, an in-bounds write lands there and nowhere else, and everything else is
    /// `OutOfBounds` without a trap or a panic.
    #[test]
    fn memory_read_write_on_a_store(
        pages in 0u64..=3,
        ptr in edge_u32(),
        len in edge_u32(),
        small_len in prop_oneof![0u32..=16, 65_530u32..=65_542, 0u32..=200_000],
    ) {
        let (mut store, instance, outcome) = instance(pages);
        let mem = instance.get_memory(&mut store, "memory").unwrap();
        let size = mem.data_size(&store);
        prop_assert_eq!(u64::try_from(size).unwrap(), pages * 65_536);

        call(&mut store, &instance, "read", ptr, len);
        let read = outcome.lock().unwrap().take().expect("read ran");
        if in_bounds(size, ptr, len) {
            prop_assert_eq!(read.map(|b| b.len()), Ok(usize::try_from(len).unwrap()));
        } else {
            prop_assert_eq!(read, Err(MemError::OutOfBounds.to_string()));
        }

        // Writes allocate `len` bytes host-side, so their lengths stay small.
        call(&mut store, &instance, "write", ptr, small_len);
        let wrote = outcome.lock().unwrap().take().expect("write ran");
        let data = mem.data(&store);
        if in_bounds(size, ptr, small_len) {
            prop_assert!(wrote.is_ok(), "{:?}", wrote);
            let start = usize::try_from(ptr).unwrap();
            let end = start + usize::try_from(small_len).unwrap();
            prop_assert!(data[start..end].iter().all(|b| *b == FILL));
            prop_assert!(data[..start].iter().chain(&data[end..]).all(|b| *b == 0));
            // Read back through the host.
            call(&mut store, &instance, "read", ptr, small_len);
            let back = outcome.lock().unwrap().take().expect("read ran");
            prop_assert_eq!(back, wrote);
        } else {
            prop_assert_eq!(wrote, Err(MemError::OutOfBounds.to_string()));
            prop_assert!(data.iter().all(|b| *b == 0), "an out-of-bounds write changed memory");
        }
    }
}
