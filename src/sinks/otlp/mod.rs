//! OpenTelemetry over OTLP/HTTP with JSON encoding: one output per signal (logs, metrics,
//! traces), each an [`Encoder`](crate::sinks::Encoder) fed by the delivery pipeline.
//!
//! The OTLP JSON mapping is protobuf's JSON mapping with OTLP's exceptions, and receivers are
//! strict about it: field names in lowerCamelCase, 64-bit integers as decimal strings, enums as
//! integers, and trace/span ids as hex (not base64). Every request carries the same resource,
//! built once from the Lambda environment with the FaaS and cloud semantic conventions, and
//! then `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, which win.

pub mod any_value;
pub mod logs;
pub mod metrics;
pub mod traces;

use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::telemetry::echo::fnv1a;
use crate::telemetry::time;

/// The instrumentation scope on every request.
const SCOPE_NAME: &str = "telemetry-relay";

/// What every OTLP request shares: the resource and scope, as JSON text.
#[derive(Debug, Clone)]
pub struct Common {
    resource: String,
    scope: String,
    pub function_name: String,
}

impl Common {
    pub fn new(config: &Config) -> Common {
        let mut attributes: Vec<(String, String)> = vec![
            ("cloud.provider".into(), "aws".into()),
            ("cloud.platform".into(), "aws_lambda".into()),
            ("faas.name".into(), config.function_name.clone()),
            ("faas.version".into(), config.function_version.clone()),
            ("service.name".into(), config.function_name.clone()),
        ];
        if let Some(region) = &config.region {
            attributes.push(("cloud.region".into(), region.clone()));
        }
        if let Some(stream) = &config.log_stream {
            attributes.push(("faas.instance".into(), stream.clone()));
        }
        let mut resource: Vec<Value> = attributes
            .into_iter()
            .map(|(k, v)| attribute(&k, json!(v)))
            .collect();
        if let Some(mb) = config.memory_mb {
            resource.push(attribute(
                "faas.max_memory",
                json!(mb.saturating_mul(1 << 20)),
            ));
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
            resource.retain(|a| a["key"] != key.as_str());
            resource.push(attribute(&key, json!(value)));
        }
        Common {
            resource: json!({ "attributes": resource }).to_string(),
            scope: json!({ "name": SCOPE_NAME, "version": env!("CARGO_PKG_VERSION") }).to_string(),
            function_name: config.function_name.clone(),
        }
    }

    /// Opens `{"<resources>":[{"resource":…,"<scopes>":[{"scope":…,"<items>":[`.
    fn open(&self, resources: &str, scopes: &str, items: &str, out: &mut Vec<u8>) {
        let (resource, scope) = (&self.resource, &self.scope);
        let head = format!(
            r#"{{"{resources}":[{{"resource":{resource},"{scopes}":[{{"scope":{scope},"{items}":["#
        );
        out.extend_from_slice(head.as_bytes());
    }

    /// Closes what [`open`](Self::open) opened.
    fn close(out: &mut Vec<u8>) {
        out.extend_from_slice(b"]}]}]}");
    }
}

/// A `KeyValue`.
fn attribute(key: &str, value: Value) -> Value {
    json!({ "key": key, "value": any_value(&value) })
}

/// A JSON value as an OTLP `AnyValue`: integers as `intValue` strings, objects as `kvlistValue`.
fn any_value(value: &Value) -> Value {
    match value {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => json!({ "intValue": i.to_string() }),
            None => json!({ "doubleValue": n.as_f64().unwrap_or(0.0) }),
        },
        Value::Null => json!({}),
        Value::Array(items) => {
            json!({ "arrayValue": { "values": items.iter().map(any_value).collect::<Vec<_>>() } })
        }
        Value::Object(map) => json!({ "kvlistValue": { "values": key_values(map) } }),
    }
}

fn key_values(map: &Map<String, Value>) -> Vec<Value> {
    map.iter().map(|(k, v)| attribute(k, v.clone())).collect()
}

