//! One request through the filter: Go's own pre-handler answers (Host checks, `OPTIONS *`), the
//! filter's request callbacks on a header list, then its decision — a local reply, static files
//! or the API server (route **only** on `x-kproxy-upstream`) — and the response callbacks on the
//! way back. Bodies stream through pump tasks that run the body callbacks. A 401 to a bodiless
//! idempotent request is replayed once when the credentials changed.
//!
//! It must not trust any client-sent routing header, and it never inspects credentials.

use std::rc::Rc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tokio::sync::{Mutex, mpsc};

use super::body::{FrameResult, ProxyBody};
use super::conn::ConnInfo;
use super::{LiveStream, Worker};
use crate::host::{Action, HeaderList, LocalReply, StreamInfo};
use crate::services::{self, Scheme, Services};
use crate::upstream::{self, ForwardOptions, GzipDecoder};

/// The routing header the filter sets.
pub(crate) const UPSTREAM_HEADER: &str = "x-kproxy-upstream";

type Shared<T> = Rc<Mutex<T>>;

/// Answers one request.
pub(crate) async fn handle(
    worker: Rc<Worker>,
    conn: ConnInfo,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    if let Some(resp) = go_precheck(&req) {
        return resp;
    }
    req.headers_mut().remove(UPSTREAM_HEADER);
    let on_upgrade = upstream::is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let list = request_list(&parts);
    let bodiless = body.is_end_stream();
    let credentials = worker.shared.credentials.clone();
    let retry_401 = bodiless
        && on_upgrade.is_none()
        && credentials.is_managed()
        && matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let fresh = credentials.ensure_fresh().await.map_err(|e| e.to_string());
    let replay = retry_401.then(|| list.clone());
    let mut exchange = Exchange {
        worker,
        conn,
        fresh,
        client_method: parts.method.clone(),
    };
    match exchange.run(list, Some(body), on_upgrade, retry_401).await {
        Outcome::Done(resp) => resp,
        Outcome::Retry => {
            let Some(list) = replay else {
                return error_reply("unauthorized");
            };
            exchange.fresh = credentials.ensure_fresh().await.map_err(|e| e.to_string());
            match exchange.run(list, None, None, false).await {
                Outcome::Done(resp) => resp,
                Outcome::Retry => error_reply("unauthorized"),
            }
        }
    }
}

/// The header list the filter sees: pseudo-headers first, then the client's headers (lowercase,
/// `host` folded into `:authority`).
pub(crate) fn request_list(parts: &http::request::Parts) -> HeaderList {
    let mut list = HeaderList::with_capacity(parts.headers.len() + 4);
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_owned());
    let authority = match parts.uri.authority() {
        Some(a) => a.as_str().as_bytes().to_vec(),
        None => parts
            .headers
            .get(header::HOST)
            .map(|h| h.as_bytes().to_vec())
            .unwrap_or_default(),
    };
    list.push((
        b":method".to_vec(),
        parts.method.as_str().as_bytes().to_vec(),
    ));
    list.push((b":path".to_vec(), path.into_bytes()));
    list.push((b":authority".to_vec(), authority));
    list.push((b":scheme".to_vec(), b"http".to_vec()));
    for (name, value) in &parts.headers {
        if name != header::HOST {
            list.push((name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()));
        }
    }
    list
}

/// Go's answers before any handler: `OPTIONS *`, a missing or malformed `Host`.
pub(crate) fn go_precheck<B>(req: &Request<B>) -> Option<Response<ProxyBody>> {
    if req.method() == Method::OPTIONS && req.uri() == "*" {
        let mut resp = Response::new(ProxyBody::Empty);
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        return Some(resp);
    }
    let hosts: Vec<&HeaderValue> = req.headers().get_all(header::HOST).iter().collect();
    let problem = match hosts.as_slice() {
        [] if req.version() == Version::HTTP_11 => Some("missing required Host header"),
        [host] if !valid_host(host.as_bytes()) => Some("malformed Host header"),
        // Go's readRequest reports this one as a plain error, not a badRequestError: the
        // answer is a bare `400 Bad Request`.
        [_, _, ..] => None,
        _ => return None,
    };
    Some(bad_request(problem))
}

