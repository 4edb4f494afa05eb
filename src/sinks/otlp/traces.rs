//! OTLP traces from platform timing: an init span (`platform.initStart` → `initReport`) and one
//! span per invocation (`platform.start` → `platform.report`) with a child for each span the
//! platform reports (`responseLatency`, `responseDuration`, `runtimeOverhead` from runtimeDone,
//! `extensionOverhead` from the report). An invocation with an X-Ray trace header continues
//! that trace: X-Ray's root is the trace id and its parent the parent span. Without a start time
//! there is no span: we never invent timing.

use super::any_value::{bool_attribute, string_attribute};
use super::wire::{Field, State, Writer};
use super::{
    Common, Envelope, SpanId, TraceId, end_after, nanos, span_id, time_ms, trace_id, xray,
};
use crate::by_request::{ByRequest, PENDING_CAP};
use crate::sinks::Encoder;
use crate::telemetry::batch::{Event, Kind};
use crate::telemetry::record::PlatformRecord;

const SPAN_KIND_INTERNAL: u32 = 1;
const SPAN_KIND_SERVER: u32 = 2;
const STATUS_ERROR: u32 = 2;

const ENVELOPE: Envelope = Envelope {
    resources: Field("resourceSpans", 1),
    scopes: Field("scopeSpans", 2),
    items: Field("spans", 2),
};
const TRACE_ID: Field = Field("traceId", 1);
const SPAN_ID: Field = Field("spanId", 2);
const PARENT_SPAN_ID: Field = Field("parentSpanId", 4);
const NAME: Field = Field("name", 5);
const KIND: Field = Field("kind", 6);
const START_TIME: Field = Field("startTimeUnixNano", 7);
const END_TIME: Field = Field("endTimeUnixNano", 8);
const ATTRIBUTES: Field = Field("attributes", 9);
const STATUS: Field = Field("status", 15);
const STATUS_MESSAGE: Field = Field("message", 2);
const STATUS_CODE: Field = Field("code", 3);

struct Open {
    start_ms: i64,
    trace: TraceId,
    parent: Option<SpanId>,
    children: Vec<(String, i64, f64)>,
}

/// A span attribute.
enum Attribute {
    Text(&'static str, String),
    Flag(&'static str, bool),
}

/// One finished span, as it is written.
struct Span {
    trace: TraceId,
    id: SpanId,
    parent: Option<SpanId>,
    name: String,
    kind: u32,
    start_ms: i64,
    end_ms: i64,
    attributes: Vec<Attribute>,
    /// An error status, with its message.
    error: Option<String>,
}

impl Span {
    fn write(&self, w: &mut Writer) {
        w.item(|w| {
            w.id(TRACE_ID, &self.trace);
            w.id(SPAN_ID, &self.id);
            if let Some(parent) = &self.parent {
                w.id(PARENT_SPAN_ID, parent);
            }
            w.string(NAME, &self.name);
            w.number(KIND, self.kind);
            w.fixed64(START_TIME, nanos(self.start_ms));
            w.fixed64(END_TIME, nanos(self.end_ms));
            if !self.attributes.is_empty() {
                w.list(ATTRIBUTES, |w| {
                    for attribute in &self.attributes {
                        match attribute {
                            Attribute::Text(key, text) => string_attribute(key, text, w),
                            Attribute::Flag(key, flag) => bool_attribute(key, *flag, w),
                        }
                    }
                });
            }
            if let Some(message) = &self.error {
                w.message(STATUS, |w| {
                    w.string(STATUS_MESSAGE, message);
                    w.number(STATUS_CODE, STATUS_ERROR);
                });
            }
        });
    }
}

/// The traces signal's encoder.
pub struct Traces {
    common: Common,
    request: State,
    open: ByRequest<Open>,
    /// X-Ray headers of INVOKEs, for a `platform.start` that carries none.
    invoked: ByRequest<String>,
    init_start_ms: Option<i64>,
}

impl Traces {
    pub fn new(common: Common) -> Traces {
        let request = State::new(common.encoding);
        Traces {
            common,
            request,
            open: ByRequest::new(PENDING_CAP),
            invoked: ByRequest::new(PENDING_CAP),
            init_start_ms: None,
        }
    }

    /// The spans `event` completes. Only the events that make spans are read further than
    /// their type: reading a record is most of this encoder's cost.
    fn spans(&mut self, event: &Event) -> Vec<Span> {
        if !matches!(
            event.kind,
            Kind::InitStart | Kind::InitReport | Kind::Start | Kind::RuntimeDone | Kind::Report
        ) {
            return Vec::new();
        }
        let time = time_ms(event.time_text());
        if event.kind == Kind::InitStart {
            self.init_start_ms = time;
            return Vec::new();
        }
        let record = event.platform();
        match event.kind {
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

    fn invocation(&mut self, record: &PlatformRecord, time: Option<i64>) -> Vec<Span> {
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
            Attribute::Text("faas.invocation_id", id.to_string()),
            Attribute::Flag("faas.coldstart", cold),
        ];
        if let Some(error) = record.error_type.0.as_deref() {
            attributes.push(Attribute::Text("error.type", error.to_string()));
        }
        let status = record.status.0.as_deref().unwrap_or("success");
        let error = (status != "success")
            .then(|| record.error_type.0.as_deref().unwrap_or(status).to_string());
        let mut spans = vec![Span {
            trace: open.trace,
            id: own,
            parent: open.parent,
            name: self.common.function_name.clone(),
            kind: SPAN_KIND_SERVER,
            start_ms: open.start_ms,
            end_ms,
            attributes,
            error,
        }];
        for (name, start_ms, duration_ms) in open.children {
            spans.push(Span {
                trace: open.trace,
                id: span_id(&[id, &name]),
                parent: Some(own),
                name,
                kind: SPAN_KIND_INTERNAL,
                start_ms,
                end_ms: end_after(start_ms, duration_ms),
                attributes: Vec::new(),
                error: None,
            });
        }
        spans
    }

    fn init_span(&mut self, record: &PlatformRecord, time: Option<i64>) -> Option<Span> {
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
        Some(Span {
            trace: trace_id(&key),
            id: span_id(&[&key]),
            parent: None,
            name: "init".to_string(),
            kind: SPAN_KIND_INTERNAL,
            start_ms,
            end_ms,
            attributes: vec![
                Attribute::Flag("faas.coldstart", true),
                Attribute::Text("faas.init.type", kind.to_string()),
            ],
            error: None,
        })
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
        self.common.encoding.content_type()
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
        self.common.open(&ENVELOPE, &mut self.request.on(out));
    }

    fn event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        let spans = self.spans(event);
        let w = &mut self.request.on(out);
        for span in &spans {
            span.write(w);
        }
        !spans.is_empty()
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.request.on(out).end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::otlp::tests_support::{common, encode, encode_body};
    use serde_json::Value;

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
