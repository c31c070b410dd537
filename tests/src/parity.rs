//! Differential mode: runs a scenario on all three backends and compares each case's shim and
//! Envoy observation with kubectl's (status; the local reply body when nothing reached upstream;
//! the upstream method and target otherwise; the tunnel echo). Prints the table
//! `scenario | case | kubectl | shim | envoy` with `agree` / `differ` / `skip`; a case marked with a
//! documented `deviation` may differ.
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
    match obs.upstream.first() {
        Some(up) => k.push_str(&format!(" → {} {}", up.method, up.target)),
        None => k.push_str(&format!(
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
        let r = match backend::require(b) {
            None => Err("unavailable".to_owned()),
            Some(()) => runner::run(&scenario, b)
                .map(|(o, _)| o)
                .map_err(|e| format!("{e:#}")),
        };
        results.insert(b, r);
    }
    let observed = |b: Backend, i: usize| -> Option<String> {
        match results.get(&b) {
            Some(Ok(outcomes)) => outcomes.get(i)?.observation.as_ref().ok().map(key),
            _ => None,
        }
    };
    let mut table = format!(
        "{:<10} | {:<44} | {:<40} | {:<8} | {:<8}\n",
        "scenario", "case", "kubectl", "shim", "envoy"
    );
    let mut differences = String::new();
    for (i, case) in scenario.cases.iter().enumerate() {
        let oracle = observed(Backend::Kubectl, i);
        let mut cols = Vec::new();
        for b in [Backend::Shim, Backend::Envoy] {
            let col = match (&oracle, observed(b, i)) {
                (Some(o), Some(got)) if *o == got => "agree".to_owned(),
                (Some(o), Some(got)) => match &case.deviation {
                    Some(d) => format!("differ ({d})"),
                    None => {
                        differences.push_str(&format!(
                            "  {name}/{}: kubectl {o}\n  {:>width$} {}: {got}\n",
                            case.name,
                            "",
                            b.name(),
                            width = name.len() + case.name.len() + 1
                        ));
                        "differ".to_owned()
                    }
                },
                _ => "skip".to_owned(),
            };
            cols.push(col);
        }
        let oracle_col = oracle.unwrap_or_else(|| "skip".to_owned());
        table.push_str(&format!(
            "{name:<10} | {:<44} | {:<40} | {:<8} | {:<8}\n",
            case.name,
            oracle_col.chars().take(40).collect::<String>(),
            cols[0],
            cols[1]
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
        "kproxy differs from kubectl proxy (not a documented deviation):\n{differences}"
    );
}

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
