//! The OTLP output's configuration, from the OpenTelemetry specification's standard variables
//! (SDK environment variables and the OTLP exporter's): a user who sets them as for their other
//! services gets a working exporter, or an Init error that says what is not supported.
//!
//! Per signal: the endpoint (`OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` as given, or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/<signal>`), headers, timeout and protocol, each
//! signal's own variable winning over the general one. `OTEL_SDK_DISABLED=true` turns every
//! signal off, `OTEL_<SIGNAL>_EXPORTER=none` one of them. `…_COMPRESSION=gzip` gzips bodies.
//! `…_PROTOCOL` is `http/protobuf` (the specification's default) or `http/json`; `grpc` is an
//! Init error that says only OTLP/HTTP is sent.

use std::collections::HashMap;
use std::time::Duration;

use super::aws::{self, Api};
use super::outputs::{
    Destination, Secret, parse_compression, parse_headers, parse_timeout, parse_url,
};
use super::tls::{self, TlsVars};
use super::{ConfigError, invalid, parse_range, value_of};

pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
pub const OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
pub const OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const OTLP_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
pub const OTLP_TLS: TlsVars = TlsVars {
    ca: "OTEL_EXPORTER_OTLP_CERTIFICATE",
    client_certificate: "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    client_key: "OTEL_EXPORTER_OTLP_CLIENT_KEY",
};
pub const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
pub const METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
pub const TEMPORALITY: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
pub const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// The per-signal variables of one signal.
struct SignalVars {
    path: &'static str,
    endpoint: &'static str,
    headers: &'static str,
    timeout: &'static str,
    protocol: &'static str,
    compression: &'static str,
    exporter: &'static str,
    tls: TlsVars,
    /// The AWS service its requests are signed for (see `aws::otlp`).
    sigv4: &'static str,
}

const LOGS: SignalVars = SignalVars {
    path: "logs",
    endpoint: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    protocol: "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    compression: "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
    exporter: "OTEL_LOGS_EXPORTER",
    sigv4: "TELEMETRY_RELAY_OTLP_LOGS_SIGV4_SERVICE",
    tls: TlsVars {
        ca: "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
        client_certificate: "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE",
        client_key: "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
    },
};
const METRICS: SignalVars = SignalVars {
    path: "metrics",
    endpoint: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    protocol: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    compression: "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    exporter: "OTEL_METRICS_EXPORTER",
    sigv4: "TELEMETRY_RELAY_OTLP_METRICS_SIGV4_SERVICE",
    tls: TlsVars {
        ca: "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
        client_certificate: "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
        client_key: "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
    },
};
const TRACES: SignalVars = SignalVars {
    path: "traces",
    endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    protocol: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    compression: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    exporter: "OTEL_TRACES_EXPORTER",
    sigv4: "TELEMETRY_RELAY_OTLP_TRACES_SIGV4_SERVICE",
    tls: TlsVars {
        ca: "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        client_certificate: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
        client_key: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    },
};

/// OTLP/HTTP's two encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`, the default.
    Protobuf,
    /// `http/json`.
    Json,
}

/// One signal: where and how it is sent, and its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub to: Destination,
    pub protocol: Protocol,
}

/// OpenTelemetry over OTLP/HTTP; a signal that is off is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpOutput {
    pub logs: Option<Signal>,
    pub metrics: Option<Signal>,
    pub traces: Option<Signal>,
    pub service_name: Option<String>,
    /// `OTEL_METRIC_EXPORT_INTERVAL`: how often metrics are exported (see `parse`).
    pub metric_export_interval: Duration,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded; they override ours.
    pub resource_attributes: Vec<(String, String)>,
}

impl OtlpOutput {
    /// The signals that are on.
    pub fn signals(&self) -> impl Iterator<Item = &Signal> {
        [&self.logs, &self.metrics, &self.traces]
            .into_iter()
            .flatten()
    }
}

