//! Runs a scenario against one backend: starts a fake API server (with the file's Services
//! registered), the fake service backends and the backend per distinct (flags, kubeconfig) group,
//! substitutes `{port:LABEL}` placeholders, sends each case as raw HTTP/1.x, observes the response,
//! what reached the API server and the fake services, and the Service lookups, and checks only
//! what the case names.
//!
//! For Envoy it ignores the headers Envoy's connection manager may add (proxy-wasm-abi.md §0 rule
//! 16: `date`, `server`, `x-request-id`, `x-forwarded-proto`, `x-envoy-*`); nothing else is
//! normalised.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::time::Duration;

use anyhow::{Result, anyhow};

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend, Running};
use crate::kubeconfig::{self, TempDir, Variant};
use crate::rawhttp::{self, RawResponse};
use crate::replies::Recorded;
use crate::scenario::{Case, Expect, HeaderExpect, Scenario, SeenExpect, UpstreamExpect};
use crate::services::{FakeServices, ServiceSeen};

/// What one case produced on one backend.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// The response, or `None` when the exchange failed.
    pub response: Option<RawResponse>,
    /// The transport error, if any.
    pub error: Option<String>,
    /// The requests of this case that reached the fake API server.
    pub upstream: Vec<Recorded>,
    /// Whether the tunnel echoed the case's bytes (`None` when not tried).
    pub tunnel_ok: Option<bool>,
    /// The requests of this case that reached a fake service.
    pub service: Vec<ServiceSeen>,
    /// The Service GETs (`(namespace, name)`) the proxy made while the case ran.
    pub lookups: Vec<(String, String)>,
    /// Bytes that followed the response on the connection within 300 ms (only measured for
    /// cases with a `decoded_body` expectation).
    pub trailing: Option<usize>,
}

/// A case's result on one backend.
#[derive(Debug)]
pub struct Outcome {
    /// The case name.
    pub case: String,
    /// `Err(reason)` when the case was skipped for this backend.
    pub observation: Result<Observation, String>,
    /// Expectation failures (empty = passed).
    pub failures: Vec<String>,
}

/// Runs every case of `scenario` on `backend`. Start-up failures become failures of every case
/// in the group.
pub fn run(scenario: &Scenario, backend: Backend) -> Result<(Vec<Outcome>, String)> {
    let mut groups: Vec<(Vec<String>, Variant, Vec<&Case>)> = Vec::new();
    for case in &scenario.cases {
        let key = (case.flags(scenario), case.variant(scenario));
        match groups
            .iter_mut()
            .find(|(f, v, _)| (f, v) == (&key.0, &key.1))
        {
            Some(g) => g.2.push(case),
            None => groups.push((key.0, key.1, vec![case])),
        }
    }
    let mut outcomes = Vec::new();
    let mut logs = String::new();
    for (flags, variant, cases) in groups {
        let fake = FakeApiServer::start(FakeOptions {
            tls: variant.tls(),
            anonymous: !variant.tls(),
            ..FakeOptions::default()
        })?;
        let services = start_services(scenario, &fake)?;
        let ports = services.as_ref().map(port_map).unwrap_or_default();
        let subst = |s: &str| substitute_ports(s, &ports);
        let flags: Vec<String> = flags.iter().map(|f| subst(f)).collect();
        let dir = TempDir::new(backend.name())?;
        let kc = kubeconfig::write(&dir, &fake, variant)?;
        let running = match flags.iter().find(|f| f.contains("{port:")) {
            Some(f) => Err(anyhow!("unknown {{port:…}} placeholder in flag {f:?}")),
            None => backend.spawn(&flags, &kc, &fake, &dir),
        };
        let mut start_reported = false;
        for case in cases {
            let case = &case.map_texts(&subst);
            let outcome = match (&running, case.skip.get(backend.name())) {
                (_, Some(reason)) => Outcome {
                    case: case.name.clone(),
                    observation: Err(reason.clone()),
                    failures: vec![],
                },
                (Err(e), None) => {
                    let msg = if std::mem::replace(&mut start_reported, true) {
                        format!("not run: {} did not start (see above)", backend.name())
                    } else {
                        format!("{} did not start: {e:#}", backend.name())
                    };
                    Outcome {
                        case: case.name.clone(),
                        observation: Ok(Observation {
                            error: Some(format!("{} did not start", backend.name())),
                            ..Observation::default()
                        }),
                        failures: vec![msg],
                    }
                }
                (Ok(r), None) => {
                    let obs = observe(r, &fake, services.as_ref(), case);
                    let vars = Vars {
                        api: kc.server_addr.to_string(),
                        token: fake.options().token.clone(),
                    };
                    let failures = check(backend, &vars, case.expect_for(backend), &obs);
                    Outcome {
                        case: case.name.clone(),
                        observation: Ok(obs),
                        failures,
                    }
                }
            };
            outcomes.push(outcome);
        }
        if let Ok(r) = &running {
            logs.push_str(&format!(
                "--- {} stderr (flags {flags:?}, kubeconfig {variant:?}) ---\n{}\n",
                backend.name(),
                r.logs()
            ));
        }
    }
    Ok((outcomes, logs))
}

