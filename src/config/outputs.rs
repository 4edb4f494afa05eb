//! Configuration of the delivery pipeline and the network outputs (issue #4): how much may be
//! buffered, when it is flushed, and where it goes.
//!
//! Header values are credentials more often than not, so they live in [`Secret`], whose `Debug`
//! prints nothing, and no error message ever repeats them (only the header's name or position).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::aws::{self, Api, LogStream, SigV4};
use super::otlp::RESOURCE_ATTRIBUTES;
use super::tls::{self, TlsFiles, TlsVars};
use super::{ConfigError, invalid, parse_range, value_of};

pub const BUFFER_BYTES: &str = "TELEMETRY_RELAY_BUFFER_BYTES";
pub const FLUSH: &str = "TELEMETRY_RELAY_FLUSH";
pub const FLUSH_BUDGET_MS: &str = "TELEMETRY_RELAY_FLUSH_BUDGET_MS";
pub const HTTP_URL: &str = "TELEMETRY_RELAY_HTTP_URL";
pub const HTTP_HEADERS: &str = "TELEMETRY_RELAY_HTTP_HEADERS";
pub const HTTP_TIMEOUT_MS: &str = "TELEMETRY_RELAY_HTTP_TIMEOUT_MS";
pub const HTTP_COMPRESSION: &str = "TELEMETRY_RELAY_HTTP_COMPRESSION";
pub const HTTP_TLS: TlsVars = TlsVars {
    ca: "TELEMETRY_RELAY_HTTP_CERTIFICATE",
    client_certificate: "TELEMETRY_RELAY_HTTP_CLIENT_CERTIFICATE",
    client_key: "TELEMETRY_RELAY_HTTP_CLIENT_KEY",
};

pub const EMF: &str = "TELEMETRY_RELAY_EMF";
pub const EMF_NAMESPACE: &str = "TELEMETRY_RELAY_EMF_NAMESPACE";
pub const EMF_DIMENSIONS: &str = "TELEMETRY_RELAY_EMF_DIMENSIONS";

/// A dimension the EMF output can attach to its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmfDimension {
    FunctionName,
    FunctionVersion,
}

impl EmfDimension {
    pub fn as_str(self) -> &'static str {
        match self {
            EmfDimension::FunctionName => "FunctionName",
            EmfDimension::FunctionVersion => "FunctionVersion",
        }
    }
}

/// CloudWatch metrics as EMF documents on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmfOutput {
    pub namespace: String,
    pub dimension_sets: Vec<Vec<EmfDimension>>,
}

/// When buffered events are sent to the network outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// As they come, off the lifecycle path: `/next` never waits.
    Background,
    /// Before the `/next` that ends an invocation, within the flush budget.
    End,
    /// Every so often, for busy functions.
    Periodic(Duration),
}

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where and how one network output sends: the NDJSON output, and each OTLP signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub url: String,
    pub headers: Vec<(String, Secret)>,
    pub timeout: Duration,
    /// Bodies are sent gzipped (`Content-Encoding: gzip`).
    pub gzip: bool,
    pub tls: TlsFiles,
    /// AWS destinations: requests are signed with SigV4.
    pub sign: Option<SigV4>,
    pub api: Api,
    /// A CloudWatch log stream to create before the first request.
    pub log_stream: Option<LogStream>,
}

/// The pipeline between the relay and the network outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    pub buffer_bytes: usize,
    pub flush: FlushPolicy,
    pub flush_budget: Duration,
    /// The plain HTTP NDJSON output.
    pub http: Option<Destination>,
    /// Amazon Data Firehose.
    pub firehose: Option<Destination>,
    pub emf: Option<EmfOutput>,
    pub otlp: Option<super::otlp::OtlpOutput>,
}

