//! Header maps: `proxy_{get,set}_header_map_pairs`, `proxy_{get,add,replace,remove}_header_map_value`,
//! `proxy_get_header_map_size`.
//!
//! Ids: 0/1 request headers/trailers, 2/3 response headers/trailers, 4/5 gRPC metadata (never
//! available), 6/7 http-call response headers/trailers. Names are lowercased on write, values are
//! raw bytes, order and duplicates are kept, `get` answers the first value. An unavailable map is
//! BadArgument, except `get_header_map_pairs` which answers Ok + empty (Envoy).

use wasmtime::Caller;

use super::{Hc, allowed, mem, ok, u};
use crate::host::state::{Access, Callback, HostState, Status};
use crate::host::{HeaderList, memory, pairs};

/// The map `id` if the current callback may read it (and write it when `write`).
fn map(state: &mut HostState, id: u32, write: bool) -> Result<&mut HeaderList, Status> {
    let callback = state.callback;
    match id {
        0..=3 => {
            let stream = state.stream().ok_or(Status::BadArgument)?;
            let slot = match id {
                0 => &mut stream.request_headers,
                1 => &mut stream.request_trailers,
                2 => &mut stream.response_headers,
                _ => &mut stream.response_trailers,
            };
            match (slot.access, write) {
                (Access::ReadWrite, _) | (Access::ReadOnly, false) => Ok(&mut slot.value),
                _ => Err(Status::BadArgument),
            }
        }
        6 | 7 if callback == Callback::HttpCallResponse => {
            let resp = state.call_response.as_mut().ok_or(Status::BadArgument)?;
            Ok(if id == 6 {
                &mut resp.headers
            } else {
                &mut resp.trailers
            })
        }
        _ => Err(Status::BadArgument),
    }
}

/// Lowercases a header name (ASCII only; other bytes unchanged).
pub(crate) fn lower(name: &[u8]) -> Vec<u8> {
    name.to_ascii_lowercase()
}

