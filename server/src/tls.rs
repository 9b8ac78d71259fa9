//! TLS on the hub's own listener (`vigie serve --tls-cert <pem> --tls-key <pem>`): sync and the
//! console carry children's records, and a hub reached across any network other than the
//! machine's own must not carry them in clear. A reverse proxy that terminates TLS is the other
//! way (`--behind-proxy`).
//!
//! The certificate is read again when its files change (a renewal every few weeks, by an ACME
//! client or by hand), at the next connection: a hub need not be restarted for it, and files
//! caught half-written keep the previous pair until both load and match.

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Where the certificate chain and its private key are, in PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// What identifies a version of the two files: a change to either reloads them.
type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(files: &TlsFiles) -> Option<Stamp> {
    let of = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    Some([of(&files.certificate)?, of(&files.key)?])
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The chain and key of `files`, checked to belong together. The error names the file and
/// what is wrong with it, never its content.
fn load(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let pem = read(&files.certificate)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "{} is not a PEM certificate chain: {e}",
                files.certificate.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate",
            files.certificate.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| {
        format!(
            "{} is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            files.key.display()
        )
    })?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        format!(
            "{} and {} do not make a certificate and its key: {e}",
            files.certificate.display(),
            files.key.display()
        )
    })?;
    Ok(certified)
}

/// The certificate the hub presents: the files' current pair, read again when they change.
#[derive(Debug)]
struct Reloading {
    files: TlsFiles,
    current: Mutex<(Option<Stamp>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let now = stamp(&self.files);
        if now.is_some() && now != current.0 {
            current.0 = now;
            match load(&self.files) {
                Ok(renewed) => {
                    current.1 = Arc::new(renewed);
                    tracing::info!("TLS certificate files changed: the new certificate is served");
                }
                // Half-written (the certificate renewed, the key not yet): the next change is
                // tried again; until then the pair that loaded is served.
                Err(e) => tracing::warn!(
                    error = %e,
                    "TLS certificate files changed but do not load: the previous certificate is \
                     still served"
                ),
            }
        }
        Some(current.1.clone())
    }
}

/// The server side of TLS for `files`, checked now: a hub given files it cannot use does not
/// start (it would otherwise fail every connection).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, String> {
    let first = stamp(files);
    let certified = load(files)?;
    let resolver = Reloading {
        files: files.clone(),
        current: Mutex::new((first, Arc::new(certified))),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
