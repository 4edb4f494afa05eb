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
use crate::telemetry::batch::{Audience, Event, Kind};
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

/// An invocation between its `platform.start` and its report. Its children live in one
/// buffer of the encoder ([`Traces::children`]), so an invocation allocates nothing but its
/// entry in [`Traces::open`]: allocations made and freed per invocation made musl's allocator
/// map and unmap a page for each (its groups of a size class go back to the kernel once empty).
struct Open {
    start_ms: i64,
    trace: TraceId,
    parent: Option<SpanId>,
}

/// A platform span reported for an open invocation: its request id's hash (see
/// [`Traces::children`]), name, start and duration.
struct Child {
    owner: u64,
    name: Name,
    start_ms: i64,
    duration_ms: f64,
}

/// A child span's name: the platform's own names without a copy.
enum Name {
    Known(&'static str),
    Other(String),
}

impl Name {
    const KNOWN: [&'static str; 4] = [
        "responseLatency",
        "responseDuration",
        "runtimeOverhead",
        "extensionOverhead",
    ];

    fn of(name: &str) -> Name {
        match Name::KNOWN.iter().find(|k| **k == name) {
            Some(known) => Name::Known(known),
            None => Name::Other(name.to_string()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Name::Known(name) => name,
            Name::Other(name) => name,
        }
    }
}

/// A span attribute.
enum Attribute<'a> {
    Text(&'static str, &'a str),
    Flag(&'static str, bool),
}

/// One finished span, as it is written.
struct Span<'a> {
    trace: TraceId,
    id: SpanId,
    parent: Option<SpanId>,
    name: &'a str,
    kind: u32,
    start_ms: i64,
    end_ms: i64,
    attributes: &'a [Attribute<'a>],
    /// An error status, with its message.
    error: Option<&'a str>,
}