/// `proxy_get_header_map_pairs(map, ret_ptr_ptr, ret_size_ptr)`: unavailable ⇒ Ok + (0, 0).
pub(crate) fn proxy_get_header_map_pairs(
    mut caller: Caller<'_, HostState>,
    id: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Hc {
    allowed(&caller, "proxy_get_header_map_pairs")?;
    let bytes = match map(caller.data_mut(), u(id), false) {
        Ok(m) if !m.is_empty() => pairs::encode(m),
        _ => Vec::new(),
    };
    mem!(memory::return_bytes(
        &mut caller,
        &bytes,
        u(ret_ptr),
        u(ret_size)
    ));
    ok(Status::Ok)
}

/// `proxy_set_header_map_pairs(map, ptr, size)`: replaces the map; malformed ⇒ empty map.
pub(crate) fn proxy_set_header_map_pairs(
    mut caller: Caller<'_, HostState>,
    id: i32,
    ptr: i32,
    size: i32,
) -> Hc {
    allowed(&caller, "proxy_set_header_map_pairs")?;
    let bytes = mem!(memory::read(&mut caller, u(ptr), u(size)));
    let new: HeaderList = pairs::decode(&bytes)
        .into_iter()
        .map(|(k, v)| (lower(&k), v))
        .collect();
    match map(caller.data_mut(), u(id), true) {
        Ok(m) => {
            *m = new;
            ok(Status::Ok)
        }
        Err(s) => ok(s),
    }
}

/// `proxy_get_header_map_value(map, key_ptr, key_size, ret_ptr_ptr, ret_size_ptr)`: first value.
pub(crate) fn proxy_get_header_map_value(
    mut caller: Caller<'_, HostState>,
    id: i32,
    key_ptr: i32,
    key_size: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Hc {
    allowed(&caller, "proxy_get_header_map_value")?;
    let key = lower(&mem!(memory::read(&mut caller, u(key_ptr), u(key_size))));
    let value = match map(caller.data_mut(), u(id), false) {
        Ok(m) => match m.iter().find(|(k, _)| *k == key) {
            Some((_, v)) => v.clone(),
            None => return ok(Status::NotFound),
        },
        Err(s) => return ok(s),
    };
    mem!(memory::return_bytes(
        &mut caller,
        &value,
        u(ret_ptr),
        u(ret_size)
    ));
    ok(Status::Ok)
}

fn edit(
    mut caller: Caller<'_, HostState>,
    name: &str,
    id: i32,
    key: (i32, i32),
    value: Option<(i32, i32)>,
    f: impl FnOnce(&mut HeaderList, Vec<u8>, Vec<u8>),
) -> Hc {
    allowed(&caller, name)?;
    let k = lower(&mem!(memory::read(&mut caller, u(key.0), u(key.1))));
    let v = match value {
        Some((p, s)) => mem!(memory::read(&mut caller, u(p), u(s))),
        None => Vec::new(),
    };
    match map(caller.data_mut(), u(id), true) {
        Ok(m) => {
            f(m, k, v);
            ok(Status::Ok)
        }
        Err(s) => ok(s),
    }
}

/// `proxy_add_header_map_value(map, key_ptr, key_size, val_ptr, val_size)`: appends.
pub(crate) fn proxy_add_header_map_value(
    caller: Caller<'_, HostState>,
    id: i32,
    kp: i32,
    ks: i32,
    vp: i32,
    vs: i32,
) -> Hc {
    edit(
        caller,
        "proxy_add_header_map_value",
        id,
        (kp, ks),
        Some((vp, vs)),
        |m, k, v| m.push((k, v)),
    )
}

/// `proxy_replace_header_map_value(…)`: replaces all values of the key (first position kept).
pub(crate) fn proxy_replace_header_map_value(
    caller: Caller<'_, HostState>,
    id: i32,
    kp: i32,
    ks: i32,
    vp: i32,
    vs: i32,
) -> Hc {
    edit(
        caller,
        "proxy_replace_header_map_value",
        id,
        (kp, ks),
        Some((vp, vs)),
        replace,
    )
}

/// Replaces every value of `k` by `v`, keeping the position of the first; appends if absent.
pub(crate) fn replace(m: &mut HeaderList, k: Vec<u8>, v: Vec<u8>) {
    match m.iter().position(|(name, _)| *name == k) {
        Some(first) => {
            let mut i = 0;
            m.retain(|(name, _)| {
                let keep = *name != k || i == first;
                i += 1;
                keep
            });
            if let Some(entry) = m.get_mut(first) {
                entry.1 = v;
            }
        }
        None => m.push((k, v)),
    }
}

/// `proxy_remove_header_map_value(map, key_ptr, key_size)`: Ok even if absent.
pub(crate) fn proxy_remove_header_map_value(
    caller: Caller<'_, HostState>,
    id: i32,
    kp: i32,
    ks: i32,
) -> Hc {
    edit(
        caller,
        "proxy_remove_header_map_value",
        id,
        (kp, ks),
        None,
        |m, k, _| m.retain(|(name, _)| *name != k),
    )
}

/// `proxy_get_header_map_size(map, ret_size_ptr)`: byte size of names and values.
pub(crate) fn proxy_get_header_map_size(
    mut caller: Caller<'_, HostState>,
    id: i32,
    ret: i32,
) -> Hc {
    allowed(&caller, "proxy_get_header_map_size")?;
    let size: usize = match map(caller.data_mut(), u(id), false) {
        Ok(m) => m.iter().map(|(k, v)| k.len() + v.len()).sum(),
        Err(s) => return ok(s),
    };
    mem!(memory::write_u32(
        &mut caller,
        u(ret),
        u32::try_from(size).unwrap_or(u32::MAX)
    ));
    ok(Status::Ok)
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

    #[track_caller]
    fn check(before: &[(&str, &str)], key: &str, value: &str, after: &[(&str, &str)]) {
        let mut m = h(before);
        replace(&mut m, key.as_bytes().to_vec(), value.as_bytes().to_vec());
        assert_eq!(m, h(after));
    }

    use std::sync::Arc;

    use crate::host::PluginOptions;
    use crate::host::state::{CallResponse, Shared, StreamState};

    /// `map(id, write)` in a state where the request headers have `req` access, the effective
    /// context is the stream (or the root), and `callback` runs.
    #[track_caller]
    fn check_map(
        req: Access,
        on_stream: bool,
        callback: Callback,
        id: u32,
        write: bool,
        expected: Result<(), Status>,
    ) {
        let mut state = HostState::new(Arc::new(Shared::new(PluginOptions::default())));
        let mut stream = StreamState::default();
        stream.request_headers.access = req;
        state.streams.insert(2, stream);
        state.effective_context = if on_stream { 2 } else { 1 };
        state.callback = callback;
        if callback == Callback::HttpCallResponse {
            state.call_response = Some(CallResponse::default());
        }
        let got = map(&mut state, id, write).map(|_| ());
        assert_eq!(
            got, expected,
            "map {id} write={write} req={req:?} callback={callback:?}"
        );
    }

    #[test]
    fn map_availability_as_envoy() {
        use Access::{None as Gone, ReadOnly, ReadWrite};
        let bad = Err(Status::BadArgument);
        // on_request_headers: read-write
        check_map(ReadWrite, true, Callback::Stream, 0, true, Ok(()));
        // after headers Continue (e.g. in on_request_body): BadArgument (rust-sdk #155)
        check_map(Gone, true, Callback::Stream, 0, false, bad);
        // on_log: read-only
        check_map(ReadOnly, true, Callback::Log, 0, false, Ok(()));
        check_map(ReadOnly, true, Callback::Log, 0, true, bad);
        // response headers are not there during the request phase
        check_map(ReadWrite, true, Callback::Stream, 2, false, bad);
        // root context (on_vm_start, on_tick …): no stream maps
        check_map(ReadWrite, false, Callback::Tick, 0, false, bad);
        // call response maps only during on_http_call_response
        check_map(Gone, false, Callback::HttpCallResponse, 6, false, Ok(()));
        check_map(Gone, true, Callback::Stream, 6, false, bad);
        // gRPC metadata and unknown ids
        check_map(ReadWrite, true, Callback::Stream, 4, false, bad);
        check_map(ReadWrite, true, Callback::Stream, 99, false, bad);
    }

    #[test]
    fn replace_rules() {
        check(
            &[("a", "1"), ("b", "2")],
            "a",
            "x",
            &[("a", "x"), ("b", "2")],
        );
        check(
            &[("a", "1"), ("b", "2"), ("a", "3")],
            "a",
            "x",
            &[("a", "x"), ("b", "2")],
        );
        check(&[("b", "2")], "a", "x", &[("b", "2"), ("a", "x")]);
    }
}
