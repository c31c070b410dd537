//! Static credentials, token-file rotation with an advanced clock, exec plugins (a shell script
//! counting its runs, short expiry, 401 refresh, failures), and RFC 3339 parsing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use super::time::parse_rfc3339;
use super::*;
use crate::test_support::TempDir;

/// Records what was published.
#[derive(Default)]
struct Sink(Mutex<Vec<(String, String)>>);

impl SharedDataSink for Sink {
    fn set_shared_data(&self, key: &str, value: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push((key.to_owned(), String::from_utf8_lossy(value).into_owned()));
    }
}

impl Sink {
    fn values(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                assert_eq!(k, Credentials::SHARED_DATA_KEY);
                v.clone()
            })
            .collect()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[track_caller]
fn check_static(source: CredentialSource, want: &str, managed: bool) {
    let creds = Credentials::new(source);
    let sink = Arc::new(Sink::default());
    creds.attach(sink.clone());
    block_on(creds.ensure_fresh()).unwrap();
    assert!(!block_on(creds.unauthorized()));
    assert_eq!(sink.values(), [want]);
    assert_eq!(creds.is_managed(), managed);
}

#[test]
fn static_credentials_are_published_once() {
    check_static(CredentialSource::None, "{}", false);
    check_static(
        CredentialSource::Token("t".into()),
        r#"{"token":"t"}"#,
        true,
    );
    check_static(
        CredentialSource::Basic {
            username: "u".into(),
            password: "p:w".into(),
        },
        r#"{"basic":{"password":"p:w","username":"u"}}"#,
        true,
    );
}

