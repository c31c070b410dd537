//! Flag parsing, Go value syntax, resolution order/warnings/exit codes and the plugin JSON
//! goldens (`tests/golden/cli/*.json`; regenerate with `KPROXY_BLESS=1`).

use std::path::PathBuf;

use super::goparse::{parse_bool, parse_duration, parse_int};
use super::*;
use crate::test_support::TempDir;

fn defaults() -> Flags {
    match parse(Vec::<String>::new()) {
        Ok(Command::Run(flags)) => *flags,
        other => panic!("defaults did not parse: {other:?}"),
    }
}

#[track_caller]
fn check(args: &[&str], expect: impl FnOnce(&mut Flags)) {
    let mut want = defaults();
    expect(&mut want);
    match parse(args) {
        Ok(Command::Run(got)) => assert_eq!(*got, want, "args {args:?}"),
        other => panic!("args {args:?}: {other:?}"),
    }
}

#[track_caller]
fn check_usage_error(args: &[&str], want: &str) {
    match parse(args) {
        Err(e @ CliError::Usage(_)) => {
            assert_eq!(e.to_string(), want, "args {args:?}");
            assert_eq!(e.exit_code(), 1);
        }
        other => panic!("args {args:?}: expected usage error, got {other:?}"),
    }
}

#[test]
fn defaults_match_kubectl() {
    let f = defaults();
    assert_eq!(f.port, 8001);
    assert_eq!(f.address, "127.0.0.1");
    assert_eq!(f.api_prefix, "/");
    assert_eq!(f.www_prefix, "/static/");
    assert_eq!(f.accept_paths, ["^.*"]);
    assert_eq!(
        f.reject_paths,
        ["^/api/.*/pods/.*/exec", "^/api/.*/pods/.*/attach"]
    );
    assert_eq!(
        f.accept_hosts,
        [r"^localhost$", r"^127\.0\.0\.1$", r"^\[::1\]$"]
    );
    assert_eq!(f.reject_methods, ["^$"]);
    assert_eq!(f.keepalive_nanos, 0);
    assert!(!f.disable_filter && !f.append_server_path && !f.print_plugin_config);
    assert_eq!(f.service_proxy, ServiceProxy::ApiServer);
    assert_eq!(f.cluster_domain, "cluster.local");
    assert_eq!(f.service_cache_ttl_seconds, 10);
    assert!(f.connect_to.is_empty() && !f.cross_site_protection);
}

fn connect(text: &str) -> ConnectTo {
    ConnectTo::parse(text).expect("valid --connect-to")
}

/// The direct-mode flags, accepted forms (with and without `envoy-bootstrap`).
#[test]
fn direct_mode_flags() {
    check(&["--service-proxy=direct"], |f| {
        f.service_proxy = ServiceProxy::Direct
    });
    check(&["--service-proxy", "apiserver"], |f| {
        f.service_proxy = ServiceProxy::ApiServer
    });
    check(&["--cluster-domain=k8s.example"], |f| {
        f.cluster_domain = "k8s.example".into()
    });
    check(&["--service-cache-ttl=0"], |f| {
        f.service_cache_ttl_seconds = 0
    });
    check(&["--service-cache-ttl", "1m30s"], |f| {
        f.service_cache_ttl_seconds = 90
    });
    check(
        &["--service-cache-ttl=1500ms", "--service-cache-ttl=2s"],
        |f| f.service_cache_ttl_seconds = 2,
    );
    check(&["--cross-site-protection"], |f| {
        f.cross_site_protection = true
    });
    check(&["--cross-site-protection=false"], |f| {
        f.cross_site_protection = false
    });
    check(
        &[
            "--connect-to=a.svc:80:127.0.0.1:8080",
            "--connect-to",
            "[::1]:443::8443",
        ],
        |f| {
            f.connect_to = vec![
                connect("a.svc:80:127.0.0.1:8080"),
                connect("[::1]:443::8443"),
            ];
        },
    );
    let Ok(Command::Run(flags)) = parse([
        "envoy-bootstrap",
        "--service-proxy=direct",
        "--cluster-domain=c.example",
        "--service-cache-ttl=0s",
        "--connect-to=::h:1",
        "--cross-site-protection",
    ]) else {
        panic!("envoy-bootstrap rejects the direct-mode flags")
    };
    assert!(flags.envoy.is_some());
    assert_eq!(flags.service_proxy, ServiceProxy::Direct);
    assert_eq!(flags.cluster_domain, "c.example");
    assert_eq!(flags.service_cache_ttl_seconds, 0);
    assert_eq!(flags.connect_to, [connect("::h:1")]);
    assert!(flags.cross_site_protection);
}

