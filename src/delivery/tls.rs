//! An output's own TLS setup, from the certificate files its config names: the CAs it trusts
//! instead of the compiled-in public roots, and the client certificate it presents (mTLS).
//! Built on the output's sender thread at its first request, so the files are read and parsed
//! there, never during Init; a file that cannot be used is the reason every request of that
//! output is refused (counted and warned once), and nothing else is harmed.

use std::sync::Arc;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::config::tls::TlsFiles;

/// The TLS config for `files`.
pub fn config(files: &TlsFiles) -> Result<TlsConfig, String> {
    let mut builder = TlsConfig::builder();
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