/// Starts the fake services of `scenario` (none without `[[service]]` tables) and registers its
/// Services on `fake`.
fn start_services(scenario: &Scenario, fake: &FakeApiServer) -> Result<Option<FakeServices>> {
    if scenario.services.is_empty() {
        return Ok(None);
    }
    let mut services = FakeServices::new()?;
    for svc in &scenario.services {
        fake.set_service(&svc.namespace, &svc.name, svc.to_json());
        let mut started: BTreeMap<usize, u16> = BTreeMap::new();
        for (label, i) in svc.labels() {
            let Some(serve) = svc.ports[i].serve else {
                continue;
            };
            match started.get(&i) {
                // The second label of a port names the same server.
                Some(port) => services.alias(&label, *port)?,
                None => {
                    started.insert(i, services.add(&label, serve)?);
                }
            }
        }
    }
    Ok(Some(services))
}

/// Label → port of every fake service.
fn port_map(services: &FakeServices) -> BTreeMap<String, u16> {
    services
        .servers()
        .iter()
        .map(|(label, _, addr)| (label.clone(), addr.port()))
        .collect()
}

/// Replaces every `{port:LABEL}` whose label is known; unknown ones stay (and fail later).
pub fn substitute_ports(text: &str, ports: &BTreeMap<String, u16>) -> String {
    let mut out = text.to_owned();
    for (label, port) in ports {
        out = out.replace(&format!("{{port:{label}}}"), &port.to_string());
    }
    out
}

/// The per-backend test body: runs scenario `name` on `backend` and panics with every failed
/// case and the backend's stderr. Skips (prints why) when the backend is unavailable locally, and
/// passes without running anything on a backend the file's `backends` leaves out.
#[track_caller]
pub fn check_scenario(name: &str, backend: Backend) {
    let scenario = match Scenario::load(name) {
        Ok(s) => s,
        Err(e) => panic!("{e:#}"),
    };
    if !scenario.runs_on(backend) {
        println!(
            "{name}: not run on {} by design: the file applies to backends {:?} only ({}); \
             this test passes trivially",
            backend.name(),
            scenario.backends.as_deref().unwrap_or_default(),
            scenario
                .backends_reason
                .as_deref()
                .unwrap_or("no reason given"),
        );
        return;
    }
    if backend::require(backend).is_none() {
        return;
    }
    let (outcomes, logs) = match run(&scenario, backend) {
        Ok(r) => r,
        Err(e) => panic!("{name} on {}: {e:#}", backend.name()),
    };
    let mut report = String::new();
    for o in &outcomes {
        match &o.observation {
            Err(reason) => println!(
                "{name}/{}: skipped on {} ({reason})",
                o.case,
                backend.name()
            ),
            Ok(_) if o.failures.is_empty() => println!("{name}/{}: ok", o.case),
            Ok(_) => {
                for f in &o.failures {
                    report.push_str(&format!("  {name}/{}: {f}\n", o.case));
                }
            }
        }
    }
    if !report.is_empty() {
        panic!(
            "scenario {name} failed on {}:\n{report}\n{logs}",
            backend.name()
        );
    }
}

