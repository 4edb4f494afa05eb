//! What the AWS destinations share beyond SigV4: the JSON protocol's error answers, and the
//! one CloudWatch Logs call the OTLP logs endpoint needs first (`CreateLogStream`: the
//! endpoint writes only to a log stream that exists, and an environment's default stream is
//! named after its own, so nobody could have made it beforehand).

use super::sender::{Call, post};
use super::sigv4::Signer;
use crate::config::outputs::split_origin;
use crate::telemetry::time::civil;

/// `application/x-amz-json-1.1`, the content type of the AWS JSON protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// An error answer's type (without any `namespace#` prefix) and message; empty when the body
/// is not one. (Read as a `Value`, which the partial-success reader links already: a derived
/// reader per answer costs kilobytes of binary.)
pub fn error(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |key: &str| v.get(key).and_then(|t| t.as_str()).unwrap_or_default();
    let kind = text("__type")
        .rsplit('#')
        .next()
        .unwrap_or_default()
        .to_string();
    let message = [text("message"), text("Message")].concat();
    (kind, message)
}

/// Whether an AWS error answer says to come back later: throttled, or the service busy. AWS
/// sends some of these as 400s, so the status alone does not say.
pub fn retryable(status: u16, kind: &str) -> bool {
    super::answer::retryable(status)
        || status == 500
        || matches!(
            kind,
            "ThrottlingException"
                | "Throttling"
                | "ServiceUnavailableException"
                | "LimitExceededException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "InternalFailure"
        )
}

/// A log stream named as Lambda names the function's own (`2026/12/01/[$LATEST]` and an id
/// of 32 hex digits), which extensions are not shown: today's date, the function's version,
/// and an id of this environment's own, random.
pub fn default_stream(version: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d, ..) = civil(now);
    // Each `RandomState` is keyed from the OS's randomness.
    let random = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    format!(
        "{y:04}/{m:02}/{d:02}/[{version}]{:016x}{:016x}",
        random(),
        random()
    )
}

/// Creates the log stream at the CloudWatch Logs API of `url`'s host (the OTLP endpoint's),
/// if it is not there; `Err` says why it could not, for a warning (the requests then say the
/// rest).
pub fn create_log_stream(
    agent: &ureq::Agent,
    url: &str,
    group: &str,
    stream: &str,
    timeout: std::time::Duration,
    signer: Option<&mut Signer>,
) -> Result<(), String> {
    let api = format!("{}/", split_origin(url).0);
    // Names are text of any kind: written as JSON strings.
    let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let body = format!(
        "{{\"logGroupName\":{},\"logStreamName\":{}}}",
        quoted(group),
        quoted(stream)
    );
    let call = Call {
        url: &api,
        content_type: CONTENT_TYPE,
        gzip: false,
        extra: &[("x-amz-target", "Logs_20140328.CreateLogStream")],
        headers: &[],
    };
    let answer = post(agent, &call, body.as_bytes(), timeout, signer).map_err(|e| e.to_string())?;
    let (kind, message) = error(&answer.body);
    match answer.status {
        200..=299 => Ok(()),
        _ if kind == "ResourceAlreadyExistsException" => Ok(()),
        status => Err(format!("HTTP {status} {kind}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_read_with_or_without_a_namespace() {
        let body = br#"{"__type":"com.amazon.coral.service#ResourceNotFoundException","message":"Stream x not found"}"#;
        assert_eq!(
            error(body),
            (
                "ResourceNotFoundException".to_string(),
                "Stream x not found".to_string()
            )
        );
        let body = br#"{"__type":"ServiceUnavailableException","Message":"Slow down."}"#;
        assert_eq!(error(body).1, "Slow down.");
        assert_eq!(error(b"<html>"), (String::new(), String::new()));
    }

    #[test]
    fn a_default_stream_is_named_as_lambda_names_its_own() {
        let a = default_stream("$LATEST");
        let (date, rest) = a.split_once("/[$LATEST]").unwrap();
        assert_eq!(date.len(), 10);
        assert_eq!(rest.len(), 32);
        assert!(rest.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, default_stream("$LATEST"));
    }

    #[test]
    fn throttling_is_retried_whatever_its_status() {
        assert!(retryable(400, "ThrottlingException"));
        assert!(retryable(400, "ServiceUnavailableException"));
        assert!(retryable(503, ""));
        assert!(retryable(500, "InternalFailure"));
        assert!(!retryable(400, "ResourceNotFoundException"));
        assert!(!retryable(403, "AccessDeniedException"));
    }
}
