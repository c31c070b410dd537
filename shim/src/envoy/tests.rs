//! `envoy-bootstrap` tests: goldens rendered from the kubeconfig fixtures in
//! `tests/golden/envoy/fixtures/` (regenerate with `KPROXY_BLESS=1`), the plugin JSON being the
//! shim's, the plan's pure steps, and every golden case run through the real
//! `envoy --mode validate` (`$ENVOY_BIN` or `<workspace>/.venv/bin/envoy`; skipped with a
//! message when missing, failing when `CI` is set).

use std::path::{Path, PathBuf};

use super::plan::{self, Credential, ListenerAddr};
use super::*;
use crate::cli::{self, Command, Listen};
use crate::kubeconfig::Env;
use crate::test_support::TempDir;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/envoy")
}

fn fixtures() -> PathBuf {
    std::path::absolute(golden_dir().join("fixtures")).expect("absolute fixtures dir")
}

/// One golden: its name and the flags after `envoy-bootstrap --kubeconfig=<fixtures>`;
/// `@@FIXTURES@@` in a flag is the fixtures directory.
const CASES: &[(&str, &[&str])] = &[
    ("defaults-token", &["--context=token"]),
    (
        "custom-prefix-www",
        &[
            "--context=token",
            "--api-prefix=/k8s-api",
            "--reject-methods=POST,PUT",
            "--www=@@FIXTURES@@",
            "--www-prefix=/ui/",
            "--as=jane",
            "--as-group=devs",
        ],
    ),
    (
        "unix-socket",
        &["--context=token", "--unix-socket=/run/kproxy/kproxy.sock"],
    ),
    ("token-file", &["--context=file"]),
    (
        "insecure-wildcard",
        &["--context=insecure", "--address=0.0.0.0", "--port=8080"],
    ),
    (
        "basic-client-cert",
        &["--context=basic", "--envoy-admin-port=9901"],
    ),
    (
        "ip-server-ca-data",
        &["--context=ip-data", "--append-server-path", "-v=3"],
    ),
    ("exec", &["--context=exec"]),
    (
        "direct",
        &[
            "--context=token",
            "--service-proxy=direct",
            "--cluster-domain=corp.example",
            "--service-cache-ttl=30s",
        ],
    ),
    (
        "direct-connect-to",
        &[
            "--context=file",
            "--service-proxy=direct",
            "--connect-to=web.default.svc.cluster.local:80:127.0.0.1:18080",
            "--connect-to=:8443:backend.example:443",
            "--connect-to=[fd00::1]:443:[::1]:",
            "--connect-to=::127.0.0.1:19000",
            "--connect-to=keep.example:81::",
        ],
    ),
    (
        "plain-http",
        &[
            "--context=token",
            "--server=http://127.0.0.1:8080",
            "--envoy-admin-address=",
        ],
    ),
];

struct Made {
    plan: Plan,
    /// The shim's own plugin JSON for the same flags.
    shim_config: String,
    credential: crate::kubeconfig::CredentialSource,
}

/// Parses and resolves like `main.rs`, then plans with the output under `out_dir`.
fn make(args: &[&str], out_dir: &Path, wasm: &Path) -> Result<Made, String> {
    let fixtures = fixtures();
    let mut all = vec![
        SUBCOMMAND.to_owned(),
        format!(
            "--kubeconfig={}",
            fixtures.join("kubeconfig.yaml").display()
        ),
        format!("--wasm-path={}", wasm.display()),
        format!("--output={}", out_dir.join("envoy.yaml").display()),
    ];
    all.extend(
        args.iter()
            .map(|a| a.replace("@@FIXTURES@@", &fixtures.display().to_string())),
    );
    let flags = match cli::parse(&all).map_err(|e| e.to_string())? {
        Command::Run(flags) => flags,
        Command::Help(_) => return Err("help".to_owned()),
    };
    let mut warnings = Vec::new();
    let (settings, target) = cli::resolve_with_target(&flags, &Env::default(), &mut warnings)
        .map_err(|e| e.to_string())?;
    let envoy = flags.envoy.as_ref().ok_or("no envoy flags")?;
    let plan = plan(envoy, &settings, &target, None, &mut |_| {}).map_err(|e| e.to_string())?;
    Ok(Made {
        plan,
        shim_config: settings.plugin_config.clone(),
        credential: target.credential.clone(),
    })
}

