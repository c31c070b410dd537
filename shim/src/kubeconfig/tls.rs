//! The rustls client configuration for the API server: ring provider, TLS 1.2+, ALPN
//! `http/1.1`, the kubeconfig CA bundle (or the system bundle), a client certificate that is
//! re-read when its files change (at most once per second, at handshake, like client-go's
//! `cachingCertificateLoader`), `insecure-skip-tls-verify` and the server-name override.
//!
//! It builds configuration only; it must not open connections.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::KubeconfigError;

/// Where PEM bytes come from: a file (re-readable) or inline `*-data`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemSource {
    /// A file path.
    File(PathBuf),
    /// Inline bytes.
    Data(Vec<u8>),
}

impl PemSource {
    fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            Self::File(path) => {
                std::fs::read(path).map_err(|e| super::go_os_error("open", path, &e))
            }
            Self::Data(data) => Ok(data.clone()),
        }
    }

    fn modified(&self) -> Option<SystemTime> {
        match self {
            Self::File(path) => std::fs::metadata(path).and_then(|m| m.modified()).ok(),
            Self::Data(_) => None,
        }
    }
}

/// The TLS material of a cluster/user pair.
#[derive(Debug)]
pub(crate) struct TlsInputs {
    pub(crate) ca: Option<PemSource>,
    pub(crate) cert: Option<PemSource>,
    pub(crate) key: Option<PemSource>,
    pub(crate) insecure: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `tls-server-name` or the URL host as a rustls `ServerName` (IP addresses included).
pub fn server_name(name: &str) -> Result<ServerName<'static>, KubeconfigError> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned())
        .map_err(|e| KubeconfigError::Tls(format!("invalid server name {name:?}: {e}")))
}

/// Parses every certificate in a PEM bundle into a root store.
pub(crate) fn load_roots(source: &PemSource) -> Result<RootCertStore, KubeconfigError> {
    let fail =
        |why: String| KubeconfigError::Tls(format!("unable to load root certificates: {why}"));
    let pem = source.read().map_err(fail)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| fail(e.to_string()))?;
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("unable to parse bytes as PEM block".to_owned()));
    }
    Ok(roots)
}

/// The system bundle (`$SSL_CERT_FILE` or the usual distribution paths), used without a CA.
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let candidates = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/ca-bundle.pem",
                "/etc/ssl/cert.pem",
            ]
            .map(PathBuf::from),
        );
    for path in candidates {
        if let Ok(pem) = std::fs::read(&path) {
            roots.add_parsable_certificates(CertificateDer::pem_slice_iter(&pem).flatten());
            if !roots.is_empty() {
                break;
            }
        }
    }
    roots
}

/// Builds the client configuration.
pub(crate) fn client_config(
    inputs: TlsInputs,
) -> Result<Arc<rustls::ClientConfig>, KubeconfigError> {
    let provider = provider();
    if inputs.insecure && inputs.ca.is_some() {
        return Err(KubeconfigError::Tls(
            "specifying a root certificates file with the insecure flag is not allowed".to_owned(),
        ));
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| KubeconfigError::Tls(e.to_string()))?;
    let builder = if inputs.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(insecure_verifier())
    } else {
        let roots = match &inputs.ca {
            Some(source) => load_roots(source)?,
            None => system_roots(),
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match (inputs.cert, inputs.key) {
        (Some(cert), Some(key)) => {
            let resolver = ReloadingCert::new(cert, key, provider)?;
            builder.with_client_cert_resolver(Arc::new(resolver))
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_certified(
    cert: &PemSource,
    key: &PemSource,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let cert_pem = cert.read()?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls: failed to parse client certificate: {e}"))?;
    if chain.is_empty() {
        return Err("tls: failed to find any PEM data in certificate input".to_owned());
    }
    let key_pem = key.read()?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("tls: failed to find any PEM data in key input: {e}"))?;
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| format!("tls: private key does not match public key: {e}"))
}

/// A client certificate re-read from its files when their modification times change (checked
/// at most once per second, at handshake). Inline data never changes.
#[derive(Debug)]
struct ReloadingCert {
    cert: PemSource,
    key: PemSource,
    provider: Arc<CryptoProvider>,
    state: Mutex<CertState>,
}

#[derive(Debug)]
struct CertState {
    current: Arc<CertifiedKey>,
    checked: Instant,
    stamps: (Option<SystemTime>, Option<SystemTime>),
}

// === impl ReloadingCert ===

impl ReloadingCert {
    fn new(
        cert: PemSource,
        key: PemSource,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, KubeconfigError> {
        let current = load_certified(&cert, &key, &provider).map_err(KubeconfigError::Tls)?;
        let stamps = (cert.modified(), key.modified());
        let state = Mutex::new(CertState {
            current,
            checked: Instant::now(),
            stamps,
        });
        Ok(Self {
            cert,
            key,
            provider,
            state,
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.checked.elapsed() >= Duration::from_secs(1) {
            state.checked = Instant::now();
            let stamps = (self.cert.modified(), self.key.modified());
            if stamps != state.stamps {
                match load_certified(&self.cert, &self.key, &self.provider) {
                    Ok(fresh) => {
                        state.current = fresh;
                        state.stamps = stamps;
                    }
                    Err(e) => tracing::warn!("Unable to reload client certificate: {e}"),
                }
            }
        }
        state.current.clone()
    }
}

impl ResolvesClientCert for ReloadingCert {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A verifier that accepts any certificate (`insecure-skip-tls-verify`) but still checks the
/// handshake signatures.
pub fn insecure_verifier() -> Arc<dyn ServerCertVerifier> {
    Arc::new(Insecure(provider()))
}

#[derive(Debug)]
struct Insecure(Arc<CryptoProvider>);

// === impl Insecure ===

impl ServerCertVerifier for Insecure {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