#[test]
fn direct_mode_flag_errors() {
    let table: &[(&[&str], &str)] = &[
        (
            &["--service-proxy=pods"],
            r#"invalid argument "pods" for "--service-proxy" flag: must be one of "apiserver" or "direct""#,
        ),
        (
            &["--service-proxy="],
            r#"invalid argument "" for "--service-proxy" flag: must be one of "apiserver" or "direct""#,
        ),
        (
            &["--cluster-domain="],
            r#"invalid argument "" for "--cluster-domain" flag: must not be empty"#,
        ),
        (
            &["--cluster-domain=cluster.local."],
            r#"invalid argument "cluster.local." for "--cluster-domain" flag: must not start or end with '.'"#,
        ),
        (
            &["--cluster-domain=a_b"],
            r#"invalid argument "a_b" for "--cluster-domain" flag: is not a DNS name (dot-separated labels of 1-63 letters, digits or '-', not starting or ending with '-')"#,
        ),
        (
            &["--service-cache-ttl=10"],
            r#"invalid argument "10" for "--service-cache-ttl" flag: time: missing unit in duration "10""#,
        ),
        (
            &["--service-cache-ttl=1.5s"],
            r#"invalid argument "1.5s" for "--service-cache-ttl" flag: must be a whole number of seconds"#,
        ),
        (
            &["--service-cache-ttl=-1s"],
            r#"invalid argument "-1s" for "--service-cache-ttl" flag: must not be negative"#,
        ),
        (
            &["--connect-to=a:1:b"],
            r#"invalid argument "a:1:b" for "--connect-to" flag: want HOST1:PORT1:HOST2:PORT2 (IPv6 addresses in brackets)"#,
        ),
        (
            &["--connect-to=ok:1:b:2", "--connect-to=a:99999:b:2"],
            r#"invalid argument "a:99999:b:2" for "--connect-to" flag: port "99999" is not a number from 1 to 65535"#,
        ),
        (
            &["--cross-site-protection=maybe"],
            r#"invalid argument "maybe" for "--cross-site-protection" flag: strconv.ParseBool: parsing "maybe": invalid syntax"#,
        ),
        (&["--connect-to"], "flag needs an argument: --connect-to"),
    ];
    for (args, want) in table {
        check_usage_error(args, want);
    }
}

#[test]
fn flag_forms() {
    check(&["--port=9000"], |f| f.port = 9000);
    check(&["--port", "9000"], |f| f.port = 9000);
    check(&["-p", "9000"], |f| f.port = 9000);
    check(&["-p9000"], |f| f.port = 9000);
    check(&["-p=9000"], |f| f.port = 9000);
    check(&["--port=0x10"], |f| f.port = 16);
    check(&["--port=-1"], |f| f.port = -1);
    check(&["--port", "1", "--port", "2"], |f| f.port = 2);
    check(&["-u", "/tmp/s"], |f| f.unix_socket = "/tmp/s".into());
    check(&["-w", "dir", "-P", "/files"], |f| {
        f.www = "dir".into();
        f.www_prefix = "/files".into();
    });
    check(&["--address=0.0.0.0", "--api-prefix=/custom"], |f| {
        f.address = "0.0.0.0".into();
        f.api_prefix = "/custom".into();
    });
    check(&["--keepalive", "-1s"], |f| {
        f.keepalive_nanos = -1_000_000_000
    });
    check(&["--keepalive=1m0s"], |f| {
        f.keepalive_nanos = 60_000_000_000
    });
}