// --- goldens ---

#[track_caller]
fn check_golden(name: &str, text: &str) {
    let text = text.replace(&fixtures().display().to_string(), "@@FIXTURES@@");
    let path = golden_dir().join(name);
    if std::env::var_os("KPROXY_BLESS").is_some() {
        std::fs::write(&path, &text).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; bless with KPROXY_BLESS=1", path.display()));
    assert_eq!(
        text, want,
        "golden {name} differs; regenerate with KPROXY_BLESS=1"
    );
}

#[test]
fn bootstraps_match_goldens() {
    let out = Path::new("/etc/kproxy");
    for (name, args) in CASES {
        let made = make(args, out, &out.join("kproxy_filter.wasm"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let rendered = render(&made.plan);
        check_golden(&format!("{name}.yaml"), &rendered.bootstrap);
        if let Some(sds) = &rendered.sds {
            check_golden(&format!("{name}.token-sds.yaml"), &sds.yaml);
        }
    }
}

/// The plugin JSON is the shim's, except that `credentials` is inline (token, basic, exec) or
/// left to Envoy's injector (token file).
#[test]
fn plugin_config_is_the_shims_with_envoy_credentials() {
    use crate::kubeconfig::CredentialSource as S;
    let out = Path::new("/etc/kproxy");
    for (name, args) in CASES {
        let made = make(args, out, &out.join("f.wasm")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut want: serde_json::Value =
            serde_json::from_str(&made.shim_config).expect("shim JSON");
        let credentials = match &made.credential {
            S::Token(t) => Some(serde_json::json!({ "token": t })),
            S::Basic { username, password } => {
                Some(serde_json::json!({ "basic": { "username": username, "password": password } }))
            }
            S::Exec(_) => Some(serde_json::json!({ "token": "exec-token" })),
            S::None | S::TokenFile { .. } => None,
        };
        let object = want.as_object_mut().expect("object");
        match credentials {
            Some(c) => object.insert("credentials".to_owned(), c),
            None => object.remove("credentials"),
        };
        let got: serde_json::Value =
            serde_json::from_str(&made.plan.plugin_config).expect("envoy JSON");
        assert_eq!(got, want, "case {name}");
        assert_eq!(
            made.plan.contains_secret,
            got.get("credentials").is_some(),
            "case {name}"
        );
        assert_eq!(
            made.plan.token_file.is_some(),
            matches!(made.credential, S::TokenFile { .. }),
            "case {name}"
        );
    }
}

// --- plan steps ---

#[track_caller]
fn check_listener(listen: &Listen, want: Result<&str, &str>) {
    let got = plan::listener(listen).map(|l| match l {
        ListenerAddr::Tcp { addr, dual_stack } => format!("{addr} dual={dual_stack}"),
        ListenerAddr::Unix(path) => format!("unix {}", path.display()),
    });
    assert_eq!(got.as_deref().map_err(String::as_str), want, "{listen:?}");
}

#[test]
fn listener_follows_go_listen_rules() {
    let tcp = |address: &str| Listen::Tcp {
        address: address.to_owned(),
        port: 8001,
    };
    check_listener(&tcp("127.0.0.1"), Ok("127.0.0.1:8001 dual=false"));
    check_listener(&tcp("localhost"), Ok("127.0.0.1:8001 dual=false"));
    check_listener(&tcp("[::1]"), Ok("[::1]:8001 dual=false"));
    check_listener(&tcp(""), Ok("[::]:8001 dual=true"));
    check_listener(&tcp("0.0.0.0"), Ok("[::]:8001 dual=true"));
    check_listener(
        &tcp("::1"),
        Err("listen tcp: address ::1:8001: too many colons in address"),
    );
    check_listener(
        &Listen::Unix(PathBuf::from("/run/k.sock")),
        Ok("unix /run/k.sock"),
    );
}

#[track_caller]
fn check_plugin_config(text: &str, credential: Credential, want: &str, envoy_injects: bool) {
    let (got, left) = plan::plugin_config(text, credential).expect("plugin config");
    let got_json: Result<serde_json::Value, _> = serde_json::from_str(&got);
    let want_json: Result<serde_json::Value, _> = serde_json::from_str(want);
    match (got_json, want_json) {
        (Ok(g), Ok(w)) => assert_eq!(g, w, "config {text}"),
        _ => assert_eq!(got, want, "config {text}"),
    }
    assert_eq!(
        matches!(left, Credential::TokenFile(_)),
        envoy_injects,
        "{text}"
    );
}

#[test]
fn shared_data_key_is_replaced_only_when_the_shim_would_fill_it() {
    let managed =
        r#"{"api_prefix": "/", "credentials": {"shared_data_key": "kproxy.credentials"}}"#;
    let token = Credential::Inline(serde_json::json!({"token": "T"}));
    check_plugin_config(
        managed,
        token.clone(),
        r#"{"api_prefix": "/", "credentials": {"token": "T"}}"#,
        false,
    );
    check_plugin_config(
        managed,
        Credential::TokenFile(PathBuf::from("/t")),
        r#"{"api_prefix": "/"}"#,
        true,
    );
    check_plugin_config(managed, Credential::None, r#"{"api_prefix": "/"}"#, false);
    // A --filter-config of the user's stays verbatim and gets no credential.
    check_plugin_config(r#"{"verbosity": 3}"#, token, r#"{"verbosity": 3}"#, false);
    check_plugin_config(
        "not json",
        Credential::TokenFile(PathBuf::from("/t")),
        "not json",
        false,
    );
}

#[test]
fn sds_file_sits_next_to_the_bootstrap() {
    assert_eq!(
        sds_path(Path::new("/etc/kproxy/envoy.yaml")),
        PathBuf::from("/etc/kproxy/envoy.token-sds.yaml")
    );
}

#[track_caller]
fn check_error(args: &[&str], want: &str) {
    let dir = TempDir::new();
    let Err(err) = make(args, dir.path(), Path::new("/x.wasm")) else {
        panic!("args {args:?}: expected an error")
    };
    assert!(err.contains(want), "args {args:?}: {err}");
}

#[test]
fn bad_envoy_flags_are_refused() {
    check_error(
        &["--envoy-admin-address=localhost:9901"],
        "invalid argument \"localhost:9901\" for \"--envoy-admin-address\" flag",
    );
    check_error(
        &["--envoy-admin-port=70000"],
        "for \"--envoy-admin-port\" flag: out of range",
    );
    check_error(&["--address=::1"], "too many colons in address");
    let plain = cli::parse(["--wasm-path=/x.wasm"]).expect_err("no subcommand");
    assert_eq!(plain.to_string(), "unknown flag: --wasm-path");
}

#[test]
fn token_file_needs_an_output_file() {
    let flags = EnvoyFlags {
        output: None,
        wasm_path: Some(PathBuf::from("/x.wasm")),
        admin: None,
    };
    let args = [
        SUBCOMMAND.to_owned(),
        format!(
            "--kubeconfig={}",
            fixtures().join("kubeconfig.yaml").display()
        ),
        "--context=file".to_owned(),
    ];
    let Ok(Command::Run(cli_flags)) = cli::parse(&args) else {
        panic!("parse")
    };
    let (settings, target) =
        cli::resolve_with_target(&cli_flags, &Env::default(), &mut Vec::new()).expect("resolve");
    let err = plan(&flags, &settings, &target, None, &mut |_| {}).expect_err("needs --output");
    assert!(matches!(err, EnvoyError::NeedsOutput(_)), "{err}");
}

// --- the real Envoy ---

fn envoy_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/envoy"));
    bin.is_file().then_some(bin)
}

#[test]
fn envoy_validates_every_bootstrap() {
    let Some(envoy) = envoy_bin() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Envoy not found ($ENVOY_BIN or .venv/bin/envoy) and CI is set"
        );
        eprintln!("skipping envoy --mode validate: no Envoy (set ENVOY_BIN or run ./just envoy)");
        return;
    };
    for (name, args) in CASES {
        let dir = TempDir::new();
        let wasm = dir.write("kproxy_filter.wasm", crate::DEFAULT_FILTER);
        let made = make(args, dir.path(), &wasm).unwrap_or_else(|e| panic!("{name}: {e}"));
        let output = dir.path().join("envoy.yaml");
        write(&made.plan, Some(&output)).expect("write bootstrap");
        let out = std::process::Command::new(&envoy)
            .args([
                "--mode",
                "validate",
                "--disable-hot-restart",
                "-l",
                "error",
                "-c",
            ])
            .arg(&output)
            .output()
            .expect("run envoy");
        assert!(
            out.status.success(),
            "{name}: envoy --mode validate failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&output).expect("stat").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{name}: bootstrap mode");
    }
}

/// The expected authority match and target of one entry, or an error text.
type ConnectWant<'a> = Result<(plan::AuthorityMatch, Option<(&'a str, u16)>), &'a str>;

#[track_caller]
fn check_connect_to(entry: &str, want: ConnectWant<'_>) {
    let parsed = cli::ConnectTo::parse(entry).expect("valid --connect-to");
    let got = plan::connect_routes(&[parsed]).map(|mut routes| {
        let route = routes.remove(0);
        (route.authority, route.target)
    });
    match (got, want) {
        (Ok((authority, target)), Ok((want_authority, want_target))) => {
            assert_eq!(authority, want_authority, "{entry}");
            assert_eq!(
                target,
                want_target.map(|(h, p)| (h.to_owned(), p)),
                "{entry}"
            );
        }
        (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{entry}: {e}"),
        (got, _) => panic!("{entry}: {got:?}"),
    }
}

#[test]
fn connect_to_entries_become_authority_routes() {
    use plan::AuthorityMatch as A;
    check_connect_to(
        "Web.NS.svc.cluster.local:80:127.0.0.1:8080",
        Ok((
            A::Exact("web.ns.svc.cluster.local:80".to_owned()),
            Some(("127.0.0.1", 8080)),
        )),
    );
    check_connect_to(
        "[fd00::1]:443:[::1]:",
        Ok((A::Exact("[fd00::1]:443".to_owned()), Some(("::1", 443)))),
    );
    check_connect_to(
        "web.example::backend.example:9000",
        Ok((
            A::Host("web.example".to_owned()),
            Some(("backend.example", 9000)),
        )),
    );
    check_connect_to(
        "web.example:::9000",
        Ok((
            A::Host("web.example".to_owned()),
            Some(("web.example", 9000)),
        )),
    );
    check_connect_to(
        ":8443:backend.example:",
        Ok((A::Port(8443), Some(("backend.example", 8443)))),
    );
    check_connect_to("::127.0.0.1:1", Ok((A::Any, Some(("127.0.0.1", 1)))));
    check_connect_to(
        "keep.example:81::",
        Ok((
            A::Exact("keep.example:81".to_owned()),
            Some(("keep.example", 81)),
        )),
    );
    // Identity behind a wildcard: the dynamic forward proxy connects where the authority says.
    check_connect_to(":80::", Ok((A::Port(80), None)));
    check_connect_to(":80::8080", Err("cannot keep the request's host"));
    check_connect_to(
        "web.example::other.example:",
        Err("cannot keep the request's port"),
    );
}
