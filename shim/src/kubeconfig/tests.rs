//! Kubeconfig loading, merging and precedence, overrides, validation messages, relative
//! paths, in-cluster fallback, `http` servers without credentials, and TLS configuration
//! against a private CA (a real handshake over a loopback socket).

use std::sync::Arc;

use super::resolve::ServerUrl;
use super::*;
use crate::test_support::{Pki, TempDir};

fn env_for(dir: &TempDir) -> Env {
    Env {
        service_account_dir: dir.path().join("no-sa"),
        ..Env::default()
    }
}

#[track_caller]
fn check(
    files: &[(&str, &str)],
    kubeconfig_env: &str,
    overrides: impl std::borrow::Borrow<Overrides>,
    want: Result<Want, &str>,
) {
    let dir = TempDir::new();
    for (name, text) in files {
        dir.write(name, text);
    }
    let mut env = env_for(&dir);
    let list: Vec<String> = kubeconfig_env
        .split(':')
        .filter(|p| !p.is_empty())
        .map(|p| dir.path().join(p).display().to_string())
        .collect();
    env.kubeconfig = Some(list.join(":"));
    let got = load("", overrides.borrow(), &env);
    match (got, want) {
        (Ok(target), Ok(want)) => {
            assert_eq!(target.cluster.server.to_string(), want.server);
            assert_eq!(target.cluster.server_path, want.server_path);
            let want_credential = match want.credential {
                WantCred::None => CredentialSource::None,
                WantCred::Token(t) => CredentialSource::Token(t.into()),
                WantCred::Basic(u, p) => CredentialSource::Basic {
                    username: u.into(),
                    password: p.into(),
                },
                WantCred::TokenFile(rel, initial) => CredentialSource::TokenFile {
                    path: dir.path().join(rel),
                    initial: initial.into(),
                },
            };
            assert_eq!(target.credential, want_credential);
        }
        (Err(e), Err(want)) => assert_eq!(e.to_string(), want),
        (got, want) => panic!("got {got:?}, want {want:?}"),
    }
}

#[derive(Debug)]
struct Want {
    server: &'static str,
    server_path: &'static str,
    credential: WantCred,
}

#[derive(Debug)]
enum WantCred {
    None,
    Token(&'static str),
    Basic(&'static str, &'static str),
    TokenFile(&'static str, &'static str),
}

fn config(clusters: &str, users: &str, contexts: &str, current: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}\nusers:\n{users}\ncontexts:\n{contexts}\ncurrent-context: {current}\n"
    )
}

const A: &str =
    "- {name: a, cluster: {server: 'https://a.example:6443', insecure-skip-tls-verify: true}}";
const B: &str =
    "- {name: b, cluster: {server: 'https://b.example/base/', insecure-skip-tls-verify: true}}";
const TOKEN_USER: &str = "- {name: u, user: {token: tok}}";
const CTX_A: &str = "- {name: a, context: {cluster: a, user: u}}";
const CTX_B: &str = "- {name: b, context: {cluster: b, user: u}}";

#[test]
fn single_file_current_context() {
    check(
        &[("c1", &config(A, TOKEN_USER, CTX_A, "a"))],
        "c1",
        Overrides::default(),
        Ok(Want {
            server: "https://a.example:6443/",
            server_path: "",
            credential: WantCred::Token("tok"),
        }),
    );
}

#[test]
fn schemeless_server_without_tls_settings_is_plain_http() {
    check(
        &[(
            "c",
            &config(
                "- {name: a, cluster: {server: '127.0.0.1:8080'}}",
                TOKEN_USER,
                CTX_A,
                "a",
            ),
        )],
        "c",
        Overrides::default(),
        Ok(Want {
            server: "http://127.0.0.1:8080/",
            server_path: "",
            credential: WantCred::None,
        }),
    );
}