#[test]
fn bool_flags_follow_pflag() {
    check(&["--disable-filter"], |f| f.disable_filter = true);
    check(&["--disable-filter=true"], |f| f.disable_filter = true);
    check(&["--disable-filter=T"], |f| f.disable_filter = true);
    check(&["--disable-filter=0"], |f| f.disable_filter = false);
    check(&["--disable-filter", "--disable-filter=false"], |f| {
        f.disable_filter = false
    });
    // A separate value is a positional argument (ignored), as in pflag.
    check(&["--disable-filter", "false"], |f| f.disable_filter = true);
    check(
        &[
            "--append-server-path",
            "--insecure-skip-tls-verify",
            "--disable-compression",
        ],
        |f| {
            f.append_server_path = true;
            f.overrides.insecure_skip_tls_verify = true;
            f.disable_compression = true;
        },
    );
    check(&["--print-plugin-config"], |f| f.print_plugin_config = true);
}

#[test]
fn regex_lists_split_on_every_comma() {
    check(&["--reject-methods=POST,PUT,PATCH"], |f| {
        f.reject_methods = vec!["POST".into(), "PUT".into(), "PATCH".into()]
    });
    check(&["--accept-paths=a{1,2}"], |f| {
        f.accept_paths = vec!["a{1".into(), "2}".into()]
    });
    check(&["--accept-paths="], |f| f.accept_paths = vec![]);
    check(&["--reject-paths", ""], |f| f.reject_paths = vec![]);
    check(&["--accept-hosts=a,"], |f| {
        f.accept_hosts = vec!["a".into(), String::new()]
    });
}

#[test]
fn kubectl_globals() {
    check(
        &[
            "--kubeconfig=/k",
            "--context=c",
            "--cluster=cl",
            "--user=u",
            "-s",
            "https://x",
            "--token=t",
            "--username=a",
            "--password=b",
            "--as=me",
            "--as-group=g1",
            "--as-group",
            "g2",
            "--as-uid=42",
            "--certificate-authority=ca",
            "--client-certificate=cc",
            "--client-key=ck",
            "--tls-server-name=name",
            "-v=3",
        ],
        |f| {
            f.kubeconfig = "/k".into();
            f.verbosity = 3;
            f.overrides = Overrides {
                context: "c".into(),
                cluster: "cl".into(),
                user: "u".into(),
                server: "https://x".into(),
                token: "t".into(),
                username: "a".into(),
                password: "b".into(),
                as_user: "me".into(),
                as_groups: vec!["g1".into(), "g2".into()],
                as_uid: "42".into(),
                certificate_authority: "ca".into(),
                client_certificate: "cc".into(),
                client_key: "ck".into(),
                tls_server_name: "name".into(),
                insecure_skip_tls_verify: false,
            };
        },
    );
    check(&["--v", "5"], |f| f.verbosity = 5);
    check(&["-v4"], |f| f.verbosity = 4);
}

#[test]
fn ignored_flags_and_arguments_are_accepted() {
    check(
        &["-n", "kube-system", "--request-timeout=1s", "extra", "args"],
        |_| {},
    );
    check(
        &[
            "--namespace=x",
            "--cache-dir=/c",
            "--match-server-version",
            "--vmodule=x=2",
        ],
        |_| {},
    );
    check(&["--", "--port=1"], |_| {});
}

#[test]
fn shim_flags() {
    check(
        &[
            "--filter=/f.wasm",
            "--filter-config",
            "{}",
            "--workers=3",
            "--metrics-address=127.0.0.1:9090",
        ],
        |f| {
            f.filter = Some(PathBuf::from("/f.wasm"));
            f.filter_config = Some("{}".into());
            f.workers = 3;
            f.metrics_address = Some("127.0.0.1:9090".parse().unwrap());
        },
    );
}

