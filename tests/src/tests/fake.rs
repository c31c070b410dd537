//! Self-tests of the fake API server: authentication, echo, watch streaming, upgrade echo, and
//! real `kubectl` as its client (it must look like an apiserver to client-go).

use std::io::Write as _;
use std::process::Command;
use std::time::Duration;

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend};
use crate::kubeconfig::{self, TempDir, Variant};
use crate::rawhttp::{self, Conn};

fn plain(anonymous: bool) -> FakeApiServer {
    FakeApiServer::start(FakeOptions {
        tls: false,
        anonymous,
        ..FakeOptions::default()
    })
    .expect("fake apiserver starts")
}

fn get(fake: &FakeApiServer, target: &str, headers: &[(&str, &str)]) -> rawhttp::RawResponse {
    let mut h: Vec<(String, String)> = vec![("Host".into(), fake.host_port())];
    h.extend(
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let req = rawhttp::build_request("GET", target, "HTTP/1.1", &h, b"");
    rawhttp::send(fake.addr(), &req, false).expect("request to the fake")
}

#[test]
fn fake_apiserver_rejects_missing_or_wrong_credentials() {
    let fake = plain(false);
    let want = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
    for headers in [vec![], vec![("Authorization", "Bearer nope")]] {
        let resp = get(&fake, "/api/v1/pods", &headers);
        assert_eq!(resp.status, 401, "{headers:?}");
        assert_eq!(resp.text(), want);
    }
    let resp = get(
        &fake,
        "/api/v1/pods",
        &[("Authorization", "Basic YWxpY2U6czNjcmV0")],
    );
    assert_eq!(resp.status, 200, "basic alice:s3cret accepted");
    assert_eq!(fake.requests().len(), 3, "every request is recorded");
}

#[test]
fn fake_apiserver_echoes_the_request() {
    let fake = plain(false);
    let resp = get(
        &fake,
        "/api/v1/namespaces/x/pods?a=%zz&b=;c",
        &[
            ("Authorization", "Bearer TOK"),
            ("X-One", "1"),
            ("X-One", "2"),
        ],
    );
    assert_eq!(resp.status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&resp.body).expect("echo is JSON");
    assert_eq!(doc["method"], "GET");
    assert_eq!(doc["target"], "/api/v1/namespaces/x/pods?a=%zz&b=;c");
    assert_eq!(doc["body_len"], 0);
    let headers = doc["headers"].as_array().expect("headers list");
    let ones: Vec<&str> = headers
        .iter()
        .filter(|h| h[0] == "x-one")
        .filter_map(|h| h[1].as_str())
        .collect();
    assert_eq!(ones, ["1", "2"], "repeated headers kept in order");
    let seen = fake.requests();
    assert_eq!(seen[0].header_values("x-one"), ["1", "2"]);
}

#[test]
fn fake_apiserver_watch_chunks_arrive_spaced() {
    let fake = plain(true);
    let resp = get(
        &fake,
        "/api/v1/configmaps?watch=true&events=3&interval_ms=300",
        &[],
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        resp.arrivals.len(),
        3,
        "one chunk per event: {:?}",
        resp.arrivals
    );
    for pair in resp.arrivals.windows(2) {
        let gap = pair[1].0.saturating_sub(pair[0].0);
        assert!(
            gap >= Duration::from_millis(200),
            "events spaced: {:?}",
            resp.arrivals
        );
    }
    let text = resp.text();
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.lines()
            .all(|l| l.starts_with(r#"{"object""#) || l.contains("ADDED"))
    );
}

#[test]
fn fake_apiserver_upgrade_echoes_bytes() {
    let fake = plain(true);
    for proto in ["websocket", "SPDY/3.1"] {
        let mut conn = Conn::open(fake.addr()).expect("connect");
        let req = rawhttp::build_request(
            "GET",
            "/api/v1/namespaces/d/pods/p/portforward",
            "HTTP/1.1",
            &[
                ("Host".into(), fake.host_port()),
                ("Connection".into(), "Upgrade".into()),
                ("Upgrade".into(), proto.into()),
            ],
            b"",
        );
        conn.stream.write_all(&req).expect("write");
        let resp = conn.read_response(false).expect("101");
        assert_eq!(resp.status, 101, "{proto}");
        assert_eq!(resp.header("upgrade"), Some(proto));
        conn.stream
            .write_all(b"ping through the tunnel")
            .expect("write tunnel");
        let mut got = conn.take_buffered();
        let mut buf = [0u8; 64];
        while got.len() < 23 {
            let n = std::io::Read::read(&mut conn.stream, &mut buf).expect("read tunnel");
            assert!(n > 0, "tunnel closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"ping through the tunnel");
    }
}

#[test]
fn fake_apiserver_gzip_on_request() {
    let fake = plain(true);
    let resp = get(&fake, "/gzip-test", &[("Accept-Encoding", "gzip")]);
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&resp.body[..]), &mut out)
        .expect("valid gzip");
    assert!(out.contains("\"target\":\"/gzip-test\""), "{out}");
}

fn kubectl(kc: &std::path::Path, dir: &TempDir, args: &[&str]) -> std::process::Output {
    let bin = Backend::Kubectl.binary().expect("kubectl available");
    Command::new(bin)
        .arg(format!("--kubeconfig={}", kc.display()))
        .args(args)
        .env("HOME", dir.path())
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl runs")
}

#[test]
fn fake_apiserver_serves_kubectl_as_client() {
    if backend::require(Backend::Kubectl).is_none() {
        return;
    }
    let fake = FakeApiServer::start(FakeOptions::default()).expect("fake starts");
    let dir = TempDir::new("kubectl-client").expect("temp dir");
    for variant in [
        Variant::Token,
        Variant::Basic,
        Variant::TokenFile,
        Variant::Exec,
    ] {
        let kc = kubeconfig::write(&dir, &fake, variant).expect("kubeconfig");
        let out = kubectl(&kc.path, &dir, &["get", "--raw", "/api"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("APIVersions"),
            "{variant:?}: get --raw /api: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    let out = kubectl(&kc.path, &dir, &["get", "configmaps", "-A"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("kube-root-ca.crt")
            && stdout.contains("kube-system"),
        "get configmaps -A: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let auth: Vec<String> = fake
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert!(auth.iter().any(|a| a == "Bearer TOK"), "{auth:?}");
    assert!(
        auth.iter().any(|a| a == "Basic YWxpY2U6czNjcmV0"),
        "{auth:?}"
    );
}

#[test]
fn fake_apiserver_rejected_with_wrong_ca() {
    if backend::require(Backend::Kubectl).is_none() {
        return;
    }
    let fake = FakeApiServer::start(FakeOptions::default()).expect("fake starts");
    let dir = TempDir::new("kubectl-wrong-ca").expect("temp dir");
    let kc = kubeconfig::write(&dir, &fake, Variant::WrongCa).expect("kubeconfig");
    let out = kubectl(&kc.path, &dir, &["get", "--raw", "/api"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong CA must fail");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(
        fake.requests().is_empty(),
        "no request completed the handshake"
    );
}