/// Sends `case` to `running` and collects what happened (at the API server and, when given, the
/// fake services).
pub fn observe(
    running: &Running,
    fake: &FakeApiServer,
    services: Option<&FakeServices>,
    case: &Case,
) -> Observation {
    let before = fake.requests().len();
    let mut headers = Vec::new();
    if !case.no_host {
        headers.push(("Host".to_owned(), case.host.clone()));
    }
    headers.extend(case.headers.iter().cloned());
    headers.push(("X-Kproxy-Case".to_owned(), case.name.clone()));
    let mut body = case.body.clone().into_bytes();
    if case.chunked {
        headers.push(("Transfer-Encoding".to_owned(), "chunked".to_owned()));
        let mut enc = format!("{:x}\r\n", body.len()).into_bytes();
        enc.extend_from_slice(&body);
        enc.extend_from_slice(b"\r\n0\r\n\r\n");
        body = enc;
    }
    let req = rawhttp::build_request(&case.method, &case.path, &case.version, &headers, &body);
    let mut obs = Observation::default();
    let result = rawhttp::Conn::open(running.addr()).and_then(|mut conn| {
        conn.stream.write_all(&req)?;
        let resp = conn.read_response(case.method == "HEAD")?;
        if let (Some(data), 101) = (&case.tunnel, resp.status) {
            obs.tunnel_ok = Some(tunnel_echo(&mut conn, data.as_bytes()));
        }
        let framing = case.expect.decoded_body.is_some()
            || case
                .kproxy
                .as_ref()
                .is_some_and(|k| k.decoded_body.is_some());
        if framing && resp.status != 101 {
            obs.trailing = Some(trailing_bytes(&mut conn));
        }
        Ok(resp)
    });
    match result {
        Ok(resp) => obs.response = Some(resp),
        Err(e) => obs.error = Some(format!("{e:#}")),
    }
    obs.upstream = fake.requests_for_case(&case.name);
    obs.service = services
        .map(|s| s.requests_for_case(&case.name))
        .unwrap_or_default();
    obs.lookups = fake
        .requests()
        .iter()
        .skip(before)
        .filter(|r| r.method == "GET" && r.header("x-kproxy-case").is_none())
        .filter_map(|r| crate::apiserver::service_get_path(r.path()))
        .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
        .collect();
    obs
}

/// How many bytes follow a response on its (kept-alive) connection within 300 ms.
fn trailing_bytes(conn: &mut rawhttp::Conn) -> usize {
    let mut n = conn.take_buffered().len();
    if conn
        .stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .is_err()
    {
        return n;
    }
    let mut tmp = [0u8; 4096];
    while let Ok(k) = conn.stream.read(&mut tmp) {
        if k == 0 {
            break;
        }
        n += k;
    }
    n
}

/// The body with its `Content-Encoding` undone (`gzip`; `deflate` as raw RFC 1951, what Go's
/// `compress/flate` reads), or why that failed.
pub fn decode_body(resp: &RawResponse) -> Result<Vec<u8>, String> {
    let enc = resp
        .header("content-encoding")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut out = Vec::new();
    let res = match enc.as_str() {
        "" | "identity" => return Ok(resp.body.clone()),
        "gzip" => flate2::read::GzDecoder::new(resp.body.as_slice()).read_to_end(&mut out),
        "deflate" => flate2::read::DeflateDecoder::new(resp.body.as_slice()).read_to_end(&mut out),
        other => return Err(format!("unknown Content-Encoding {other:?}")),
    };
    res.map(|_| out)
        .map_err(|e| format!("undoing Content-Encoding {enc}: {e}"))
}

fn tunnel_echo(conn: &mut rawhttp::Conn, data: &[u8]) -> bool {
    let mut got = conn.take_buffered();
    if conn.stream.write_all(data).is_err() {
        return false;
    }
    let mut tmp = [0u8; 4096];
    while got.len() < data.len() {
        match conn.stream.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&tmp[..n]),
        }
    }
    got == data
}

/// Headers Envoy's connection manager may add or change (rule 16); ignored for Envoy.
fn envoy_normalized(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "date" | "server" | "x-request-id" | "x-forwarded-proto"
    ) || n.starts_with("x-envoy-")
}