#[test]
fn merge_first_file_wins_per_name_and_for_current_context() {
    let first = config(A, "- {name: u, user: {token: first}}", CTX_A, "\"\"");
    let second = config(
        &format!("{B}\n- {{name: a, cluster: {{server: 'https://ignored'}}}}"),
        "- {name: u, user: {token: second}}",
        &format!("{CTX_B}\n{CTX_A}"),
        "b",
    );
    check(
        &[("c1", &first), ("c2", &second)],
        "c1:missing:c2",
        Overrides::default(),
        Ok(Want {
            server: "https://b.example:443/",
            server_path: "/base/",
            credential: WantCred::Token("first"),
        }),
    );
    check(
        &[("c1", &first), ("c2", &second)],
        "c1:c2",
        Overrides {
            context: "a".into(),
            ..Overrides::default()
        },
        Ok(Want {
            server: "https://a.example:6443/",
            server_path: "",
            credential: WantCred::Token("first"),
        }),
    );
}

#[test]
fn overrides_replace_kubeconfig_values() {
    let file = config(A, TOKEN_USER, CTX_A, "a");
    check(
        &[("c", &file)],
        "c",
        Overrides {
            server: "https://other:7443/p".into(),
            token: "flag".into(),
            ..Overrides::default()
        },
        Ok(Want {
            server: "https://other:7443/",
            server_path: "/p",
            credential: WantCred::Token("flag"),
        }),
    );
    check(
        &[("c", &config(A, "- {name: u, user: {}}", CTX_A, "a"))],
        "c",
        Overrides {
            username: "me".into(),
            password: "pw".into(),
            ..Overrides::default()
        },
        Ok(Want {
            server: "https://a.example:6443/",
            server_path: "",
            credential: WantCred::Basic("me", "pw"),
        }),
    );
}

