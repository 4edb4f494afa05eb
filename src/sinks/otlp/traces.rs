//! OTLP traces from platform timing: an init span (`platform.initStart` → `initReport`) and one
//! span per invocation (`platform.start` → `platform.report`) with a child for each span the
//! platform reports (`responseLatency`, `responseDuration`, `runtimeOverhead` from runtimeDone,
//! `extensionOverhead` from the report). An invocation with an X-Ray trace header continues
//! that trace: X-Ray's root is the trace id and its parent the parent span. Without a start time
//! there is no span: we never invent timing.

use serde_json::{Value, json};

use super::{Common, attribute, end_after, nanos, span_id, time_ms, trace_id, xray};
use crate::by_request::{ByRequest, PENDING_CAP};
use crate::sinks::Encoder;
use crate::telemetry::batch::{Event, Kind};
use crate::telemetry::record::PlatformRecord;

/// Invocations remembered between their start and their report, at most.
const SPAN_KIND_INTERNAL: u8 = 1;
const SPAN_KIND_SERVER: u8 = 2;
const STATUS_ERROR: u8 = 2;

struct Open {
    start_ms: i64,
    trace: String,
    parent: Option<String>,
    children: Vec<(String, i64, f64)>,
}

/// The traces signal's encoder.
pub struct Traces {
    common: Common,
    open: ByRequest<Open>,
    /// X-Ray headers of INVOKEs, for a `platform.start` that carries none.
    invoked: ByRequest<String>,
    init_start_ms: Option<i64>,
}

impl Traces {
    pub fn new(common: Common) -> Traces {
        Traces {
            common,
            open: ByRequest::new(PENDING_CAP),
            invoked: ByRequest::new(PENDING_CAP),
            init_start_ms: None,
        }
    }

    /// The spans `event` completes.
    fn spans(&mut self, event: &Event) -> Vec<Value> {
        let time = time_ms(event.time_text());
        let record = event.platform();
        match event.kind {
            Kind::InitStart => {
                self.init_start_ms = time;
                Vec::new()
            }
            Kind::InitReport => self.init_span(&record, time).into_iter().collect(),
            Kind::Start => {
                self.open_invocation(&record, time);
                Vec::new()
            }
            Kind::RuntimeDone => {
                self.runtime_done(&record);
                Vec::new()
            }
            Kind::Report => self.invocation(&record, time),
            _ => Vec::new(),
        }
    }

    fn open_invocation(&mut self, record: &PlatformRecord, time: Option<i64>) {
        let (Some(id), Some(start_ms)) = (record.request_id.0.as_deref(), time) else {
            return;
        };
        let from_invoke = self.invoked.remove(id);
        let header = record.tracing.0.as_ref().and_then(|t| t.value.0.as_deref());
        let (xray_trace, parent) = header.or(from_invoke.as_deref()).map_or((None, None), xray);
        let open = Open {
            start_ms,
            trace: xray_trace.unwrap_or_else(|| trace_id(id)),
            parent,
            children: Vec::new(),
        };
        self.open.insert(id, open);
    }

    fn runtime_done(&mut self, record: &PlatformRecord) {
        let Some(open) = record
            .request_id
            .0
            .as_deref()
            .and_then(|id| self.open.get_mut(id))
        else {
            return;
        };
        open.children.extend(children(record));
    }

    fn invocation(&mut self, record: &PlatformRecord, time: Option<i64>) -> Vec<Value> {
        let Some(id) = record.request_id.0.as_deref() else {
            return Vec::new();
        };
        let Some(mut open) = self.open.remove(id) else {
            return Vec::new();
        };
        open.children.extend(children(record));
        let duration = record.metrics.0.as_ref().and_then(|m| m.duration_ms.0);
        let end_ms = time
            .or(duration.map(|d| end_after(open.start_ms, d)))
            .unwrap_or(open.start_ms)
            .max(open.start_ms);
        let own = span_id(&[id]);
        let cold = record
            .metrics
            .0
            .as_ref()
            .is_some_and(|m| m.init_duration_ms.0.is_some());
        let mut attributes = vec![
            attribute("faas.invocation_id", json!(id)),
            attribute("faas.coldstart", json!(cold)),
        ];
        if let Some(error) = record.error_type.0.as_deref() {
            attributes.push(attribute("error.type", json!(error)));
        }
        let mut span = json!({
            "traceId": open.trace,
            "spanId": own,
            "name": self.common.function_name,
            "kind": SPAN_KIND_SERVER,
            "startTimeUnixNano": nanos(open.start_ms),
            "endTimeUnixNano": nanos(end_ms),
            "attributes": attributes,
        });
        if let Some(parent) = &open.parent {
            span["parentSpanId"] = json!(parent);
        }
        let status = record.status.0.as_deref().unwrap_or("success");
        if status != "success" {
            span["status"] = json!({ "code": STATUS_ERROR, "message": record.error_type.0.as_deref().unwrap_or(status) });
        }
        let mut spans = vec![span];
        for (name, start_ms, duration_ms) in open.children {
            spans.push(json!({
                "traceId": open.trace,
                "spanId": span_id(&[id, &name]),
                "parentSpanId": own,
                "name": name,
                "kind": SPAN_KIND_INTERNAL,
                "startTimeUnixNano": nanos(start_ms),
                "endTimeUnixNano": nanos(end_after(start_ms, duration_ms)),
            }));
        }
        spans
    }