/// Go `httpguts.ValidHostHeader`.
pub(crate) fn valid_host(host: &[u8]) -> bool {
    host.iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=[]_~".contains(&b))
}

/// `400 Bad Request: <problem>` as Go's server writes it (reason phrase and body alike).
fn bad_request(problem: Option<&str>) -> Response<ProxyBody> {
    let text = match problem {
        Some(problem) => format!("400 Bad Request: {problem}"),
        None => "400 Bad Request".to_owned(),
    };
    let mut resp = Response::new(ProxyBody::full(text.clone()));
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    if let Some(problem) = problem
        && let Ok(reason) = hyper::ext::ReasonPhrase::try_from(format!("Bad Request: {problem}"))
    {
        resp.extensions_mut().insert(reason);
    }
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// kubectl's error responder: 500, `text/plain; charset=utf-8`, `nosniff`, `<text>\n`.
pub(crate) fn error_reply(text: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(format!("{text}\n")));
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A proxying failure: logged as kubectl does, answered with the error responder.
fn proxy_error(text: &str) -> Response<ProxyBody> {
    tracing::error!("Error while proxying request: {text}");
    error_reply(text)
}

/// The filter failed: 500 and the worker recreates the VM on the next request.
fn filter_failed(reason: &str) -> Response<ProxyBody> {
    tracing::error!("wasm filter failed: {reason}");
    error_reply(&format!("wasm filter failed: {reason}"))
}

/// A local reply written as a response.
fn local_reply(reply: LocalReply) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(reply.body));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    *resp.headers_mut() = header_map(reply.headers);
    resp
}

/// A header list (pseudo-headers skipped) as a map in Go's order (sorted by name).
pub(crate) fn header_map(list: HeaderList) -> HeaderMap {
    let mut pairs: Vec<(HeaderName, HeaderValue)> = list
        .into_iter()
        .filter(|(n, _)| !n.starts_with(b":"))
        .filter_map(|(n, v)| {
            Some((
                HeaderName::from_bytes(&n).ok()?,
                HeaderValue::from_bytes(&v).ok()?,
            ))
        })
        .collect();
    pairs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (n, v) in pairs {
        map.append(n, v);
    }
    map
}

/// A header map as a list (lowercase names), after `:status` for responses.
fn map_to_list(status: Option<StatusCode>, headers: &HeaderMap) -> HeaderList {
    let mut list = HeaderList::with_capacity(headers.len() + 1);
    if let Some(status) = status {
        list.push((b":status".to_vec(), status.as_str().as_bytes().to_vec()));
    }
    for (n, v) in headers {
        list.push((n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()));
    }
    list
}

enum Outcome {
    Done(Response<ProxyBody>),
    Retry,
}

struct Exchange {
    worker: Rc<Worker>,
    conn: ConnInfo,
    fresh: Result<(), String>,
    client_method: Method,
}

