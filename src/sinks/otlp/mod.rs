//! OpenTelemetry over OTLP/HTTP, protobuf (the default) or JSON: one output per signal (logs,
//! metrics, traces), each an [`Encoder`](crate::sinks::Encoder) fed by the delivery pipeline.
//!
//! Both encodings are written by one [`wire::Writer`], so they carry the same content. The
//! OTLP JSON mapping is protobuf's JSON mapping with OTLP's exceptions, and receivers are
//! strict about it: field names in lowerCamelCase, 64-bit integers as decimal strings, enums as
//! integers, and trace/span ids as hex (not base64). Every request carries the same resource,
//! built once from the Lambda environment with the FaaS and cloud semantic conventions, and
//! then `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, which win.

pub mod any_value;
#[cfg(test)]
mod encodings_test;
pub mod logs;
pub mod metrics;
pub mod traces;
pub mod wire;
#[cfg(test)]
pub mod wire_check;

use any_value::{int_attribute, string_attribute};
use wire::{Encoding, Field, Room, State, Writer};

use crate::config::Config;
use crate::telemetry::echo::fnv1a;
use crate::telemetry::time;

/// The instrumentation scope on every request.
const SCOPE_NAME: &str = "telemetry-relay";

const RESOURCE: Field = Field("resource", 1);
const RESOURCE_ATTRIBUTES: Field = Field("attributes", 1);
const SCOPE: Field = Field("scope", 1);
const SCOPE_NAME_FIELD: Field = Field("name", 1);
const SCOPE_VERSION: Field = Field("version", 2);

/// A request's outer lists: `resource<Signal>` in the request, `scope<Signal>` in a resource,
/// and the items in a scope.
pub struct Envelope {
    pub resources: Field,
    pub scopes: Field,
    pub items: Field,
}

/// A resource attribute's value.
enum Value {
    Text(String),
    Int(i64),
}

/// What every OTLP request shares: the encoding, and the resource and scope, encoded once.
#[derive(Debug, Clone)]
pub struct Common {
    pub encoding: Encoding,
    resource: Vec<u8>,
    scope: Vec<u8>,
    pub function_name: String,
}

impl Common {
    pub fn new(config: &Config, encoding: Encoding) -> Common {
        let mut attributes: Vec<(String, Value)> = vec![
            ("cloud.provider".into(), Value::Text("aws".into())),
            ("cloud.platform".into(), Value::Text("aws_lambda".into())),
            (
                "faas.name".into(),
                Value::Text(config.function_name.clone()),
            ),
            (
                "faas.version".into(),
                Value::Text(config.function_version.clone()),
            ),
            (
                "service.name".into(),
                Value::Text(config.function_name.clone()),
            ),
        ];
        if let Some(region) = &config.region {
            attributes.push(("cloud.region".into(), Value::Text(region.clone())));
        }
        if let Some(stream) = &config.log_stream {
            attributes.push(("faas.instance".into(), Value::Text(stream.clone())));
        }
        if let Some(mb) = config.memory_mb {
            let bytes = mb.saturating_mul(1 << 20);
            attributes.push(("faas.max_memory".into(), Value::Int(bytes)));
        }
        let otlp = config.outputs.otlp.as_ref();
        let overrides = otlp
            .map(|o| o.resource_attributes.clone())
            .unwrap_or_default();
        let service = otlp.and_then(|o| o.service_name.clone());
        for (key, value) in overrides
            .into_iter()
            .chain(service.map(|s| ("service.name".to_string(), s)))
        {
            attributes.retain(|(k, _)| *k != key);
            attributes.push((key, Value::Text(value)));
        }
        let resource = fragment(encoding, |w| {
            w.message(RESOURCE, |w| {
                w.list(RESOURCE_ATTRIBUTES, |w| {
                    for (key, value) in &attributes {
                        match value {
                            Value::Text(text) => string_attribute(key, text, w),
                            Value::Int(n) => int_attribute(key, *n, w),
                        }
                    }
                });
            });
        });
        let scope = fragment(encoding, |w| {
            w.message(SCOPE, |w| {
                w.string(SCOPE_NAME_FIELD, SCOPE_NAME);
                w.string(SCOPE_VERSION, env!("CARGO_PKG_VERSION"));
            });
        });
        Common {
            encoding,
            resource,
            scope,
            function_name: config.function_name.clone(),
        }
    }