#[test]
fn selection_errors() {
    let file = config(A, TOKEN_USER, CTX_A, "a");
    let files = [("c", file.as_str())];
    check(
        &files,
        "c",
        Overrides {
            context: "nope".into(),
            ..Overrides::default()
        },
        Err(r#"context "nope" does not exist"#),
    );
    check(
        &files,
        "c",
        Overrides {
            user: "zz".into(),
            ..Overrides::default()
        },
        Err(r#"auth info "zz" does not exist"#),
    );
    check(
        &files,
        "c",
        Overrides {
            cluster: "zz".into(),
            ..Overrides::default()
        },
        Err(r#"cluster "zz" does not exist"#),
    );
}

#[test]
fn validation_messages() {
    let both = config(
        A,
        "- {name: u, user: {token: t, username: a, password: b}}",
        CTX_A,
        "a",
    );
    check(
        &[("c", &both)],
        "c",
        Overrides::default(),
        Err(
            "more than one authentication method found for u; found [token basicAuth], only one is allowed",
        ),
    );
    let cert_only = config(
        A,
        "- {name: u, user: {client-certificate: /nope/c.crt}}",
        CTX_A,
        "a",
    );
    check(
        &[("c", &cert_only)],
        "c",
        Overrides::default(),
        Err(
            "Error in configuration: \n* client-key-data or client-key must be specified for u to use the clientCert authentication method.\n* unable to read client-cert /nope/c.crt for u due to open /nope/c.crt: no such file or directory",
        ),
    );
    let groups_only = config(A, "- {name: u, user: {as-groups: [g]}}", CTX_A, "a");
    check(
        &[("c", &groups_only)],
        "c",
        Overrides::default(),
        Err("requesting uid, groups or user-extra for u without impersonating a user"),
    );
}

#[test]
fn token_file_and_basic_conflict() {
    let file = config(
        A,
        "- {name: u, user: {tokenFile: tok.txt, username: a, password: b}}",
        CTX_A,
        "a",
    );
    check(
        &[("c", &file), ("tok.txt", "t\n")],
        "c",
        Overrides::default(),
        Err("username/password or bearer token may be set, but not both"),
    );
}

#[test]
fn relative_paths_resolve_against_the_file() {
    let file = config(
        A,
        "- {name: u, user: {tokenFile: secrets/tok.txt}}",
        CTX_A,
        "a",
    );
    check(
        &[("sub/c", &file), ("sub/secrets/tok.txt", " file-token \n")],
        "sub/c",
        Overrides::default(),
        Ok(Want {
            server: "https://a.example:6443/",
            server_path: "",
            credential: WantCred::TokenFile("sub/secrets/tok.txt", "file-token"),
        }),
    );
    let both = config(
        A,
        "- {name: u, user: {token: inline, tokenFile: tok.txt}}",
        CTX_A,
        "a",
    );
    check(
        &[("c", &both), ("tok.txt", "from-file")],
        "c",
        Overrides::default(),
        Ok(Want {
            server: "https://a.example:6443/",
            server_path: "",
            credential: WantCred::TokenFile("tok.txt", "inline"),
        }),
    );
}

#[test]
fn http_servers_get_no_credentials_or_impersonation() {
    let file = config(
        "- {name: h, cluster: {server: 'http://127.0.0.1:8080'}}",
        "- {name: u, user: {token: t, as: alice}}",
        "- {name: h, context: {cluster: h, user: u}}",
        "h",
    );
    let dir = TempDir::new();
    let path = dir.write("c", file);
    let target = load(
        &path.display().to_string(),
        &Overrides::default(),
        &env_for(&dir),
    )
    .expect("loads");
    assert_eq!(target.credential, CredentialSource::None);
    assert_eq!(target.impersonate, None);
    assert!(target.cluster.tls.is_none());
    assert_eq!(target.cluster.host_header, "127.0.0.1:8080");
}

#[test]
fn explicit_kubeconfig_must_exist_and_parse() {
    let dir = TempDir::new();
    let missing = dir.path().join("missing");
    let err = load(
        &missing.display().to_string(),
        &Overrides::default(),
        &env_for(&dir),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("stat {}: no such file or directory", missing.display())
    );
    let bad = dir.write("bad", "clusters: 7");
    let err = load(
        &bad.display().to_string(),
        &Overrides::default(),
        &env_for(&dir),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "error loading config file \"{}\": ",
            bad.display()
        )),
        "{err}"
    );
}

#[test]
fn nothing_configured_means_localhost_8080_or_kubernetes_master() {
    let dir = TempDir::new();
    let mut env = env_for(&dir);
    env.home = Some(dir.path().to_path_buf());
    let target = load("", &Overrides::default(), &env).expect("loads");
    assert_eq!(target.cluster.server.to_string(), "http://localhost:8080/");
    assert_eq!(target.cluster.host_header, "localhost:8080");
    assert!(!target.in_cluster);
    env.kubernetes_master = Some("http://master:1234".into());
    let target = load("", &Overrides::default(), &env).expect("loads");
    assert_eq!(target.cluster.host_header, "master:1234");
}

#[test]
fn home_kube_config_is_the_fallback() {
    let dir = TempDir::new();
    dir.write(".kube/config", config(A, TOKEN_USER, CTX_A, "a"));
    let mut env = env_for(&dir);
    env.home = Some(dir.path().to_path_buf());
    let target = load("", &Overrides::default(), &env).expect("loads");
    assert_eq!(target.cluster.host_header, "a.example:6443");
}

#[test]
fn in_cluster_when_nothing_else_is_configured() {
    let dir = TempDir::new();
    let pki = Pki::new();
    dir.write("sa/token", "sa-token\n");
    dir.write("sa/ca.crt", &pki.ca_pem);
    let env = Env {
        home: Some(dir.path().join("home")),
        service_host: Some("10.0.0.1".into()),
        service_port: Some("443".into()),
        service_account_dir: dir.path().join("sa"),
        ..Env::default()
    };
    let target = load("", &Overrides::default(), &env).expect("loads");
    assert!(target.in_cluster);
    assert_eq!(target.cluster.server.to_string(), "https://10.0.0.1:443/");
    assert_eq!(target.cluster.host_header, "10.0.0.1:443");
    assert!(target.cluster.tls.is_some());
    assert_eq!(
        target.credential,
        CredentialSource::TokenFile {
            path: dir.path().join("sa/token"),
            initial: "sa-token".into()
        }
    );
    // --token overrides the service-account token.
    let target = load(
        "",
        &Overrides {
            token: "flag".into(),
            ..Overrides::default()
        },
        &env,
    )
    .expect("loads");
    assert_eq!(target.credential, CredentialSource::Token("flag".into()));
    // IPv6 service hosts are bracketed.
    let env6 = Env {
        service_host: Some("fd00::1".into()),
        ..env.clone()
    };
    assert_eq!(
        load("", &Overrides::default(), &env6)
            .expect("loads")
            .cluster
            .host_header,
        "[fd00::1]:443"
    );
    // Without the token file in-cluster is not possible.
    let no_sa = Env {
        service_account_dir: dir.path().join("nope"),
        ..env
    };
    assert!(
        !load("", &Overrides::default(), &no_sa)
            .expect("loads")
            .in_cluster
    );
}

#[test]
fn server_urls() {
    #[track_caller]
    fn url(raw: &str, tls: bool, want: (&str, &str, Option<u16>, &str, &str)) {
        let got = ServerUrl::parse(raw, tls).expect("parses");
        assert_eq!(
            (
                got.scheme.as_str(),
                got.host.as_str(),
                got.port,
                got.host_header.as_str(),
                got.path.as_str()
            ),
            want,
            "{raw}"
        );
    }
    url(
        "https://h:6443",
        false,
        ("https", "h", Some(6443), "h:6443", ""),
    );
    url("https://h/", false, ("https", "h", None, "h", ""));
    url(
        "https://[::1]:6443/k8s/clusters/c-1",
        false,
        (
            "https",
            "::1",
            Some(6443),
            "[::1]:6443",
            "/k8s/clusters/c-1",
        ),
    );
    url(
        "10.0.0.1:6443",
        false,
        ("http", "10.0.0.1", Some(6443), "10.0.0.1:6443", ""),
    );
    url(
        "10.0.0.1:6443",
        true,
        ("https", "10.0.0.1", Some(6443), "10.0.0.1:6443", ""),
    );
    assert!(ServerUrl::parse("ftp://x", false).is_err());
}

// --- TLS ---

/// Runs a one-shot TLS server on loopback with `server_config` and handshakes with `client`.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server_config: Arc<rustls::ServerConfig>,
    name: &str,
) -> Result<Option<Vec<u8>>, String> {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().expect("accept");
        let mut conn = rustls::ServerConnection::new(server_config).expect("server conn");
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let mut buf = [0u8; 2];
        if tls.read_exact(&mut buf).is_ok() {
            let _ = tls.write_all(b"ok");
        }
        conn.peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
    });
    let mut sock = std::net::TcpStream::connect(addr).expect("connect");
    let server_name = server_name(name).map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(client, server_name).map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let result = tls.write_all(b"hi").and_then(|()| {
        let mut buf = [0u8; 2];
        tls.read_exact(&mut buf)
    });
    assert!(conn.alpn_protocol().is_none_or(|p| p == b"http/1.1"));
    drop(sock);
    let peer = server.join().expect("server thread");
    result.map(|()| peer).map_err(|e| e.to_string())
}