/// Nanoseconds since the epoch as OTLP writes 64-bit integers: a decimal string.
/// Clamped to what the `fixed64` field holds (1970 to 2554): a time from outside must never
/// make a request the collector refuses whole.
fn nanos(ms: i64) -> String {
    (i128::from(ms) * 1_000_000)
        .clamp(0, i128::from(u64::MAX))
        .to_string()
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

/// A hash of `parts`, for ids derived from a request id.
fn hash(parts: &[&str]) -> u64 {
    fnv1a(parts.iter().flat_map(|p| p.bytes().chain([0])))
}

/// A span id for `parts`, as 16 hex digits (never all zero).
fn span_id(parts: &[&str]) -> String {
    format!("{:016x}", hash(parts).max(1))
}

/// X-Ray `Root=1-5e1b4151-5ac6c58fbd3c1e4c48b2c1f0;Parent=…;Sampled=1` → (trace id, parent).
fn xray(value: &str) -> (Option<String>, Option<String>) {
    let field = |name: &str| {
        value
            .split(';')
            .find_map(|p| p.trim().strip_prefix(name))
            .map(str::to_string)
    };
    let trace = field("Root=").and_then(|root| {
        let hex: String = root.strip_prefix("1-")?.split('-').collect();
        (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| hex.to_ascii_lowercase())
    });
    let parent =
        field("Parent=").filter(|p| p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    (trace, parent.map(|p| p.to_ascii_lowercase()))
}

/// A trace id for an invocation without X-Ray context, derived from its request id.
fn trace_id(request_id: &str) -> String {
    format!(
        "{:016x}{:016x}",
        hash(&[request_id, "trace"]).max(1),
        hash(&[request_id, "trace2"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xray_context_becomes_w3c_ids() {
        let (trace, parent) =
            xray("Root=1-69b52883-1e685f6e5413b0143f9b2a07;Parent=a14af2721e102a9f;Sampled=1");
        assert_eq!(trace.as_deref(), Some("69b528831e685f6e5413b0143f9b2a07"));
        assert_eq!(parent.as_deref(), Some("a14af2721e102a9f"));
        assert_eq!(xray("Root=garbage"), (None, None));
        assert_eq!(trace_id("r").len(), 32);
        assert_eq!(span_id(&["r"]).len(), 16);
    }

    #[test]
    fn any_values_follow_the_otlp_json_mapping() {
        let v = any_value(
            &json!({"n": 7, "f": 1.5, "b": true, "s": "x", "a": [null], "big": 18446744073709551615u64}),
        );
        let text = v.to_string();
        assert!(text.contains(r#"{"intValue":"7"}"#), "{text}");
        assert!(text.contains(r#"{"doubleValue":1.5}"#), "{text}");
        assert!(text.contains(r#"{"arrayValue":{"values":[{}]}}"#), "{text}");
        assert!(
            text.contains(r#""key":"big","value":{"doubleValue":1.8446744073709552e+19}"#),
            "{text}"
        );
        assert_eq!(nanos(1_773_480_067_124), "1773480067124000000");
    }

    #[test]
    fn times_from_outside_are_total_at_the_extremes() {
        assert_eq!(nanos(i64::MAX), u64::MAX.to_string());
        assert_eq!(nanos(i64::MIN), "0");
        assert_eq!(nanos(-5), "0");
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
    use std::collections::HashMap;

    pub fn common() -> Common {
        let env: HashMap<String, String> = [
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1"),
            ("AWS_LAMBDA_FUNCTION_NAME", "checkout-api"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = Config::parse(&env).unwrap();
        Common::new(&config)
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
        let mut first = true;
        for event in parsed.batch.events() {
            if encoder.event(&event, first, &mut out) {
                first = false;
            }
        }
        encoder.finish(&mut out);
        out
    }

    #[test]
    fn the_resource_follows_the_semantic_conventions() {
        let mut out = Vec::new();
        common().open("resourceLogs", "scopeLogs", "logRecords", &mut out);
        Common::close(&mut out);
        let request: Value = serde_json::from_slice(&out).unwrap();
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
