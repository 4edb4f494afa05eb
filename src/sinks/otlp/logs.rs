//! OTLP logs: every event becomes a `LogRecord`.
//!
//! `function`/`extension` records (SPEC.md §6.3): a string is the body, without its trailing
//! newline; a JSON object gives its `message` (or `msg`) as the body, its `level` as severity,
//! its `requestId` as `faas.invocation_id`, and every other key as an attribute, nested values
//! kept structured; an object without a message is the body whole. Platform events have their
//! record as a structured body and their type as `event.name`. A text line carries no request
//! id, so on on-demand Lambda it is the invocation between its `platform.start` and the next
//! one; on LMI invocations overlap, so only JSON records say which is theirs.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{Common, any_value, attribute, nanos, now_ms, span_id, time_ms, trace_id, xray};
use crate::delivery::Encoder;
use crate::telemetry::event::{Event, Kind, LogRecord};

/// Trace ids remembered per request id, at most.
const TRACES_CAP: usize = 1024;

/// The logs signal's encoder.
pub struct Logs {
    common: Common,
    /// Lambda Managed Instances: invocations overlap, so no "current" one.
    concurrent: bool,
    current: Option<String>,
    traces: HashMap<String, String>,
    scratch: Vec<u8>,
}

impl Logs {
    pub fn new(common: Common, concurrent: bool) -> Logs {
        Logs {
            common,
            concurrent,
            current: None,
            traces: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    fn record(&mut self, event: &Event) -> Value {
        let time = time_ms(event.time_text()).unwrap_or_else(now_ms);
        let mut record = Map::new();
        record.insert("timeUnixNano".into(), json!(nanos(time)));
        record.insert("observedTimeUnixNano".into(), json!(nanos(now_ms())));
        let mut attributes = Vec::new();
        let request_id;
        if event.kind.is_log() {
            attributes.push(attribute("lambda.log.type", json!(event.type_name())));
            match event.log_record() {
                LogRecord::Text(json) => {
                    let text: String = serde_json::from_str(json).unwrap_or_default();
                    let text = text.strip_suffix('\n').unwrap_or(&text);
                    let text = text.strip_suffix('\r').unwrap_or(text);
                    record.insert("body".into(), json!({ "stringValue": text }));
                    request_id = (!self.concurrent).then(|| self.current.clone()).flatten();
                }
                LogRecord::Json(json) => {
                    let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
                    request_id = structured(value, &mut record, &mut attributes);
                }
            }
        } else {
            let value: Value = serde_json::from_str(event.record).unwrap_or(Value::Null);
            request_id = value
                .get("requestId")
                .and_then(Value::as_str)
                .map(str::to_string);
            record.insert("body".into(), any_value(&value));
            attributes.push(attribute("event.name", json!(event.type_name())));
        }
        if let Some(id) = &request_id {
            attributes.push(attribute("faas.invocation_id", json!(id)));
            let trace = self.traces.get(id).cloned().unwrap_or_else(|| trace_id(id));
            record.insert("traceId".into(), json!(trace));
            record.insert("spanId".into(), json!(span_id(&[id])));
        }
        record.insert("attributes".into(), Value::Array(attributes));
        Value::Object(record)
    }

    /// Follows invocations: which one is current, and its trace id.
    fn track(&mut self, event: &Event) {
        if event.kind != Kind::Start {
            return;
        }
        let record = event.platform();
        let Some(id) = record.request_id.0.as_deref() else {
            return;
        };
        self.current = Some(id.to_string());
        let xray_trace = record
            .tracing
            .0
            .as_ref()
            .and_then(|t| t.value.0.as_deref())
            .and_then(|v| xray(v).0);
        if let Some(trace) = xray_trace {
            if self.traces.len() >= TRACES_CAP {
                self.traces.clear();
            }
            self.traces.insert(id.to_string(), trace);
        }
    }
}

/// A JSON-format log record: body, severity, attributes; returns its request id.
fn structured(
    value: Value,
    record: &mut Map<String, Value>,
    attributes: &mut Vec<Value>,
) -> Option<String> {
    let Value::Object(mut fields) = value else {
        record.insert("body".into(), json!({ "stringValue": value.to_string() }));
        return None;
    };
    let message = fields.remove("message").or_else(|| fields.remove("msg"));
    if let Some(level) = fields.get("level").and_then(Value::as_str) {
        let (number, text) = severity(level);
        if number > 0 {
            record.insert("severityNumber".into(), json!(number));
        }
        record.insert("severityText".into(), json!(text));
        fields.remove("level");
    }
    let request_id = match fields.remove("requestId") {
        Some(Value::String(id)) => Some(id),
        _ => None,
    };
    match message {
        Some(Value::String(text)) => {
            record.insert("body".into(), json!({ "stringValue": text }));
        }
        Some(other) => {
            record.insert("body".into(), any_value(&other));
        }
        // No message: the object is the body, whole (an EMF blob, say).
        None => {
            record.insert("body".into(), any_value(&Value::Object(fields)));
            return request_id;
        }
    }
    if let Some(Value::String(stamp)) = fields.get("timestamp")
        && let Some(ms) = time_ms(Some(stamp))
    {
        record.insert("timeUnixNano".into(), json!(nanos(ms)));
        fields.remove("timestamp");
    }
    attributes.extend(fields.iter().map(|(k, v)| attribute(k, v.clone())));
    request_id
}

/// OTLP severity number and text for a log level (SPEC.md §6.3), case-insensitively.
fn severity(level: &str) -> (u8, String) {
    let number = match level.to_ascii_uppercase().as_str() {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" | "WARNING" => 13,
        "ERROR" => 17,
        "FATAL" | "CRITICAL" => 21,
        _ => 0,
    };
    (number, level.to_string())
}

impl Encoder for Logs {
    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        self.common
            .open("resourceLogs", "scopeLogs", "logRecords", out);
    }

    fn event(&mut self, event: &Event, first: bool, out: &mut Vec<u8>) -> bool {
        self.track(event);
        let record = self.record(event);
        self.scratch.clear();
        if serde_json::to_writer(&mut self.scratch, &record).is_err() {
            return false;
        }
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(&self.scratch);
        true
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        Common::close(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::otlp::tests_support::{common, encode};

    #[test]
    fn json_format_records_keep_their_fields() {
        let body = encode(&mut Logs::new(common(), false), "json-log-format.json");
        let request: Value = serde_json::from_slice(&body).unwrap();
        let records = request["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
            .as_array()
            .unwrap();
        let error = records.iter().find(|r| r["severityNumber"] == 17).unwrap();
        assert!(
            error["attributes"].to_string().contains("stackTrace"),
            "{error}"
        );
        assert!(
            error["attributes"]
                .to_string()
                .contains("faas.invocation_id"),
            "{error}"
        );
        assert!(
            records
                .iter()
                .all(|r| r["timeUnixNano"].is_string() && r["observedTimeUnixNano"].is_string())
        );
        // An object without a message (an EMF blob) is the body, whole.
        assert!(
            records
                .iter()
                .any(|r| r["body"]["kvlistValue"].to_string().contains("_aws"))
        );
    }

    #[test]
    fn text_lines_belong_to_the_current_invocation_except_on_lmi() {
        let body = encode(&mut Logs::new(common(), false), "ondemand-cold-start.json");
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(r#""stringValue":"[INFO]\t2026-03-14T09:21:07.126Z\te5935a8e-2461-4d6a-9c9b-f0437d2e85f8\tloading basket 8812 for customer c-40917""#), "{text}");
        // The X-Ray root of the invocation's platform.start is its trace.
        assert!(
            text.contains(r#""traceId":"69b528831e685f6e5413b0143f9b2a07""#),
            "{text}"
        );
        let lmi = String::from_utf8(encode(&mut Logs::new(common(), true), "lmi.json")).unwrap();
        let function_records = lmi
            .matches(r#""lambda.log.type","value":{"stringValue":"function"}"#)
            .count();
        assert!(function_records > 0);
    }
}