impl Exchange {
    async fn run(
        &mut self,
        mut list: HeaderList,
        body: Option<Incoming>,
        on_upgrade: Option<hyper::upgrade::OnUpgrade>,
        retry_401: bool,
    ) -> Outcome {
        let info = StreamInfo {
            source: self.conn.peer,
            destination: self.conn.local,
        };
        let mut stream = match self.worker.stream(info) {
            Ok(stream) => stream,
            Err(reason) => return Outcome::Done(filter_failed(&reason)),
        };
        let eos = body.as_ref().is_none_or(Incoming::is_end_stream);
        match stream.request_headers(&mut list, eos).await {
            Ok(Action::Continue | Action::Buffer) => {}
            Ok(Action::LocalReply(reply)) => return Outcome::Done(local_reply(reply)),
            Err(e) => return Outcome::Done(filter_failed(&e.to_string())),
        }
        let mut route = None;
        list.retain(|(n, v)| {
            let hit = n.as_slice() == UPSTREAM_HEADER.as_bytes();
            if hit {
                route = Some(v.clone());
            }
            !hit
        });
        let stream = Rc::new(Mutex::new(stream));
        if route.as_deref() == Some(b"static".as_slice()) {
            return Outcome::Done(self.serve_static(&stream, &list).await);
        }
        if let Some(scheme) = route.as_deref().and_then(Scheme::from_route) {
            let body = body.filter(|_| !eos);
            return Outcome::Done(
                self.serve_service(&stream, scheme, list, body, on_upgrade)
                    .await,
            );
        }
        if let Err(text) = &self.fresh {
            return Outcome::Done(proxy_error(text));
        }
        let (method, path, mut headers) = upstream::split_head(list);
        if let Some(on_upgrade) = on_upgrade {
            let ctx = crate::upgrade::UpgradeContext {
                cluster: &self.worker.shared.cluster,
                keepalive: self.worker.shared.keepalive,
                client_ip: self.conn.peer.map(|p| p.ip()),
            };
            return Outcome::Done(
                crate::upgrade::forward(ctx, method, &path, headers, on_upgrade).await,
            );
        }
        let opts = ForwardOptions {
            client_ip: self.conn.peer.map(|p| p.ip()),
            disable_compression: self.worker.shared.disable_compression,
        };
        let cluster = &self.worker.shared.cluster;
        let added_gzip =
            upstream::prepare_headers(&method, &mut headers, &cluster.host_header, opts);
        let uri = match upstream::upstream_uri(cluster, &path) {
            Ok(uri) => uri,
            Err(text) => return Outcome::Done(proxy_error(&text)),
        };
        let up_body = match body {
            Some(body) if !eos => {
                let (tx, up_body) = ProxyBody::channel();
                tokio::task::spawn_local(pump_request(stream.clone(), body, tx));
                up_body
            }
            _ => ProxyBody::Empty,
        };
        let mut req = Request::new(up_body);
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = sorted(headers);
        let resp = match self.worker.upstream.send(req).await {
            Ok(resp) => resp,
            Err(text) => return Outcome::Done(proxy_error(&text)),
        };
        if retry_401
            && resp.status() == StatusCode::UNAUTHORIZED
            && self.worker.shared.credentials.unauthorized().await
        {
            return Outcome::Retry;
        }
        Outcome::Done(self.respond(&stream, resp, added_gzip).await)
    }

