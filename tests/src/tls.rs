//! A private PKI for the fake API server: a CA and a server certificate for `127.0.0.1` and
//! `localhost` (IP and DNS SANs), generated with `rcgen` at test start.
//!
//! It must not touch the file system; `kubeconfig` writes the PEM files where a client needs them.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and a server certificate it signed.
pub struct Pki {
    /// The CA certificate, PEM; what a kubeconfig's `certificate-authority` points to.
    pub ca_pem: String,
    /// The server certificate, DER.
    server_der: CertificateDer<'static>,
    /// The server key, PKCS#8 DER.
    server_key: Vec<u8>,
}

// === impl Pki ===

impl Pki {
    /// Generates a fresh CA named `name` and a server certificate for `127.0.0.1`/`localhost`.
    pub fn generate(name: &str) -> Result<Self> {
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        ca_params.distinguished_name = dn;
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("self-signing the CA")?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().context("generating the server key")?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = params
            .signed_by(&server_key, &issuer)
            .context("signing the server certificate")?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_der: server_cert.der().clone(),
            server_key: server_key.serialize_der(),
        })
    }

    /// A CA that did not sign the server certificate (for verification-failure tests).
    pub fn wrong_ca_pem() -> Result<String> {
        Ok(Self::generate("kproxy wrong CA")?.ca_pem)
    }

    /// A rustls server configuration offering only HTTP/1.1 (like an apiserver without h2 for
    /// these tests: clients fall back to HTTP/1.1, which keeps upgrades simple).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.server_der.clone()], key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
