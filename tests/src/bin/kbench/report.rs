//! Medians over the rounds, the targets of issue 6 checked against them, and the outputs: the
//! Markdown report, the SVG chart and raw JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::CONNECTIONS;
use crate::targets::Kind;

/// One request-rate point.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Point {
    /// Requests per second.
    pub(crate) rps: f64,
    /// Median latency, µs.
    pub(crate) p50_us: f64,
    /// 99th percentile latency, µs.
    pub(crate) p99_us: f64,
}

/// One round of one target; `None` = not measured or void.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sample {
    /// Start to first answered request, ms (`None` for the stand-in).
    pub(crate) first_ms: Option<f64>,
    /// Request-rate points at [`CONNECTIONS`].
    pub(crate) points: [Option<Point>; 3],
    /// Peak RSS, KiB.
    pub(crate) rss_kib: Option<u64>,
    /// Watch-stream throughput.
    pub(crate) watch_mib_s: Option<f64>,
    /// Upgrade-tunnel throughput.
    pub(crate) tunnel_mib_s: Option<f64>,
    /// Failures (void runs, errors).
    pub(crate) errors: Vec<String>,
}

impl Sample {
    /// A round that could not run at all.
    pub(crate) fn failed(error: String) -> Sample {
        Sample {
            errors: vec![error],
            ..Sample::default()
        }
    }
}

/// The medians of one target.
#[derive(Clone, Debug, Default)]
pub(crate) struct Summary {
    /// The target.
    pub(crate) kind: Option<Kind>,
    /// Median first answer, ms.
    pub(crate) first_ms: Option<f64>,
    /// Median rps per connection count.
    pub(crate) rps: [Option<f64>; 3],
    /// Median p50 per connection count, µs.
    pub(crate) p50_us: [Option<f64>; 3],
    /// Median p99 per connection count, µs.
    pub(crate) p99_us: [Option<f64>; 3],
    /// Largest peak RSS over the rounds, KiB.
    pub(crate) rss_kib: Option<u64>,
    /// Median watch throughput.
    pub(crate) watch: Option<f64>,
    /// Median tunnel throughput.
    pub(crate) tunnel: Option<f64>,
    /// Every error of every round.
    pub(crate) errors: Vec<String>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v.get(n / 2).copied()
    } else {
        Some((v.get(n / 2 - 1)? + v.get(n / 2)?) / 2.0)
    }
}

/// Medians per target, in `kinds` order.
pub(crate) fn summarize(kinds: &[Kind], samples: &[(Kind, Sample)]) -> Vec<Summary> {
    kinds
        .iter()
        .map(|&kind| {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, s)| s)
                .collect();
            let col = |f: &dyn Fn(&Sample) -> Option<f64>| {
                median(mine.iter().filter_map(|s| f(s)).collect())
            };
            let at = |i: usize, f: fn(&Point) -> f64| {
                col(&|s: &Sample| s.points.get(i).copied().flatten().map(|p| f(&p)))
            };
            Summary {
                kind: Some(kind),
                first_ms: col(&|s| s.first_ms),
                rps: [at(0, |p| p.rps), at(1, |p| p.rps), at(2, |p| p.rps)],
                p50_us: [
                    at(0, |p| p.p50_us),
                    at(1, |p| p.p50_us),
                    at(2, |p| p.p50_us),
                ],
                p99_us: [
                    at(0, |p| p.p99_us),
                    at(1, |p| p.p99_us),
                    at(2, |p| p.p99_us),
                ],
                rss_kib: mine.iter().filter_map(|s| s.rss_kib).max(),
                watch: col(&|s| s.watch_mib_s),
                tunnel: col(&|s| s.tunnel_mib_s),
                errors: mine.iter().flat_map(|s| s.errors.clone()).collect(),
            }
        })
        .collect()
}

/// The machine and the versions under test.
pub(crate) struct Meta {
    /// Rows of (what, value).
    pub(crate) rows: Vec<(String, String)>,
}

fn first_line(cmd: &Path, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_else(|e| format!("unavailable ({e})"))
}