    /// Opens a request up to its list of items; [`Writer::end`] closes it.
    fn open(&self, envelope: &Envelope, w: &mut Writer) {
        w.begin();
        w.open_list_in(envelope.resources, Room::Envelope);
        w.open_item();
        w.splice_fields(&self.resource);
        w.open_list_in(envelope.scopes, Room::Envelope);
        w.open_item();
        w.splice_fields(&self.scope);
        w.open_list_in(envelope.items, Room::Record);
    }
}

/// Fields written apart, as bytes to splice.
fn fragment(encoding: Encoding, f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut state = State::fragment(encoding);
    f(&mut state.on(&mut out));
    out
}

/// Nanoseconds since the epoch, clamped to what the `fixed64` field holds (1970 to 2554): a
/// time from outside must never make a request the collector refuses whole.
fn nanos(ms: i64) -> u64 {
    u64::try_from((i128::from(ms) * 1_000_000).clamp(0, i128::from(u64::MAX))).unwrap_or(0)
}

/// Longest span we believe: a duration past this (or negative, or not a number) is input
/// gone wrong, and the span gets no length rather than an absurd one.
const MAX_SPAN_MS: f64 = 7.0 * 24.0 * 3600.0 * 1000.0;

/// `start_ms` plus a duration from an event, total for every input.
fn end_after(start_ms: i64, duration_ms: f64) -> i64 {
    if !(0.0..=MAX_SPAN_MS).contains(&duration_ms) {
        return start_ms;
    }
    // In range, so the cast is exact enough and cannot saturate.
    start_ms.saturating_add(duration_ms.round() as i64)
}

/// An event time (RFC 3339 text or epoch-ms number), in epoch milliseconds.
fn time_ms(text: Option<&str>) -> Option<i64> {
    text.and_then(time::event_ms)
}

use crate::telemetry::time::now_ms;

/// A trace id.
pub type TraceId = [u8; 16];
/// A span id.
pub type SpanId = [u8; 8];

/// A hash of `parts`, for ids derived from a request id.
fn hash(parts: &[&str]) -> u64 {
    fnv1a(parts.iter().flat_map(|p| p.bytes().chain([0])))
}

/// A span id for `parts` (never all zero).
fn span_id(parts: &[&str]) -> SpanId {
    hash(parts).max(1).to_be_bytes()
}

/// X-Ray `Root=1-5e1b4151-5ac6c58fbd3c1e4c48b2c1f0;Parent=…;Sampled=1` → (trace id, parent).
/// Read three times per invocation (the INVOKE, and the start in traces and in logs), so
/// without a copy: the root's dashes are skipped as its digits are read.
fn xray(value: &str) -> (Option<TraceId>, Option<SpanId>) {
    let field = |name: &str| value.split(';').find_map(|p| p.trim().strip_prefix(name));
    let trace = field("Root=")
        .and_then(|root| root.strip_prefix("1-"))
        .and_then(|root| hex_digits(root.bytes().filter(|b| *b != b'-')));
    (trace, field("Parent=").and_then(from_hex))
}

/// Exactly `2 * N` hex digits as bytes.
fn from_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    hex_digits(hex.bytes())
}

/// Exactly `2 * N` hex digits as bytes, from `digits`.
fn hex_digits<const N: usize>(digits: impl Iterator<Item = u8>) -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    let mut n = 0;
    for digit in digits {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => return None,
        };
        let byte = bytes.get_mut(n / 2)?;
        *byte = *byte << 4 | nibble;
        n += 1;
    }
    (n == 2 * N).then_some(bytes)
}