impl Outputs {
    pub fn parse(env: &HashMap<String, String>) -> Result<Outputs, ConfigError> {
        let get = |name: &str| value_of(env, name);
        let buffer_bytes = parse_range(
            get(BUFFER_BYTES),
            BUFFER_BYTES,
            4 << 20,
            256 << 10,
            256 << 20,
        )?;
        let flush_budget_ms =
            parse_range(get(FLUSH_BUDGET_MS), FLUSH_BUDGET_MS, 100u64, 1, 60_000)?;
        // Checked even without a URL: a path that is wrong is wrong either way.
        let http_tls = tls::parse(env, &HTTP_TLS, None)?;
        let http = match get(HTTP_URL) {
            None => None,
            Some(url) => Some(Destination {
                url: parse_url(HTTP_URL, url)?,
                headers: parse_headers(HTTP_HEADERS, get(HTTP_HEADERS))?,
                timeout: parse_timeout(HTTP_TIMEOUT_MS, get(HTTP_TIMEOUT_MS), 5000)?,
                gzip: parse_compression(HTTP_COMPRESSION, get(HTTP_COMPRESSION))?.unwrap_or(false),
                tls: http_tls,
                sign: None,
                api: Api::Post,
                log_stream: None,
            }),
        };
        let firehose = aws::firehose(env)?.map(|f| Destination {
            url: f.url,
            headers: Vec::new(),
            timeout: f.timeout,
            gzip: false,
            tls: TlsFiles::default(),
            sign: Some(f.sign),
            api: f.api,
            log_stream: None,
        });
        let emf = match get(EMF).map(str::to_ascii_lowercase).as_deref() {
            None | Some("off") => None,
            Some("on") => Some(EmfOutput {
                namespace: parse_namespace(get(EMF_NAMESPACE))?,
                dimension_sets: parse_dimension_sets(get(EMF_DIMENSIONS))?,
            }),
            Some(_) => {
                return Err(invalid(
                    EMF,
                    get(EMF).unwrap_or_default(),
                    "expected on or off (default)",
                ));
            }
        };
        Ok(Outputs {
            otlp: super::otlp::parse(env)?,
            emf,
            buffer_bytes,
            flush: parse_flush(get(FLUSH))?,
            flush_budget: Duration::from_millis(flush_budget_ms),
            http,
            firehose,
        })
    }
}

/// `gzip` or `none`; `None` when unset.
pub(super) fn parse_compression(
    var: &'static str,
    value: Option<&str>,
) -> Result<Option<bool>, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("gzip") => Ok(Some(true)),
        Some("none") => Ok(Some(false)),
        Some(_) => Err(invalid(
            var,
            value.unwrap_or_default(),
            "expected gzip or none (default)",
        )),
    }
}

/// A per-call timeout in milliseconds, 10 ms to 10 minutes.
pub(super) fn parse_timeout(
    var: &'static str,
    value: Option<&str>,
    default_ms: u64,
) -> Result<Duration, ConfigError> {
    parse_range(value, var, default_ms, 10, 600_000).map(Duration::from_millis)
}

fn parse_namespace(value: Option<&str>) -> Result<String, ConfigError> {
    let Some(value) = value else {
        return Ok("TelemetryRelay".to_string());
    };
    let valid = (1..=255).contains(&value.len())
        && !value.starts_with(':')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_/#:".contains(&b));
    if valid {
        Ok(value.to_string())
    } else {
        Err(invalid(
            EMF_NAMESPACE,
            value,
            "expected 1 to 255 characters from letters, digits and . - _ / # : (default TelemetryRelay)",
        ))
    }
}

/// `FunctionName;FunctionName,FunctionVersion`: sets separated by `;`, names by `,`.
fn parse_dimension_sets(value: Option<&str>) -> Result<Vec<Vec<EmfDimension>>, ConfigError> {
    let Some(value) = value else {
        return Ok(vec![vec![EmfDimension::FunctionName]]);
    };
    let allowed = "expected dimension sets separated by ';', each a comma list of FunctionName and \
                   FunctionVersion (default FunctionName)";
    let mut sets = Vec::new();
    for set in value.split(';') {
        let mut names = Vec::new();
        for name in set.split(',').map(str::trim) {
            let dimension = match name {
                "FunctionName" => EmfDimension::FunctionName,
                "FunctionVersion" => EmfDimension::FunctionVersion,
                _ => {
                    return Err(invalid(
                        EMF_DIMENSIONS,
                        value,
                        format!("{name:?} is unknown; {allowed}"),
                    ));
                }
            };
            if !names.contains(&dimension) {
                names.push(dimension);
            }
        }
        sets.push(names);
    }
    Ok(sets)
}

impl Outputs {
    /// Every network output's destination: the one list of them, so that what holds for all
    /// (the delivery pipeline, the request budget) cannot miss one.
    pub fn destinations(&self) -> impl Iterator<Item = &Destination> {
        let signals = self.otlp.iter().flat_map(|o| o.signals().map(|s| &s.to));
        [&self.http, &self.firehose]
            .into_iter()
            .flatten()
            .chain(signals)
    }

    /// Whether anything is sent over the network (and so goes through the delivery pipeline).
    pub fn network(&self) -> bool {
        self.destinations().next().is_some()
    }
}

