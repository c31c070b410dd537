//! Buffers: `proxy_get_buffer_bytes`, `proxy_set_buffer_bytes`, `proxy_get_buffer_status`.
//!
//! Ids: 0 request body, 1 response body, 2/3 downstream/upstream data, 4 http-call response body,
//! 5 gRPC message, 6 VM config, 7 plugin config, 8 foreign-function args. Availability follows
//! Envoy (`proxy-wasm-abi.md` §1.2, §2.8). No policy and no I/O here.

use wasmtime::Caller;

use super::{Hc, allowed, mem, ok, u};
use crate::host::memory;
use crate::host::state::{Access, Callback, HostState, Status};

/// What a buffer id resolves to in the current callback.
enum Buf {
    /// Readable bytes (a copy).
    Bytes(Vec<u8>),
    /// Ok + empty (a stream body outside its callback).
    Empty,
    /// NotFound (not available in this callback).
    NotFound,
    /// BadArgument (unknown id).
    Bad,
}

fn lookup(state: &mut HostState, id: u32) -> Buf {
    match id {
        0 | 1 => match state.stream() {
            Some(s) => {
                let slot = if id == 0 {
                    &s.request_body
                } else {
                    &s.response_body
                };
                if slot.access == Access::None {
                    Buf::Empty
                } else {
                    Buf::Bytes(slot.value.clone())
                }
            }
            None => Buf::Empty,
        },
        4 => match (&state.call_response, state.callback) {
            (Some(r), Callback::HttpCallResponse) => Buf::Bytes(r.body.clone()),
            _ => Buf::NotFound,
        },
        6 if state.callback == Callback::VmStart => {
            Buf::Bytes(state.options().vm_configuration.clone())
        }
        7 if state.callback == Callback::Configure => {
            Buf::Bytes(state.options().configuration.clone())
        }
        2 | 3 | 5 | 6 | 7 | 8 => Buf::NotFound,
        _ => Buf::Bad,
    }
}

/// The slice `start .. start + max` of `data`, clamped to its end.
pub(crate) fn window(data: &[u8], start: u32, max: u32) -> &[u8] {
    let len = data.len() as u64;
    let start = u64::from(start).min(len);
    let end = (start + u64::from(max)).min(len);
    let (Ok(s), Ok(e)) = (usize::try_from(start), usize::try_from(end)) else {
        return &[];
    };
    data.get(s..e).unwrap_or(&[])
}

