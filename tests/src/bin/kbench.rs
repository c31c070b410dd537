//! `kbench`: the kproxy benchmark behind `just bench`.
//!
//! It starts a fast TLS stand-in API server (bearer token required), then drives each target in
//! turn with the same load, alternating targets over several rounds: `kubectl proxy`, the shim,
//! Envoy with the filter, Envoy with an equivalent native configuration, and the stand-in
//! directly (the ceiling). Per target and round: time from process start to the first answered
//! request, `wrk` at 1, 32 and 128 connections (requests/s, p50, p99), watch-stream and
//! upgrade-tunnel throughput, peak RSS (`VmHWM`). Medians over the rounds go to a Markdown
//! report with an SVG chart (`docs/benchmarks.md`, `docs/benchmarks.svg`) and raw JSON.
//!
//! ```text
//! kbench [--rounds 3] [--duration 4] [--stream-secs 2] [--targets kubectl,shim,envoy,native,direct]
//!        [--out docs/benchmarks.md] [--svg docs/benchmarks.svg] [--json target/kbench/results.json]
//!        [--criterion target/criterion] [--wrk wrk] [--shim PATH] [--envoy PATH] [--wasm PATH]
//!        [--kubectl kubectl] [--notes bench/notes.md]
//! ```

#[path = "kbench/load.rs"]
mod load;
#[path = "kbench/report.rs"]
mod report;
#[path = "kbench/standin.rs"]
mod standin;
#[path = "kbench/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use report::{Point, Sample};
use targets::{Kind, Running, Setup};

/// The connection counts of the request-rate points.
pub(crate) const CONNECTIONS: [u32; 3] = [1, 32, 128];

struct Args {
    rounds: usize,
    duration: Duration,
    stream: Duration,
    kinds: Vec<Kind>,
    out: PathBuf,
    svg: PathBuf,
    json: PathBuf,
    criterion: PathBuf,
    notes: PathBuf,
    wrk: PathBuf,
    shim: PathBuf,
    envoy: PathBuf,
    wasm: PathBuf,
    kubectl: PathBuf,
}

fn env_or(var: &str, default: PathBuf) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or(default, PathBuf::from)
}

fn parse_args() -> Result<Args> {
    let root = tests::workspace_root();
    let mut a = Args {
        rounds: 3,
        duration: Duration::from_secs(4),
        stream: Duration::from_secs(2),
        kinds: Kind::ALL.to_vec(),
        out: root.join("docs/benchmarks.md"),
        svg: root.join("docs/benchmarks.svg"),
        json: root.join("target/kbench/results.json"),
        criterion: root.join("target/criterion"),
        notes: root.join("bench/notes.md"),
        wrk: PathBuf::from("wrk"),
        shim: env_or("SHIM_BIN", root.join("target/release/shim")),
        envoy: env_or("ENVOY_BIN", root.join(".venv/bin/envoy")),
        wasm: env_or(
            "FILTER_WASM",
            root.join("target/wasm32-wasip1/wasm/kproxy_filter.wasm"),
        ),
        kubectl: env_or("KUBECTL_BIN", PathBuf::from("kubectl")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        if name == "--help" || name == "-h" {
            println!("{}", include_str!("kbench/usage.txt"));
            std::process::exit(0);
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().with_context(|| format!("{name} needs a value"))?,
        };
        match name.as_str() {
            "--rounds" => a.rounds = value.parse().context("--rounds")?,
            "--duration" => a.duration = Duration::from_secs(value.parse().context("--duration")?),
            "--stream-secs" => {
                a.stream = Duration::from_secs(value.parse().context("--stream-secs")?);
            }
            "--targets" => {
                a.kinds = value
                    .split(',')
                    .map(|s| {
                        Kind::from_arg(s.trim()).with_context(|| format!("unknown target {s}"))
                    })
                    .collect::<Result<_>>()?;
            }
            "--out" => a.out = value.into(),
            "--svg" => a.svg = value.into(),
            "--json" => a.json = value.into(),
            "--criterion" => a.criterion = value.into(),
            "--notes" => a.notes = value.into(),
            "--wrk" => a.wrk = value.into(),
            "--shim" => a.shim = value.into(),
            "--envoy" => a.envoy = value.into(),
            "--wasm" => a.wasm = value.into(),
            "--kubectl" => a.kubectl = value.into(),
            _ => bail!("unknown flag {name} (see --help)"),
        }
    }
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("kbench: {e:#}");
        std::process::exit(1);
    }
}