/// Values substituted into expectations: `{API}` and `{TOKEN}`.
#[derive(Clone, Debug)]
pub struct Vars {
    /// The fake API server's `host:port`.
    pub api: String,
    /// The token it accepts.
    pub token: String,
}

/// Compares `obs` with `expect`; one message per mismatch.
pub fn check(backend: Backend, vars: &Vars, expect: &Expect, obs: &Observation) -> Vec<String> {
    let subst = |s: &str| {
        s.replace("{API}", &vars.api)
            .replace("{TOKEN}", &vars.token)
    };
    let mut fails = Vec::new();
    let Some(resp) = &obs.response else {
        fails.push(format!(
            "no response: {}",
            obs.error.as_deref().unwrap_or("?")
        ));
        return fails;
    };
    if let Some(s) = expect.status
        && s != resp.status
    {
        fails.push(format!(
            "status {} {}, want {s}; body {:?}",
            resp.status,
            resp.reason,
            trunc(&resp.text())
        ));
    }
    if let Some(b) = &expect.body
        && subst(b).as_bytes() != resp.body.as_slice()
    {
        fails.push(format!(
            "body {:?}, want {:?}",
            trunc(&resp.text()),
            subst(b)
        ));
    }
    for b in expect.body_contains.iter().flat_map(|t| t.as_slice()) {
        if !resp.text().contains(&subst(b)) {
            fails.push(format!(
                "body {:?} does not contain {:?}",
                trunc(&resp.text()),
                subst(b)
            ));
        }
    }
    if let Some(want) = &expect.decoded_body {
        check_decoded(resp, &subst(want), obs.trailing, &mut fails);
    }
    if let Some(n) = expect.lookups
        && n != obs.lookups.len()
    {
        fails.push(format!(
            "{} Service lookups reached the API server {:?}, want {n}",
            obs.lookups.len(),
            obs.lookups
        ));
    }
    for (name, want) in &expect.headers {
        if backend == Backend::Envoy && envoy_normalized(name) {
            continue;
        }
        let got: Vec<&str> = resp
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        if let Some(m) = header_mismatch(&got, &HeaderExpect::One(subst(want))) {
            fails.push(format!("response header {name}: {m}"));
        }
    }
    if let Some(ms) = expect.min_spread_ms {
        let spread = match (resp.arrivals.first(), resp.arrivals.last()) {
            (Some(a), Some(b)) => b.0.saturating_sub(a.0).as_millis(),
            _ => 0,
        };
        if spread < u128::from(ms) {
            fails.push(format!(
                "body pieces arrived within {spread} ms, want ≥ {ms} ms (buffered?): {:?}",
                resp.arrivals
            ));
        }
    }
    if obs.tunnel_ok == Some(false) {
        fails.push("the tunnel did not echo the bytes written".to_owned());
    }
    let api: Vec<SeenRequest<'_>> = obs
        .upstream
        .iter()
        .map(|r| SeenRequest {
            request: r,
            service: None,
        })
        .collect();
    check_seen(
        backend,
        "upstream",
        expect.upstream.as_ref(),
        &api,
        &subst,
        &mut fails,
    );
    let svc: Vec<SeenRequest<'_>> = obs
        .service
        .iter()
        .map(|s| SeenRequest {
            request: &s.request,
            service: Some(s),
        })
        .collect();
    check_seen(
        backend,
        "service",
        expect.service.as_ref(),
        &svc,
        &subst,
        &mut fails,
    );
    fails
}

/// A request seen by the fake API server (`service: None`) or a fake service.
struct SeenRequest<'a> {
    request: &'a Recorded,
    service: Option<&'a ServiceSeen>,
}

