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

/// The `partial_success` of an OTLP/HTTP answer in the encoding `content_type` names (the
/// answer's own, as the specification asks servers to answer in the request's encoding).
/// An answer of another type (a proxy's `text/plain` "ok", an HTML error page) carries none.
pub fn partial_success(content_type: &str, body: &[u8]) -> Option<Partial> {
    if body.is_empty() {
        None
    } else if content_type.starts_with("application/x-protobuf") {
        partial_protobuf(body)
    } else if content_type.starts_with("application/json") {
        partial_json(body)
    } else {
        None
    }
}

/// `Export*ServiceResponse { Export*PartialSuccess partial_success = 1; }`, whose message is
/// `{ int64 rejected_<items> = 1; string error_message = 2; }` for every signal. Fields it does
/// not know are skipped; a body that does not parse is as if empty.
fn partial_protobuf(body: &[u8]) -> Option<Partial> {
    let mut partial = None;
    for (number, field) in protobuf_fields(body)? {
        if let (1, ProtoField::Bytes(inner)) = (number, field) {
            let mut found = Partial {
                rejected: 0,
                message: String::new(),
            };
            for (number, field) in protobuf_fields(inner)? {
                match (number, field) {
                    // int64: a negative count would be nonsense; it counts as none.
                    (1, ProtoField::Varint(n)) => {
                        found.rejected = i64::try_from(n).map_or(0, |n| n.max(0) as u64);
                    }
                    (2, ProtoField::Bytes(text)) => {
                        found.message = String::from_utf8_lossy(text).into_owned();
                    }
                    _ => {}
                }
            }
            partial = Some(found);
        }
    }
    partial.filter(|p| p.rejected > 0 || !p.message.is_empty())
}

enum ProtoField<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

/// The top-level fields of a protobuf message, or `None` if it is not one.
fn protobuf_fields(mut bytes: &[u8]) -> Option<Vec<(u64, ProtoField<'_>)>> {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(value);
            }
        }
        None
    }
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let tag = varint(&mut bytes)?;
        let field = match tag & 7 {
            0 => ProtoField::Varint(varint(&mut bytes)?),
            1 => {
                bytes = bytes.get(8..)?;
                ProtoField::Other
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                let content = bytes.get(..len)?;
                bytes = bytes.get(len..)?;
                ProtoField::Bytes(content)
            }
            5 => {
                bytes = bytes.get(4..)?;
                ProtoField::Other
            }
            _ => return None,
        };
        fields.push((tag >> 3, field));
    }
    Some(fields)
}

/// The `partialSuccess` of an OTLP/HTTP JSON answer, if it rejected anything or said why.
/// Counts may be JSON numbers or (int64 in protobuf's JSON mapping) strings; `null` is absent.
fn partial_json(body: &[u8]) -> Option<Partial> {
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
            let got = partial_success("application/json", body.as_bytes())
                .map(|p| (p.rejected, p.message));
            let expected = expected.map(|(n, m)| (n, m.to_string()));
            assert_eq!(got, expected, "{body}");
        }
    }

    #[test]
    fn protobuf_partial_successes_are_read_and_anything_else_is_absent() {
        let protobuf = "application/x-protobuf";
        // partial_success { rejected 300, error_message "quota" }, then an unknown field.
        let body = [
            0x0a, 10, 0x08, 0xac, 0x02, 0x12, 5, b'q', b'u', b'o', b't', b'a', 0x18, 1,
        ];
        let got = partial_success(protobuf, &body).map(|p| (p.rejected, p.message));
        assert_eq!(got, Some((300, "quota".to_string())));
        // An empty answer, a zero partial success, a truncated one, text, a negative count.
        for body in [
            &[][..],
            &[0x0a, 0],
            &[0x0a, 9, 0x08],
            b"ok",
            &[
                0x0a, 11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ] {
            assert_eq!(partial_success(protobuf, body), None, "{body:?}");
        }
    }

    #[test]
    fn only_otlp_answers_carry_a_partial_success() {
        let json = br#"{"partialSuccess":{"rejectedSpans":"2"}}"#;
        let got = partial_success("application/json; charset=utf-8", json);
        assert_eq!(got.map(|p| p.rejected), Some(2));
        for content_type in ["text/plain", "text/html", ""] {
            assert_eq!(partial_success(content_type, json), None, "{content_type}");
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