fn which(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 {
        return name.is_file().then(|| name.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let began = Instant::now();
    let cpus = std::thread::available_parallelism().map_or(2, usize::from);
    let wrk = which(&args.wrk).with_context(|| {
        format!(
            "{} not found: apt-get install -y wrk (or pass --wrk PATH)",
            args.wrk.display()
        )
    })?;
    let needs = |k: Kind| args.kinds.contains(&k);
    let kubectl = which(&args.kubectl).unwrap_or_else(|| args.kubectl.clone());
    if needs(Kind::Kubectl) && !kubectl.is_file() {
        bail!("kubectl not found (pass --kubectl PATH)");
    }
    if (needs(Kind::Shim) || needs(Kind::EnvoyFilter)) && !args.shim.is_file() {
        bail!(
            "the shim {} does not exist (build it with --release)",
            args.shim.display()
        );
    }
    let envoy = targets::real_envoy(&args.envoy);
    if (needs(Kind::EnvoyFilter) || needs(Kind::EnvoyNative)) && !envoy.is_file() {
        bail!(
            "envoy {} does not exist (./just envoy)",
            args.envoy.display()
        );
    }
    if (needs(Kind::Shim) || needs(Kind::EnvoyFilter)) && !args.wasm.is_file() {
        bail!(
            "the filter {} does not exist (./just wasm)",
            args.wasm.display()
        );
    }

    let dir = std::env::temp_dir().join(format!("kbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _scratch = RemoveOnDrop(dir.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus.clamp(1, 2))
        .enable_all()
        .build()?;
    let pki = tests::tls::Pki::generate("kbench CA")?;
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, &pki.ca_pem)?;
    let standin = runtime.block_on(standin::StandIn::start(pki.server_config()?))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes())?)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let setup = Setup {
        kubeconfig: targets::write_kubeconfig(&dir, standin.addr, &ca_file)?,
        dir: dir.clone(),
        ca_file,
        api: standin.addr,
        client_tls,
        kubectl,
        shim: args.shim.clone(),
        envoy,
        wasm: args.wasm.clone(),
        native_template: tests::workspace_root().join("bench/envoy-native.yaml.tmpl"),
        cpus,
    };
    let cache_dir = dir.join("wasm-cache");
    let shim_env: Vec<(&str, &Path)> = vec![("KPROXY_WASM_CACHE_DIR", cache_dir.as_path())];
    eprintln!(
        "kbench: stand-in on {}, {} rounds x {} targets, {:?} per point; scratch {}",
        standin.addr,
        args.rounds,
        args.kinds.len(),
        args.duration,
        dir.display()
    );

    // The shim's first start ever (empty compilation cache), measured once.
    let mut shim_cold = None;
    if needs(Kind::Shim) {
        let running = targets::start(&setup, Kind::Shim, &shim_env)?;
        let t = runtime.block_on(load::first_answer(
            &running.endpoint,
            running.started,
            Duration::from_secs(30),
        ))?;
        eprintln!("kbench: shim cold start (empty wasm cache): {t:?}");
        shim_cold = Some(t);
    }

    let mut samples: Vec<(Kind, Sample)> = Vec::new();
    for round in 0..args.rounds {
        let n = args.kinds.len();
        for i in 0..n {
            // Rotate the order each round so no target always runs first or last.
            let Some(&kind) = args.kinds.get((i + round) % n) else {
                continue;
            };
            eprintln!(
                "kbench: round {}/{} {}",
                round + 1,
                args.rounds,
                kind.name()
            );
            let sample = measure(&runtime, &setup, kind, &shim_env, &wrk, &args)
                .unwrap_or_else(|e| Sample::failed(format!("{e:#}")));
            if !sample.errors.is_empty() {
                eprintln!("kbench:   {}: {}", kind.name(), sample.errors.join("; "));
            }
            samples.push((kind, sample));
        }
    }

    let meta = report::Meta::collect(&args.shim, &setup.envoy, &setup.kubectl, &wrk, cpus);
    let summary = report::summarize(&args.kinds, &samples);
    let criterion = report::read_criterion(&args.criterion);
    let notes = std::fs::read_to_string(&args.notes).unwrap_or_default();
    let input = report::Input {
        meta: &meta,
        summary: &summary,
        rounds: args.rounds,
        duration: args.duration,
        stream: args.stream,
        shim_cold,
        criterion: &criterion,
        notes: &notes,
        svg_name: args
            .svg
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        elapsed: began.elapsed(),
    };
    let md = report::markdown(&input);
    let svg = report::svg(&summary);
    for (path, text) in [(&args.out, &md), (&args.svg, &svg)] {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(p) = args.json.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(&args.json, report::json(&samples, &summary).to_string())?;
    println!("{}", report::table(&summary));
    eprintln!(
        "kbench: wrote {} and {} in {:?}",
        args.out.display(),
        args.svg.display(),
        began.elapsed()
    );
    Ok(())
}

/// Removes the scratch directory however `run` ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One round of one target.
fn measure(
    rt: &tokio::runtime::Runtime,
    setup: &Setup,
    kind: Kind,
    shim_env: &[(&str, &Path)],
    wrk: &Path,
    args: &Args,
) -> Result<Sample> {
    let running: Running = targets::start(setup, kind, shim_env)?;
    let limit = Duration::from_secs(60);
    let first = rt.block_on(load::first_answer(
        &running.endpoint,
        running.started,
        limit,
    ))?;
    let mut sample = Sample {
        first_ms: (kind != Kind::Direct).then_some(first.as_secs_f64() * 1e3),
        ..Sample::default()
    };
    // Warm-up (not recorded): connection pools, JITs, page cache.
    let _ = load::wrk(wrk, &running.endpoint, 32, Duration::from_secs(1));
    for (i, c) in CONNECTIONS.iter().enumerate() {
        let point = match load::wrk(wrk, &running.endpoint, *c, args.duration) {
            Ok(r) if r.non_2xx > 0 => {
                sample.errors.push(format!(
                    "{c} connections: {} non-2xx answers: run void",
                    r.non_2xx
                ));
                None
            }
            Ok(r) if r.requests == 0 => {
                sample.errors.push(format!("{c} connections: no requests"));
                None
            }
            Ok(r) => {
                if r.socket_errors > 0 {
                    sample.errors.push(format!(
                        "{c} connections: {} socket errors",
                        r.socket_errors
                    ));
                }
                Some(Point {
                    rps: r.rps,
                    p50_us: r.p50_us,
                    p99_us: r.p99_us,
                })
            }
            Err(e) => {
                sample.errors.push(format!("{c} connections: {e:#}"));
                None
            }
        };
        if let Some(slot) = sample.points.get_mut(i) {
            *slot = point;
        }
    }
    match rt.block_on(load::watch_throughput(&running.endpoint, args.stream)) {
        Ok(v) => sample.watch_mib_s = Some(v),
        Err(e) => sample.errors.push(format!("watch: {e:#}")),
    }
    match rt.block_on(load::tunnel_throughput(&running.endpoint, args.stream)) {
        Ok(v) => sample.tunnel_mib_s = Some(v),
        Err(e) => sample.errors.push(format!("tunnel: {e:#}")),
    }
    sample.rss_kib = running.pid().and_then(load::peak_rss_kib);
    drop(running);
    Ok(sample)
}
