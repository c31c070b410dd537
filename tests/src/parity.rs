//! Differential mode: runs a scenario on all three backends and compares each case's shim and
//! Envoy observation with kubectl's (status; the local reply body when nothing reached upstream;
//! the upstream method and target otherwise, or the fake service and its request target; the
//! tunnel echo). Prints the table `scenario | case | kubectl | shim | envoy` with `agree` /
//! `differ` / `skip`; a case marked with a documented `deviation` may differ.
//!
//! A file limited to some `backends` shows the others as `n/a`. Without kubectl (direct
//! service-proxy mode: kubectl proxy has no such mode) the shim is the reference: its column shows
//! what it did and Envoy's column compares with it; a difference fails like one from kubectl.
//!
//! It must not check a case's expectations (the per-backend tests do that).

use std::collections::BTreeMap;

use crate::backend::{self, Backend};
use crate::runner::{self, Observation, Outcome};
use crate::scenario::Scenario;

/// What is compared between backends, as one line of text.
pub fn key(obs: &Observation) -> String {
    let Some(resp) = &obs.response else {
        return format!("error: {}", obs.error.as_deref().unwrap_or("not run"));
    };
    let mut k = resp.status.to_string();
    match (obs.upstream.first(), obs.service.first()) {
        (Some(up), _) => k.push_str(&format!(" → {} {}", up.method, up.target)),
        (None, Some(svc)) => k.push_str(&format!(
            " ⇒ {} {} {}",
            svc.server, svc.request.method, svc.request.target
        )),
        (None, None) => k.push_str(&format!(
            " {:?}",
            mask_loopback_ports(&resp.text())
                .chars()
                .take(80)
                .collect::<String>()
        )),
    }
    if let Some(t) = obs.tunnel_ok {
        k.push_str(if t { " tunnel" } else { " tunnel-broken" });
    }
    k
}

/// Replaces the port in every `127.0.0.1:<port>` with `PORT`: each backend gets its own ephemeral
/// (closed or fake) API-server port, so error texts naming it differ only there.
fn mask_loopback_ports(text: &str) -> String {
    const HOST: &str = "127.0.0.1:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(HOST) {
        let (before, after) = rest.split_at(at + HOST.len());
        out.push_str(before);
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push_str("PORT");
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// The parity test body for scenario `name`.
#[track_caller]
pub fn check_parity(name: &str) {
    let scenario = Scenario::load(name).unwrap_or_else(|e| panic!("{e:#}"));
    let mut results: BTreeMap<Backend, Result<Vec<Outcome>, String>> = BTreeMap::new();
    for b in Backend::ALL {
        let r = if !scenario.runs_on(b) {
            Err(NOT_APPLICABLE.to_owned())
        } else {
            match backend::require(b) {
                None => Err("unavailable".to_owned()),
                Some(()) => runner::run(&scenario, b)
                    .map(|(o, _)| o)
                    .map_err(|e| format!("{e:#}")),
            }
        };
        results.insert(b, r);
    }
    // `run` returns outcomes grouped by (flags, kubeconfig), not in file order: find by name.
    let observed = |b: Backend, case: &str| -> Option<String> {
        match results.get(&b) {
            Some(Ok(outcomes)) => outcomes
                .iter()
                .find(|o| o.case == case)?
                .observation
                .as_ref()
                .ok()
                .map(key),
            _ => None,
        }
    };
    let applicable = |b: Backend| scenario.runs_on(b);
    // kubectl is the oracle; without it, the shim is the reference for Envoy.
    let (reference, compared): (Backend, Vec<Backend>) = if applicable(Backend::Kubectl) {
        (Backend::Kubectl, vec![Backend::Shim, Backend::Envoy])
    } else {
        (Backend::Shim, vec![Backend::Envoy])
    };
    let mut table = format!(
        "{:<10} | {:<44} | {:<40} | {:<8} | {:<8}\n",
        "scenario", "case", "kubectl", "shim", "envoy"
    );
    let mut differences = String::new();
    for case in &scenario.cases {
        let oracle = observed(reference, &case.name);
        let mut cols: BTreeMap<Backend, String> = BTreeMap::new();
        for b in Backend::ALL {
            if !applicable(b) {
                cols.insert(b, NOT_APPLICABLE.to_owned());
            }
        }
        cols.insert(
            reference,
            oracle.clone().unwrap_or_else(|| "skip".to_owned()),
        );
        for &b in &compared {
            if !applicable(b) {
                continue;
            }
            let col = match (&oracle, observed(b, &case.name)) {
                (Some(o), Some(got)) if *o == got => "agree".to_owned(),
                (Some(o), Some(got)) => match &case.deviation {
                    Some(d) if reference == Backend::Kubectl => format!("differ ({d})"),
                    _ => {
                        differences.push_str(&format!(
                            "  {name}/{}: {} {o}\n  {:>width$} {}: {got}\n",
                            case.name,
                            reference.name(),
                            "",
                            b.name(),
                            width = name.len() + case.name.len() + 1
                        ));
                        "differ".to_owned()
                    }
                },
                _ => "skip".to_owned(),
            };
            cols.insert(b, col);
        }
        let col = |b: Backend| cols.get(&b).cloned().unwrap_or_default();
        table.push_str(&format!(
            "{name:<10} | {:<44} | {:<40} | {:<8} | {:<8}\n",
            case.name,
            col(Backend::Kubectl).chars().take(40).collect::<String>(),
            col(Backend::Shim).chars().take(60).collect::<String>(),
            col(Backend::Envoy)
        ));
    }
    println!("{table}");
    // Passing tests' output is captured; `./just test` prints these files after the run.
    let dir = crate::workspace_root().join("target/parity");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{name}.txt")), &table));
    if let Err(e) = written {
        eprintln!(
            "parity table for {name} not written to {}: {e}",
            dir.display()
        );
    }
    assert!(
        differences.is_empty(),
        "kproxy backends differ from {} (not a documented deviation):\n{differences}",
        reference.name()
    );
}

/// The column of a backend a scenario file does not apply to.
const NOT_APPLICABLE: &str = "n/a";

#[cfg(test)]
mod tests {
    use super::mask_loopback_ports;

    #[test]
    fn loopback_ports_are_masked_and_nothing_else() {
        for (input, want) in [
            (
                "dial tcp 127.0.0.1:33401: connect",
                "dial tcp 127.0.0.1:PORT: connect",
            ),
            (
                "127.0.0.1:1 and 127.0.0.1:22",
                "127.0.0.1:PORT and 127.0.0.1:PORT",
            ),
            ("127.0.0.1:x 10.0.0.1:80", "127.0.0.1:x 10.0.0.1:80"),
            ("no address", "no address"),
        ] {
            assert_eq!(mask_loopback_ports(input), want, "{input}");
        }
    }
}
