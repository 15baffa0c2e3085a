//! TLS for the HTTPS listener: the manifest's certificates, one chosen per
//! connection by the name the client asks for (SNI), and HTTP/2 or
//! HTTP/1.1 agreed by ALPN. The certificates can be replaced while serving
//! (`--watch` reloads them with the manifest); connections that follow use
//! the new ones.

use crate::config::CertificateConfig;
use crate::routes::HostPattern;
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Loaded certificates, with the names each serves.
#[derive(Debug)]
struct CertificateSet {
    by_name: Vec<(HostPattern, Arc<CertifiedKey>)>,
    /// For a client that names no host, or one no certificate names.
    fallback: Arc<CertifiedKey>,
}

impl CertificateSet {
    fn load(configs: &[CertificateConfig], provider: &CryptoProvider) -> Result<CertificateSet> {
        let mut by_name = Vec::new();
        let mut fallback = None;
        for config in configs {
            let key = load_one(config, provider)?;
            if config.hosts.is_empty() || fallback.is_none() {
                fallback = Some(key.clone());
            }
            for host in &config.hosts {
                let pattern = HostPattern::parse(host).map_err(anyhow::Error::msg)?;
                by_name.push((pattern, key.clone()));
            }
        }
        // The most specific name first: exact over wildcard.
        by_name.sort_by_key(|(pattern, _)| std::cmp::Reverse(pattern.rank()));
        Ok(CertificateSet {
            by_name,
            fallback: fallback.context("an HTTPS listener needs at least one certificate")?,
        })
    }

    fn choose(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let name = name.map(str::to_ascii_lowercase);
        self.by_name
            .iter()
            .find(|(pattern, _)| pattern.matches(name.as_deref()))
            .map_or_else(|| self.fallback.clone(), |(_, key)| key.clone())
    }
}

/// One certificate chain and its key, checked to belong together.
fn load_one(config: &CertificateConfig, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_file_iter(&config.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the certificate {}", config.cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("{} holds no certificate", config.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .with_context(|| format!("cannot read the private key {}", config.key.display()))?;
    let certified = CertifiedKey::from_der(chain, key, provider).with_context(|| {
        format!(
            "the key {} does not fit the certificate {}",
            config.key.display(),
            config.cert.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// Chooses each connection's certificate by SNI, from a set that can be
/// replaced.
#[derive(Debug)]
struct SniResolver {
    current: ArcSwap<CertificateSet>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().choose(hello.server_name()))
    }
}

/// The HTTPS listener's TLS: its acceptor, and its certificates.
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<SniResolver>,
    provider: Arc<CryptoProvider>,
}

impl Tls {
    /// TLS 1.2 and 1.3 with `certificates`, offering HTTP/2 and HTTP/1.1.
    pub(crate) fn new(certificates: &[CertificateConfig]) -> Result<Tls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(SniResolver {
            current: ArcSwap::from_pointee(CertificateSet::load(certificates, &provider)?),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("cannot set up TLS")?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            provider,
        })
    }

    /// Serve `certificates` from the next connection on; an error (and the
    /// old ones kept) if any cannot be loaded.
    pub(crate) fn reload(&self, certificates: &[CertificateConfig]) -> Result<()> {
        let set = CertificateSet::load(certificates, &self.provider)?;
        self.resolver.current.store(Arc::new(set));
        Ok(())
    }

    /// The acceptor for new connections.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}