    fn init_span(&mut self, record: &PlatformRecord, time: Option<i64>) -> Option<Value> {
        let start_ms = self.init_start_ms.take()?;
        let duration = record.metrics.0.as_ref().and_then(|m| m.duration_ms.0);
        let end_ms = duration
            .map(|d| end_after(start_ms, d))
            .or(time)?
            .max(start_ms);
        let kind = record
            .initialization_type
            .0
            .as_deref()
            .unwrap_or("on-demand");
        let key = format!("init-{start_ms}");
        Some(json!({
            "traceId": trace_id(&key),
            "spanId": span_id(&[&key]),
            "name": "init",
            "kind": SPAN_KIND_INTERNAL,
            "startTimeUnixNano": nanos(start_ms),
            "endTimeUnixNano": nanos(end_ms),
            "attributes": [attribute("faas.coldstart", json!(true)), attribute("faas.init.type", json!(kind))],
        }))
    }
}

/// The platform's own spans in a record, as (name, start ms, duration ms).
fn children(record: &PlatformRecord) -> Vec<(String, i64, f64)> {
    let Some(spans) = &record.spans.0 else {
        return Vec::new();
    };
    spans
        .iter()
        .filter_map(|s| {
            let name = s.name.0.as_deref()?.to_string();
            let start = time_ms(s.start.0.as_deref())?;
            Some((name, start, s.duration_ms.0.filter(|d| *d >= 0.0)?))
        })
        .collect()
}

impl Encoder for Traces {
    fn content_type(&self) -> &'static str {
        "application/json"
    }

    /// The events that end a span; starts and runtimeDones only feed them.
    fn carries(&self, event: &Event) -> bool {
        matches!(event.kind, Kind::Report | Kind::InitReport)
    }

    fn invoked(&mut self, request_id: &str, xray: Option<&str>) {
        if let Some(header) = xray {
            self.invoked.insert(request_id, header.to_string());
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        self.common
            .open("resourceSpans", "scopeSpans", "spans", out);
    }

    fn event(&mut self, event: &Event, first: bool, out: &mut Vec<u8>) -> bool {
        let spans = self.spans(event);
        for (i, span) in spans.iter().enumerate() {
            if !(first && i == 0) {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *out, span);
        }
        !spans.is_empty()
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        Common::close(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::otlp::tests_support::{common, encode, encode_body};

    fn spans(fixture: &str) -> Vec<Value> {
        let body = encode(&mut Traces::new(common()), fixture);
        let request: Value = serde_json::from_slice(&body).unwrap();
        request["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn cold_start_gives_init_and_invocation_spans_in_the_xray_trace() {
        let spans = spans("ondemand-cold-start.json");
        let init = spans.iter().find(|s| s["name"] == "init").unwrap();
        assert!(
            init["endTimeUnixNano"].as_str().unwrap() > init["startTimeUnixNano"].as_str().unwrap()
        );
        let invocation = spans
            .iter()
            .find(|s| s["kind"] == SPAN_KIND_SERVER)
            .unwrap();
        assert_eq!(invocation["traceId"], "69b528831e685f6e5413b0143f9b2a07");
        assert_eq!(invocation["parentSpanId"], "a14af2721e102a9f");
        let children: Vec<&Value> = spans
            .iter()
            .filter(|s| s["parentSpanId"] == invocation["spanId"])
            .collect();
        let names: Vec<&str> = children.iter().filter_map(|s| s["name"].as_str()).collect();
        for name in ["responseLatency", "responseDuration", "extensionOverhead"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
    }

    #[test]
    fn the_invoke_trace_header_links_a_start_without_one() {
        let mut traces = Traces::new(common());
        traces.invoked(
            "r-1",
            Some("Root=1-5e1b4151-5ac6c58fbd3c1e4c48b2c1f0;Parent=53995c3f42cd8ad8;Sampled=1"),
        );
        let body = br#"[{"time":"2026-03-14T09:21:07.100Z","type":"platform.start","record":{"requestId":"r-1"}},
            {"time":"2026-03-14T09:21:07.200Z","type":"platform.report","record":{"requestId":"r-1","status":"success","metrics":{"durationMs":100}}}]"#;
        let out = encode_body(&mut traces, body.to_vec());
        let request: Value = serde_json::from_slice(&out).unwrap();
        let span = &request["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "5e1b41515ac6c58fbd3c1e4c48b2c1f0");
        assert_eq!(span["parentSpanId"], "53995c3f42cd8ad8");
    }

    #[test]
    fn failed_invocations_have_an_error_status() {
        let spans = spans("ondemand-warm-invokes.json");
        assert!(
            spans.iter().any(|s| s["status"]["code"] == STATUS_ERROR
                && s["status"]["message"] == "Sandbox.Timedout")
        );
        for span in &spans {
            assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
            assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
        }
    }
}
