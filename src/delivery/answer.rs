//! What a backend's answer says beyond its status, read as the OTLP specification
//! (opentelemetry-proto `docs/specification.md`, "OTLP/HTTP Throttling" and "Partial Success")
//! asks: how long to wait before a retry (`Retry-After`, in seconds or as an HTTP date), and how
//! much of an accepted request was rejected all the same (`partialSuccess` in a 200 answer).
//! Both are read leniently: what cannot be read is as if absent.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::telemetry::time::epoch_ms;

/// Statuses worth retrying: throttled, or the server (or a proxy) temporarily unavailable.
/// Every other 4xx and 5xx is final.
pub fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// `Retry-After`: delay-seconds, or an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // `Sun, 06 Nov 1994 08:49:37 GMT` → `1994-11-06T08:49:37Z`, which `epoch_ms` reads.
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let at = epoch_ms(&format!("{year}-{month:02}-{day:0>2}T{time}Z"))?;
    let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis();
    let wait = u64::try_from(i128::from(at) - i128::try_from(now).ok()?).unwrap_or(0);
    Some(Duration::from_millis(wait))
}

/// Items the backend rejected in an accepted request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    pub rejected: u64,
    pub message: String,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "partialSuccess", default)]
    partial: Option<PartialBody>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PartialBody {
    rejected_log_records: Option<serde_json::Value>,
    rejected_data_points: Option<serde_json::Value>,
    rejected_spans: Option<serde_json::Value>,
    error_message: Option<String>,
}

/// The `partialSuccess` of an OTLP/HTTP JSON answer, if it rejected anything or said why.
/// Counts may be JSON numbers or (int64 in protobuf's JSON mapping) strings; `null` is absent.
pub fn partial_success(body: &[u8]) -> Option<Partial> {
    let partial = serde_json::from_slice::<Body>(body).ok()?.partial?;
    let count = |v: &Option<serde_json::Value>| match v {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let rejected = [
        &partial.rejected_log_records,
        &partial.rejected_data_points,
        &partial.rejected_spans,
    ]
    .into_iter()
    .filter_map(count)
    .fold(0u64, u64::saturating_add);
    let message = partial.error_message.unwrap_or_default();
    (rejected > 0 || !message.is_empty()).then_some(Partial { rejected, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
        assert_eq!(retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:39 GMT", now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:30 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: retry now"
        );
        for bad in ["", "-1", "soon", "Sun, 06 Nov 1994 08:49:39 PST", "1.5"] {
            assert_eq!(retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn partial_success_counts_are_read_from_numbers_or_strings() {
        let cases: &[(&str, Option<(u64, &str)>)] = &[
            (
                r#"{"partialSuccess":{"rejectedLogRecords":"5","errorMessage":"quota"}}"#,
                Some((5, "quota")),
            ),
            (r#"{"partialSuccess":{"rejectedSpans":2}}"#, Some((2, ""))),
            (r#"{"partialSuccess":{"rejectedDataPoints":null}}"#, None),
            (r#"{"partialSuccess":null}"#, None),
            (r#"{"partialSuccess":{}}"#, None),
            (r#"{}"#, None),
            ("ok", None),
            ("", None),
        ];
        for (body, expected) in cases {
            let got = partial_success(body.as_bytes()).map(|p| (p.rejected, p.message));
            let expected = expected.map(|(n, m)| (n, m.to_string()));
            assert_eq!(got, expected, "{body}");
        }
    }

    #[test]
    fn only_throttling_and_unavailability_are_retried() {
        for status in [429, 502, 503, 504] {
            assert!(retryable(status), "{status}");
        }
        for status in [400, 401, 403, 404, 408, 413, 500, 501, 505] {
            assert!(!retryable(status), "{status}");
        }
    }
}