/// The OTLP output, or `None` when no signal is on.
pub fn parse(env: &HashMap<String, String>) -> Result<Option<OtlpOutput>, ConfigError> {
    let get = |name: &str| value_of(env, name);
    if let Some(value) = get(SDK_DISABLED) {
        match value.to_ascii_lowercase().as_str() {
            "true" => return Ok(None),
            "false" => {}
            _ => {
                return Err(invalid(
                    SDK_DISABLED,
                    value,
                    "expected true (every OTLP signal off) or false (default)",
                ));
            }
        }
    }
    let base = get(OTLP_ENDPOINT)
        .map(|v| parse_url(OTLP_ENDPOINT, v))
        .transpose()?;
    let base_protocol = protocol(OTLP_PROTOCOL, get(OTLP_PROTOCOL))?.unwrap_or(Protocol::Protobuf);
    let headers = parse_headers(OTLP_HEADERS, get(OTLP_HEADERS))?;
    let timeout = parse_timeout(OTLP_TIMEOUT, get(OTLP_TIMEOUT), 10_000)?;
    let gzip = parse_compression(OTLP_COMPRESSION, get(OTLP_COMPRESSION))?.unwrap_or(false);
    temporality(get(TEMPORALITY))?;
    let general_tls = tls::parse(env, &OTLP_TLS, None)?;
    let signal = |vars: &SignalVars| -> Result<Option<Signal>, ConfigError> {
        if !exporter_on(vars.exporter, get(vars.exporter))? {
            return Ok(None);
        }
        // Every variable is checked, even for a signal that ends up with no endpoint.
        let protocol = protocol(vars.protocol, get(vars.protocol))?.unwrap_or(base_protocol);
        let headers = match get(vars.headers) {
            Some(own) => parse_headers(vars.headers, Some(own))?,
            None => headers.clone(),
        };
        let timeout = match get(vars.timeout) {
            Some(own) => parse_timeout(vars.timeout, Some(own), 10_000)?,
            None => timeout,
        };
        let gzip = parse_compression(vars.compression, get(vars.compression))?.unwrap_or(gzip);
        let tls = tls::parse(env, &vars.tls, Some(&general_tls))?;
        // The spec: a signal's own endpoint is used as it is; the base gets /v1/<signal>.
        let (url, from) = match get(vars.endpoint) {
            Some(url) => (parse_url(vars.endpoint, url)?, vars.endpoint),
            None => match &base {
                Some(b) => (
                    format!("{}/v1/{}", b.trim_end_matches('/'), vars.path),
                    OTLP_ENDPOINT,
                ),
                None => return Ok(None),
            },
        };
        let mut to = Destination {
            url,
            headers,
            timeout,
            gzip,
            tls,
            sign: None,
            api: Api::Post,
            log_stream: None,
        };
        if let Some(signed) = aws::otlp(env, vars.sigv4, from, vars.path, &to.url)? {
            to.url = signed.url;
            to.sign = Some(signed.sign);
            to.log_stream = signed.log_stream;
        }
        Ok(Some(Signal { to, protocol }))
    };
    let otlp = OtlpOutput {
        logs: signal(&LOGS)?,
        metrics: signal(&METRICS)?,
        traces: signal(&TRACES)?,
        service_name: get(SERVICE_NAME).map(str::to_string),
        metric_export_interval: Duration::from_millis(parse_range(
            get(METRIC_EXPORT_INTERVAL),
            METRIC_EXPORT_INTERVAL,
            60_000u64,
            0,
            86_400_000,
        )?),
        resource_attributes: parse_headers(RESOURCE_ATTRIBUTES, get(RESOURCE_ATTRIBUTES))?
            .into_iter()
            .map(|(k, Secret(v))| (k, v))
            .collect(),
    };
    let any = otlp.signals().next().is_some();
    Ok(any.then_some(otlp))
}