fn server_config(pki: &Pki, client_ca: Option<&str>) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = vec![CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes()).expect("cert")];
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).expect("key");
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(ca.as_bytes()).expect("ca"))
                .expect("add");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).expect("server config");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn tls_target(
    dir: &TempDir,
    cluster: &str,
    user: &str,
    overrides: impl std::borrow::Borrow<Overrides>,
) -> Result<Target, KubeconfigError> {
    let file = config(
        &format!("- {{name: s, cluster: {{server: 'https://127.0.0.1:1', {cluster}}}}}"),
        &format!("- {{name: u, user: {{{user}}}}}"),
        "- {name: s, context: {cluster: s, user: u}}",
        "s",
    );
    let path = dir.write("config", file);
    load(
        &path.display().to_string(),
        overrides.borrow(),
        &env_for(dir),
    )
}

#[test]
fn tls_with_private_ca_and_client_certificate() {
    use base64::Engine as _;
    let pki = Pki::new();
    let dir = TempDir::new();
    // CA bundle with an unrelated cert first: every cert in the PEM is used.
    let other = Pki::new();
    dir.write("pki/ca.crt", format!("{}{}", other.ca_pem, pki.ca_pem));
    dir.write("pki/client.crt", &pki.client_cert_pem);
    dir.write("pki/client.key", &pki.client_key_pem);
    let target = tls_target(
        &dir,
        "certificate-authority: pki/ca.crt",
        "client-certificate: pki/client.crt, client-key: pki/client.key",
        Overrides::default(),
    )
    .expect("loads");
    let tls = target.cluster.tls.clone().expect("https has TLS");
    assert_eq!(tls.alpn_protocols, [b"http/1.1".to_vec()]);
    let peer = handshake(
        tls.clone(),
        server_config(&pki, Some(&pki.ca_pem)),
        "localhost",
    )
    .expect("handshake");
    assert!(peer.is_some(), "client certificate presented");
    // The certificate names localhost/127.0.0.1; another name fails verification.
    assert!(handshake(tls, server_config(&pki, None), "wrong.example").is_err());

    // Inline data works the same; a tls-server-name override is used for verification.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let target = tls_target(
        &dir,
        &format!(
            "certificate-authority-data: {}, tls-server-name: localhost",
            b64(&pki.ca_pem)
        ),
        "token: t",
        Overrides::default(),
    )
    .expect("loads");
    assert_eq!(
        target.cluster.tls_server_name,
        server_name("localhost").expect("name")
    );
    handshake(
        target.cluster.tls.expect("tls"),
        server_config(&pki, None),
        "localhost",
    )
    .expect("handshake");
}