fn parse_flush(value: Option<&str>) -> Result<FlushPolicy, ConfigError> {
    let allowed =
        "expected background (default), end, or periodic,<ms> with <ms> from 10 to 600000";
    let Some(value) = value else {
        return Ok(FlushPolicy::Background);
    };
    let lower = value.to_ascii_lowercase();
    match lower.split_once(',') {
        None if lower == "background" => Ok(FlushPolicy::Background),
        None if lower == "end" => Ok(FlushPolicy::End),
        Some(("periodic", ms)) => match ms.trim().parse::<u64>() {
            Ok(ms) if (10..=600_000).contains(&ms) => {
                Ok(FlushPolicy::Periodic(Duration::from_millis(ms)))
            }
            _ => Err(invalid(FLUSH, value, allowed)),
        },
        _ => Err(invalid(FLUSH, value, allowed)),
    }
}

/// An `http://` or (in builds with the `tls` feature) `https://` URL, kept as given.
/// A URL's `scheme://[userinfo@]host[:port]` and what follows it as sent (path, query,
/// fragment): the one place that splits URLs (connection sharing, SigV4, AWS endpoints).
pub fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url
        .get(after_scheme..)
        .and_then(|rest| rest.find(['/', '?', '#']))
        .map_or(url.len(), |i| after_scheme + i);
    (
        url.get(..end).unwrap_or(url),
        url.get(end..).unwrap_or_default(),
    )
}

pub fn parse_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
    let tls = cfg!(feature = "tls");
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://").filter(|_| tls));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(value.to_string()),
        _ if tls => Err(invalid(
            var,
            value,
            "expected an http:// or https:// URL such as https://api.honeycomb.io",
        )),
        _ => Err(invalid(
            var,
            value,
            "expected an http:// URL such as http://collector.internal:4318 (this build has no \
             https:// support: it was built without the tls feature)",
        )),
    }
}