    /// Runs the upstream response through the filter and streams its body.
    async fn respond(
        &self,
        stream: &Shared<LiveStream>,
        resp: Response<Incoming>,
        added_gzip: bool,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = resp.into_parts();
        let gzip = upstream::prepare_response_headers(&mut parts.headers, added_gzip);
        let eos = body.is_end_stream() || self.client_method == Method::HEAD;
        let mut list = map_to_list(Some(parts.status), &parts.headers);
        // A pause here waits for `proxy_continue_stream` (Envoy's StopAllIteration): the body
        // callbacks start only after it.
        match stream.lock().await.response_headers(&mut list, eos).await {
            Ok(Action::Continue | Action::Buffer) => {}
            Ok(Action::LocalReply(reply)) => return local_reply(reply),
            Err(e) => return filter_failed(&e.to_string()),
        }
        let body = if eos {
            ProxyBody::Empty
        } else {
            let (tx, body_out) = ProxyBody::channel();
            let gzip = gzip.then(GzipDecoder::new);
            tokio::task::spawn_local(pump_response(stream.clone(), body, gzip, tx));
            // A body of known length goes out with its head; a stream without one (a watch, a
            // rewritten HTML page) gets its head at once, as Go's proxy flushes it.
            if list
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(b"content-length"))
            {
                body_out.primed().await
            } else {
                body_out
            }
        };
        head_response(parts.status, list, body)
    }

    /// Forwards to the service at `:authority` (direct mode): the API-server route's request
    /// preparation without credentials and with `Host` = `:authority`, transport failures as the
    /// apiserver's 503 Status, upgrades tunnelled, the response through the filter.
    async fn serve_service(
        &self,
        stream: &Shared<LiveStream>,
        scheme: Scheme,
        list: HeaderList,
        body: Option<Incoming>,
        on_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ProxyBody> {
        let authority = list
            .iter()
            .find(|(n, _)| n == b":authority")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let Some((host, port)) = services::split_authority(&authority, scheme) else {
            return services::unreachable(&format!("invalid service address {authority:?}"));
        };
        let (method, path, mut headers) = upstream::split_head(list);
        let client_ip = self.conn.peer.map(|p| p.ip());
        if let Some(on_upgrade) = on_upgrade {
            let headers = crate::upgrade::upgrade_headers(headers, &authority, client_ip);
            let keepalive = self.worker.shared.keepalive;
            let conn = match self
                .worker
                .services
                .dial(scheme, &host, port, keepalive)
                .await
            {
                Ok(conn) => conn,
                Err(e) => return services::unreachable(&format!("error dialing backend: {e}")),
            };
            return crate::upgrade::tunnel(
                conn,
                method,
                &path,
                headers,
                on_upgrade,
                &services::unreachable,
            )
            .await;
        }
        let opts = ForwardOptions {
            client_ip,
            disable_compression: self.worker.shared.disable_compression,
        };
        let added_gzip = upstream::prepare_headers(&method, &mut headers, &authority, opts);
        let uri = match Services::uri(scheme, &host, port, &path) {
            Ok(uri) => uri,
            Err(text) => return services::unreachable(&text),
        };
        let up_body = match body {
            Some(body) => {
                let (tx, up_body) = ProxyBody::channel();
                tokio::task::spawn_local(pump_request(stream.clone(), body, tx));
                up_body
            }
            None => ProxyBody::Empty,
        };
        let mut req = Request::new(up_body);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = sorted(headers);
        match self.worker.services.send(req).await {
            Ok(resp) => self.respond(stream, resp, added_gzip).await,
            Err(text) => services::unreachable(&text),
        }
    }

    /// Serves `:path` from `--www` and runs the reply through the response callbacks.
    async fn serve_static(
        &self,
        stream: &Shared<LiveStream>,
        list: &HeaderList,
    ) -> Response<ProxyBody> {
        let reply = match self.worker.shared.www.clone() {
            None => crate::static_files::not_found(),
            Some(www) => {
                let (_, path, headers) = upstream::split_head(list.clone());
                let method = self.client_method.clone();
                tokio::task::spawn_blocking(move || {
                    crate::static_files::serve(&www.dir, &path, &method, &headers)
                })
                .await
                .unwrap_or_else(|_| crate::static_files::internal_error())
            }
        };
        let mut guard = stream.lock().await;
        let mut list: HeaderList =
            vec![(b":status".to_vec(), reply.status.to_string().into_bytes())];
        list.extend(reply.headers);
        let mut body = reply.body;
        match guard.response_headers(&mut list, body.is_empty()).await {
            Ok(Action::Continue | Action::Buffer) => {}
            Ok(Action::LocalReply(r)) => return local_reply(r),
            Err(e) => return filter_failed(&e.to_string()),
        }
        if !body.is_empty() {
            match guard.response_body(&mut body, true).await {
                Ok(Action::Continue | Action::Buffer) => {}
                Ok(Action::LocalReply(r)) => return local_reply(r),
                Err(e) => return filter_failed(&e.to_string()),
            }
        }
        let mut resp = head_response(StatusCode::OK, list, ProxyBody::full(body));
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            // Go's status text for 416 predates RFC 9110's shorter name.
            resp.extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(
                    b"Requested Range Not Satisfiable",
                ));
        }
        resp
    }
}

/// A header map re-ordered by name (Go writes headers sorted).
fn sorted(headers: HeaderMap) -> HeaderMap {
    let mut pairs: Vec<(Option<HeaderName>, HeaderValue)> = headers.into_iter().collect();
    // `into_iter` yields the name only on a name's first value; carry it forward.
    let mut last = None;
    for (name, _) in &mut pairs {
        match name {
            Some(n) => last = Some(n.clone()),
            None => name.clone_from(&last),
        }
    }
    let mut pairs: Vec<(HeaderName, HeaderValue)> = pairs
        .into_iter()
        .filter_map(|(n, v)| Some((n?, v)))
        .collect();
    pairs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (n, v) in pairs {
        map.append(n, v);
    }
    map
}

/// A response with the status from `list`'s `:status` (else `fallback`) and its other headers.
fn head_response(fallback: StatusCode, list: HeaderList, body: ProxyBody) -> Response<ProxyBody> {
    let status = list
        .iter()
        .find(|(n, _)| n == b":status")
        .and_then(|(_, v)| StatusCode::from_bytes(v).ok())
        .unwrap_or(fallback);
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = header_map(list);
    out
}