impl Span<'_> {
    fn write(&self, w: &mut Writer) {
        w.item(|w| {
            w.id(TRACE_ID, &self.trace);
            w.id(SPAN_ID, &self.id);
            if let Some(parent) = &self.parent {
                w.id(PARENT_SPAN_ID, parent);
            }
            w.string(NAME, self.name);
            w.number(KIND, self.kind);
            w.fixed64(START_TIME, nanos(self.start_ms));
            w.fixed64(END_TIME, nanos(self.end_ms));
            if !self.attributes.is_empty() {
                w.list(ATTRIBUTES, |w| {
                    for attribute in self.attributes {
                        match attribute {
                            Attribute::Text(key, text) => string_attribute(key, text, w),
                            Attribute::Flag(key, flag) => bool_attribute(key, *flag, w),
                        }
                    }
                });
            }
            if let Some(message) = self.error {
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
    /// The children of every open invocation, in arrival order, tagged with their owner's
    /// request id hash; taken out when the owner's report comes. Bounded with `open`: a
    /// child whose owner was evicted from it goes when it is found orphaned.
    children: Vec<Child>,
    /// The X-Ray trace and parent of INVOKEs, for a `platform.start` that carries none.
    invoked: ByRequest<(Option<TraceId>, Option<SpanId>)>,
    init_start_ms: Option<i64>,
}

/// The children kept at most: four per open invocation.
const CHILDREN_CAP: usize = PENDING_CAP * 4;

impl Traces {
    pub fn new(common: Common) -> Traces {
        let request = State::new(common.encoding);
        Traces {
            common,
            request,
            open: ByRequest::new(PENDING_CAP),
            children: Vec::new(),
            invoked: ByRequest::new(PENDING_CAP),
            init_start_ms: None,
        }
    }

    /// Writes the spans `event` completes; false if none. Only the events that make spans
    /// are read further than their type: reading a record is most of this encoder's cost.
    fn spans(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        if !matches!(
            event.kind,
            Kind::InitStart | Kind::InitReport | Kind::Start | Kind::RuntimeDone | Kind::Report
        ) {
            return false;
        }
        let time = time_ms(event.time_text());
        if event.kind == Kind::InitStart {
            self.init_start_ms = time;
            return false;
        }
        let record = event.platform();
        match event.kind {
            Kind::InitReport => self.init_span(&record, time, out),
            Kind::Start => {
                self.open_invocation(&record, time);
                false
            }
            Kind::RuntimeDone => {
                if let Some(id) = record.request_id.0.as_deref()
                    && self.open.get(id).is_some()
                {
                    self.add_children(id, &record);
                }
                false
            }
            Kind::Report => self.invocation(&record, time, out),
            _ => false,
        }
    }

    fn open_invocation(&mut self, record: &PlatformRecord, time: Option<i64>) {
        let (Some(id), Some(start_ms)) = (record.request_id.0.as_deref(), time) else {
            return;
        };
        let from_invoke = self.invoked.remove(id);
        let header = record.tracing.0.as_ref().and_then(|t| t.value.0.as_deref());
        let (xray_trace, parent) = header.map(xray).or(from_invoke).unwrap_or_default();
        let open = Open {
            start_ms,
            trace: xray_trace.unwrap_or_else(|| trace_id(id)),
            parent,
        };
        if let Some((evicted, _)) = self.open.insert(id, open) {
            let gone = owner(&evicted);
            self.children.retain(|c| c.owner != gone);
        }
    }

    /// Keeps the platform spans of `record` for open invocation `id`.
    fn add_children(&mut self, id: &str, record: &PlatformRecord) {
        let Some(spans) = &record.spans.0 else {
            return;
        };
        for span in spans {
            let (Some(name), Some(start_ms), Some(duration_ms)) = (
                span.name.0.as_deref(),
                time_ms(span.start.0.as_deref()),
                span.duration_ms.0.filter(|d| *d >= 0.0),
            ) else {
                continue;
            };
            if self.children.len() >= CHILDREN_CAP {
                // Orphans of invocations evicted without a report are the only way here.
                self.children.drain(..CHILDREN_CAP / 2);
            }
            self.children.push(Child {
                owner: owner(id),
                name: Name::of(name),
                start_ms,
                duration_ms,
            });
        }
    }

    fn invocation(
        &mut self,
        record: &PlatformRecord,
        time: Option<i64>,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(id) = record.request_id.0.as_deref() else {
            return false;
        };
        let Some(open) = self.open.remove(id) else {
            return false;
        };
        self.add_children(id, record);
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
        let error_type = record.error_type.0.as_deref();
        let with_error = [
            Attribute::Text("faas.invocation_id", id),
            Attribute::Flag("faas.coldstart", cold),
            Attribute::Text("error.type", error_type.unwrap_or_default()),
        ];
        let status = record.status.0.as_deref().unwrap_or("success");
        let w = &mut self.request.on(out);
        Span {
            trace: open.trace,
            id: own,
            parent: open.parent,
            name: &self.common.function_name,
            kind: SPAN_KIND_SERVER,
            start_ms: open.start_ms,
            end_ms,
            attributes: &with_error[..if error_type.is_some() { 3 } else { 2 }],
            error: (status != "success").then(|| error_type.unwrap_or(status)),
        }
        .write(w);
        let owner = owner(id);
        for child in self.children.iter().filter(|c| c.owner == owner) {
            let name = child.name.as_str();
            Span {
                trace: open.trace,
                id: span_id(&[id, name]),
                parent: Some(own),
                name,
                kind: SPAN_KIND_INTERNAL,
                start_ms: child.start_ms,
                end_ms: end_after(child.start_ms, child.duration_ms),
                attributes: &[],
                error: None,
            }
            .write(w);
        }
        self.children.retain(|c| c.owner != owner);
        true
    }

    fn init_span(&mut self, record: &PlatformRecord, time: Option<i64>, out: &mut Vec<u8>) -> bool {
        let Some(start_ms) = self.init_start_ms.take() else {
            return false;
        };
        let duration = record.metrics.0.as_ref().and_then(|m| m.duration_ms.0);
        let Some(end_ms) = duration.map(|d| end_after(start_ms, d)).or(time) else {
            return false;
        };
        let kind = record
            .initialization_type
            .0
            .as_deref()
            .unwrap_or("on-demand");
        let key = format!("init-{start_ms}");
        Span {
            trace: trace_id(&key),
            id: span_id(&[&key]),
            parent: None,
            name: "init",
            kind: SPAN_KIND_INTERNAL,
            start_ms,
            end_ms: end_ms.max(start_ms),
            attributes: &[
                Attribute::Flag("faas.coldstart", true),
                Attribute::Text("faas.init.type", kind),
            ],
            error: None,
        }
        .write(&mut self.request.on(out));
        true
    }
}

/// The tag of an invocation's children: a hash of its request id. Two ids that collide would
/// share children; FNV-1a over 64 bits makes that as likely as two UUIDs colliding at random.
fn owner(id: &str) -> u64 {
    super::hash(&[id])
}

impl Encoder for Traces {
    fn audience(&self) -> Audience {
        Audience::SPANS
    }

    fn content_type(&self) -> &'static str {
        self.common.encoding.content_type()
    }

    /// The events that end a span; starts and runtimeDones only feed them.
    fn carries(&self, event: &Event) -> bool {
        matches!(event.kind, Kind::Report | Kind::InitReport)
    }

    fn invoked(&mut self, request_id: &str, header: Option<&str>) {
        if let Some(header) = header {
            self.invoked.insert(request_id, xray(header));
        }
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        self.common.open(&ENVELOPE, &mut self.request.on(out));
    }

    fn event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        self.spans(event, out)
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
