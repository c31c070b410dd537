//! The golden plugin configurations in `tests/golden/config/`: every `*.json` parses, except the
//! `invalid-*.json` ones, which fail with exactly the listed message.

use std::path::PathBuf;

use crate::Config;
use crate::auth::Credentials;

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
        "invalid plugin configuration: accept_host: unknown field, expected one of api_prefix, static_prefix, accept_paths, reject_paths, accept_hosts, reject_methods, disable_filter, server_path, credentials, impersonate, verbosity",
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
}
