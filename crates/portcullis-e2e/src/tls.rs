//! A throw-away self-signed certificate, made with `openssl` at test time
//! under `target/e2e/tls/` (never committed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

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