/// `OTEL_<SIGNAL>_EXPORTER`: `otlp` (default) or `none`.
fn exporter_on(var: &'static str, value: Option<&str>) -> Result<bool, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("otlp") => Ok(true),
        Some("none") => Ok(false),
        Some(_) => Err(invalid(
            var,
            value.unwrap_or_default(),
            "expected otlp (default) or none: this extension exports over OTLP only",
        )),
    }
}

/// Metrics are sent with delta temporality: an execution environment, and its counters, can
/// end at any moment, so each export says what happened since the last one. `delta` and
/// `lowmemory` (delta for the sums and histograms we send) are that; `cumulative` is refused.
fn temporality(value: Option<&str>) -> Result<(), ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("delta" | "lowmemory") => Ok(()),
        Some(_) => Err(invalid(
            TEMPORALITY,
            value.unwrap_or_default(),
            "expected delta (default) or lowmemory: metrics are sent as deltas, since an \
             execution environment and its counts can end at any moment (most backends \
             accept delta; a collector's deltatocumulative processor converts)",
        )),
    }
}

/// `…_PROTOCOL`: `http/protobuf` or `http/json`; `None` when not set.
fn protocol(var: &'static str, value: Option<&str>) -> Result<Option<Protocol>, ConfigError> {
    match value {
        None => Ok(None),
        Some("http/protobuf") => Ok(Some(Protocol::Protobuf)),
        Some("http/json") => Ok(Some(Protocol::Json)),
        Some("grpc") => Err(invalid(
            var,
            "grpc",
            "expected http/protobuf (default) or http/json: this extension sends OTLP over \
             HTTP only, not gRPC (use the collector's HTTP port, usually 4318)",
        )),
        Some(other) => Err(invalid(
            var,
            other,
            "expected http/protobuf (default) or http/json",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp(pairs: &[(&str, &str)]) -> Result<Option<OtlpOutput>, ConfigError> {
        parse(&crate::testing::env(pairs))
    }

    #[test]
    fn otlp_from_the_standard_variables() {
        let o = otlp(&[
            (OTLP_ENDPOINT, "http://collector:4318/"),
            (TRACES.endpoint, "http://tempo:4318/custom/traces"),
            (OTLP_HEADERS, "x-honeycomb-team=s3cr3t"),
            (SERVICE_NAME, "checkout"),
            (
                RESOURCE_ATTRIBUTES,
                "deployment.environment=prod,team=pay%20ments",
            ),
        ])
        .unwrap()
        .unwrap();
        let url = |s: &Option<Signal>| s.as_ref().map(|s| s.to.url.clone());
        assert_eq!(
            url(&o.logs).as_deref(),
            Some("http://collector:4318/v1/logs")
        );
        assert_eq!(
            url(&o.metrics).as_deref(),
            Some("http://collector:4318/v1/metrics")
        );
        assert_eq!(
            url(&o.traces).as_deref(),
            Some("http://tempo:4318/custom/traces")
        );
        assert!(o.signals().all(|s| s.to.timeout == Duration::from_secs(10)));
        assert!(o.signals().all(|s| s.protocol == Protocol::Protobuf));
        assert_eq!(o.metric_export_interval, Duration::from_secs(60));
        assert_eq!(o.service_name.as_deref(), Some("checkout"));
        assert_eq!(
            o.resource_attributes[1],
            ("team".to_string(), "pay ments".to_string())
        );
        assert!(!format!("{o:?}").contains("s3cr3t"));
        let only_logs = otlp(&[(LOGS.endpoint, "http://c:4318/v1/logs")])
            .unwrap()
            .unwrap();
        assert!(only_logs.metrics.is_none() && only_logs.traces.is_none());
    }

    #[test]
    fn a_signal_s_own_headers_and_timeout_win() {
        let o = otlp(&[
            (OTLP_ENDPOINT, "http://c:4318"),
            (OTLP_HEADERS, "a=1"),
            (OTLP_TIMEOUT, "2000"),
            (METRICS.headers, "b=2"),
            (TRACES.timeout, "500"),
        ])
        .unwrap()
        .unwrap();
        let names = |s: &Option<Signal>| -> Vec<String> {
            s.iter()
                .flat_map(|s| s.to.headers.iter().map(|h| h.0.clone()))
                .collect()
        };
        assert_eq!(names(&o.logs), ["a"]);
        assert_eq!(names(&o.metrics), ["b"]);
        let timeout = |s: &Option<Signal>| s.as_ref().map(|s| s.to.timeout);
        assert_eq!(timeout(&o.logs), Some(Duration::from_millis(2000)));
        assert_eq!(timeout(&o.traces), Some(Duration::from_millis(500)));
        let json = otlp(&[
            (OTLP_ENDPOINT, "http://c:4318"),
            (OTLP_PROTOCOL, "http/json"),
            (TRACES.protocol, "http/protobuf"),
        ])
        .unwrap()
        .unwrap();
        let protocol = |s: &Option<Signal>| s.as_ref().map(|s| s.protocol);
        assert_eq!(
            (protocol(&json.logs), protocol(&json.traces)),
            (Some(Protocol::Json), Some(Protocol::Protobuf))
        );
        let gz = otlp(&[
            (OTLP_ENDPOINT, "http://c:4318"),
            (OTLP_COMPRESSION, "gzip"),
            (LOGS.compression, "none"),
        ])
        .unwrap()
        .unwrap();
        let gzip = |s: &Option<Signal>| s.as_ref().map(|s| s.to.gzip);
        assert_eq!(
            (gzip(&gz.logs), gzip(&gz.metrics), gzip(&gz.traces)),
            (Some(false), Some(true), Some(true))
        );
    }

    #[test]
    fn signals_are_turned_off_by_the_standard_switches() {
        let base = (OTLP_ENDPOINT, "http://c:4318");
        assert_eq!(otlp(&[base, (SDK_DISABLED, "TRUE")]).unwrap(), None);
        assert!(otlp(&[base, (SDK_DISABLED, "false")]).unwrap().is_some());
        assert!(otlp(&[base, (TEMPORALITY, "Delta")]).unwrap().is_some());
        assert!(otlp(&[base, (TEMPORALITY, "lowmemory")]).unwrap().is_some());
        let o = otlp(&[base, (LOGS.exporter, "none"), (TRACES.exporter, "none")])
            .unwrap()
            .unwrap();
        assert!(o.logs.is_none() && o.traces.is_none() && o.metrics.is_some());
        let all_off = [
            base,
            (LOGS.exporter, "none"),
            (METRICS.exporter, "none"),
            (TRACES.exporter, "none"),
        ];
        assert_eq!(otlp(&all_off).unwrap(), None);
    }

    #[test]
    fn what_is_not_supported_is_an_error_that_says_so() {
        let base = (OTLP_ENDPOINT, "http://c:4318");
        let cases: &[(&str, &str, &str)] = &[
            (OTLP_PROTOCOL, "grpc", "not gRPC"),
            (LOGS.protocol, "grpc", "not gRPC"),
            (
                OTLP_PROTOCOL,
                "http/xml",
                "expected http/protobuf (default) or http/json",
            ),
            (METRICS.protocol, "HTTP/JSON", "expected http/protobuf"),
            (TRACES.exporter, "zipkin", "expected otlp (default) or none"),
            (SDK_DISABLED, "yes", "expected true"),
            (METRICS.timeout, "5s", "expected a whole number"),
            (METRICS.headers, "x=a%00", "control character"),
            (OTLP_COMPRESSION, "zstd", "expected gzip or none (default)"),
            (
                METRIC_EXPORT_INTERVAL,
                "-1",
                "from 0 to 86400000 (default 60000)",
            ),
            (
                TRACES.compression,
                "deflate",
                "expected gzip or none (default)",
            ),
        ];
        for (var, value, says) in cases {
            let e = otlp(&[base, (var, value)]).unwrap_err().to_string();
            assert!(e.starts_with(var) && e.contains(says), "{var}={value}: {e}");
        }
    }
}
