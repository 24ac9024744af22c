//! TLS for the client port (rustls, with the `ring` provider so that one crypto library is
//! built): the server's certificate chain and key from PEM files, and the client side the
//! command-line tools use for `https://` servers.
//!
//! Why: with auth on, every request carries a token or a password; on an open network they
//! must not cross it in clear.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;

/// How long a connection may take to finish its TLS handshake before it is closed: a client
/// that opens a connection and says nothing holds a slot no longer than this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `ring`, though rustls marks it deprecated for lacking post-quantum key exchange: the
/// alternative (aws-lc-rs) builds AWS-LC's C sources, minutes on the 2-core machines this
/// builds on, for protection of traffic whose secrets (tokens) live hours. Revisit with
/// peer TLS, whose traffic (configs) lives longer.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration from a PEM certificate chain (leaf first) and a PEM private key.
/// Errors name the file and what is wrong with it.
pub fn server_config(cert_pem: &Path, key_pem: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
        .with_context(|| format!("reading the certificate chain {}", cert_pem.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing the certificate chain {}", cert_pem.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate (PEM `CERTIFICATE` blocks)", cert_pem.display());
    let key = PrivateKeyDer::from_pem_file(key_pem)
        .with_context(|| format!("reading the private key {} (PEM, PKCS#8, PKCS#1 or SEC1)", key_pem.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| {
            format!("{} and {} are not a certificate and its key", cert_pem.display(), key_pem.display())
        })?;
    Ok(Arc::new(config))
}

/// `config` announcing `protocols` in ALPN (`h2` for gRPC, whose clients insist on it).
pub fn with_alpn(config: &rustls::ServerConfig, protocols: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let mut config = config.clone();
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A client configuration trusting the certificates in `ca_pem` (an operator's own CA or a
/// self-signed server certificate), or the Mozilla roots (`webpki-roots`) without one.
pub fn client_config(ca_pem: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).with_context(|| format!("reading {}", path.display()))? {
                roots
                    .add(cert.with_context(|| format!("parsing {}", path.display()))?)
                    .with_context(|| format!("a certificate in {} cannot be trusted", path.display()))?;
            }
            anyhow::ensure!(!roots.is_empty(), "{} holds no certificate", path.display());
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
