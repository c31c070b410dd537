//! The `shim` binary's command line as a process: `--print-plugin-config`, `--help`, and
//! kubectl's error texts and exit codes.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `shim args` with `KUBECONFIG` pointing at `kubeconfig` (written to a fresh dir).
fn shim(kubeconfig: &str, args: &[&str]) -> Run {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kproxy-shim-cli-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config");
    std::fs::write(&config, kubeconfig).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_shim"))
        .args(args)
        .env("KUBECONFIG", &config)
        .env("HOME", &dir)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_MASTER")
        .env_remove("RUST_LOG")
        .output()
        .expect("run shim");
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

const SECURE: &str = r#"
apiVersion: v1
kind: Config
clusters:
- {name: c, cluster: {server: "https://127.0.0.1:6443/base", insecure-skip-tls-verify: true}}
users:
- {name: u, user: {token: s3cret}}
contexts:
- {name: c, context: {cluster: c, user: u}}
current-context: c
"#;

#[track_caller]
fn check(args: &[&str], code: i32, stdout: &str, stderr: &str) {
    let run = shim(SECURE, args);
    assert_eq!(run.code, Some(code), "args {args:?}: stderr {}", run.stderr);
    assert!(
        run.stdout.contains(stdout),
        "args {args:?}: stdout {:?}",
        run.stdout
    );
    assert!(
        run.stderr.contains(stderr),
        "args {args:?}: stderr {:?}",
        run.stderr
    );
}

#[test]
fn print_plugin_config() {
    let run = shim(
        SECURE,
        &[
            "--print-plugin-config",
            "--append-server-path",
            "--reject-methods=POST,PUT",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(json["reject_methods"], serde_json::json!(["POST", "PUT"]));
    assert_eq!(json["server_path"], "/base");
    assert_eq!(
        json["credentials"],
        serde_json::json!({"shared_data_key": "kproxy.credentials"})
    );
    assert!(
        !run.stdout.contains("s3cret"),
        "no secrets in the plugin JSON"
    );
    // Without --append-server-path kubectl's warning goes to stderr in klog format.
    let run = shim(SECURE, &["--print-plugin-config"]);
    assert_eq!(run.code, Some(0));
    let line = run.stderr.lines().next().unwrap_or_default();
    assert!(line.starts_with('W') && line.ends_with("proxy.go:172] Your kube context contains a server path /base, use --append-server-path to automatically append the path to each request"), "{line:?}");
}

#[test]
fn errors_and_exit_codes() {
    check(
        &["--keepalive=abc"],
        1,
        "",
        "Error: invalid argument \"abc\" for \"--keepalive\" flag: time: invalid duration \"abc\"\nSee 'shim --help' for usage.\n",
    );
    check(&["--nope"], 1, "", "Error: unknown flag: --nope\n");
    check(
        &["--context=nope"],
        1,
        "",
        "error: context \"nope\" does not exist\n",
    );
    check(
        &["-u", "/tmp/x.sock", "--port=9"],
        1,
        "",
        "error: cannot set --unix-socket and --port at the same time\n",
    );
    check(
        &["--append-server-path", "--accept-paths=(bad"],
        255,
        "",
        "proxy_server.go:83] Error compiling re: error parsing regexp: ",
    );
    check(
        &["--append-server-path", "--www=/tmp", "--www-prefix=/"],
        2,
        "",
        "error: pattern \"/\"",
    );
    check(&["--help"], 0, "    -p, --port=8001:\n", "");
}

#[test]
fn configuration_lists_are_printed_like_kubectl() {
    let both = SECURE.replace("{token: s3cret}", "{client-certificate: /nope/c.crt}");
    let run = shim(&both, &["--print-plugin-config"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "Error in configuration: \n* client-key-data or client-key must be specified for u to use the clientCert authentication method.\n* unable to read client-cert /nope/c.crt for u due to open /nope/c.crt: no such file or directory\n"
    );
}
