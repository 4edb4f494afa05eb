//! The AWS destinations' configuration (issue #10): Amazon Data Firehose, and OTLP sent to
//! AWS's own endpoints (X-Ray traces, CloudWatch Logs) signed with SigV4.
//!
//! Credentials and region come from the variables Lambda sets for every process in the
//! execution environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`), read from the environment already copied at start: nothing is fetched, and
//! nothing AWS happens before the first `/next`. They are [`Secret`]s, never printed. Endpoints
//! can be overridden the AWS SDKs' way (`AWS_ENDPOINT_URL`, and `AWS_ENDPOINT_URL_<SERVICE>`,
//! which wins), so a test can point them at a local stand-in.

use std::collections::HashMap;

use super::outputs::{Secret, parse_timeout, parse_url, split_origin};
use super::{ConfigError, FUNCTION_VERSION, invalid, value_of};

pub const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
pub const REGION: &str = "AWS_REGION";
pub const DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
pub const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
pub const ENDPOINT_URL_FIREHOSE: &str = "AWS_ENDPOINT_URL_FIREHOSE";
pub const ENDPOINT_URL_XRAY: &str = "AWS_ENDPOINT_URL_XRAY";
pub const ENDPOINT_URL_CLOUDWATCH_LOGS: &str = "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS";
pub const FIREHOSE_STREAM: &str = "TELEMETRY_RELAY_FIREHOSE_STREAM";
pub const FIREHOSE_COMPRESSION: &str = "TELEMETRY_RELAY_FIREHOSE_COMPRESSION";
pub const FIREHOSE_TIMEOUT_MS: &str = "TELEMETRY_RELAY_FIREHOSE_TIMEOUT_MS";
pub const OTLP_SIGV4_SERVICE: &str = "TELEMETRY_RELAY_OTLP_SIGV4_SERVICE";
pub const CLOUDWATCH_LOG_GROUP: &str = "TELEMETRY_RELAY_CLOUDWATCH_LOG_GROUP";
pub const CLOUDWATCH_LOG_STREAM: &str = "TELEMETRY_RELAY_CLOUDWATCH_LOG_STREAM";
const LOG_STREAM_NAME: &str = "AWS_LAMBDA_LOG_STREAM_NAME";

/// The variables we read that are AWS's names.
pub fn is_aws_var(name: &str) -> bool {
    name.starts_with(ENDPOINT_URL)
        || [
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            SESSION_TOKEN,
            REGION,
            DEFAULT_REGION,
        ]
        .contains(&name)
}

/// The execution environment's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// What a destination's requests are signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4 {
    pub service: String,
    pub region: String,
    pub credentials: Credentials,
}

/// How an output's bodies are sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Api {
    /// POSTed as they are (OTLP, NDJSON).
    #[default]
    Post,
    /// NDJSON lines cut into the records of Firehose `PutRecordBatch` calls.
    Firehose {
        stream: String,
        /// Each record's data is a gzip member (S3 objects are then gzip files).
        gzip_records: bool,
    },
}

/// The CloudWatch log stream the OTLP logs endpoint writes to; the sender creates it (the
/// endpoint needs it to exist) before its first request, and names it in every request's
/// `x-aws-log-group` and `x-aws-log-stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    pub group: String,
    /// `None`: named like the function's own (see `delivery::aws_json::default_stream`).
    pub stream: Option<String>,
    /// The function's version, for that name.
    pub version: String,
}

/// Names the variable that is missing, and what needs it.
fn missing(var: &'static str, needed_by: &'static str) -> ConfigError {
    ConfigError::Missing { var, needed_by }
}

fn region(env: &HashMap<String, String>, needed_by: &'static str) -> Result<String, ConfigError> {
    value_of(env, REGION)
        .or_else(|| value_of(env, DEFAULT_REGION))
        .map(str::to_string)
        .ok_or_else(|| missing(REGION, needed_by))
}

fn credentials(
    env: &HashMap<String, String>,
    needed_by: &'static str,
) -> Result<Credentials, ConfigError> {
    if !cfg!(feature = "tls") {
        return Err(ConfigError::NeedsTls { var: needed_by });
    }
    let get = |var: &'static str| {
        value_of(env, var)
            .map(|v| Secret(v.to_string()))
            .ok_or_else(|| missing(var, needed_by))
    };
    Ok(Credentials {
        access_key_id: get(ACCESS_KEY_ID)?,
        secret_access_key: get(SECRET_ACCESS_KEY)?,
        session_token: value_of(env, SESSION_TOKEN).map(|v| Secret(v.to_string())),
    })
}

