//! Envoy 1.40 with the bootstrap `shim envoy-bootstrap` renders (the default configuration plus
//! an inline token, since Envoy has no host that fills the shim's shared-data credentials)
//! proxies to the fake API server: accepted requests carry the token and nothing meant for the
//! proxy, exec is refused locally.

use std::time::Duration;

use crate::apiserver::{FakeApiServer, FakeOptions};
use crate::backend::{self, Backend};
use crate::kubeconfig::{self, TempDir, Variant};
use crate::rawhttp;

fn get(
    addr: std::net::SocketAddr,
    target: &str,
    host: &str,
    extra: &[(&str, &str)],
) -> rawhttp::RawResponse {
    let mut h = vec![("Host".to_owned(), host.to_owned())];
    h.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let req = rawhttp::build_request("GET", target, "HTTP/1.1", &h, b"");
    rawhttp::send(addr, &req, false).expect("request through envoy")
}

#[test]
fn envoy_smoke() {
    if backend::require(Backend::Envoy).is_none() {
        return;
    }
    let fake = FakeApiServer::start(FakeOptions::default()).expect("fake starts");
    let dir = TempDir::new("envoy-smoke").expect("temp dir");
    let kc = kubeconfig::write(&dir, &fake, Variant::Token).expect("kubeconfig");
    let envoy = Backend::Envoy
        .spawn(&[], &kc, &fake, &dir)
        .unwrap_or_else(|e| panic!("envoy starts: {e:#}"));
    let logs = || envoy.logs();

    let resp = get(
        envoy.addr(),
        "/api/v1/pods",
        "127.0.0.1",
        &[("Proxy-Authorization", "Basic Zm9vOmJhcg==")],
    );
    assert_eq!(
        resp.status,
        200,
        "GET /api/v1/pods: {}\n{}",
        resp.text(),
        logs()
    );
    let seen = fake.requests();
    let up = seen
        .last()
        .unwrap_or_else(|| panic!("nothing reached the fake\n{}", logs()));
    assert_eq!(up.target, "/api/v1/pods");
    assert_eq!(up.header("authorization"), Some("Bearer TOK"), "{up:?}");
    assert_eq!(up.header("host"), Some(fake.host_port().as_str()), "{up:?}");
    assert_eq!(
        up.header("x-kproxy-upstream"),
        None,
        "routing header removed: {up:?}"
    );
    assert_eq!(up.header("proxy-authorization"), None, "{up:?}");
    assert_eq!(up.header("x-forwarded-proto"), None, "{up:?}");

    let before = fake.requests().len();
    let resp = get(
        envoy.addr(),
        "/api/v1/namespaces/default/pods/x/exec",
        "127.0.0.1",
        &[],
    );
    assert_eq!(resp.status, 403, "{}", logs());
    assert_eq!(resp.text(), "Forbidden\n");

    // A client cannot pick the upstream: a forged routing header changes nothing.
    let resp = get(
        envoy.addr(),
        "/api/v1/pods",
        "evil.com",
        &[("x-kproxy-upstream", "apiserver")],
    );
    assert_eq!(resp.status, 403, "{}", logs());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        fake.requests().len(),
        before,
        "nothing more reached upstream"
    );
}
