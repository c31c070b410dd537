//! Real clients through the proxies: `kubectl` (with an empty kubeconfig, so it sends no
//! credentials) and the Python `kubernetes` package talk plain HTTP to the shim and to
//! `kubectl proxy`, which forward to the fake API server with the kubeconfig's token. Both proxies
//! share one fake, so the clients' outputs must be byte-identical (differential).
//!
//! It must not look inside the proxies; it sees only client output and what reached the fake.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend, Running};
use crate::kubeconfig::{self, TempDir, Variant};
use crate::replies;

/// Lists every config map as `namespace/name` lines, with no kubeconfig and no credentials.
const PY_LIST_CONFIGMAPS: &str = "\
import sys
from kubernetes import client
cfg = client.Configuration()
cfg.host = sys.argv[1]
api = client.CoreV1Api(client.ApiClient(cfg))
for cm in api.list_config_map_for_all_namespaces().items:
    print(cm.metadata.namespace + '/' + cm.metadata.name)
";

/// A client command run against a proxy's `http://` URL.
#[derive(Clone, Copy, Debug)]
enum Client {
    /// `kubectl get --raw /api`.
    KubectlRawApi,
    /// `kubectl get configmaps -A`.
    KubectlConfigmaps,
    /// The Python client's `list_config_map_for_all_namespaces`.
    PythonConfigmaps,
}

/// What a client run must show.
struct Want {
    /// The stdout, parsed as JSON, equals this document.
    json: Option<Vec<u8>>,
    /// Substrings of the stdout.
    contains: &'static [&'static str],
    /// A request for this path reached the fake.
    upstream_path: &'static str,
}

/// One proxy in front of the shared fake, and the client's sandbox.
struct Setup<'a> {
    fake: &'a FakeApiServer,
    proxy: &'a Running,
    dir: &'a TempDir,
    empty_kubeconfig: &'a Path,
}

// === impl Client ===

impl Client {
    /// Runs the client against `url`; `None` (after printing why) when it is unavailable.
    fn run(self, url: &str, s: &Setup<'_>) -> Option<Output> {
        let mut cmd = match self {
            Client::KubectlRawApi | Client::KubectlConfigmaps => {
                let bin = Backend::Kubectl.binary().ok()?;
                let mut cmd = Command::new(bin);
                cmd.arg(format!("--kubeconfig={}", s.empty_kubeconfig.display()))
                    .arg(format!("--server={url}"))
                    .arg("--request-timeout=20s");
                match self {
                    Client::KubectlRawApi => cmd.args(["get", "--raw", "/api"]),
                    _ => cmd.args(["get", "configmaps", "-A"]),
                };
                cmd
            }
            Client::PythonConfigmaps => {
                let python = python_with_kubernetes()?;
                let mut cmd = Command::new(python);
                cmd.arg("-c").arg(PY_LIST_CONFIGMAPS).arg(url);
                cmd
            }
        };
        for var in [
            "KUBECONFIG",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "http_proxy",
            "https_proxy",
        ] {
            cmd.env_remove(var);
        }
        let out = cmd
            .env("HOME", s.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("{self:?} runs: {e}"));
        Some(out)
    }

    fn want(self, fake: &FakeApiServer) -> Want {
        match self {
            Client::KubectlRawApi => Want {
                json: Some(replies::api_versions(&fake.addr().to_string())),
                contains: &["APIVersions"],
                upstream_path: "/api",
            },
            Client::KubectlConfigmaps => Want {
                json: None,
                contains: &["NAMESPACE", "default", "kube-system", "kube-root-ca.crt"],
                upstream_path: "/api/v1/configmaps",
            },
            Client::PythonConfigmaps => Want {
                json: None,
                contains: &[
                    "default/kube-root-ca.crt\n",
                    "kube-system/kube-root-ca.crt\n",
                ],
                upstream_path: "/api/v1/configmaps",
            },
        }
    }
}

