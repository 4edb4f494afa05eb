//! Certificate files for a network output's `https://` connections: a PEM file of CAs to
//! trust instead of the compiled-in public roots (a private collector's CA), and a client
//! certificate chain with its key (mTLS). At Init only their presence is checked (a regular
//! file is there: one stat, nothing read), so a missing file is a config error naming the
//! variable and the path; they are read and parsed on the
//! output's own thread at its first request (see `delivery::sender`), never during Init.

use std::collections::HashMap;
use std::path::Path;

use super::{ConfigError, invalid, value_of};

/// The variables that name one output's files.
pub struct TlsVars {
    pub ca: &'static str,
    pub client_certificate: &'static str,
    pub client_key: &'static str,
}

/// One output's certificate files; all `None` means the compiled-in public roots, no client
/// certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<String>,
    /// The client certificate chain and its private key, both PEM.
    pub client: Option<(String, String)>,
}

impl TlsFiles {
    /// Whether no file is named; the slim build refuses any (it has no TLS).
    #[cfg(not(feature = "tls"))]
    pub fn is_empty(&self) -> bool {
        self.ca.is_none() && self.client.is_none()
    }
}

/// The files `vars` name, each falling back to `general`'s (a signal's own variables over the
/// general OTLP ones).
pub fn parse(
    env: &HashMap<String, String>,
    vars: &TlsVars,
    general: Option<&TlsFiles>,
) -> Result<TlsFiles, ConfigError> {
    let file = |var: &'static str| -> Result<Option<String>, ConfigError> {
        let Some(path) = value_of(env, var) else {
            return Ok(None);
        };
        if !cfg!(feature = "tls") {
            return Err(invalid(
                var,
                path,
                "this build has no https:// support (it was built without the tls feature), \
                 so it takes no certificate files",
            ));
        }
        match Path::new(path).metadata() {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(invalid(
                    var,
                    path,
                    "not a regular file: give the path of a PEM file, not a directory or a \
                     device",
                ));
            }
            Err(_) => {
                return Err(invalid(
                    var,
                    path,
                    "no such file: give the path of a PEM file in the function's file system, \
                     such as /var/task/certs/ca.pem (the function's package) or \
                     /opt/certs/ca.pem (a layer)",
                ));
            }
        }
        Ok(Some(path.to_string()))
    };
    let ca = file(vars.ca)?.or_else(|| general.and_then(|g| g.ca.clone()));
    let own_cert = file(vars.client_certificate)?;
    let own_key = file(vars.client_key)?;
    let client = match (own_cert, own_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => general.and_then(|g| g.client.clone()),
        (Some(cert), None) => {
            return Err(invalid(
                vars.client_certificate,
                &cert,
                format!(
                    "a client certificate needs its private key: set {} too",
                    vars.client_key
                ),
            ));
        }
        (None, Some(key)) => {
            return Err(invalid(
                vars.client_key,
                &key,
                format!(
                    "a client key needs its certificate: set {} too",
                    vars.client_certificate
                ),
            ));
        }
    };
    Ok(TlsFiles { ca, client })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: TlsVars = TlsVars {
        ca: "CA",
        client_certificate: "CERT",
        client_key: "KEY",
    };

    fn files(pairs: &[(&str, &str)], general: Option<&TlsFiles>) -> Result<TlsFiles, String> {
        parse(&crate::testing::env(pairs), &VARS, general).map_err(|e| e.to_string())
    }

    #[test]
    fn files_must_exist_and_come_in_pairs() {
        let here = env!("CARGO_MANIFEST_DIR").to_string() + "/Cargo.toml";
        if !cfg!(feature = "tls") {
            assert!(
                files(&[("CA", &here)], None)
                    .unwrap_err()
                    .contains("no https://")
            );
            return;
        }
        assert_eq!(
            files(&[("CA", &here)], None).unwrap().ca.as_deref(),
            Some(here.as_str())
        );
        let device = files(&[("CA", "/dev/zero")], None).unwrap_err();
        assert!(device.contains("not a regular file"), "{device}");
        let missing = files(&[("CA", "/nowhere/ca.pem")], None).unwrap_err();
        assert!(
            missing.starts_with("CA=\"/nowhere/ca.pem\"") && missing.contains("no such file"),
            "{missing}"
        );
        let alone = files(&[("CERT", &here)], None).unwrap_err();
        assert!(alone.contains("set KEY too"), "{alone}");
        let alone = files(&[("KEY", &here)], None).unwrap_err();
        assert!(alone.contains("set CERT too"), "{alone}");
        let general = TlsFiles {
            ca: Some("general-ca".into()),
            client: Some(("c".into(), "k".into())),
        };
        assert_eq!(files(&[], Some(&general)).unwrap(), general);
        let own = files(&[("CERT", &here), ("KEY", &here)], Some(&general)).unwrap();
        assert_eq!(own.ca.as_deref(), Some("general-ca"));
        assert_eq!(own.client, Some((here.clone(), here)));
    }
}
