//! The golden plugin configurations in `tests/golden/config/`: every `*.json` parses, except the
//! `invalid-*.json` ones, which fail with exactly the listed message.

use std::path::PathBuf;

use crate::Config;
use crate::auth::Credentials;
use crate::config::ServiceProxy;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/config")
}

fn read(name: &str) -> Vec<u8> {
    let path = golden_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Invalid configurations and the `on_configure` log line each one produces.
const INVALID: &[(&str, &str)] = &[
    (
        "invalid-regex.json",
        "invalid plugin configuration: reject_paths[1]: regex parse error: found open group without closing ')' (pattern \"(bad\")",
    ),
    (
        "invalid-unicode-class.json",
        "invalid plugin configuration: accept_hosts[0]: regex parse error: Unicode character classes are not supported (pattern \"^\\\\p{L}+$\")",
    ),
    (
        "invalid-prefix.json",
        "invalid plugin configuration: api_prefix: \"api\" must start with '/'",
    ),
    (
        "invalid-unknown-field.json",
        "invalid plugin configuration: accept_host: unknown field, expected one of api_prefix, static_prefix, accept_paths, reject_paths, accept_hosts, reject_methods, disable_filter, server_path, credentials, impersonate, verbosity, service_proxy, cluster_domain, service_cache_ttl_seconds, apiserver_cluster, cross_site_protection",
    ),
    (
        "invalid-type.json",
        "invalid plugin configuration: disable_filter: invalid type: string \"true\", expected a boolean",
    ),
    (
        "invalid-credentials.json",
        "invalid plugin configuration: credentials: token and basic are mutually exclusive",
    ),
    (
        "invalid-credentials-field.json",
        "invalid plugin configuration: credentials: unknown field `tokn`, expected one of `token`, `basic`, `shared_data_key`",
    ),
    (
        "invalid-service-proxy.json",
        "invalid plugin configuration: service_proxy: must be \"apiserver\" or \"direct\", not \"Direct\"",
    ),
    (
        "invalid-cluster-domain.json",
        "invalid plugin configuration: cluster_domain: \".cluster.local\" must not start or end with '.'",
    ),
    (
        "invalid-service-cache-ttl.json",
        "invalid plugin configuration: service_cache_ttl_seconds: invalid value: integer `-1`, expected u64",
    ),
    (
        "invalid-apiserver-cluster.json",
        "invalid plugin configuration: apiserver_cluster: must not be empty",
    ),
    (
        "invalid-cross-site-protection.json",
        "invalid plugin configuration: cross_site_protection: invalid type: string \"yes\", expected a boolean",
    ),
    (
        "invalid-static-prefix.json",
        "invalid plugin configuration: static_prefix: conflicts with api_prefix \"/\"",
    ),
];

#[test]
fn every_golden_config_parses() {
    let mut seen = 0;
    for entry in std::fs::read_dir(golden_dir()).expect("golden dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".json") || name.starts_with("invalid-") {
            continue;
        }
        if let Err(e) = Config::parse(&read(name)) {
            panic!("{name}: {e}");
        }
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} golden configs");
}

#[test]
fn golden_invalid_configs_fail_with_one_clear_line() {
    let mut listed: Vec<&str> = INVALID.iter().map(|(n, _)| *n).collect();
    listed.sort_unstable();
    let mut on_disk: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("invalid-"))
        .collect();
    on_disk.sort_unstable();
    assert_eq!(
        listed, on_disk,
        "every invalid-*.json has an expected message"
    );
    for (name, expected) in INVALID {
        let err = Config::parse(&read(name)).expect_err(name);
        let line = format!("invalid plugin configuration: {err}");
        assert_eq!(line, *expected, "{name}");
        assert!(!line.contains('\n'), "{name}: one line");
    }
}

