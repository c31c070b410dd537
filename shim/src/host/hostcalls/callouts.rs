//! Callouts: `proxy_http_call`, `proxy_get_status`, and the `proxy_grpc_*` family (no gRPC
//! clusters exist, so calls answer ParseFailure as Envoy does for an unknown cluster).
//!
//! `proxy_http_call` validates before any I/O and queues the request; the VM dispatches it after
//! the current call (`vm.rs`), on the worker's `LocalSet`. Tokens are root-owned, 4, 8, 12 …

use std::time::Duration;

use wasmtime::Caller;

use super::headers::lower;
use super::{Hc, allowed, mem, ok, u};
use crate::host::memory;
use crate::host::pairs;
use crate::host::state::{HostState, PendingCall, Status};

/// `proxy_http_call(upstream, headers, body, trailers, timeout_ms, ret_token_ptr)`.
#[expect(clippy::too_many_arguments, reason = "the ABI signature")]
pub(crate) fn proxy_http_call(
    mut caller: Caller<'_, HostState>,
    up_ptr: i32,
    up_size: i32,
    hdr_ptr: i32,
    hdr_size: i32,
    body_ptr: i32,
    body_size: i32,
    trl_ptr: i32,
    trl_size: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> Hc {
    allowed(&caller, "proxy_http_call")?;
    let cluster = mem!(memory::read(&mut caller, u(up_ptr), u(up_size)));
    let headers = pairs::decode(&mem!(memory::read(&mut caller, u(hdr_ptr), u(hdr_size))));
    let body = mem!(memory::read(&mut caller, u(body_ptr), u(body_size)));
    let _trailers = mem!(memory::read(&mut caller, u(trl_ptr), u(trl_size)));
    // Envoy reads the timeout as a signed int: >= 2^31 ms is negative ⇒ BadArgument.
    if timeout_ms < 0 {
        return ok(Status::BadArgument);
    }
    let Some(target) = std::str::from_utf8(&cluster)
        .ok()
        .and_then(|name| caller.data().options().clusters.get(name))
        .cloned()
    else {
        return ok(Status::BadArgument);
    };
    let headers: Vec<_> = headers.into_iter().map(|(k, v)| (lower(&k), v)).collect();
    for required in [&b":method"[..], b":path", b":authority"] {
        if !headers.iter().any(|(k, v)| k == required && !v.is_empty()) {
            return ok(Status::BadArgument);
        }
    }
    let token = caller.data().next_token;
    mem!(memory::write_u32(&mut caller, u(ret_token), token));
    let state = caller.data_mut();
    state.next_token = token.wrapping_add(4).max(4);
    let timeout = (timeout_ms > 0).then(|| Duration::from_millis(u64::from(u(timeout_ms))));
    let owner = state.effective_context;
    state.call_owners.insert(token, owner);
    state.pending_calls.push(PendingCall {
        token,
        target,
        headers,
        body,
        timeout,
    });
    ok(Status::Ok)
}

/// `proxy_get_status(ret_code_ptr, ret_msg_ptr_ptr, ret_msg_size_ptr)`: the last callout status.
pub(crate) fn proxy_get_status(
    mut caller: Caller<'_, HostState>,
    ret_code: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Hc {
    allowed(&caller, "proxy_get_status")?;
    let (code, msg) = caller.data().last_status.clone();
    mem!(memory::write_u32(&mut caller, u(ret_code), code));
    mem!(memory::return_bytes(
        &mut caller,
        &msg,
        u(ret_ptr),
        u(ret_size)
    ));
    ok(Status::Ok)
}

/// `proxy_grpc_call(…)`: no gRPC cluster exists ⇒ ParseFailure (accepted by the SDK).
#[expect(clippy::too_many_arguments, reason = "the ABI signature")]
pub(crate) fn proxy_grpc_call(
    caller: Caller<'_, HostState>,
    _up_ptr: i32,
    _up_size: i32,
    _svc_ptr: i32,
    _svc_size: i32,
    _method_ptr: i32,
    _method_size: i32,
    _md_ptr: i32,
    _md_size: i32,
    _msg_ptr: i32,
    _msg_size: i32,
    _timeout: i32,
    _ret_token: i32,
) -> Hc {
    allowed(&caller, "proxy_grpc_call")?;
    ok(Status::ParseFailure)
}

/// `proxy_grpc_stream(…)`: no gRPC cluster exists ⇒ ParseFailure (accepted by the SDK).
#[expect(clippy::too_many_arguments, reason = "the ABI signature")]
pub(crate) fn proxy_grpc_stream(
    caller: Caller<'_, HostState>,
    _up_ptr: i32,
    _up_size: i32,
    _svc_ptr: i32,
    _svc_size: i32,
    _method_ptr: i32,
    _method_size: i32,
    _md_ptr: i32,
    _md_size: i32,
    _ret_token: i32,
) -> Hc {
    allowed(&caller, "proxy_grpc_stream")?;
    ok(Status::ParseFailure)
}

/// `proxy_grpc_send(token, msg_ptr, msg_size, end_stream)`: no stream can exist ⇒ NotFound
/// (the SDK accepts Ok, BadArgument, NotFound).
pub(crate) fn proxy_grpc_send(
    caller: Caller<'_, HostState>,
    _token: i32,
    _ptr: i32,
    _size: i32,
    _end: i32,
) -> Hc {
    allowed(&caller, "proxy_grpc_send")?;
    ok(Status::NotFound)
}

/// `proxy_grpc_cancel(token)`: no call can exist ⇒ NotFound (accepted by the SDK).
pub(crate) fn proxy_grpc_cancel(caller: Caller<'_, HostState>, _token: i32) -> Hc {
    allowed(&caller, "proxy_grpc_cancel")?;
    ok(Status::NotFound)
}

/// `proxy_grpc_close(token)`: no stream can exist ⇒ NotFound (accepted by the SDK).
pub(crate) fn proxy_grpc_close(caller: Caller<'_, HostState>, _token: i32) -> Hc {
    allowed(&caller, "proxy_grpc_close")?;
    ok(Status::NotFound)
}