/// `key=value,key2=value2` with percent-encoded values, as `OTEL_EXPORTER_OTLP_HEADERS` uses.
/// Errors name the variable and the entry's position, never a value.
pub fn parse_headers(
    var: &'static str,
    value: Option<&str>,
) -> Result<Vec<(String, Secret)>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut headers = Vec::new();
    for (i, entry) in value
        .split(',')
        .enumerate()
        .filter(|(_, e)| !e.trim().is_empty())
    {
        let bad = |why: &str| ConfigError::Invalid {
            var,
            value: "<redacted>".to_string(),
            allowed: format!(
                "entry {} {why}; expected name=value pairs separated by commas",
                i + 1
            ),
        };
        let (name, raw) = entry.split_once('=').ok_or_else(|| bad("has no '='"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad("has an invalid header name"));
        }
        let decoded = percent_decode(raw.trim()).ok_or_else(|| bad("has a bad %-escape"))?;
        if decoded.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(bad("has a line break in its value"));
        }
        // HTTP forbids other control characters in a header value too: such a header would
        // fail every send. Resource attributes are not headers and may hold anything.
        let control = |b: u8| (b < 0x20 && b != b'\t') || b == 0x7f;
        if var != RESOURCE_ATTRIBUTES && decoded.bytes().any(control) {
            return Err(bad(
                "has a control character in its value (a %00-style escape?)",
            ));
        }
        headers.push((name.to_string(), Secret(decoded)));
    }
    Ok(headers)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::otlp::{OTLP_ENDPOINT, OTLP_HEADERS};

    #[test]
    fn a_url_splits_where_its_path_query_or_fragment_starts() {
        assert_eq!(split_origin("https://u@h:1/a?b"), ("https://u@h:1", "/a?b"));
        assert_eq!(split_origin("https://h?b=2"), ("https://h", "?b=2"));
        assert_eq!(split_origin("http://h#f"), ("http://h", "#f"));
        assert_eq!(split_origin("http://h"), ("http://h", ""));
    }

    fn outputs(pairs: &[(&str, &str)]) -> Result<Outputs, ConfigError> {
        Outputs::parse(&crate::testing::env(pairs))
    }

    #[test]
    fn defaults() {
        let o = outputs(&[]).unwrap();
        assert_eq!(o.buffer_bytes, 4 << 20);
        assert_eq!(o.flush, FlushPolicy::Background);
        assert_eq!(o.flush_budget, Duration::from_millis(100));
        assert_eq!(o.http, None);
        assert_eq!(o.emf, None);
        assert_eq!(o.otlp, None);
    }

    #[test]
    fn flush_policies() {
        assert_eq!(outputs(&[(FLUSH, "END")]).unwrap().flush, FlushPolicy::End);
        assert_eq!(
            outputs(&[(FLUSH, "periodic,250")]).unwrap().flush,
            FlushPolicy::Periodic(Duration::from_millis(250))
        );
        for bad in ["sometimes", "periodic", "periodic,5", "periodic,x"] {
            let e = outputs(&[(FLUSH, bad)]).unwrap_err().to_string();
            assert!(
                e.contains("expected background (default), end, or periodic,<ms>"),
                "{e}"
            );
        }
    }

    #[test]
    fn header_values_with_control_characters_are_refused_at_init() {
        for value in ["x-key=a%00b", "x-key=a%7Fb", "x-key=a%1Bb"] {
            let e = outputs(&[(OTLP_ENDPOINT, "http://c:4318"), (OTLP_HEADERS, value)])
                .unwrap_err()
                .to_string();
            assert!(e.contains("control character"), "{e}");
            assert!(
                !e.contains("a%00b") && !e.contains("a\\0b"),
                "never the value: {e}"
            );
        }
        let tab = outputs(&[(HTTP_URL, "http://h/"), (HTTP_HEADERS, "x-key=a%09b")]);
        assert!(tab.is_ok(), "a tab is allowed in a header value");
        let attrs = outputs(&[
            (OTLP_ENDPOINT, "http://c:4318"),
            (RESOURCE_ATTRIBUTES, "note=a%00b"),
        ]);
        assert!(attrs.is_ok(), "resource attributes are not headers");
    }

    #[test]
    fn http_output_with_headers() {
        let o = outputs(&[
            (HTTP_URL, "http://127.0.0.1:9999/ingest"),
            (
                HTTP_HEADERS,
                "Authorization=Bearer%20s3cr3t, x-team = payments",
            ),
        ])
        .unwrap();
        let http = o.http.unwrap();
        assert_eq!(http.url, "http://127.0.0.1:9999/ingest");
        assert_eq!(http.headers[0].0, "Authorization");
        assert_eq!(http.headers[0].1, Secret("Bearer s3cr3t".to_string()));
        assert_eq!(
            http.headers[1],
            ("x-team".to_string(), Secret("payments".to_string()))
        );
        assert_eq!(http.timeout, Duration::from_secs(5));
    }

    #[test]
    fn secrets_are_never_printed() {
        let o = outputs(&[(HTTP_URL, "http://h:1/"), (HTTP_HEADERS, "api-key=s3cr3t")]).unwrap();
        assert!(!format!("{o:?}").contains("s3cr3t"));
        for bad in [
            "api-key",
            "api key=s3cr3t",
            "k=s3cr3t%zz",
            "k=s3cr3t%0Aevil",
        ] {
            let e = outputs(&[(HTTP_URL, "http://h:1/"), (HTTP_HEADERS, bad)])
                .unwrap_err()
                .to_string();
            assert!(
                !e.contains("s3cr3t")
                    && e.starts_with("TELEMETRY_RELAY_HTTP_HEADERS=\"<redacted>\""),
                "{e}"
            );
            assert!(e.contains("entry 1"), "{e}");
        }
    }

    #[test]
    fn emf_settings() {
        let emf = outputs(&[(EMF, "on")]).unwrap().emf.unwrap();
        assert_eq!(emf.namespace, "TelemetryRelay");
        assert_eq!(emf.dimension_sets, vec![vec![EmfDimension::FunctionName]]);
        let emf = outputs(&[
            (EMF, "ON"),
            (EMF_NAMESPACE, "Shop/Checkout"),
            (EMF_DIMENSIONS, "FunctionName;FunctionName,FunctionVersion"),
        ])
        .unwrap()
        .emf
        .unwrap();
        assert_eq!(emf.namespace, "Shop/Checkout");
        assert_eq!(emf.dimension_sets.len(), 2);
        let cases = [
            (EMF, "yes", "expected on or off (default)"),
            (EMF_NAMESPACE, "has space", "expected 1 to 255 characters"),
            (
                EMF_DIMENSIONS,
                "FunctionName;Region",
                "\"Region\" is unknown",
            ),
        ];
        for (var, value, allowed) in cases {
            let e = outputs(&[(EMF, "on"), (var, value)])
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("{var}={value:?} is not valid")) && e.contains(allowed),
                "{e}"
            );
        }
    }

    #[test]
    fn urls_must_be_http_or_https() {
        for bad in ["ftp://x", "http://", "https://", "collector:4318"] {
            let e = outputs(&[(HTTP_URL, bad)]).unwrap_err().to_string();
            assert!(e.contains("expected an http://"), "{e}");
        }
        let https = outputs(&[(HTTP_URL, "https://collector:443/x")]);
        assert_eq!(https.is_ok(), cfg!(feature = "tls"));
    }
}