#[test]
fn default_json_is_kubectl_defaults() {
    let explicit = Config::parse(&read("default.json")).expect("default.json");
    let implicit = Config::parse(&read("empty.json")).expect("empty.json");
    for config in [&explicit, &implicit] {
        assert_eq!(config.api_prefix, "/");
        assert_eq!(config.static_prefix, None);
        assert_eq!(config.accept_paths.sources().collect::<Vec<_>>(), ["^.*"]);
        assert_eq!(
            config.reject_paths.sources().collect::<Vec<_>>(),
            ["^/api/.*/pods/.*/exec", "^/api/.*/pods/.*/attach"]
        );
        assert_eq!(
            config.accept_hosts.sources().collect::<Vec<_>>(),
            ["^localhost$", r"^127\.0\.0\.1$", r"^\[::1\]$"]
        );
        assert_eq!(config.reject_methods.sources().collect::<Vec<_>>(), ["^$"]);
        assert!(!config.disable_filter);
        assert_eq!(config.server_path, "");
        assert_eq!(config.credentials, None);
        assert_eq!(config.impersonate, None);
        assert_eq!(config.verbosity, 0);
        assert_eq!(config.service_proxy, ServiceProxy::ApiServer);
        assert_eq!(config.cluster_domain, "cluster.local");
        assert_eq!(config.service_cache_ttl_seconds, 10);
        assert_eq!(config.apiserver_cluster, "kube_apiserver");
        assert!(!config.cross_site_protection);
    }
    assert!(Config::parse(b"").is_ok(), "empty configuration = defaults");
}

#[test]
fn golden_configs_resolve_as_documented() {
    let custom = Config::parse(&read("custom-prefix.json")).expect("custom-prefix");
    assert_eq!(custom.api_prefix, "/custom/");
    assert_eq!(custom.server_path, "/k8s/clusters/c-1/");
    let www = Config::parse(&read("www.json")).expect("www");
    assert_eq!(www.static_prefix.as_deref(), Some("/static/"));
    let token = Config::parse(&read("credentials-token.json")).expect("token");
    let creds = token.credentials.expect("credentials");
    assert_eq!(
        creds.static_credentials,
        Some(Credentials::Token("TOK".into()))
    );
    assert_eq!(creds.shared_data_key.as_deref(), Some("kproxy.credentials"));
    let imp = Config::parse(&read("impersonate.json")).expect("impersonate");
    let imp = imp.impersonate.expect("impersonate");
    assert_eq!(imp.user, "jane");
    assert_eq!(imp.groups, ["g1", "g2"]);
    let off = Config::parse(&read("disable-filter.json")).expect("disable-filter");
    assert!(off.disable_filter);
    assert_eq!(off.verbosity, 3);
    let direct = Config::parse(&read("direct.json")).expect("direct");
    assert_eq!(direct.service_proxy, ServiceProxy::Direct);
    assert_eq!(direct.cluster_domain, "corp.example");
    assert_eq!(direct.service_cache_ttl_seconds, 30);
    assert_eq!(direct.apiserver_cluster, "kube_apiserver");
    assert!(direct.cross_site_protection);
}

/// The new fields' validation, beyond the golden files.
#[test]
fn direct_mode_fields_validate() {
    let err = |json: &str| Config::parse(json.as_bytes()).expect_err(json).to_string();
    assert_eq!(
        err(r#"{"cluster_domain": ""}"#),
        "cluster_domain: \"\" must not be empty"
    );
    for bad in ["a..b", "a_b.local", "-a.local", "a-.local", "a b"] {
        assert!(
            err(&format!(r#"{{"cluster_domain": "{bad}"}}"#))
                .starts_with(&format!("cluster_domain: \"{bad}\" is not a DNS name")),
            "{bad}"
        );
    }
    let long = format!("{}.local", "a".repeat(64));
    assert!(err(&format!(r#"{{"cluster_domain": "{long}"}}"#)).contains("is not a DNS name"));
    let too_long = vec!["a".repeat(60); 5].join(".");
    assert!(err(&format!(r#"{{"cluster_domain": "{too_long}"}}"#)).contains("longer than 253"));
    for good in ["cluster.local", "Corp-1.Example", "x"] {
        let c = Config::parse(format!(r#"{{"cluster_domain": "{good}"}}"#).as_bytes()).expect(good);
        assert_eq!(c.cluster_domain, good);
    }
    assert_eq!(
        err(r#"{"apiserver_cluster": "a\tb"}"#),
        "apiserver_cluster: must not contain control characters"
    );
    assert_eq!(
        err(r#"{"service_cache_ttl_seconds": 1.5}"#),
        "service_cache_ttl_seconds: invalid type: floating point `1.5`, expected u64"
    );
    assert_eq!(
        err(r#"{"service_proxy": null, "cluster_domain": 3}"#),
        "cluster_domain: invalid type: integer `3`, expected a string"
    );
    let zero = Config::parse(br#"{"service_cache_ttl_seconds": 0}"#).expect("ttl 0");
    assert_eq!(zero.service_cache_ttl_seconds, 0);
}