/// Checks `want` (an `upstream` or `service` expectation named `what`) against the first of
/// `seen`.
fn check_seen(
    backend: Backend,
    what: &str,
    want: Option<&UpstreamExpect>,
    seen: &[SeenRequest<'_>],
    subst: &dyn Fn(&str) -> String,
    fails: &mut Vec<String>,
) {
    let expect: &SeenExpect = match want {
        None => return,
        Some(UpstreamExpect::Marker(_)) => {
            if let Some(r) = seen.first() {
                let at = r
                    .service
                    .map(|s| format!(" ({})", s.server))
                    .unwrap_or_default();
                fails.push(format!(
                    "{what} saw {} {}{at}, want nothing",
                    r.request.method, r.request.target
                ));
            }
            return;
        }
        Some(UpstreamExpect::Seen(s)) => s,
    };
    let Some(first) = seen.first() else {
        fails.push(format!("nothing reached {what}"));
        return;
    };
    let up = first.request;
    if let Some(m) = &expect.method
        && m != &up.method
    {
        fails.push(format!("{what} method {:?}, want {m:?}", up.method));
    }
    if let Some(t) = &expect.target
        && subst(t) != up.target
    {
        fails.push(format!(
            "{what} target {:?}, want {:?}",
            up.target,
            subst(t)
        ));
    }
    if let Some(b) = &expect.body
        && subst(b).as_bytes() != up.body.as_slice()
    {
        fails.push(format!(
            "{what} body {:?}, want {b:?}",
            String::from_utf8_lossy(&up.body)
        ));
    }
    if let (Some(server), Some(svc)) = (&expect.server, first.service)
        && server != &svc.server
    {
        fails.push(format!("{what} server {:?}, want {server:?}", svc.server));
    }
    if let (Some(sni), Some(svc)) = (&expect.sni, first.service) {
        let got = match (svc.tls, &svc.sni) {
            (false, _) => "PLAIN".to_owned(),
            (true, None) => "ABSENT".to_owned(),
            (true, Some(s)) => s.clone(),
        };
        if &got != sni {
            fails.push(format!("{what} TLS SNI {got:?}, want {sni:?}"));
        }
    }
    for (name, want) in &expect.headers {
        if backend == Backend::Envoy && envoy_normalized(name) {
            continue;
        }
        let want = match want {
            HeaderExpect::One(s) => HeaderExpect::One(subst(s)),
            HeaderExpect::All(v) => HeaderExpect::All(v.iter().map(|s| subst(s)).collect()),
        };
        if let Some(m) = header_mismatch(&up.header_values(name), &want) {
            fails.push(format!("{what} header {name}: {m}"));
        }
    }
}

/// The decoded body equals `want`; a `Content-Length` matches the bytes sent and nothing follows.
fn check_decoded(resp: &RawResponse, want: &str, trailing: Option<usize>, fails: &mut Vec<String>) {
    match decode_body(resp) {
        Ok(body) if body == want.as_bytes() => {}
        Ok(body) => fails.push(format!(
            "decoded body (Content-Encoding {:?}) {:?}, want {want:?}",
            resp.header("content-encoding"),
            String::from_utf8_lossy(&body)
        )),
        Err(e) => fails.push(e),
    }
    if let Some(n) = trailing
        && n > 0
    {
        fails.push(format!(
            "{n} bytes followed the response (Content-Length {:?} shorter than the body?)",
            resp.header("content-length")
        ));
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if let (Some(cl), false) = (resp.header("content-length"), chunked)
        && cl.parse::<usize>().ok() != Some(resp.body.len())
    {
        fails.push(format!(
            "Content-Length {cl} but {} body bytes",
            resp.body.len()
        ));
    }
    if let (Some(cl), true) = (resp.header("content-length"), chunked) {
        fails.push(format!(
            "both Content-Length {cl} and Transfer-Encoding chunked"
        ));
    }
}

fn header_mismatch(got: &[&str], want: &HeaderExpect) -> Option<String> {
    match want {
        HeaderExpect::One(w) if w == "SOME" => got.is_empty().then(|| "absent, want SOME".into()),
        HeaderExpect::One(w) if w == "ABSENT" => {
            (!got.is_empty()).then(|| format!("{got:?}, want ABSENT"))
        }
        HeaderExpect::One(w) => match got.first() {
            Some(g) if g == w => None,
            _ => Some(format!("{got:?}, want {w:?}")),
        },
        HeaderExpect::All(ws) => (got
            != ws.iter().map(String::as_str).collect::<Vec<_>>().as_slice())
        .then(|| format!("{got:?}, want {ws:?}")),
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(300).collect()
}