impl Meta {
    /// Reads `/proc`, `uname` and the tools' version lines.
    pub(crate) fn collect(
        shim: &Path,
        envoy: &Path,
        kubectl: &Path,
        wrk: &Path,
        cpus: usize,
    ) -> Meta {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("?", |(_, v)| v.trim())
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or("?".to_owned(), |k| {
                format!("{:.1} GiB", k as f64 / 1048576.0)
            });
        let git = |args: &[&str]| first_line(Path::new("git"), args);
        let shim_meta = std::fs::metadata(shim)
            .map(|m| format!("{:.1} MiB binary", m.len() as f64 / 1048576.0))
            .unwrap_or_default();
        let rows = vec![
            (
                "date (UTC)",
                first_line(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M"]),
            ),
            ("CPU", format!("{model}, {cpus} CPUs available")),
            ("memory", mem),
            ("kernel", first_line(Path::new("uname"), &["-sr"])),
            (
                "load average at the end",
                std::fs::read_to_string("/proc/loadavg")
                    .unwrap_or_default()
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ("kproxy commit", git(&["rev-parse", "--short", "HEAD"])),
            ("shim", format!("release build, {shim_meta}")),
            ("kubectl", first_line(kubectl, &["version", "--client"])),
            (
                "envoy",
                first_line(envoy, &["--version"])
                    .rsplit_once("version: ")
                    .map_or_else(|| "?".to_owned(), |(_, v)| v.to_owned()),
            ),
            ("wrk", first_line(wrk, &["-v"])),
            ("rustc", first_line(Path::new("rustc"), &["-V"])),
        ];
        Meta {
            rows: rows.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }
}

/// Criterion medians (ns) found under `dir`: `(benchmark id, median ns)`.
pub(crate) fn read_criterion(dir: &Path) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, f64)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") {
            let est = p.join("estimates.json");
            let Ok(text) = std::fs::read_to_string(&est) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if let Some(ns) = v.pointer("/median/point_estimate").and_then(Value::as_f64) {
                let id = dir
                    .strip_prefix(root)
                    .map(|r| r.display().to_string())
                    .unwrap_or_default();
                out.push((id, ns));
            }
        } else if p.file_name().is_none_or(|n| n != "report" && n != "base") {
            walk(root, &p, out);
        }
    }
}

/// What the Markdown report is made of.
pub(crate) struct Input<'a> {
    /// Machine and versions.
    pub(crate) meta: &'a Meta,
    /// Medians.
    pub(crate) summary: &'a [Summary],
    /// Rounds run.
    pub(crate) rounds: usize,
    /// Seconds per wrk point.
    pub(crate) duration: Duration,
    /// Seconds per stream point.
    pub(crate) stream: Duration,
    /// The shim's start with an empty compilation cache.
    pub(crate) shim_cold: Option<Duration>,
    /// Criterion medians.
    pub(crate) criterion: &'a [(String, f64)],
    /// Hand-written analysis (bench/notes.md).
    pub(crate) notes: &'a str,
    /// The SVG file name (next to the report).
    pub(crate) svg_name: String,
    /// How long the whole run took.
    pub(crate) elapsed: Duration,
}

fn f0(v: Option<f64>) -> String {
    v.map_or("void".to_owned(), |v| format!("{v:.0}"))
}

fn f1(v: Option<f64>) -> String {
    v.map_or("void".to_owned(), |v| format!("{v:.1}"))
}

fn ms(us: Option<f64>) -> String {
    us.map_or("void".to_owned(), |v| format!("{:.2}", v / 1000.0))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// The results table (also printed on stdout).
pub(crate) fn table(summary: &[Summary]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| target | rps @1 | rps @32 | rps @128 | p50 ms @1/32/128 | p99 ms @1/32/128 | peak RSS MiB | first answer ms | watch MiB/s | tunnel MiB/s |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for t in summary {
        let name = t.kind.map_or("?", Kind::name);
        let [r1, r32, r128] = t.rps;
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} / {} / {} | {} / {} / {} | {} | {} | {} | {} |",
            f0(r1),
            f0(r32),
            f0(r128),
            ms(t.p50_us[0]),
            ms(t.p50_us[1]),
            ms(t.p50_us[2]),
            ms(t.p99_us[0]),
            ms(t.p99_us[1]),
            ms(t.p99_us[2]),
            mib(t.rss_kib),
            t.first_ms.map_or("n/a".to_owned(), |v| format!("{v:.0}")),
            f1(t.watch),
            f1(t.tunnel),
        );
    }
    s
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn x(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.2}×"))
}

fn find(summary: &[Summary], kind: Kind) -> Option<&Summary> {
    summary.iter().find(|s| s.kind == Some(kind))
}

fn plural(c: u32) -> &'static str {
    if c == 1 { "connection" } else { "connections" }
}

/// One checked target: (what, measured, met?).
struct Check {
    what: String,
    measured: String,
    met: Option<bool>,
}

