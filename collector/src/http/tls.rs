//! TLS for the collector: certificate and key from PEM files, or a self-signed certificate made
//! at start for development. One certificate serves both transports: rustls over TCP (ALPN
//! `h2`, `http/1.1`) and QUIC for HTTP/3 (ALPN `h3`, TLS 1.3 only, as QUIC requires).

use anyhow::Context;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

/// HTTPS and HTTP/3 settings. Without `cert`/`key` or `self_signed`, the collector speaks plain
/// HTTP (h1, h2c): put it behind a TLS-terminating proxy, or set these.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Development only: a self-signed certificate for `127.0.0.1` and `localhost`, made at
    /// start. Its SPKI SHA-256 is logged so Chromium can be told to trust it
    /// (`--ignore-certificate-errors-spki-list=<hash>`).
    pub self_signed: bool,
    /// Also serve HTTP/3 on the same port number over UDP, advertised with `Alt-Svc`.
    pub http3: bool,
}

impl TlsConfig {
    /// Whether TLS is configured at all.
    pub fn enabled(&self) -> bool {
        self.self_signed || self.cert.is_some()
    }
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Certificate")
            .field("spki_sha256", &self.spki_sha256)
            .finish_non_exhaustive()
    }
}

/// The server's certificate, ready for both transports.
pub struct Certificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Base64 SHA-256 of the leaf's SubjectPublicKeyInfo (what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes).
    pub spki_sha256: String,
}

impl Certificate {
    /// Loads the configured files, or makes a self-signed certificate.
    pub fn load(cfg: &TlsConfig) -> anyhow::Result<Certificate> {
        if cfg.self_signed {
            return Certificate::self_signed(&["127.0.0.1", "localhost"]);
        }
        let (cert, key) = match (&cfg.cert, &cfg.key) {
            (Some(c), Some(k)) => (c, k),
            _ => anyhow::bail!("tls: set both cert and key (or self_signed = true)"),
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("reading {cert:?}"))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing certificates in {cert:?}"))?;
        let leaf = chain
            .first()
            .with_context(|| format!("no certificate in {cert:?}"))?;
        let spki = spki_of(leaf)?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading the key {key:?}"))?;
        Ok(Certificate {
            spki_sha256: base64_sha256(&spki),
            chain,
            key,
        })
    }

    /// A certificate for `names` (IP addresses or DNS names), signed by its own key.
    pub fn self_signed(names: &[&str]) -> anyhow::Result<Certificate> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)?;
        Ok(Certificate {
            spki_sha256: base64_sha256(&spki_of(cert.der())?),
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::try_from(signing_key.serialize_der())
                .map_err(|e| anyhow::anyhow!("self-signed key: {e}"))?,
        })
    }

    fn server_config(&self, alpn: &[&[u8]]) -> anyhow::Result<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if alpn == [b"h3"] {
            &[&rustls::version::TLS13]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// TLS over TCP: HTTP/2 preferred, HTTP/1.1 otherwise.
    pub fn tcp(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        Ok(Arc::new(self.server_config(&[b"h2", b"http/1.1"])?).into())
    }

    /// QUIC's TLS for HTTP/3.
    pub fn quic(&self) -> anyhow::Result<quinn::crypto::rustls::QuicServerConfig> {
        Ok(quinn::crypto::rustls::QuicServerConfig::try_from(
            self.server_config(&[b"h3"])?,
        )?)
    }
}

fn base64_sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// The DER SubjectPublicKeyInfo of a certificate: the 7th field of its TBSCertificate (or the
/// 6th without the optional version), found by walking the DER headers.
fn spki_of(cert: &CertificateDer<'_>) -> anyhow::Result<Vec<u8>> {
    fn header(d: &[u8]) -> Option<(u8, usize, usize)> {
        let tag = *d.first()?;
        let first = *d.get(1)?;
        if first < 0x80 {
            return Some((tag, 2, usize::from(first)));
        }
        let n = usize::from(first & 0x7f);
        let len = d
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |a, b| a << 8 | usize::from(*b));
        Some((tag, 2 + n, len))
    }
    let inner = |d: &[u8]| header(d).and_then(|(_, h, l)| d.get(h..h + l).map(<[u8]>::to_vec));
    let next = |d: &[u8]| header(d).and_then(|(_, h, l)| d.get(h + l..).map(<[u8]>::to_vec));
    let parse = || -> Option<Vec<u8>> {
        let cert_body = inner(cert.as_ref())?;
        let mut field = inner(&cert_body)?; // TBSCertificate's contents
        // [0] version is optional; then serial, signature, issuer, validity, subject.
        if field.first() == Some(&0xa0) {
            field = next(&field)?;
        }
        for _ in 0..5 {
            field = next(&field)?;
        }
        let (_, h, l) = header(&field)?;
        field.get(..h + l).map(<[u8]>::to_vec)
    };
    parse().context("not a parsable X.509 certificate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spki_hash_of_a_loaded_certificate_is_that_of_its_key() {
        let made = Certificate::self_signed(&["127.0.0.1"]).unwrap();
        // rcgen's own SPKI of the key, against ours walked out of the certificate.
        let key = rcgen::KeyPair::try_from(made.key.secret_der()).unwrap();
        use rcgen::PublicKeyData;
        assert_eq!(
            spki_of(&made.chain[0]).unwrap(),
            key.subject_public_key_info()
        );
        assert_eq!(
            base64_sha256(&key.subject_public_key_info()),
            made.spki_sha256
        );
        made.tcp().unwrap();
        made.quic().unwrap();
    }
}