/// `proxy_get_buffer_bytes(id, start, max_size, ret_ptr_ptr, ret_size_ptr)`.
pub(crate) fn proxy_get_buffer_bytes(
    mut caller: Caller<'_, HostState>,
    id: i32,
    start: i32,
    max: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Hc {
    allowed(&caller, "proxy_get_buffer_bytes")?;
    let data = match lookup(caller.data_mut(), u(id)) {
        Buf::Bytes(b) => b,
        Buf::Empty => Vec::new(),
        Buf::NotFound => return ok(Status::NotFound),
        Buf::Bad => return ok(Status::BadArgument),
    };
    let slice = window(&data, u(start), u(max));
    mem!(memory::return_bytes(
        &mut caller,
        slice,
        u(ret_ptr),
        u(ret_size)
    ));
    ok(Status::Ok)
}

/// Envoy's splice rule: `start == 0` drains `size` bytes then prepends; `start >= len` appends;
/// anything else is BadArgument.
pub(crate) fn splice(buf: &mut Vec<u8>, start: u32, size: u32, data: &[u8]) -> Status {
    let len = buf.len() as u64;
    if start == 0 {
        let drain = usize::try_from(u64::from(size).min(len)).unwrap_or(buf.len());
        buf.drain(..drain.min(buf.len()));
        buf.splice(0..0, data.iter().copied());
        Status::Ok
    } else if u64::from(start) >= len {
        buf.extend_from_slice(data);
        Status::Ok
    } else {
        Status::BadArgument
    }
}

/// `proxy_set_buffer_bytes(id, start, size, data_ptr, data_size)`: stream bodies only.
pub(crate) fn proxy_set_buffer_bytes(
    mut caller: Caller<'_, HostState>,
    id: i32,
    start: i32,
    size: i32,
    data_ptr: i32,
    data_size: i32,
) -> Hc {
    allowed(&caller, "proxy_set_buffer_bytes")?;
    let data = mem!(memory::read(&mut caller, u(data_ptr), u(data_size)));
    let id = u(id);
    if id > 1 {
        return ok(Status::BadArgument);
    }
    let Some(stream) = caller.data_mut().stream() else {
        return ok(Status::BadArgument);
    };
    let slot = if id == 0 {
        &mut stream.request_body
    } else {
        &mut stream.response_body
    };
    if slot.access != Access::ReadWrite {
        return ok(Status::BadArgument);
    }
    ok(splice(&mut slot.value, u(start), u(size), &data))
}

/// `proxy_get_buffer_status(id, ret_size_ptr, ret_flags_ptr)`: size, flags 0.
pub(crate) fn proxy_get_buffer_status(
    mut caller: Caller<'_, HostState>,
    id: i32,
    ret_size: i32,
    ret_flags: i32,
) -> Hc {
    allowed(&caller, "proxy_get_buffer_status")?;
    let size = match lookup(caller.data_mut(), u(id)) {
        Buf::Bytes(b) => b.len(),
        Buf::Empty => 0,
        Buf::NotFound => return ok(Status::NotFound),
        Buf::Bad => return ok(Status::BadArgument),
    };
    mem!(memory::write_u32(
        &mut caller,
        u(ret_size),
        u32::try_from(size).unwrap_or(u32::MAX)
    ));
    mem!(memory::write_u32(&mut caller, u(ret_flags), 0));
    ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(buf: &str, start: u32, size: u32, data: &str, expected: (Status, &str)) {
        let mut b = buf.as_bytes().to_vec();
        let status = splice(&mut b, start, size, data.as_bytes());
        assert_eq!((status, String::from_utf8_lossy(&b).as_ref()), expected);
    }

    #[test]
    fn splice_rules() {
        check("hello", 0, 0, ">", (Status::Ok, ">hello")); // prepend
        check("hello", 0, 5, "bye", (Status::Ok, "bye")); // replace all
        check("hello", 0, u32::MAX, "bye", (Status::Ok, "bye")); // replace, size clamped
        check("hello", 0, 2, "HE", (Status::Ok, "HEllo")); // drain then prepend
        check("hello", 5, 0, "!", (Status::Ok, "hello!")); // append
        check("hello", 99, 0, "!", (Status::Ok, "hello!")); // append past the end
        check("hello", 2, 1, "x", (Status::BadArgument, "hello")); // splice in the middle
    }

    use std::sync::Arc;

    use crate::host::PluginOptions;
    use crate::host::state::{CallResponse, Shared, StreamState};

    fn outcome(b: Buf) -> Result<Vec<u8>, &'static str> {
        match b {
            Buf::Bytes(b) => Ok(b),
            Buf::Empty => Ok(Vec::new()),
            Buf::NotFound => Err("NotFound"),
            Buf::Bad => Err("BadArgument"),
        }
    }

    #[track_caller]
    fn check_buf(callback: Callback, body_access: Access, id: u32, expected: Result<&[u8], &str>) {
        let options = PluginOptions {
            configuration: b"plugin".to_vec(),
            vm_configuration: b"vm".to_vec(),
            ..PluginOptions::default()
        };
        let mut state = HostState::new(Arc::new(Shared::new(options)));
        let mut stream = StreamState::default();
        stream.request_body.value = b"body".to_vec();
        stream.request_body.access = body_access;
        state.streams.insert(2, stream);
        state.effective_context = 2;
        state.callback = callback;
        state.call_response = Some(CallResponse {
            body: b"call".to_vec(),
            ..CallResponse::default()
        });
        let got = outcome(lookup(&mut state, id));
        assert_eq!(
            got.as_deref().map_err(|e| *e),
            expected,
            "buffer {id} in {callback:?}"
        );
    }

    #[test]
    fn buffer_availability_as_envoy() {
        check_buf(Callback::VmStart, Access::None, 6, Ok(b"vm"));
        check_buf(Callback::VmStart, Access::None, 7, Err("NotFound"));
        check_buf(Callback::Configure, Access::None, 7, Ok(b"plugin"));
        check_buf(Callback::Stream, Access::None, 7, Err("NotFound"));
        check_buf(Callback::Stream, Access::ReadWrite, 0, Ok(b"body"));
        // a body outside its callback: Ok + empty
        check_buf(Callback::Stream, Access::None, 0, Ok(b""));
        check_buf(Callback::HttpCallResponse, Access::None, 4, Ok(b"call"));
        check_buf(Callback::Stream, Access::None, 4, Err("NotFound"));
        check_buf(Callback::Stream, Access::None, 2, Err("NotFound"));
        check_buf(Callback::Stream, Access::None, 9, Err("BadArgument"));
    }

    #[test]
    fn window_clamps() {
        assert_eq!(window(b"abcdef", 0, u32::MAX), b"abcdef");
        assert_eq!(window(b"abcdef", 2, 2), b"cd");
        assert_eq!(window(b"abcdef", 6, 2), b"");
        assert_eq!(window(b"abcdef", u32::MAX, u32::MAX), b"");
    }
}