#[test]
fn token_file_is_reread_after_the_refresh_period() {
    let dir = TempDir::new();
    let path = dir.write("token", "one\n");
    let clock = Clock::system();
    let source = CredentialSource::TokenFile {
        path: path.clone(),
        initial: "inline".into(),
    };
    let creds = Credentials::with_clock(source, clock.clone(), TOKEN_FILE_REFRESH);
    let sink = Arc::new(Sink::default());
    creds.attach(sink.clone());
    block_on(creds.ensure_fresh()).unwrap();
    assert_eq!(
        sink.values(),
        [r#"{"token":"inline"}"#],
        "the kubeconfig token wins until the first refresh"
    );

    clock.advance(Duration::from_secs(45));
    block_on(creds.ensure_fresh()).unwrap();
    assert_eq!(sink.values().len(), 1, "not yet due at 45 s");

    clock.advance(Duration::from_secs(5));
    block_on(creds.ensure_fresh()).unwrap();
    assert_eq!(
        sink.values().last().unwrap(),
        r#"{"token":"one"}"#,
        "re-read at 50 s"
    );

    std::fs::write(&path, "two").unwrap();
    block_on(creds.ensure_fresh()).unwrap();
    assert_eq!(
        sink.values().last().unwrap(),
        r#"{"token":"one"}"#,
        "cached within the period"
    );
    clock.advance(TOKEN_FILE_REFRESH);
    block_on(creds.ensure_fresh()).unwrap();
    assert_eq!(sink.values().last().unwrap(), r#"{"token":"two"}"#);

    // A read error keeps the last token.
    std::fs::remove_file(&path).unwrap();
    clock.advance(TOKEN_FILE_REFRESH);
    block_on(creds.ensure_fresh()).unwrap();
    assert_eq!(creds.current_json(), br#"{"token":"two"}"#);
    assert_eq!(
        sink.values().len(),
        3,
        "unchanged values are not re-published"
    );
}

/// Writes an exec plugin script that counts its runs in `count` and prints a token
/// `tok-<n>` with the given expiry (RFC 3339, or none).
fn plugin_script(
    dir: &TempDir,
    api_version: &str,
    expiry: Option<&str>,
) -> (ExecConfig, std::path::PathBuf) {
    let count = dir.path().join("count");
    let status_expiry = expiry.map_or(String::new(), |e| {
        format!(r#","expirationTimestamp":"{e}""#)
    });
    let script = format!(
        r#"#!/bin/sh
n=$(cat "{count}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{count}"
case "$KUBERNETES_EXEC_INFO" in *'"interactive":false'*) ;; *) echo "bad exec info: $KUBERNETES_EXEC_INFO" >&2; exit 3;; esac
[ "$EXTRA" = "value" ] || exit 4
[ "$1" = "get-token" ] || exit 5
printf '{{"apiVersion":"{api_version}","kind":"ExecCredential","status":{{"token":"tok-%s"{status_expiry}}}}}' "$n"
"#,
        count = count.display()
    );
    let path = dir.write("plugin.sh", script);
    set_executable(&path);
    let config = ExecConfig {
        command: path.display().to_string(),
        args: vec!["get-token".into()],
        env: vec![("EXTRA".into(), "value".into())],
        api_version: api_version.into(),
        ..ExecConfig::default()
    };
    (config, count)
}

fn set_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn runs(count: &std::path::Path) -> u32 {
    std::fs::read_to_string(count).map_or(0, |s| s.trim().parse().unwrap())
}

#[test]
fn expired_exec_credentials_are_refreshed_on_every_use() {
    let dir = TempDir::new();
    let (config, count) = plugin_script(
        &dir,
        "client.authentication.k8s.io/v1",
        Some("2000-01-01T00:10:00Z"),
    );
    let creds = Credentials::new(CredentialSource::Exec(config));
    let sink = Arc::new(Sink::default());
    creds.attach(sink.clone());
    block_on(creds.ensure_fresh()).unwrap();
    block_on(creds.ensure_fresh()).unwrap();
    assert_eq!(runs(&count), 2);
    assert_eq!(
        sink.values(),
        ["{}", r#"{"token":"tok-1"}"#, r#"{"token":"tok-2"}"#]
    );
}

#[test]
fn exec_plugin_token_is_reused_until_its_expiry_then_refreshed() {
    let dir = TempDir::new();
    // Expires 120 s from now (wall clock), second precision.
    let soon = std::time::SystemTime::now() + Duration::from_secs(120);
    let expiry = format_rfc3339(soon);
    let (config, count) =
        plugin_script(&dir, "client.authentication.k8s.io/v1beta1", Some(&expiry));
    let clock = Clock::system();
    let creds = Credentials::with_clock(
        CredentialSource::Exec(config),
        clock.clone(),
        TOKEN_FILE_REFRESH,
    );
    let sink = Arc::new(Sink::default());
    creds.attach(sink.clone());
    for _ in 0..3 {
        block_on(creds.ensure_fresh()).unwrap();
    }
    assert_eq!(runs(&count), 1, "cached while fresh");
    clock.advance(Duration::from_secs(121));
    block_on(creds.ensure_fresh()).unwrap();
    assert_eq!(runs(&count), 2, "re-run after expiry");
    assert_eq!(sink.values().last().unwrap(), r#"{"token":"tok-2"}"#);
    // A 401 forces a refresh and reports the change.
    assert!(block_on(creds.unauthorized()));
    assert_eq!(runs(&count), 3);
    assert_eq!(creds.current_json(), br#"{"token":"tok-3"}"#);
}

#[test]
fn exec_plugin_without_expiry_runs_once() {
    let dir = TempDir::new();
    let (config, count) = plugin_script(&dir, "client.authentication.k8s.io/v1", None);
    let creds = Credentials::new(CredentialSource::Exec(config));
    for _ in 0..3 {
        block_on(creds.ensure_fresh()).unwrap();
    }
    assert_eq!(runs(&count), 1);
}

#[track_caller]
fn check_exec_error(config: ExecConfig, want: &str) {
    let creds = Credentials::new(CredentialSource::Exec(config));
    let err = block_on(creds.ensure_fresh()).unwrap_err();
    assert_eq!(err.to_string(), want);
    assert_eq!(creds.current_json(), b"{}");
}

#[test]
fn exec_plugin_failures() {
    let dir = TempDir::new();
    let v1 = "client.authentication.k8s.io/v1".to_owned();
    check_exec_error(
        ExecConfig {
            command: "kproxy-no-such-plugin".into(),
            api_version: v1.clone(),
            install_hint: "install it".into(),
            ..ExecConfig::default()
        },
        "getting credentials: exec: executable kproxy-no-such-plugin not found\n\ninstall it",
    );
    let failing = dir.write("fail.sh", "#!/bin/sh\nexit 7\n");
    set_executable(&failing);
    check_exec_error(
        ExecConfig {
            command: failing.display().to_string(),
            api_version: v1.clone(),
            ..ExecConfig::default()
        },
        &format!(
            "getting credentials: exec: executable {} failed with exit code 7",
            failing.display()
        ),
    );
    let (config, _) = plugin_script(&dir, "client.authentication.k8s.io/v1", None);
    check_exec_error(
        ExecConfig {
            api_version: "client.authentication.k8s.io/v1beta1".into(),
            ..config.clone()
        },
        "getting credentials: exec plugin is configured to use API version client.authentication.k8s.io/v1beta1, plugin returned version client.authentication.k8s.io/v1",
    );
    check_exec_error(
        ExecConfig {
            api_version: "client.authentication.k8s.io/v1alpha1".into(),
            ..config
        },
        r#"getting credentials: exec plugin: invalid apiVersion "client.authentication.k8s.io/v1alpha1""#,
    );
}

#[test]
fn exec_output_parsing() {
    #[track_caller]
    fn parse_err(json: &str, want: &str) {
        assert_eq!(
            super::exec::parse("client.authentication.k8s.io/v1", json.as_bytes()).unwrap_err(),
            want
        );
    }
    let v1 = r#""apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential""#;
    parse_err(
        &format!("{{{v1}}}"),
        "exec plugin didn't return a status field",
    );
    parse_err(
        &format!(r#"{{{v1},"status":{{}}}}"#),
        "exec plugin didn't return a token or cert/key pair",
    );
    parse_err(
        &format!(r#"{{{v1},"status":{{"clientCertificateData":"x"}}}}"#),
        "exec plugin returned only certificate or key, not both",
    );
    assert!(
        super::exec::parse("client.authentication.k8s.io/v1", b"nope")
            .unwrap_err()
            .starts_with("decoding stdout: ")
    );
    let ok = super::exec::parse(
        "client.authentication.k8s.io/v1",
        format!(
            r#"{{{v1},"status":{{"token":"t","expirationTimestamp":"2024-05-01T10:00:00Z"}}}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(ok.token, "t");
    assert_eq!(
        ok.expiry,
        Some(UNIX_EPOCH + Duration::from_secs(1_714_557_600))
    );
}

#[test]
fn exec_info_with_cluster() {
    let config = ExecConfig {
        api_version: "client.authentication.k8s.io/v1".into(),
        provide_cluster_info: true,
        cluster_server: "https://k:6443".into(),
        cluster_ca_data: b"CA".to_vec(),
        ..ExecConfig::default()
    };
    let info: serde_json::Value = serde_json::from_str(&super::exec::exec_info(&config)).unwrap();
    assert_eq!(
        info,
        serde_json::json!({
            "kind": "ExecCredential",
            "apiVersion": "client.authentication.k8s.io/v1",
            "spec": {"interactive": false, "cluster": {"server": "https://k:6443", "certificate-authority-data": "Q0E="}},
        })
    );
}

#[test]
fn rfc3339() {
    #[track_caller]
    fn ts(s: &str, want: Option<u64>) {
        assert_eq!(
            parse_rfc3339(s),
            want.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            "{s}"
        );
    }
    ts("1970-01-01T00:00:00Z", Some(0));
    ts("2024-05-01T10:00:00Z", Some(1_714_557_600_000));
    ts("2024-05-01T12:00:00+02:00", Some(1_714_557_600_000));
    ts("2024-05-01T10:00:00.250Z", Some(1_714_557_600_250));
    ts("2024-02-29T00:00:00Z", Some(1_709_164_800_000));
    ts("2024-05-01 10:00:00Z", Some(1_714_557_600_000));
    ts("2024-05-01T10:00:00", None);
    ts("2024-13-01T10:00:00Z", None);
    ts("yesterday", None);
}

/// Formats a time as RFC 3339 UTC with second precision (test helper).
fn format_rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let days = i64::try_from(secs / 86_400).unwrap();
    let (y, m, d) = civil(days);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