fn checks(i: &Input<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    let kubectl = find(i.summary, Kind::Kubectl);
    let shim = find(i.summary, Kind::Shim);
    let ef = find(i.summary, Kind::EnvoyFilter);
    let en = find(i.summary, Kind::EnvoyNative);
    let rss = |s: Option<&Summary>| s.and_then(|s| s.rss_kib).map(|k| k as f64);
    for (idx, c) in CONNECTIONS.iter().enumerate().skip(1) {
        let r = ratio(
            shim.and_then(|s| s.rps.get(idx).copied().flatten()),
            kubectl.and_then(|s| s.rps.get(idx).copied().flatten()),
        );
        out.push(Check {
            what: format!("shim ≥ 2× kubectl proxy rps at {c} connections"),
            measured: x(r),
            met: r.map(|r| r >= 2.0),
        });
    }
    for (idx, c) in CONNECTIONS.iter().enumerate() {
        let s = shim.and_then(|s| s.p99_us.get(idx).copied().flatten());
        let k = kubectl.and_then(|s| s.p99_us.get(idx).copied().flatten());
        out.push(Check {
            what: format!("shim p99 ≤ kubectl proxy's at {c} {}", plural(*c)),
            measured: format!("{} ms vs {} ms", ms(s), ms(k)),
            met: s.zip(k).map(|(s, k)| s <= k),
        });
    }
    let (rs, rk) = (rss(shim), rss(kubectl));
    out.push(Check {
        what: "shim peak RSS ≤ kubectl proxy's".to_owned(),
        measured: format!(
            "{} MiB vs {} MiB",
            mib(shim.and_then(|s| s.rss_kib)),
            mib(kubectl.and_then(|s| s.rss_kib))
        ),
        met: rs.zip(rk).map(|(s, k)| s <= k),
    });
    let first = shim.and_then(|s| s.first_ms);
    out.push(Check {
        what: "shim first answer ≤ 150 ms after start (compiled module cached)".to_owned(),
        measured: format!(
            "{} ms (first start with an empty cache: {})",
            first.map_or("?".to_owned(), |v| format!("{v:.0}")),
            i.shim_cold.map_or("not measured".to_owned(), |d| format!(
                "{:.0} ms",
                d.as_secs_f64() * 1e3
            ))
        ),
        met: first.map(|v| v <= 150.0),
    });
    for (idx, c) in CONNECTIONS.iter().enumerate() {
        let r = ratio(
            ef.and_then(|s| s.rps.get(idx).copied().flatten()),
            en.and_then(|s| s.rps.get(idx).copied().flatten()),
        );
        out.push(Check {
            what: format!(
                "Envoy+filter ≥ 85% of native Envoy rps at {c} {}",
                plural(*c)
            ),
            measured: r.map_or("–".to_owned(), |r| format!("{:.0}%", r * 100.0)),
            met: r.map(|r| r >= 0.85),
        });
    }
    let wasm = i
        .criterion
        .iter()
        .find(|(id, _)| id.contains("request_headers") && id.contains("kproxy"))
        .or_else(|| {
            i.criterion
                .iter()
                .find(|(id, _)| id.contains("request_headers"))
        });
    out.push(Check {
        what: "wasm request-headers cost < 10 µs median (criterion)".to_owned(),
        measured: wasm.map_or("not run".to_owned(), |(id, ns)| {
            format!("{:.2} µs ({id})", ns / 1000.0)
        }),
        met: wasm.map(|(_, ns)| *ns < 10_000.0),
    });
    for (what, f) in [
        (
            "watch",
            (|s: &Summary| s.watch) as fn(&Summary) -> Option<f64>,
        ),
        ("tunnel", |s: &Summary| s.tunnel),
    ] {
        let s = shim.and_then(f);
        let k = kubectl.and_then(f);
        out.push(Check {
            what: format!("shim {what} throughput ≥ kubectl proxy's"),
            measured: format!("{} vs {} MiB/s", f1(s), f1(k)),
            met: s.zip(k).map(|(s, k)| s >= k),
        });
    }
    out
}

