//! Runs a scenario against one backend: starts a fake API server and the backend per distinct
//! (flags, kubeconfig) group, sends each case as raw HTTP/1.x, observes the response and what
//! reached upstream, and checks only what the case names.
//!
//! For Envoy it ignores the headers Envoy's connection manager may add (proxy-wasm-abi.md §0 rule
//! 16: `date`, `server`, `x-request-id`, `x-forwarded-proto`, `x-envoy-*`); nothing else is
//! normalised.

use std::io::{Read as _, Write as _};

use anyhow::Result;

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend, Running};
use crate::kubeconfig::{self, TempDir, Variant};
use crate::rawhttp::{self, RawResponse};
use crate::replies::Recorded;
use crate::scenario::{Case, Expect, HeaderExpect, Scenario, UpstreamExpect};

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
        let key = (case.flags(scenario).to_vec(), case.variant(scenario));
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
        let dir = TempDir::new(backend.name())?;
        let kc = kubeconfig::write(&dir, &fake, variant)?;
        let running = backend.spawn(&flags, &kc, &fake, &dir);
        let mut start_reported = false;
        for case in cases {
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
                    let obs = observe(r, &fake, case);
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

/// The per-backend test body: runs scenario `name` on `backend` and panics with every failed
/// case and the backend's stderr. Skips (prints why) when the backend is unavailable locally.
#[track_caller]
pub fn check_scenario(name: &str, backend: Backend) {
    if backend::require(backend).is_none() {
        return;
    }
    let scenario = match Scenario::load(name) {
        Ok(s) => s,
        Err(e) => panic!("{e:#}"),
    };
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

/// Sends `case` to `running` and collects what happened.
pub fn observe(running: &Running, fake: &FakeApiServer, case: &Case) -> Observation {
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
        Ok(resp)
    });
    match result {
        Ok(resp) => obs.response = Some(resp),
        Err(e) => obs.error = Some(format!("{e:#}")),
    }
    obs.upstream = fake.requests_for_case(&case.name);
    obs
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
    if let Some(b) = &expect.body_contains
        && !resp.text().contains(&subst(b))
    {
        fails.push(format!(
            "body {:?} does not contain {:?}",
            trunc(&resp.text()),
            subst(b)
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
    match &expect.upstream {
        None => {}
        Some(UpstreamExpect::Marker(_)) => {
            if let Some(r) = obs.upstream.first() {
                fails.push(format!(
                    "upstream saw {} {}, want nothing",
                    r.method, r.target
                ));
            }
        }
        Some(UpstreamExpect::Seen(seen)) => {
            let Some(up) = obs.upstream.first() else {
                fails.push("nothing reached upstream".to_owned());
                return fails;
            };
            if let Some(m) = &seen.method
                && m != &up.method
            {
                fails.push(format!("upstream method {:?}, want {m:?}", up.method));
            }
            if let Some(t) = &seen.target
                && subst(t) != up.target
            {
                fails.push(format!(
                    "upstream target {:?}, want {:?}",
                    up.target,
                    subst(t)
                ));
            }
            if let Some(b) = &seen.body
                && subst(b).as_bytes() != up.body.as_slice()
            {
                fails.push(format!(
                    "upstream body {:?}, want {b:?}",
                    String::from_utf8_lossy(&up.body)
                ));
            }
            for (name, want) in &seen.headers {
                if backend == Backend::Envoy && envoy_normalized(name) {
                    continue;
                }
                let want = match want {
                    HeaderExpect::One(s) => HeaderExpect::One(subst(s)),
                    HeaderExpect::All(v) => HeaderExpect::All(v.iter().map(|s| subst(s)).collect()),
                };
                if let Some(m) = header_mismatch(&up.header_values(name), &want) {
                    fails.push(format!("upstream header {name}: {m}"));
                }
            }
        }
    }
    fails
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
