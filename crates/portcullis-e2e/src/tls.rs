//! A throw-away self-signed certificate, made with `openssl` at test time
//! under `target/e2e/tls/` (never committed), and a TLS client that trusts
//! exactly that certificate ([`pinned_client`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::config::TlsFiles;
use crate::paths;

/// Names the certificate covers (the sample policies' hosts and loopback).
pub const CERT_NAMES: &str = "subjectAltName=DNS:localhost,DNS:api.contoso.net,DNS:func-orders.azurewebsites.net,IP:127.0.0.1";

/// Makes (once per directory) an ECDSA P-256 key and a self-signed
/// certificate valid for 30 days, and returns their paths.
pub fn self_signed(dir: &Path) -> Result<TlsFiles, String> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    if files.cert.is_file() && files.key.is_file() {
        return Ok(files);
    }
    // Write under temporary names, then rename, so a concurrent test process
    // never sees half a pair.
    let tag = std::process::id();
    let (tc, tk): (PathBuf, PathBuf) = (
        dir.join(format!("cert.{tag}.tmp")),
        dir.join(format!("key.{tag}.tmp")),
    );
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "30", "-subj", "/CN=portcullis-e2e"])
        .args(["-addext", CERT_NAMES])
        .arg("-keyout")
        .arg(&tk)
        .arg("-out")
        .arg(&tc)
        .output()
        .map_err(|e| format!("cannot run openssl: {e} (apt-get install openssl)"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::rename(&tk, &files.key).map_err(|e| e.to_string())?;
    std::fs::rename(&tc, &files.cert).map_err(|e| e.to_string())?;
    Ok(files)
}

/// The shared test certificate under `target/e2e/tls/`.
pub fn test_cert() -> Result<TlsFiles, String> {
    self_signed(&paths::target().join("e2e").join("tls"))
}

/// Accepts exactly one certificate: the test certificate Envoy serves.
#[derive(Debug)]
struct Pinned {
    cert: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the pinned test certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client configuration (HTTP/1.1 by ALPN) that trusts exactly the
/// certificate in `cert_pem` (the test certificate Envoy serves), for
/// [`crate::http1::Conn`].
pub fn pinned_client(cert_pem: &Path) -> Result<crate::http1::TlsClient, String> {
    let cert = CertificateDer::from_pem_file(cert_pem)
        .map_err(|e| format!("{}: {e}", cert_pem.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            cert: cert.as_ref().to_vec(),
            provider,
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
