//! Properties: `proxy_get_property`, `proxy_set_property`.
//!
//! Paths are NUL-separated segments (a trailing NUL is accepted). Values use Envoy's encodings:
//! strings raw, integers 8-byte LE, addresses `ip:port`. Request properties come from the
//! stream's *current* request headers. Unknown ⇒ NotFound; empty ⇒ `(0, 0)`.

use std::net::SocketAddr;

use wasmtime::Caller;

use super::{Hc, allowed, mem, ok, u};
use crate::host::state::{HostState, Status, StreamState};
use crate::host::{HeaderList, memory, pairs};

fn header<'a>(map: &'a HeaderList, name: &[u8]) -> Option<&'a [u8]> {
    map.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

fn joined(map: &HeaderList, name: &[u8]) -> Option<Vec<u8>> {
    let values: Vec<&[u8]> = map
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
        .collect();
    (!values.is_empty()).then(|| values.join(&b","[..]))
}

fn addr(a: Option<SocketAddr>) -> Option<Vec<u8>> {
    a.map(|a| a.to_string().into_bytes())
}

fn port(a: Option<SocketAddr>) -> Option<Vec<u8>> {
    a.map(|a| i64::from(a.port()).to_le_bytes().to_vec())
}

/// A stream property for the NUL-split `path`.
fn stream_property(s: &StreamState, path: &[&[u8]]) -> Option<Vec<u8>> {
    let req = &s.request_headers.value;
    let resp = &s.response_headers.value;
    let path_value = header(req, b":path");
    Some(match path {
        [b"request", b"path"] => path_value?.to_vec(),
        [b"request", b"url_path"] => path_value?.split(|b| *b == b'?').next()?.to_vec(),
        [b"request", b"query"] => {
            let p = path_value?;
            let i = p.iter().position(|b| *b == b'?')?;
            p.get(i + 1..)?.to_vec()
        }
        [b"request", b"host"] => header(req, b":authority")?.to_vec(),
        [b"request", b"scheme"] => header(req, b":scheme").unwrap_or(b"http").to_vec(),
        [b"request", b"method"] => header(req, b":method")?.to_vec(),
        [b"request", b"id"] => header(req, b"x-request-id")?.to_vec(),
        [b"request", b"protocol"] => b"HTTP/1.1".to_vec(),
        [b"request", b"referer"] => header(req, b"referer")?.to_vec(),
        [b"request", b"useragent"] => header(req, b"user-agent")?.to_vec(),
        [b"request", b"headers"] => pairs::encode(req),
        [b"request", b"headers", name] => joined(req, &name.to_ascii_lowercase())?,
        [b"response", b"code"] => {
            let code: i64 = std::str::from_utf8(header(resp, b":status")?)
                .ok()?
                .parse()
                .ok()?;
            code.to_le_bytes().to_vec()
        }
        [b"response", b"headers"] if !resp.is_empty() => pairs::encode(resp),
        [b"response", b"headers", name] => joined(resp, &name.to_ascii_lowercase())?,
        [b"source", b"address"] => addr(s.info.source)?,
        [b"source", b"port"] => port(s.info.source)?,
        [b"destination", b"address"] => addr(s.info.destination)?,
        [b"destination", b"port"] => port(s.info.destination)?,
        _ => return None,
    })
}

/// Resolves a property path against the effective context.
pub(crate) fn resolve(state: &mut HostState, raw_path: &[u8]) -> Option<Vec<u8>> {
    let trimmed = raw_path.strip_suffix(&[0]).unwrap_or(raw_path);
    let path: Vec<&[u8]> = trimmed.split(|b| *b == 0).collect();
    let options = state.options();
    match path.as_slice() {
        [b"plugin_name"] => return Some(options.name.clone().into_bytes()),
        [b"plugin_root_id"] => return Some(options.root_id.clone().into_bytes()),
        [b"plugin_vm_id"] => return Some(options.vm_id.clone().into_bytes()),
        _ => {}
    }
    let stream = state.stream()?;
    if let Some(v) = stream.properties.get(trimmed) {
        return Some(v.clone());
    }
    stream_property(stream, &path)
}

/// `proxy_get_property(path, ret_ptr_ptr, ret_size_ptr)`: unknown ⇒ NotFound.
pub(crate) fn proxy_get_property(
    mut caller: Caller<'_, HostState>,
    path_ptr: i32,
    path_size: i32,
    ret_ptr: i32,
    ret_size: i32,
) -> Hc {
    allowed(&caller, "proxy_get_property")?;
    let path = mem!(memory::read(&mut caller, u(path_ptr), u(path_size)));
    let Some(value) = resolve(caller.data_mut(), &path) else {
        return ok(Status::NotFound);
    };
    mem!(memory::return_bytes(
        &mut caller,
        &value,
        u(ret_ptr),
        u(ret_size)
    ));
    ok(Status::Ok)
}

/// `proxy_set_property(path, value)`: stored on the stream (filter state); no stream ⇒ NotFound.
pub(crate) fn proxy_set_property(
    mut caller: Caller<'_, HostState>,
    path_ptr: i32,
    path_size: i32,
    val_ptr: i32,
    val_size: i32,
) -> Hc {
    allowed(&caller, "proxy_set_property")?;
    let path = mem!(memory::read(&mut caller, u(path_ptr), u(path_size)));
    let value = mem!(memory::read(&mut caller, u(val_ptr), u(val_size)));
    let Some(stream) = caller.data_mut().stream() else {
        return ok(Status::NotFound);
    };
    let key = path.strip_suffix(&[0]).unwrap_or(&path).to_vec();
    stream.properties.insert(key, value);
    ok(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::StreamInfo;

    #[track_caller]
    fn check(path: &[u8], expected: Option<&[u8]>) {
        let mut s = StreamState {
            info: StreamInfo {
                source: "10.0.0.1:5555".parse().ok(),
                destination: "[::1]:8001".parse().ok(),
            },
            ..StreamState::default()
        };
        s.request_headers.value = vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b":path".to_vec(), b"/api/v1/pods?watch=1".to_vec()),
            (b":authority".to_vec(), b"localhost:8001".to_vec()),
            (b"accept".to_vec(), b"a".to_vec()),
            (b"accept".to_vec(), b"b".to_vec()),
        ];
        let segments: Vec<&[u8]> = path.split(|b| *b == 0).collect();
        assert_eq!(
            stream_property(&s, &segments).as_deref(),
            expected,
            "{}",
            String::from_utf8_lossy(path)
        );
    }

    #[test]
    fn stream_properties() {
        check(b"request\0path", Some(b"/api/v1/pods?watch=1"));
        check(b"request\0url_path", Some(b"/api/v1/pods"));
        check(b"request\0query", Some(b"watch=1"));
        check(b"request\0method", Some(b"GET"));
        check(b"request\0host", Some(b"localhost:8001"));
        check(b"request\0scheme", Some(b"http"));
        check(b"request\0headers\0Accept", Some(b"a,b"));
        check(b"request\0headers\0missing", None);
        check(b"source\0address", Some(b"10.0.0.1:5555"));
        check(b"source\0port", Some(&5555i64.to_le_bytes()));
        check(b"destination\0address", Some(b"[::1]:8001"));
        check(b"no\0such", None);
    }
}