/// The project venv's python if it can `import kubernetes`; else skips (prints why), or panics
/// under `CI`.
fn python_with_kubernetes() -> Option<PathBuf> {
    let python = crate::workspace_root().join(".venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import kubernetes"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let reason = format!(
        "{} cannot import kubernetes (run `just envoy`)",
        python.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("the Python client is required under CI: {reason}");
    }
    println!("skipped: python client ({reason})");
    None
}

/// Runs `client` through `s.proxy`, checks its output and that the fake saw the injected token
/// on every request; returns the stdout for comparison, `None` when the client was skipped.
#[track_caller]
fn check(client: Client, s: &Setup<'_>) -> Option<String> {
    let name = s.proxy.backend.name();
    let before = s.fake.requests().len();
    let url = format!("http://{}", s.proxy.addr());
    let out = client.run(&url, s)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let ctx = || {
        format!(
            "{client:?} through {name}\nstdout:\n{stdout}\nstderr:\n{}\nproxy stderr:\n{}",
            String::from_utf8_lossy(&out.stderr),
            s.proxy.logs()
        )
    };
    assert!(
        out.status.success(),
        "{} exited {}: {}",
        name,
        out.status,
        ctx()
    );
    let want = client.want(s.fake);
    if let Some(doc) = &want.json {
        let got: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", ctx()));
        let doc: serde_json::Value = serde_json::from_slice(doc).expect("fake reply is JSON");
        assert_eq!(got, doc, "{}", ctx());
    }
    for needle in want.contains {
        assert!(stdout.contains(needle), "missing {needle:?}: {}", ctx());
    }
    let seen = s.fake.requests().split_off(before);
    assert!(
        seen.iter().any(|r| r.path() == want.upstream_path),
        "no {} reached the fake: {:?}\n{}",
        want.upstream_path,
        seen.iter().map(|r| &r.target).collect::<Vec<_>>(),
        ctx()
    );
    let token = format!("Bearer {}", s.fake.options().token);
    for r in &seen {
        assert_eq!(
            r.header("authorization"),
            Some(token.as_str()),
            "{} {} reached the fake without the injected token: {}",
            r.method,
            r.target,
            ctx()
        );
    }
    Some(stdout)
}

#[test]
fn real_clients_through_shim_and_kubectl_proxy() {
    let backends: Vec<Backend> = [Backend::Shim, Backend::Kubectl]
        .into_iter()
        .filter(|b| backend::require(*b).is_some())
        .collect();
    // The kubectl client itself is needed even when only the shim is tested.
    if backend::require(Backend::Kubectl).is_none() {
        return;
    }
    let fake = FakeApiServer::start(FakeOptions::default()).expect("fake starts");
    let dir = TempDir::new("clients").expect("temp dir");
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    let empty = dir
        .write("empty-kubeconfig", b"")
        .expect("empty kubeconfig");
    let clients = [
        Client::KubectlRawApi,
        Client::KubectlConfigmaps,
        Client::PythonConfigmaps,
    ];
    let mut outputs: Vec<(Backend, Vec<Option<String>>)> = Vec::new();
    for b in backends {
        let proxy = b
            .spawn(&[], &kc, &fake, &dir)
            .unwrap_or_else(|e| panic!("{} starts: {e:#}", b.name()));
        let setup = Setup {
            fake: &fake,
            proxy: &proxy,
            dir: &dir,
            empty_kubeconfig: &empty,
        };
        let outs = clients.iter().map(|c| check(*c, &setup)).collect();
        outputs.push((b, outs));
    }
    // Differential: the same client, the same fake, so the same bytes through either proxy.
    if let [(a, outs_a), (b, outs_b)] = outputs.as_slice() {
        for ((client, x), y) in clients.iter().zip(outs_a).zip(outs_b) {
            assert_eq!(
                x,
                y,
                "{client:?}: {} and {} outputs differ",
                a.name(),
                b.name()
            );
        }
    }
}
