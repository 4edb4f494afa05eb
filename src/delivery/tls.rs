//! An output's own TLS setup, from the certificate files its config names: the CAs it trusts
//! instead of the compiled-in public roots, and the client certificate it presents (mTLS).
//! Built on the output's sender thread at its first request, so the files are read and parsed
//! there, never during Init; a file that cannot be used is the reason every request of that
//! output is refused (counted and warned once), and nothing else is harmed.
//!
//! Every output's TLS config names our own crypto provider: rustls's ring provider with the
//! AES-GCM cipher suites only. TLS 1.3 requires every server to offer `TLS_AES_128_GCM_SHA256`,
//! and TLS 1.2 servers all offer ECDHE with AES-GCM; Lambda's CPUs have AES instructions, so
//! ChaCha20-Poly1305 would be the slower choice anyway. Not naming rustls's default provider
//! keeps the 51 KB of ChaCha20-Poly1305 code out of the binary. Key exchange groups and
//! signature algorithms are rustls's defaults.

use std::sync::{Arc, OnceLock};

use rustls::crypto::ring::{cipher_suite, kx_group, sign};
use rustls::crypto::{CryptoProvider, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms};
use rustls::pki_types::PrivateKeyDer;
use rustls::{SignatureScheme, SupportedCipherSuite};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
use webpki::ring as algs;

use crate::config::tls::TlsFiles;

/// The TLS config for `files` (none: the compiled-in public roots, no client certificate).
pub fn config(files: &TlsFiles) -> Result<TlsConfig, String> {
    let mut builder = TlsConfig::builder().unversioned_rustls_crypto_provider(provider());
    if let Some(path) = &files.ca {
        let roots = certificates(path)?;
        builder = builder.root_certs(RootCerts::Specific(Arc::new(roots)));
    }
    if let Some((certificate, key)) = &files.client {
        let chain = certificates(certificate)?;
        let key = private_key(key)?;
        builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(builder.build())
}

/// The one crypto provider, made at the first https request.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            Arc::new(CryptoProvider {
                cipher_suites: CIPHER_SUITES.to_vec(),
                kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
                signature_verification_algorithms: SIGNATURE_ALGORITHMS,
                secure_random: &Ring,
                key_provider: &Ring,
            })
        })
        .clone()
}

/// rustls's ring suites in its order, without ChaCha20-Poly1305.
const CIPHER_SUITES: [SupportedCipherSuite; 6] = [
    cipher_suite::TLS13_AES_256_GCM_SHA384,
    cipher_suite::TLS13_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

/// What rustls's ring provider verifies signatures with (a test compares the two).
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        algs::ECDSA_P256_SHA256,
        algs::ECDSA_P256_SHA384,
        algs::ECDSA_P384_SHA256,
        algs::ECDSA_P384_SHA384,
        algs::ED25519,
        algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        algs::RSA_PKCS1_2048_8192_SHA256,
        algs::RSA_PKCS1_2048_8192_SHA384,
        algs::RSA_PKCS1_2048_8192_SHA512,
        algs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        algs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        algs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[algs::ECDSA_P384_SHA384, algs::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[algs::ECDSA_P256_SHA256, algs::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[algs::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[algs::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[algs::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[algs::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// Randomness and private keys from ring, as rustls's own provider has them.
#[derive(Debug)]
struct Ring;

impl SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| rustls::crypto::GetRandomFailed)
    }
}

impl KeyProvider for Ring {
    fn load_private_key(
        &self,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        sign::any_supported_type(&key)
    }
}

/// Most of a certificate file that is read: a full public CA bundle is about 220 KB.
const MAX_PEM_BYTES: u64 = 4 << 20;

/// The file, if it is no larger than [`MAX_PEM_BYTES`]: a path that turned out to be a huge
/// file is an error, not memory.
fn read(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "{path} is over {MAX_PEM_BYTES} bytes: not a PEM file of certificates"
        ));
    }
    Ok(bytes)
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &str) -> Result<Vec<Certificate<'static>>, String> {
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&read(path)?) {
        match item {
            Ok(PemItem::Certificate(c)) => certificates.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("{path} is not valid PEM: {e}")),
        }
    }
    if certificates.is_empty() {
        return Err(format!("{path} holds no PEM certificate"));
    }
    Ok(certificates)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn private_key(path: &str) -> Result<PrivateKey<'static>, String> {
    for item in ureq::tls::parse_pem(&read(path)?) {
        match item {
            Ok(PemItem::PrivateKey(key)) => return Ok(key),
            Ok(_) => {}
            Err(e) => return Err(format!("{path} is not valid PEM: {e}")),
        }
    }
    Err(format!("{path} holds no PEM private key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_is_rustls_ring_provider_without_chacha20() {
        let default = rustls::crypto::ring::default_provider();
        let ours = provider();
        assert_eq!(
            format!("{:?}", ours.signature_verification_algorithms),
            format!("{:?}", default.signature_verification_algorithms)
        );
        let names = |p: &CryptoProvider| -> Vec<String> {
            p.cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect()
        };
        let expected: Vec<String> = names(&default)
            .into_iter()
            .filter(|n| !n.contains("CHACHA20"))
            .collect();
        assert_eq!(names(&ours), expected);
        assert_eq!(expected.len(), 6);
        let groups = |p: &CryptoProvider| -> Vec<String> {
            p.kx_groups
                .iter()
                .map(|g| format!("{:?}", g.name()))
                .collect()
        };
        assert_eq!(groups(&ours), groups(&default));
        assert!(ours.fips() == default.fips());
    }

    fn file(name: &str, text: &str) -> String {
        let path =
            std::env::temp_dir().join(format!("telemetry-relay-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn unusable_files_say_why() {
        let missing = TlsFiles {
            ca: Some("/nowhere/ca.pem".into()),
            client: None,
        };
        assert!(
            config(&missing)
                .unwrap_err()
                .starts_with("cannot read /nowhere/ca.pem")
        );
        let empty = TlsFiles {
            ca: Some(file("empty.pem", "no pem here\n")),
            client: None,
        };
        assert!(
            config(&empty)
                .unwrap_err()
                .ends_with("holds no PEM certificate")
        );
        let broken = TlsFiles {
            ca: Some(file(
                "broken.pem",
                "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
            )),
            client: None,
        };
        assert!(config(&broken).unwrap_err().contains("is not valid PEM"));
        assert!(config(&TlsFiles::default()).is_ok());
        let endless = TlsFiles {
            ca: Some("/dev/zero".into()),
            client: None,
        };
        assert!(config(&endless).unwrap_err().contains("is over"));
    }
}
