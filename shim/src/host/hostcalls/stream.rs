//! Stream control: `proxy_continue_stream`, `proxy_close_stream`, `proxy_send_local_response`.
//!
//! All three are deferred as in Envoy: they record the request on the stream and wake it; the
//! waiting `HttpStream` acts after the VM call returns. Local replies are built with Envoy's rules
//! ([`build_local_reply`]). No I/O here.

use wasmtime::Caller;

use super::headers::lower;
use super::{Hc, allowed, mem, ok, u};
use crate::host::state::{HostState, Status};
use crate::host::{HeaderList, LocalReply, memory, pairs};

/// `proxy_continue_stream(stream_type)`: 0 request, 1 response; 2 ⇒ BadArgument (no TCP here),
/// 3 upstream ⇒ Unimplemented (as Envoy), > 3 ⇒ BadArgument.
pub(crate) fn proxy_continue_stream(mut caller: Caller<'_, HostState>, stream_type: i32) -> Hc {
    allowed(&caller, "proxy_continue_stream")?;
    let t = u(stream_type);
    if t == 3 {
        return ok(Status::Unimplemented);
    }
    let Some(stream) = caller.data_mut().stream() else {
        return ok(Status::BadArgument);
    };
    match t {
        0 => stream.resume_request = true,
        1 => stream.resume_response = true,
        _ => return ok(Status::BadArgument),
    }
    stream.wake.notify_one();
    ok(Status::Ok)
}

/// `proxy_close_stream(stream_type)`: the stream is closed after the call (details
/// `wasm_close_stream`).
pub(crate) fn proxy_close_stream(mut caller: Caller<'_, HostState>, stream_type: i32) -> Hc {
    allowed(&caller, "proxy_close_stream")?;
    if u(stream_type) > 3 {
        return ok(Status::BadArgument);
    }
    let Some(stream) = caller.data_mut().stream() else {
        return ok(Status::BadArgument);
    };
    stream.closed = true;
    stream.wake.notify_one();
    ok(Status::Ok)
}

/// `proxy_send_local_response(status, details, body, headers, grpc_status)`: deferred; the
/// callback's action is forced to stop; only the first reply of a stream counts.
#[expect(clippy::too_many_arguments, reason = "the ABI signature")]
pub(crate) fn proxy_send_local_response(
    mut caller: Caller<'_, HostState>,
    status: i32,
    details_ptr: i32,
    details_size: i32,
    body_ptr: i32,
    body_size: i32,
    headers_ptr: i32,
    headers_size: i32,
    _grpc_status: i32,
) -> Hc {
    allowed(&caller, "proxy_send_local_response")?;
    let details = mem!(memory::read(&mut caller, u(details_ptr), u(details_size)));
    let body = mem!(memory::read(&mut caller, u(body_ptr), u(body_size)));
    let headers = pairs::decode(&mem!(memory::read(
        &mut caller,
        u(headers_ptr),
        u(headers_size)
    )));
    let Some(stream) = caller.data_mut().stream() else {
        return ok(Status::BadArgument);
    };
    if stream.local_reply.is_none() && !stream.local_reply_sent {
        let is_head = stream
            .request_headers
            .value
            .iter()
            .any(|(k, v)| k == b":method" && v.eq_ignore_ascii_case(b"HEAD"));
        stream.local_reply = Some(build_local_reply(
            u(status),
            &details,
            body,
            headers,
            is_head,
        ));
        stream.wake.notify_one();
    }
    ok(Status::Ok)
}

/// Envoy's `prepareLocalReply`: plugin headers added (lowercased, duplicates kept); a non-empty
/// body sets `content-length` and `content-type: text/plain` unless the plugin set one; an empty
/// body removes both; `HEAD` gets no body; details get spaces replaced by underscores.
pub(crate) fn build_local_reply(
    status: u32,
    details: &[u8],
    body: Vec<u8>,
    plugin_headers: HeaderList,
    is_head: bool,
) -> LocalReply {
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (100..=999).contains(s))
        .unwrap_or(500);
    let mut headers: HeaderList = plugin_headers
        .into_iter()
        .map(|(k, v)| (lower(&k), v))
        .filter(|(k, _)| !k.starts_with(b":"))
        .collect();
    headers.retain(|(k, _)| k != b"content-length");
    if body.is_empty() {
        headers.retain(|(k, _)| k != b"content-type");
    } else {
        headers.push((
            b"content-length".to_vec(),
            body.len().to_string().into_bytes(),
        ));
        if !headers.iter().any(|(k, _)| k == b"content-type") {
            headers.push((b"content-type".to_vec(), b"text/plain".to_vec()));
        }
    }
    let details = String::from_utf8_lossy(details).replace(' ', "_");
    LocalReply {
        status,
        headers,
        body: if is_head { Vec::new() } else { body },
        details,
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

    #[track_caller]
    fn check(
        status: u32,
        body: &str,
        plugin: &[(&str, &str)],
        head: bool,
        expected: (u16, &[(&str, &str)], &str),
    ) {
        let r = build_local_reply(
            status,
            b"my details",
            body.as_bytes().to_vec(),
            h(plugin),
            head,
        );
        assert_eq!(
            (r.status, r.headers, r.body),
            (expected.0, h(expected.1), expected.2.as_bytes().to_vec())
        );
        assert_eq!(r.details, "my_details");
    }

    #[test]
    fn local_reply_rules() {
        check(
            403,
            "no",
            &[],
            false,
            (
                403,
                &[("content-length", "2"), ("content-type", "text/plain")],
                "no",
            ),
        );
        check(
            403,
            "{}",
            &[("Content-Type", "application/json")],
            false,
            (
                403,
                &[
                    ("content-type", "application/json"),
                    ("content-length", "2"),
                ],
                "{}",
            ),
        );
        check(
            204,
            "",
            &[
                ("content-type", "x"),
                ("content-length", "9"),
                ("x-a", "1"),
                ("x-a", "2"),
            ],
            false,
            (204, &[("x-a", "1"), ("x-a", "2")], ""),
        );
        check(
            404,
            "gone",
            &[],
            true,
            (
                404,
                &[("content-length", "4"), ("content-type", "text/plain")],
                "",
            ),
        );
        check(70000, "", &[], false, (500, &[], ""));
    }
}