/// The whole Markdown report.
pub(crate) fn markdown(i: &Input<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by `just bench` (`tests/src/bin/kbench.rs`); do not edit by hand: the analysis \
         below comes from `bench/notes.md`. Medians of {} rounds; inside a round the targets run \
         one after the other in a rotating order, each freshly started. {} s of `wrk` per \
         connection count (after a 1 s warm-up), {} s per stream. Whole run: {:.0} s.\n",
        i.rounds,
        i.duration.as_secs(),
        i.stream.as_secs(),
        i.elapsed.as_secs_f64()
    );
    let _ = writeln!(s, "## Machine and versions\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    for (k, v) in &i.meta.rows {
        let _ = writeln!(s, "| {k} | {} |", v.replace('|', "\\|"));
    }
    let _ = writeln!(
        s,
        "\nThe load generator, the stand-in API server and the target share the same CPUs, so \
         absolute numbers depend on the machine and on anything else running; compare targets \
         within one run.\n"
    );
    let _ = writeln!(s, "## Results\n");
    let _ = writeln!(s, "![requests per second]({})\n", i.svg_name);
    s.push_str(&table(i.summary));
    let _ = writeln!(s, "\n## Ratios against kubectl proxy\n");
    let _ = writeln!(
        s,
        "Higher is better for rates and throughput; lower is better for p99, RSS and start.\n"
    );
    let _ = writeln!(
        s,
        "| target | rps @1 | rps @32 | rps @128 | p99 @32 | p99 @128 | peak RSS | first answer | watch | tunnel |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    if let Some(k) = find(i.summary, Kind::Kubectl) {
        for t in i.summary {
            let rk = k.rss_kib.map(|v| v as f64);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                t.kind.map_or("?", Kind::name),
                x(ratio(t.rps[0], k.rps[0])),
                x(ratio(t.rps[1], k.rps[1])),
                x(ratio(t.rps[2], k.rps[2])),
                x(ratio(t.p99_us[1], k.p99_us[1])),
                x(ratio(t.p99_us[2], k.p99_us[2])),
                x(ratio(t.rss_kib.map(|v| v as f64), rk)),
                x(ratio(t.first_ms, k.first_ms)),
                x(ratio(t.watch, k.watch)),
                x(ratio(t.tunnel, k.tunnel)),
            );
        }
    }
    let _ = writeln!(s, "\n## Targets (issue 6)\n");
    let _ = writeln!(s, "| target | measured | met |\n|---|---|---|");
    for c in checks(i) {
        let met = match c.met {
            Some(true) => "yes",
            Some(false) => "**NO**",
            None => "not measured",
        };
        let _ = writeln!(s, "| {} | {} | {met} |", c.what, c.measured);
    }
    if !i.criterion.is_empty() {
        let _ = writeln!(
            s,
            "\n## Filter micro-benchmark (criterion, `cargo bench -p shim --bench filter_overhead`)\n"
        );
        let _ = writeln!(s, "| benchmark | median |\n|---|---:|");
        for (id, ns) in i.criterion {
            let v = if *ns >= 1000.0 {
                format!("{:.2} µs", ns / 1000.0)
            } else {
                format!("{ns:.0} ns")
            };
            let _ = writeln!(s, "| `{id}` | {v} |");
        }
    }
    let errors: Vec<String> = i
        .summary
        .iter()
        .flat_map(|t| {
            t.errors
                .iter()
                .map(move |e| format!("- {}: {e}", t.kind.map_or("?", Kind::name)))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\n## Failures and void runs\n");
        for e in errors {
            let _ = writeln!(s, "{e}");
        }
    }
    let _ = writeln!(
        s,
        "\n## How it is measured\n\n\
         - Stand-in API server: in the kbench process (hyper + rustls, 2 threads), HTTP/1.1 over \
           TLS, 401 without the bearer token. `GET /api/v1/namespaces/default/pods` answers a \
           1.1 KiB `PodList`; `?watch=true` streams watch events endlessly; an `Upgrade: \
           SPDY/3.1` request to `…/pods/bench/portforward` gets 101 and an echo.\n\
         - Request rate and latency: `wrk -t(1|2) -c(1|32|128) --latency` on the list path through \
           each target. Any non-2xx answer voids that point for that round.\n\
         - Peak RSS: `VmHWM` of the target process at the end of its round (largest over rounds).\n\
         - First answer: from `spawn()` to the first `200` on the list path, polling every 2 ms. \
           The shim's compiled-module cache lives in a scratch directory that one untimed start \
           fills before the rounds (that cold start is reported separately above).\n\
         - Watch: one stream read for the stream duration; tunnel: one upgraded connection, one \
           task writing 64 KiB blocks while the other counts the echo (MiB/s echoed).\n\
         - Envoy runs with `--concurrency` = CPUs, the real binary (not the Python launcher); \
           kubectl proxy and the shim with their defaults.\n"
    );
    if !i.notes.trim().is_empty() {
        let _ = writeln!(s, "\n{}", i.notes.trim());
    }
    s
}

