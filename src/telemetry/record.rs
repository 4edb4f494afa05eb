//! The records inside Telemetry API events, read lazily and leniently: every field is
//! optional and [`Lenient`], so a missing, `null` or wrongly typed field is `None`, never an
//! error (SPEC.md rule zero, §6). What a field means is in SPEC.md §6.2; which are present
//! depends on the event type and on the kind of environment (LMI reports are sparse).

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::value::RawValue;

/// A `function`/`extension` record: a JSON string (text log format) or any other JSON value
/// (JSON log format, delivered verbatim; SPEC.md §6.3). Both hold raw JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRecord<'a> {
    Text(&'a str),
    Json(&'a str),
}

/// A field that is `None` when missing, `null` or of an unexpected JSON type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        Ok(Lenient(serde_json::from_str(raw.get()).ok()))
    }
}

impl Lenient<f64> {
    /// A whole, non-negative number: accepts `128`, `128.0` and `1.28e2`.
    pub fn whole(&self) -> Option<u64> {
        self.0
            .filter(|n| n.is_finite() && *n >= 0.0 && n.fract() == 0.0 && *n < 2f64.powi(53))
            .map(|n| n as u64)
    }
}

/// `metrics` of init/restore/runtimeDone/report records (SPEC.md §6.2).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MetricsRecord {
    pub duration_ms: Lenient<f64>,
    pub billed_duration_ms: Lenient<f64>,
    #[serde(rename = "memorySizeMB")]
    pub memory_size_mb: Lenient<f64>,
    #[serde(rename = "maxMemoryUsedMB")]
    pub max_memory_used_mb: Lenient<f64>,
    pub init_duration_ms: Lenient<f64>,
    pub restore_duration_ms: Lenient<f64>,
    pub produced_bytes: Lenient<f64>,
}

/// A span such as `responseLatency` (SPEC.md §6.2).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Span<'a> {
    #[serde(borrow)]
    pub name: Lenient<Cow<'a, str>>,
    #[serde(borrow)]
    pub start: Lenient<Cow<'a, str>>,
    pub duration_ms: Lenient<f64>,
}

/// X-Ray trace context carried by platform events under active tracing.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TraceContext<'a> {
    #[serde(borrow)]
    pub span_id: Lenient<Cow<'a, str>>,
    #[serde(borrow)]
    pub value: Lenient<Cow<'a, str>>,
}

/// The union of the platform records' fields we use; which are present depends on the type.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PlatformRecord<'a> {
    #[serde(borrow)]
    pub request_id: Lenient<Cow<'a, str>>,
    #[serde(borrow)]
    pub status: Lenient<Cow<'a, str>>,
    #[serde(borrow)]
    pub error_type: Lenient<Cow<'a, str>>,
    #[serde(borrow)]
    pub initialization_type: Lenient<Cow<'a, str>>,
    #[serde(borrow)]
    pub phase: Lenient<Cow<'a, str>>,
    #[serde(borrow)]
    pub version: Lenient<Cow<'a, str>>,
    #[serde(borrow)]
    pub function_arn: Lenient<Cow<'a, str>>,
    #[serde(borrow)]
    pub runtime_version: Lenient<Cow<'a, str>>,
    pub metrics: Lenient<MetricsRecord>,
    #[serde(borrow)]
    pub spans: Lenient<Vec<Span<'a>>>,
    #[serde(borrow)]
    pub tracing: Lenient<TraceContext<'a>>,
    /// `platform.extension` / `telemetrySubscription`: the extension's name and state.
    #[serde(borrow)]
    pub name: Lenient<Cow<'a, str>>,
    #[serde(borrow)]
    pub state: Lenient<Cow<'a, str>>,
    /// `platform.logsDropped`.
    pub dropped_records: Lenient<f64>,
    pub dropped_bytes: Lenient<f64>,
    #[serde(borrow)]
    pub reason: Lenient<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_read_from_any_spelling() {
        let cases: &[(&str, Option<u64>)] = &[
            ("128", Some(128)),
            ("128.0", Some(128)),
            ("1.5e2", Some(150)),
            ("4.1e1", Some(41)),
            ("72.5", None),
            ("-1", None),
            ("\"128\"", None),
            ("null", None),
        ];
        for (text, expected) in cases {
            let n: Lenient<f64> = serde_json::from_str(text).unwrap();
            assert_eq!(n.whole(), *expected, "{text}");
        }
    }
}