/// A trace id for an invocation without X-Ray context, derived from its request id.
fn trace_id(request_id: &str) -> TraceId {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&hash(&[request_id, "trace"]).max(1).to_be_bytes());
    id[8..].copy_from_slice(&hash(&[request_id, "trace2"]).to_be_bytes());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xray_context_becomes_w3c_ids() {
        let (trace, parent) =
            xray("Root=1-69b52883-1e685f6e5413b0143f9b2a07;Parent=a14af2721e102a9f;Sampled=1");
        assert_eq!(trace, from_hex("69b528831e685f6e5413b0143f9b2a07"));
        assert_eq!(parent, Some(0xa14a_f272_1e10_2a9f_u64.to_be_bytes()));
        assert_eq!(xray("Root=garbage;Parent=a14af2721e102a9g"), (None, None));
        assert_eq!(from_hex::<2>("0a"), None);
        assert_eq!(from_hex::<1>("0A"), Some([10]));
        assert_eq!(from_hex::<1>("0a0"), None, "one digit too many");
        assert_eq!(from_hex::<1>("+a"), None);
        let dashed = xray("Root=1-69b52883-1e685f6e-5413b0143f9b2a07").0;
        assert_eq!(dashed, from_hex("69b528831e685f6e5413b0143f9b2a07"));
        assert_ne!(trace_id("r"), trace_id("s"));
    }

    #[test]
    fn times_from_outside_are_total_at_the_extremes() {
        assert_eq!(nanos(i64::MAX), u64::MAX);
        assert_eq!(nanos(i64::MIN), 0);
        assert_eq!(nanos(-5), 0);
        assert_eq!(nanos(1_773_480_067_124), 1_773_480_067_124_000_000);
        for d in [1e300, f64::INFINITY, f64::NAN, -1.0, f64::MAX, -0.0] {
            let end = end_after(1_000, d);
            assert!(end == 1_000 || d == -0.0, "{d}: {end}");
        }
        assert_eq!(end_after(i64::MAX - 1, 5.0), i64::MAX);
        assert_eq!(end_after(1_000, 2.6), 1_003);
    }
}

/// Shared by the signal encoders' tests: a resource and a fixture run through an encoder.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::sinks::Encoder;
    use crate::telemetry::batch::parse;

    pub fn common() -> Common {
        common_in(Encoding::Json)
    }

    pub fn common_in(encoding: Encoding) -> Common {
        let env = crate::testing::env(&[
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1"),
            ("AWS_LAMBDA_FUNCTION_NAME", "checkout-api"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ]);
        let config = Config::parse(&env).unwrap();
        Common::new(&config, encoding)
    }

    /// The encoder of `signal` (`logs`, `metrics` or `traces`) in `encoding`; metrics export
    /// at every request.
    pub fn encoder(signal: &str, encoding: Encoding) -> Box<dyn Encoder> {
        let common = common_in(encoding);
        match signal {
            "logs" => Box::new(logs::Logs::new(common, false)),
            "metrics" => Box::new(metrics::Metrics::new(common, std::time::Duration::ZERO)),
            _ => Box::new(traces::Traces::new(common)),
        }
    }

    /// One request body with every event of `fixture`.
    pub fn encode(encoder: &mut dyn Encoder, fixture: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        encode_body(encoder, std::fs::read(path).unwrap())
    }

    /// One request body with every event of a POST body.
    pub fn encode_body(encoder: &mut dyn Encoder, body: Vec<u8>) -> Vec<u8> {
        let parsed = parse(body);
        let mut out = Vec::new();
        encoder.start(&mut out);
        for event in parsed.batch.events() {
            encoder.event(&event, &mut out);
        }
        encoder.finish(&mut out);
        if encoder.interval().is_some() {
            encoder.export(&mut out);
        }
        out
    }

    #[test]
    fn the_resource_follows_the_semantic_conventions() {
        let mut out = Vec::new();
        let envelope = Envelope {
            resources: Field("resourceLogs", 1),
            scopes: Field("scopeLogs", 2),
            items: Field("logRecords", 2),
        };
        let mut state = State::new(Encoding::Json);
        let mut w = state.on(&mut out);
        common().open(&envelope, &mut w);
        w.end();
        let request: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let attributes = request["resourceLogs"][0]["resource"]["attributes"].to_string();
        for expected in [
            r#"{"key":"cloud.provider","value":{"stringValue":"aws"}}"#,
            r#"{"key":"cloud.region","value":{"stringValue":"eu-west-1"}}"#,
            r#"{"key":"faas.name","value":{"stringValue":"checkout-api"}}"#,
            r#"{"key":"faas.max_memory","value":{"intValue":"268435456"}}"#,
            r#"{"key":"service.name","value":{"stringValue":"checkout-api"}}"#,
            r#"{"key":"deployment.environment","value":{"stringValue":"test"}}"#,
        ] {
            assert!(attributes.contains(expected), "{expected} in {attributes}");
        }
        assert_eq!(
            request["resourceLogs"][0]["scopeLogs"][0]["scope"]["name"],
            "telemetry-relay"
        );
    }
}