/// A grouped bar chart of requests per second (hand-written SVG).
pub(crate) fn svg(summary: &[Summary]) -> String {
    let colors = ["#9aa5b1", "#2f6fde", "#e8833a"];
    let (w, h) = (760.0_f64, 360.0_f64);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 60.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = summary
        .iter()
        .flat_map(|t| t.rps.iter().flatten().copied())
        .fold(1.0_f64, f64::max);
    let step = nice_step(max / 5.0);
    let top_val = (max / step).ceil() * step;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">Requests per second (median), higher is better</text>"#,
        w / 2.0
    );
    let mut v = 0.0;
    while v <= top_val + 1e-9 {
        let y = top + plot_h - v / top_val * plot_h;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            w - right,
            left - 6.0,
            y + 4.0
        );
        v += step;
    }
    let groups = summary.len().max(1) as f64;
    let group_w = plot_w / groups;
    let bar_w = group_w * 0.8 / 3.0;
    for (g, t) in summary.iter().enumerate() {
        let gx = left + g as f64 * group_w + group_w * 0.1;
        for (b, val) in t.rps.iter().enumerate() {
            let x = gx + b as f64 * bar_w;
            let color = colors.get(b).copied().unwrap_or("#000");
            match val {
                Some(val) => {
                    let bh = val / top_val * plot_h;
                    let y = top + plot_h - bh;
                    let _ = writeln!(
                        s,
                        r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{color}"><title>{} @{} connections: {val:.0} rps</title></rect>"#,
                        bar_w - 2.0,
                        t.kind.map_or("?", Kind::name),
                        CONNECTIONS.get(b).copied().unwrap_or(0)
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">void</text>"#,
                        x + bar_w / 2.0,
                        top + plot_h - 4.0
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + group_w * 0.4,
            top + plot_h + 18.0,
            t.kind.map_or("?", Kind::name)
        );
    }
    for (b, c) in CONNECTIONS.iter().enumerate() {
        let x = left + b as f64 * 130.0;
        let y = h - 18.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}">{c} connection{}</text>"#,
            y - 10.0,
            colors.get(b).copied().unwrap_or("#000"),
            x + 16.0,
            if *c == 1 { "" } else { "s" }
        );
    }
    s.push_str("</svg>\n");
    s
}

fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.max(1.0).log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Raw results: every sample and the medians.
pub(crate) fn json(samples: &[(Kind, Sample)], summary: &[Summary]) -> Value {
    let pt = |p: &Option<Point>| {
        p.map(|p| json!({"rps": p.rps, "p50_us": p.p50_us, "p99_us": p.p99_us}))
    };
    json!({
        "connections": CONNECTIONS,
        "samples": samples.iter().map(|(k, s)| json!({
            "target": k.name(),
            "first_ms": s.first_ms,
            "points": s.points.iter().map(pt).collect::<Vec<_>>(),
            "rss_kib": s.rss_kib,
            "watch_mib_s": s.watch_mib_s,
            "tunnel_mib_s": s.tunnel_mib_s,
            "errors": s.errors,
        })).collect::<Vec<_>>(),
        "medians": summary.iter().map(|t| json!({
            "target": t.kind.map(Kind::name),
            "first_ms": t.first_ms,
            "rps": t.rps,
            "p50_us": t.p50_us,
            "p99_us": t.p99_us,
            "rss_kib": t.rss_kib,
            "watch_mib_s": t.watch,
            "tunnel_mib_s": t.tunnel,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_void_points() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        let p = |rps| {
            Some(Point {
                rps,
                p50_us: 1.0,
                p99_us: 2.0,
            })
        };
        let samples = vec![
            (
                Kind::Shim,
                Sample {
                    points: [p(10.0), None, p(5.0)],
                    ..Sample::default()
                },
            ),
            (
                Kind::Shim,
                Sample {
                    points: [p(30.0), None, p(7.0)],
                    ..Sample::default()
                },
            ),
            (
                Kind::Kubectl,
                Sample {
                    points: [p(1.0), p(1.0), p(1.0)],
                    ..Sample::default()
                },
            ),
        ];
        let s = summarize(&[Kind::Kubectl, Kind::Shim], &samples);
        assert_eq!(s[1].rps, [Some(20.0), None, Some(6.0)]);
        assert!(table(&s).contains("| shim | 20 | void | 6 |"));
        assert!(svg(&s).starts_with("<svg"));
    }
}