/// What a body pump does with one filter result.
enum Step {
    /// Send the buffered bytes.
    Send,
    /// Keep buffering.
    Hold,
    /// Abort the stream.
    Abort(String),
}

fn step(result: Result<Action, crate::host::StreamError>) -> Step {
    match result {
        Ok(Action::Continue) => Step::Send,
        Ok(Action::Buffer) => Step::Hold,
        // The response head is on its way, or the upstream request has started: the shim
        // cannot answer locally any more, so the body aborts.
        Ok(Action::LocalReply(_)) => {
            Step::Abort("the filter replied after the headers were sent".to_owned())
        }
        Err(e) => Step::Abort(format!("wasm filter failed: {e}")),
    }
}

/// Which direction a body pump serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    Request,
    Response,
}

/// Runs the body callback of `dir`; the stream is locked only for the call, never while sending.
async fn body_call(
    stream: &Shared<LiveStream>,
    dir: Dir,
    pending: &mut Vec<u8>,
    eos: bool,
) -> Step {
    let mut guard = stream.lock().await;
    let result = match dir {
        Dir::Request => guard.request_body(pending, eos).await,
        Dir::Response => guard.response_body(pending, eos).await,
    };
    step(result)
}

/// Runs the trailers callback of `dir`.
async fn trailers_call(stream: &Shared<LiveStream>, dir: Dir, trailers: &HeaderMap) -> HeaderMap {
    let mut list = map_to_list(None, trailers);
    let mut guard = stream.lock().await;
    let _ = match dir {
        Dir::Request => guard.request_trailers(&mut list).await,
        Dir::Response => guard.response_trailers(&mut list).await,
    };
    header_map(list)
}

/// Sends the buffered bytes as one data frame; false when the receiver is gone.
async fn send_pending(tx: &mpsc::Sender<FrameResult>, pending: &mut Vec<u8>) -> bool {
    pending.is_empty()
        || tx
            .send(Ok(Frame::data(Bytes::from(std::mem::take(pending)))))
            .await
            .is_ok()
}

/// One body callback and what follows: send, hold, or abort. False when the pump must stop.
async fn body_step(
    stream: &Shared<LiveStream>,
    dir: Dir,
    pending: &mut Vec<u8>,
    eos: bool,
    tx: &mpsc::Sender<FrameResult>,
) -> bool {
    match body_call(stream, dir, pending, eos).await {
        Step::Send => send_pending(tx, pending).await,
        Step::Hold if eos => send_pending(tx, pending).await,
        Step::Hold => true,
        Step::Abort(text) => {
            let _ = tx.send(Err(text.into())).await;
            false
        }
    }
}

/// Client body → request body callbacks → upstream.
async fn pump_request(stream: Shared<LiveStream>, body: Incoming, tx: mpsc::Sender<FrameResult>) {
    pump(stream, Dir::Request, body, None, tx).await;
}

/// Upstream body → gzip decoding → response body callbacks → client.
async fn pump_response(
    stream: Shared<LiveStream>,
    body: Incoming,
    gzip: Option<GzipDecoder>,
    tx: mpsc::Sender<FrameResult>,
) {
    pump(stream, Dir::Response, body, gzip, tx).await;
}

async fn pump(
    stream: Shared<LiveStream>,
    dir: Dir,
    mut body: Incoming,
    mut gzip: Option<GzipDecoder>,
    tx: mpsc::Sender<FrameResult>,
) {
    let mut pending = Vec::new();
    loop {
        // The receiver gone (client disconnected, upstream request dropped) ends the pump at
        // once, even while the body is silent (an idle watch), so the stream is released.
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = tx.closed() => return,
        };
        match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    match gzip.as_mut().map(|g| g.push(&data)) {
                        Some(Ok(plain)) => pending.extend_from_slice(&plain),
                        Some(Err(e)) => {
                            let _ = tx.send(Err(Box::new(e))).await;
                            return;
                        }
                        None => pending.extend_from_slice(&data),
                    }
                    let eos = body.is_end_stream();
                    if eos && finish_gzip(gzip.as_mut(), &mut pending, &tx).await.is_err() {
                        return;
                    }
                    if !body_step(&stream, dir, &mut pending, eos, &tx).await || eos {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers()
                        && finish_gzip(gzip.as_mut(), &mut pending, &tx).await.is_ok()
                        && body_step(&stream, dir, &mut pending, true, &tx).await
                    {
                        let trailers = trailers_call(&stream, dir, &trailers).await;
                        let _ = tx.send(Ok(Frame::trailers(trailers))).await;
                    }
                    return;
                }
            },
            Some(Err(e)) => {
                if dir == Dir::Response {
                    tracing::error!("Error while proxying request: {e}");
                }
                let _ = tx.send(Err(Box::new(e))).await;
                return;
            }
            None => {
                if finish_gzip(gzip.as_mut(), &mut pending, &tx).await.is_ok() {
                    let _ = body_step(&stream, dir, &mut pending, true, &tx).await;
                }
                return;
            }
        }
    }
}