#[test]
fn usage_errors_use_pflag_text() {
    check_usage_error(
        &["--keepalive=abc"],
        r#"invalid argument "abc" for "--keepalive" flag: time: invalid duration "abc""#,
    );
    check_usage_error(
        &["-p", "x"],
        r#"invalid argument "x" for "-p, --port" flag: strconv.ParseInt: parsing "x": invalid syntax"#,
    );
    check_usage_error(
        &["--disable-filter=maybe"],
        r#"invalid argument "maybe" for "--disable-filter" flag: strconv.ParseBool: parsing "maybe": invalid syntax"#,
    );
    check_usage_error(
        &["-v=x"],
        r#"invalid argument "x" for "-v, --v" flag: strconv.ParseUint: parsing "x": invalid syntax"#,
    );
    check_usage_error(&["--foo"], "unknown flag: --foo");
    check_usage_error(&["--foo=bar"], "unknown flag: --foo");
    check_usage_error(&["-x"], "unknown shorthand flag: 'x' in -x");
    check_usage_error(&["--port"], "flag needs an argument: --port");
    check_usage_error(&["-p"], "flag needs an argument: 'p' in -p");
    check_usage_error(&["--keepalive"], "flag needs an argument: --keepalive");
}

#[test]
fn help_lists_every_flag_with_its_default() {
    let Ok(Command::Help(text)) = parse(["--help"]) else {
        panic!("no help")
    };
    assert!(text.contains("    -p, --port=8001:\n\tThe port on which to run the proxy. Set to 0 to pick a random port.\n"));
    assert!(text.contains(r"    --accept-hosts='^localhost$,^127\.0\.0\.1$,^\[::1\]$':"));
    assert!(text.contains("    --keepalive=0s:\n"));
    assert!(text.contains("    --as-group=[]:\n"));
    for spec in spec::SPECS {
        assert!(
            text.contains(&format!("--{}=", spec.long)),
            "{} missing from help",
            spec.long
        );
    }
    assert!(matches!(parse(["-h"]), Ok(Command::Help(_))));
    assert!(matches!(parse(["--help", "-p"]), Err(CliError::Usage(_))));
}

