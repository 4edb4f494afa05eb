//! The records inside Telemetry API events, read lazily and leniently: every field is
//! optional and [`Lenient`], so a missing, `null` or wrongly typed field is `None`, never an
//! error (SPEC.md rule zero, §6). What a field means is in SPEC.md §6.2; which are present
//! depends on the event type and on the kind of environment (LMI reports are sparse).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// Read in one pass: the value is taken as what `T` can be ([`Shape`]) and read through
/// otherwise. Reading it apart first (a `RawValue`, then parsing that again) read every
/// nested object of a platform record twice.
impl<'de, T: Shape<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ShapeVisitor(std::marker::PhantomData))
            .map(Lenient)
    }
}

/// What a [`Lenient`] field can be made of: a string, a number, an object or an array. What
/// it is not made of is read through and gives `None`. An object is read by `T`'s own derived
/// code, whose fields are all lenient, so only broken JSON fails it (and the record with it).
pub trait Shape<'de>: Sized {
    fn text(_value: Cow<'de, str>) -> Option<Self> {
        None
    }
    fn number(_value: f64) -> Option<Self> {
        None
    }
    fn object<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// A string, borrowed from the JSON text unless it has escapes: serde's own `Cow` always
/// allocates, and that was a `malloc` and a `free` for every string field of every platform
/// record, for each output that reads it.
impl<'de: 'a, 'a> Shape<'de> for Cow<'a, str> {
    fn text(value: Cow<'de, str>) -> Option<Self> {
        Some(value)
    }
}

impl Shape<'_> for f64 {
    fn number(value: f64) -> Option<f64> {
        Some(value)
    }
}

/// Record parts that are objects, read by their derived code from the map already open.
macro_rules! object_shape {
    ($($t:ty),*) => {$(
        impl<'de: 'a, 'a> Shape<'de> for $t {
            fn object<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
                <$t>::deserialize(MapAccessDeserializer::new(map)).map(Some)
            }
        }
    )*};
}
object_shape!(Span<'a>, TraceContext<'a>, MetricsRecord);

/// A list of spans: its elements that are objects.
impl<'de: 'a, 'a> Shape<'de> for Vec<Span<'a>> {
    fn array<A: SeqAccess<'de>>(mut seq: A) -> Result<Option<Self>, A::Error> {
        let mut spans = Vec::new();
        while let Some(Lenient(span)) = seq.next_element::<Lenient<Span<'a>>>()? {
            spans.extend(span);
        }
        Ok(Some(spans))
    }
}

struct ShapeVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Shape<'de>> Visitor<'de> for ShapeVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(T::number(v))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(T::number(v as f64))
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(T::number(v as f64))
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(T::text(Cow::Borrowed(v)))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(T::text(Cow::Owned(v.to_string())))
    }

    fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::object(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::array(seq)
    }
}

/// `json` as a string if it is a JSON string literal, borrowed unless it has escapes.
pub fn text(json: &str) -> Option<Cow<'_, str>> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let Lenient(text) = Lenient::deserialize(&mut deserializer).ok()?;
    deserializer.end().ok().and(text)
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

    #[test]
    fn string_fields_borrow_unless_escaped_and_skip_other_values() {
        let json = r#"{"requestId":{"nested":[1,{"a":"b"}]},"status":"succ\u0065ss",
            "errorType":"Runtime.Crash","version":[1,2],"phase":null,"name":7}"#;
        let record: PlatformRecord = serde_json::from_str(json).unwrap();
        assert_eq!(record.request_id.0, None);
        assert!(matches!(&record.status.0, Some(Cow::Owned(s)) if s == "success"));
        assert!(matches!(
            record.error_type.0,
            Some(Cow::Borrowed("Runtime.Crash"))
        ));
        assert_eq!(
            (record.version.0, record.phase.0, record.name.0),
            (None, None, None)
        );
        assert_eq!(text(r#""a\"b""#).as_deref(), Some("a\"b"));
        assert_eq!(text("12"), None);
        assert_eq!(
            text(r#""a" x"#),
            None,
            "trailing text is not a string literal"
        );
    }

    #[test]
    fn nested_parts_of_the_wrong_shape_are_none_and_the_rest_is_read() {
        let json = r#"{"metrics":"fast","tracing":[1,{"value":"x"}],"requestId":"r",
            "spans":[{"name":"a","durationMs":2},7,"b",{"name":{"no":1},"durationMs":"3"}],
            "droppedRecords":{"n":[1,2]},"droppedBytes":12}"#;
        let record: PlatformRecord = serde_json::from_str(json).unwrap();
        assert!(record.metrics.0.is_none() && record.tracing.0.is_none());
        assert_eq!(record.request_id.0.as_deref(), Some("r"));
        let spans = record.spans.0.unwrap();
        assert_eq!(spans.len(), 2, "the two objects, not 7 or \"b\"");
        assert_eq!(
            (spans[0].name.0.as_deref(), spans[0].duration_ms.0),
            (Some("a"), Some(2.0))
        );
        assert_eq!(
            (spans[1].name.0.as_deref(), spans[1].duration_ms.0),
            (None, None)
        );
        assert_eq!(
            (record.dropped_records.0, record.dropped_bytes.0),
            (None, Some(12.0))
        );
        let broken: Result<PlatformRecord, _> =
            serde_json::from_str(r#"{"metrics":{"durationMs":}"#);
        assert!(broken.is_err(), "broken JSON is not a record");
    }
}