/// Appends the decoder's tail to `pending`; a truncated stream aborts the body.
async fn finish_gzip(
    gzip: Option<&mut GzipDecoder>,
    pending: &mut Vec<u8>,
    tx: &mpsc::Sender<FrameResult>,
) -> Result<(), ()> {
    let Some(gzip) = gzip else { return Ok(()) };
    match gzip.finish() {
        Ok(tail) => {
            pending.extend_from_slice(&tail);
            Ok(())
        }
        Err(e) => {
            let _ = tx.send(Err(Box::new(e))).await;
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(version: Version, hosts: &[&str], want: Option<(u16, &str)>) {
        let mut builder = Request::builder().uri("/api").version(version);
        for h in hosts {
            builder = builder.header("host", *h);
        }
        let req = builder.body(()).expect("request");
        let got = go_precheck(&req).map(|resp| {
            let reason = resp
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
                .unwrap_or_default();
            (resp.status().as_u16(), reason)
        });
        assert_eq!(got.as_ref().map(|(s, r)| (*s, r.as_str())), want);
    }

    #[test]
    fn host_header_is_validated_like_go() {
        check(Version::HTTP_11, &["localhost:8001"], None);
        check(Version::HTTP_11, &["[::1]:8001"], None);
        check(Version::HTTP_10, &[], None);
        check(
            Version::HTTP_11,
            &[],
            Some((400, "Bad Request: missing required Host header")),
        );
        check(
            Version::HTTP_11,
            &["a, b"],
            Some((400, "Bad Request: malformed Host header")),
        );
        // Go's readRequest reports a repeated Host as a plain error: the bare `400 Bad Request`
        // (no reason extension; hyper writes the canonical phrase).
        check(Version::HTTP_11, &["a", "b"], Some((400, "")));
    }

    #[test]
    fn request_list_puts_pseudo_headers_first_and_folds_host() {
        let req = Request::builder()
            .uri("http://example.com:9/api/v1?x=1")
            .header("host", "localhost")
            .header("accept", "*/*")
            .body(())
            .expect("request");
        let (parts, ()) = req.into_parts();
        let list: Vec<(String, String)> = request_list(&parts)
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        let want = [
            (":method", "GET"),
            (":path", "/api/v1?x=1"),
            (":authority", "example.com:9"),
            (":scheme", "http"),
            ("accept", "*/*"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(list, want);
    }

    #[test]
    fn headers_are_written_in_go_order() {
        let mut m = HeaderMap::new();
        m.append("user-agent", HeaderValue::from_static("u"));
        m.append("accept", HeaderValue::from_static("a1"));
        m.append("accept", HeaderValue::from_static("a2"));
        m.append("host", HeaderValue::from_static("h"));
        let got: Vec<String> = sorted(m)
            .iter()
            .map(|(n, v)| format!("{n}={}", v.to_str().unwrap_or("")))
            .collect();
        assert_eq!(got, ["accept=a1", "accept=a2", "host=h", "user-agent=u"]);
    }

    #[test]
    fn error_reply_is_kubectls_responder() {
        let resp = error_reply("dial tcp 127.0.0.1:1: connect: connection refused");
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        match resp.into_body() {
            ProxyBody::Full(Some(b)) => assert_eq!(
                &b[..],
                b"dial tcp 127.0.0.1:1: connect: connection refused\n"
            ),
            other => panic!("unexpected body {other:?}"),
        }
    }
}