#[test]
fn go_durations() {
    #[track_caller]
    fn dur(s: &str, want: Result<i64, &str>) {
        assert_eq!(parse_duration(s), want.map_err(str::to_owned), "{s:?}");
    }
    dur("0", Ok(0));
    dur("0s", Ok(0));
    dur("30s", Ok(30_000_000_000));
    dur("1m0s", Ok(60_000_000_000));
    dur("1h2m3.5s", Ok(3_723_500_000_000));
    dur("-1s", Ok(-1_000_000_000));
    dur("+5ms", Ok(5_000_000));
    dur("1.5h", Ok(5_400_000_000_000));
    dur(".5s", Ok(500_000_000));
    dur("10us", Ok(10_000));
    dur("10µs", Ok(10_000));
    dur("7ns", Ok(7));
    dur("abc", Err(r#"time: invalid duration "abc""#));
    dur("", Err(r#"time: invalid duration """#));
    dur("1", Err(r#"time: missing unit in duration "1""#));
    dur("1x", Err(r#"time: unknown unit "x" in duration "1x""#));
    dur("1.s", Ok(1_000_000_000));
    dur(".s", Err(r#"time: invalid duration ".s""#));
    dur("3000000h", Err(r#"time: invalid duration "3000000h""#));
}

#[test]
fn go_bools_and_ints() {
    assert_eq!(parse_bool("True"), Ok(true));
    assert_eq!(parse_bool("F"), Ok(false));
    assert!(parse_bool("yes").is_err());
    assert_eq!(parse_int("017"), Ok(15));
    assert_eq!(parse_int("0b101"), Ok(5));
    assert_eq!(
        parse_int("1_000"),
        Err(r#"strconv.ParseInt: parsing "1_000": invalid syntax"#.to_owned())
    );
    assert_eq!(parse_int("0x_ff"), Ok(255));
    assert_eq!(
        parse_int("99999999999999999999"),
        Err(r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#.to_owned())
    );
}

#[test]
fn klog_header() {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_700_717_351_500_128);
    assert_eq!(
        klog_line('W', "proxy.go:172", "text", t, 7059),
        "W1123 05:29:11.500128    7059 proxy.go:172] text"
    );
}

// --- resolution ---

/// A kubeconfig with an https cluster (insecure, server path), a token user and a plain-http
/// cluster; `Env` points nowhere else.
struct Fixture {
    dir: TempDir,
    env: Env,
}

const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: secure
  cluster: {server: "https://127.0.0.1:6443/base/path", insecure-skip-tls-verify: true}
- name: plain
  cluster: {server: "http://127.0.0.1:8080"}
users:
- name: token
  user: {token: s3cret}
- name: imp
  user: {token: s3cret, as: alice, as-groups: [devs, ops], as-user-extra: {scopes: [view]}}
contexts:
- {name: secure, context: {cluster: secure, user: token}}
- {name: plain, context: {cluster: plain, user: token}}
- {name: imp, context: {cluster: secure, user: imp}}
current-context: secure
"#;

impl Fixture {
    fn new() -> Self {
        let dir = TempDir::new();
        let config = dir.write("config", KUBECONFIG);
        let env = Env {
            kubeconfig: Some(config.display().to_string()),
            service_account_dir: dir.path().join("no-sa"),
            ..Env::default()
        };
        Self { dir, env }
    }

    fn resolve(&self, args: &[&str]) -> (Result<Settings, CliError>, Vec<String>) {
        let Ok(Command::Run(flags)) = parse(args) else {
            panic!("{args:?} did not parse")
        };
        let mut warnings = Vec::new();
        let result = resolve(&flags, &self.env, &mut warnings);
        (result, warnings.into_iter().map(|w| w.text).collect())
    }
}

#[track_caller]
fn check_resolve_error(args: &[&str], want: &str, code: i32, want_warnings: &[&str]) {
    let fixture = Fixture::new();
    let (result, warnings) = fixture.resolve(args);
    match result {
        Err(e) => {
            assert_eq!(e.to_string(), want, "args {args:?}");
            assert_eq!(e.exit_code(), code, "args {args:?}");
        }
        Ok(_) => panic!("args {args:?}: expected {want:?}"),
    }
    assert_eq!(warnings, want_warnings, "args {args:?}");
}

const SERVER_PATH_WARNING: &str = "Your kube context contains a server path /base/path, use --append-server-path to automatically append the path to each request";

#[test]
fn resolution_errors_in_kubectl_order() {
    check_resolve_error(
        &["--context=nope"],
        r#"context "nope" does not exist"#,
        1,
        &[],
    );
    check_resolve_error(
        &["-u", "/tmp/s", "--port=9"],
        "cannot set --unix-socket and --port at the same time",
        1,
        &[SERVER_PATH_WARNING],
    );
    check_resolve_error(
        &["--append-server-path", "--accept-paths=(bad"],
        "Error compiling re: error parsing regexp: found open group without closing ')': `(bad`",
        255,
        &[],
    );
    check_resolve_error(
        &["--append-server-path", "--www=/tmp", "--www-prefix=/"],
        r#"pattern "/" for --www-prefix conflicts with --api-prefix "/": both match the same requests"#,
        2,
        &[],
    );
    check_resolve_error(
        &["--append-server-path", "--api-prefix=api"],
        r#"--api-prefix "api" must start with '/'"#,
        1,
        &[],
    );
    check_resolve_error(
        &["--append-server-path", "-w=/srv", "-P=files"],
        r#"--www-prefix "files" must start with '/'"#,
        1,
        &[],
    );
    check_resolve_error(
        &["--append-server-path", "--port=70000"],
        "listen tcp: address 70000: invalid port",
        1,
        &[],
    );
    check_resolve_error(
        &["--append-server-path", "--username=a"],
        "more than one authentication method found for token; found [token basicAuth], only one is allowed",
        1,
        &[],
    );
}

#[test]
fn warnings_match_kubectl() {
    let fixture = Fixture::new();
    let missing = fixture.dir.path().join("missing");
    let file = fixture.dir.write("file.txt", "x");
    let (result, warnings) =
        fixture.resolve(&["--disable-filter", &format!("--www={}", missing.display())]);
    assert!(result.is_ok());
    assert_eq!(
        warnings,
        [
            SERVER_PATH_WARNING.to_owned(),
            "Request filter disabled, your proxy is vulnerable to XSRF attacks, please be cautious"
                .to_owned(),
            format!(
                "Failed to stat static file directory {0}: stat {0}: no such file or directory",
                missing.display()
            ),
        ]
    );
    let (_, warnings) = fixture.resolve(&[
        "--append-server-path",
        &format!("-w={}", file.display()),
        "-u",
        "/s",
    ]);
    assert_eq!(
        warnings,
        [format!(
            "Static file directory {} is not a directory",
            file.display()
        )]
    );
    let (_, warnings) = fixture.resolve(&["--append-server-path", "--disable-filter", "-u", "/s"]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let (_, warnings) = fixture.resolve(&["--append-server-path", "--reject-methods="]);
    assert_eq!(
        warnings,
        [
            "Request filter has been relaxed, your proxy may be vulnerable to attacks, please be cautious"
        ]
    );
}

#[test]
fn settings_from_flags() {
    let fixture = Fixture::new();
    let (result, _) = fixture.resolve(&[
        "--port=0",
        "--keepalive=30s",
        "-w",
        "/srv",
        "-P",
        "/files",
        "--workers=2",
    ]);
    let settings = result.expect("resolves");
    assert_eq!(
        settings.listen,
        Listen::Tcp {
            address: "127.0.0.1".into(),
            port: 0
        }
    );
    assert_eq!(settings.keepalive, Some(std::time::Duration::from_secs(30)));
    assert_eq!(
        settings.www,
        Some(StaticFiles {
            dir: "/srv".into(),
            prefix: "/files/".into()
        })
    );
    assert_eq!(settings.workers, 2);
    assert_eq!(settings.filter, FilterSource::Embedded);
    assert_eq!(settings.cluster.host_header, "127.0.0.1:6443");
    assert!(settings.credentials.is_managed());
    assert_eq!(
        settings.credentials.current_json(),
        br#"{"token":"s3cret"}"#
    );

    let (result, _) = fixture.resolve(&["-u", "/tmp/sock", "--keepalive=0", "--filter=/x.wasm"]);
    let settings = result.expect("resolves");
    assert_eq!(settings.listen, Listen::Unix("/tmp/sock".into()));
    assert_eq!(
        settings.keepalive, None,
        "deviation (c): 0 disables keep-alive"
    );
    assert_eq!(settings.filter, FilterSource::Path("/x.wasm".into()));
    assert!(settings.workers >= 1);

    let config = fixture.dir.write("plugin.json", r#"{"custom": true}"#);
    let (result, _) = fixture.resolve(&[&format!("--filter-config=@{}", config.display())]);
    assert_eq!(
        result.expect("resolves").plugin_config,
        r#"{"custom": true}"#
    );
    let (result, _) = fixture.resolve(&["--filter-config={}"]);
    assert_eq!(result.expect("resolves").plugin_config, "{}");

    let (result, _) = fixture.resolve(&[
        "--service-proxy=direct",
        "--cluster-domain=c.example",
        "--service-cache-ttl=1m",
        "--connect-to=a:1:b:2",
        "--connect-to=:::9",
        "--cross-site-protection",
    ]);
    let settings = result.expect("resolves");
    assert_eq!(settings.service_proxy, ServiceProxy::Direct);
    assert_eq!(settings.cluster_domain, "c.example");
    assert_eq!(
        settings.service_cache_ttl,
        std::time::Duration::from_secs(60)
    );
    assert_eq!(settings.connect_to, [connect("a:1:b:2"), connect(":::9")]);
    assert!(settings.cross_site_protection);
}

// --- plugin JSON goldens ---

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

#[track_caller]
fn check_golden(name: &str, args: &[&str]) {
    let fixture = Fixture::new();
    let (result, _) = fixture.resolve(args);
    let got: serde_json::Value =
        serde_json::from_str(&result.expect("resolves").plugin_config).expect("valid JSON");
    let path = golden_dir().join("cli").join(format!("{name}.json"));
    if std::env::var_os("KPROXY_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&got).expect("serializes") + "\n";
        std::fs::write(&path, text).expect("write golden");
    }
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("golden is JSON");
    assert_eq!(
        got, want,
        "golden {name} (args {args:?}); regenerate with KPROXY_BLESS=1"
    );
}

#[test]
fn plugin_config_goldens() {
    check_golden("plain-http", &["--context=plain"]);
    check_golden("secure-token", &[]);
    check_golden("append-server-path", &["--append-server-path"]);
    check_golden(
        "static-and-prefixes",
        &[
            "--context=plain",
            "--www=/srv",
            "-P",
            "/files",
            "--api-prefix=/k8s-api",
        ],
    );
    check_golden(
        "regex-lists",
        &[
            "--context=plain",
            "--reject-methods=POST,PUT,PATCH",
            "--accept-paths=",
            "--accept-hosts=^.*$",
        ],
    );
    check_golden(
        "disable-filter-verbose",
        &["--context=plain", "--disable-filter", "-v=3"],
    );
    check_golden("impersonate-kubeconfig", &["--context=imp"]);
    check_golden(
        "impersonate-flags",
        &["--as=bob", "--as-group=g1", "--as-group=g2", "--as-uid=7"],
    );
    check_golden(
        "impersonate-over-http-dropped",
        &["--context=plain", "--as=bob"],
    );
    check_golden(
        "direct-mode",
        &[
            "--context=plain",
            "--service-proxy=direct",
            "--cluster-domain=k8s.example",
            "--service-cache-ttl=0s",
            "--connect-to=::127.0.0.1:",
            "--cross-site-protection",
        ],
    );
}

/// Fills absent fields with the contract's defaults so goldens written in a sparse style
/// compare equal to the shim's fully spelled-out output.
fn normalize(mut json: serde_json::Value) -> serde_json::Value {
    let defaults = serde_json::json!({
        "api_prefix": "/",
        "static_prefix": null,
        "accept_paths": ["^.*"],
        "reject_paths": ["^/api/.*/pods/.*/exec", "^/api/.*/pods/.*/attach"],
        "accept_hosts": ["^localhost$", "^127\\.0\\.0\\.1$", "^\\[::1\\]$"],
        "reject_methods": ["^$"],
        "disable_filter": false,
        "server_path": "",
        "verbosity": 0,
        "service_proxy": "apiserver",
        "cluster_domain": "cluster.local",
        "service_cache_ttl_seconds": 10,
        "apiserver_cluster": "kube_apiserver",
        "cross_site_protection": false,
    });
    if let (Some(obj), Some(defaults)) = (json.as_object_mut(), defaults.as_object()) {
        for (key, value) in defaults {
            obj.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    json
}

#[track_caller]
fn check_contract(golden: &str, args: &[&str]) {
    let fixture = Fixture::new();
    let (result, _) = fixture.resolve(args);
    let got =
        normalize(serde_json::from_str(&result.expect("resolves").plugin_config).expect("JSON"));
    let path = golden_dir().join("config").join(format!("{golden}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let want = normalize(serde_json::from_str(&text).expect("golden is JSON"));
    assert_eq!(got, want, "contract golden {golden} (args {args:?})");
}

/// The flags that produce the filter's contract examples in `tests/golden/config/`.
#[test]
fn flags_reproduce_the_contract_goldens() {
    check_contract("default", &["--context=plain"]);
    check_contract("empty", &["--context=plain"]);
    check_contract("www", &["--context=plain", "--www=/srv"]);
    check_contract(
        "disable-filter",
        &["--context=plain", "--disable-filter", "-v", "3"],
    );
    check_contract(
        "relaxed",
        &[
            "--context=plain",
            "--accept-hosts=.*",
            "--reject-paths=",
            "--reject-methods=POST,PUT,PATCH",
            "--accept-paths=^/api/v1/namespaces/default/.*",
        ],
    );
    check_contract(
        "direct",
        &[
            "--context=plain",
            "--service-proxy=direct",
            "--cluster-domain=corp.example",
            "--service-cache-ttl=30s",
            "--cross-site-protection",
        ],
    );
}