#[test]
fn tls_rejects_unknown_ca_unless_insecure() {
    let pki = Pki::new();
    let other = Pki::new();
    let dir = TempDir::new();
    dir.write("other.crt", &other.ca_pem);
    let target = tls_target(
        &dir,
        "certificate-authority: other.crt",
        "token: t",
        Overrides::default(),
    )
    .expect("loads");
    let err = handshake(
        target.cluster.tls.expect("tls"),
        server_config(&pki, None),
        "localhost",
    )
    .unwrap_err();
    assert!(
        err.contains("UnknownIssuer") || err.contains("invalid peer certificate"),
        "{err}"
    );
    // --insecure-skip-tls-verify replaces the kubeconfig CA.
    let overrides = Overrides {
        insecure_skip_tls_verify: true,
        ..Overrides::default()
    };
    let target = tls_target(
        &dir,
        "certificate-authority: other.crt",
        "token: t",
        overrides,
    )
    .expect("loads");
    handshake(
        target.cluster.tls.expect("tls"),
        server_config(&pki, None),
        "anything.example",
    )
    .expect("insecure");
}

#[test]
fn tls_errors() {
    let dir = TempDir::new();
    dir.write("junk.crt", "not pem");
    let err = tls_target(
        &dir,
        "certificate-authority: junk.crt",
        "",
        Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to load root certificates: unable to parse bytes as PEM block"
    );
    let err = tls_target(
        &dir,
        "certificate-authority: junk.crt, insecure-skip-tls-verify: true",
        "",
        Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "specifying a root certificates file with the insecure flag is not allowed"
    );
}

#[test]
fn client_key_must_match_the_certificate() {
    let pki = Pki::new();
    let other = Pki::new();
    let dir = TempDir::new();
    dir.write("ca.crt", &pki.ca_pem);
    dir.write("c.crt", &pki.client_cert_pem);
    dir.write("wrong.key", &other.client_key_pem);
    let err = tls_target(
        &dir,
        "certificate-authority: ca.crt",
        "client-certificate: c.crt, client-key: wrong.key",
        Overrides::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("tls: private key does not match public key"),
        "{err}"
    );
}