/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`: scheme, host and port only.
fn endpoint_override(
    env: &HashMap<String, String>,
    own: &'static str,
) -> Result<Option<String>, ConfigError> {
    let (var, value) = match (value_of(env, own), value_of(env, ENDPOINT_URL)) {
        (Some(v), _) => (own, v),
        (None, Some(v)) => (ENDPOINT_URL, v),
        (None, None) => return Ok(None),
    };
    parse_url(var, value).map(|u| Some(u.trim_end_matches('/').to_string()))
}

/// The Firehose output: where its calls go, how long each may take, and how they are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirehoseOutput {
    pub url: String,
    pub api: Api,
    pub timeout: std::time::Duration,
    pub sign: SigV4,
}

/// `TELEMETRY_RELAY_FIREHOSE_STREAM` and its companions; `None` when no stream is named.
pub fn firehose(env: &HashMap<String, String>) -> Result<Option<FirehoseOutput>, ConfigError> {
    let get = |name: &str| value_of(env, name);
    let gzip = super::outputs::parse_compression(FIREHOSE_COMPRESSION, get(FIREHOSE_COMPRESSION))?;
    let timeout = parse_timeout(FIREHOSE_TIMEOUT_MS, get(FIREHOSE_TIMEOUT_MS), 5000)?;
    let Some(stream) = get(FIREHOSE_STREAM) else {
        return Ok(None);
    };
    let valid = (1..=64).contains(&stream.len())
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !valid {
        return Err(invalid(
            FIREHOSE_STREAM,
            stream,
            "expected a Firehose stream's name: 1 to 64 letters, digits, _ . or - (the name, \
             not its ARN)",
        ));
    }
    let region = region(env, FIREHOSE_STREAM)?;
    let credentials = credentials(env, FIREHOSE_STREAM)?;
    let url = match endpoint_override(env, ENDPOINT_URL_FIREHOSE)? {
        Some(base) => format!("{base}/"),
        None => format!("https://firehose.{region}.amazonaws.com/"),
    };
    Ok(Some(FirehoseOutput {
        url,
        api: Api::Firehose {
            stream: stream.to_string(),
            gzip_records: gzip.unwrap_or(false),
        },
        timeout,
        sign: SigV4 {
            service: "firehose".to_string(),
            region,
            credentials,
        },
    }))
}

/// What SigV4 adds to one OTLP signal sent to AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpAws {
    /// The signal's URL, after any endpoint override.
    pub url: String,
    pub sign: SigV4,
    /// For CloudWatch Logs.
    pub log_stream: Option<LogStream>,
}

/// `(host, path and query)` of an http(s) URL: the host without userinfo or port.
fn split_url(url: &str) -> (&str, &str) {
    let (origin, rest) = split_origin(url);
    let authority = origin.split_once("://").map_or(origin, |(_, a)| a);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (host.split(':').next().unwrap_or_default(), rest)
}

/// Signing for an OTLP signal: the signal's own `…_SIGV4_SERVICE` variable, else the general
/// one, else the service named by an `*.amazonaws.com` host (`xray`, `logs`); `none` turns it
/// off. `None` when not signed.
pub fn otlp(
    env: &HashMap<String, String>,
    own_var: &'static str,
    endpoint_var: &'static str,
    signal: &str,
    url: &str,
) -> Result<Option<OtlpAws>, ConfigError> {
    let (host, rest) = split_url(url);
    let host = host.to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let on_aws = host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
    let (var, service) = match (value_of(env, own_var), value_of(env, OTLP_SIGV4_SERVICE)) {
        (Some(s), _) => (own_var, s.to_string()),
        (None, Some(s)) => (OTLP_SIGV4_SERVICE, s.to_string()),
        (None, None) if on_aws => (
            endpoint_var,
            labels.first().copied().unwrap_or("").to_string(),
        ),
        (None, None) => return Ok(None),
    };
    if service.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    if service.is_empty()
        || !service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(invalid(
            var,
            &service,
            "expected the name of the AWS service to sign for, such as xray or logs, or none",
        ));
    }
    // `<service>.<region>.amazonaws.com` says its region; any other host, AWS_REGION.
    let region = match labels.as_slice() {
        [_, region, "amazonaws", ..] if on_aws => region.to_string(),
        _ => region(env, var)?,
    };
    let credentials = credentials(env, var)?;
    let own_override = match service.as_str() {
        "xray" => ENDPOINT_URL_XRAY,
        "logs" => ENDPOINT_URL_CLOUDWATCH_LOGS,
        _ => ENDPOINT_URL,
    };
    let url = match endpoint_override(env, own_override)? {
        Some(base) if on_aws => format!("{base}{rest}"),
        _ => url.to_string(),
    };
    let mut log_stream = None;
    if service == "logs" && signal == "logs" {
        let group = value_of(env, CLOUDWATCH_LOG_GROUP)
            .ok_or_else(|| missing(CLOUDWATCH_LOG_GROUP, "OTLP logs sent to CloudWatch Logs"))?;
        // Lambda does not show extensions the function's own stream name; used if it does.
        let stream =
            value_of(env, CLOUDWATCH_LOG_STREAM).or_else(|| value_of(env, LOG_STREAM_NAME));
        for (var, name) in [
            (CLOUDWATCH_LOG_GROUP, Some(group)),
            (CLOUDWATCH_LOG_STREAM, stream),
        ] {
            let Some(name) = name else { continue };
            if name.len() > 512 || (var == CLOUDWATCH_LOG_STREAM && name.contains([':', '*'])) {
                return Err(invalid(
                    var,
                    name,
                    "expected a CloudWatch Logs name: at most 512 characters, no : or * in a \
                     stream's",
                ));
            }
        }
        log_stream = Some(LogStream {
            group: group.to_string(),
            stream: stream.map(str::to_string),
            version: value_of(env, FUNCTION_VERSION)
                .unwrap_or("$LATEST")
                .to_string(),
        });
    }
    Ok(Some(OtlpAws {
        url,
        sign: SigV4 {
            service,
            region,
            credentials,
        },
        log_stream,
    }))
}

#[cfg(test)]
mod tests;
