//! OTLP logs: every event becomes a `LogRecord`.
//!
//! `function`/`extension` records (SPEC.md §6.3): a string is the body, without its trailing
//! newline; a JSON object gives its `message` (or `msg`) as the body, its `level` as severity,
//! its `requestId` as `faas.invocation_id`, and every other key as an attribute, nested values
//! kept structured; an object without a message is the body whole. Platform events have their
//! record as a structured body and their type as `event.name`. A text line carries no request
//! id, so on on-demand Lambda it is the invocation between its `platform.start` and the next
//! one; on LMI invocations overlap, so only JSON records say which is theirs.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::any_value::{self, STRING_VALUE, json_attribute, string_attribute};
use super::wire::{Field, State, Writer};
use super::{Common, Envelope, SpanId, TraceId, nanos, now_ms, span_id, time_ms, trace_id, xray};
use crate::by_request::{ByRequest, PENDING_CAP};
use crate::sinks::Encoder;
use crate::telemetry::batch::{Event, Kind};
use crate::telemetry::level::Level;
use crate::telemetry::record::LogRecord;

const ENVELOPE: Envelope = Envelope {
    resources: Field("resourceLogs", 1),
    scopes: Field("scopeLogs", 2),
    items: Field("logRecords", 2),
};
const TIME: Field = Field("timeUnixNano", 1);
const OBSERVED_TIME: Field = Field("observedTimeUnixNano", 11);
const SEVERITY_NUMBER: Field = Field("severityNumber", 2);
const SEVERITY_TEXT: Field = Field("severityText", 3);
const BODY: Field = Field("body", 5);
const ATTRIBUTES: Field = Field("attributes", 6);
const TRACE_ID: Field = Field("traceId", 9);
const SPAN_ID: Field = Field("spanId", 10);

/// The logs signal's encoder. Records are written straight into the request body (see
/// `any_value`): no JSON tree per event. A record's body and attributes are written apart
/// first, since a JSON-format record's message and fields come in any order.
pub struct Logs {
    common: Common,
    /// Lambda Managed Instances: invocations overlap, so no "current" one.
    concurrent: bool,
    current: Option<String>,
    /// Each recent invocation's trace and span ids.
    traces: ByRequest<(TraceId, SpanId)>,
    request: State,
    body: Vec<u8>,
    body_state: State,
    attributes: Vec<u8>,
    attributes_state: State,
}

/// What a JSON-format record said besides its body and attributes.
#[derive(Default)]
struct Extracted<'a> {
    message: bool,
    level: Option<Cow<'a, str>>,
    request_id: Option<Cow<'a, str>>,
    time_ms: Option<i64>,
}

impl Logs {
    pub fn new(common: Common, concurrent: bool) -> Logs {
        let encoding = common.encoding;
        Logs {
            common,
            concurrent,
            current: None,
            traces: ByRequest::new(PENDING_CAP),
            request: State::new(encoding),
            body: Vec::new(),
            body_state: State::fragment(encoding),
            attributes: Vec::new(),
            attributes_state: State::list_fragment(encoding, ATTRIBUTES),
        }
    }

    /// One `LogRecord`, appended to `out`.
    fn write_record(&mut self, event: &Event, out: &mut Vec<u8>) {
        self.body.clear();
        self.body_state.restart();
        self.attributes.clear();
        self.attributes_state.restart();
        let body = &mut self.body_state.on(&mut self.body);
        let attributes = &mut self.attributes_state.on(&mut self.attributes);
        let mut time = time_ms(event.time_text()).unwrap_or_else(now_ms);
        let mut severity = None;
        let request_id: Option<Cow<str>> = if event.kind.is_log() {
            string_attribute("lambda.log.type", event.type_name(), attributes);
            match event.log_record() {
                LogRecord::Text(json) => {
                    text_body(json, body);
                    if self.concurrent {
                        None
                    } else {
                        self.current.as_deref().map(Cow::Borrowed)
                    }
                }
                LogRecord::Json(json) => {
                    let extracted = structured(json, body, attributes);
                    time = extracted.time_ms.unwrap_or(time);
                    severity = extracted
                        .level
                        .map(|level| (severity_number(&level), level));
                    extracted.request_id
                }
            }
        } else {
            any_value::write(BODY, event.record, body);
            string_attribute("event.name", event.type_name(), attributes);
            event.request_id()
        };
        let ids = request_id.as_deref().map(|id| {
            string_attribute("faas.invocation_id", id, attributes);
            self.traces
                .get(id)
                .copied()
                .unwrap_or_else(|| (trace_id(id), span_id(&[id])))
        });
        let w = &mut self.request.on(out);
        w.item(|w| {
            w.fixed64(TIME, nanos(time));
            w.fixed64(OBSERVED_TIME, nanos(now_ms()));
            if let Some((number, text)) = &severity {
                if *number > 0 {
                    w.number(SEVERITY_NUMBER, u32::from(*number));
                }
                w.string(SEVERITY_TEXT, text);
            }
            if let Some((trace, span)) = &ids {
                w.id(TRACE_ID, trace);
                w.id(SPAN_ID, span);
            }
            w.splice_fields(&self.body);
            w.splice_list(ATTRIBUTES, &self.attributes);
        });
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
        // Derived ids are kept too: the invocation's records then find theirs at once.
        let trace = xray_trace.unwrap_or_else(|| trace_id(id));
        self.traces.insert(id, (trace, span_id(&[id])));
    }
}

/// A JSON-format record: its message is the body, its other fields attributes, and level,
/// requestId and timestamp are taken out (SPEC.md §6.3). No message: the whole object is the
/// body. Not an object: its JSON text is the body.
fn structured<'a>(json: &'a str, body: &mut Writer, attributes: &mut Writer) -> Extracted<'a> {
    let (body_mark, attributes_mark) = (body.mark(), attributes.mark());
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let read = deserializer.deserialize_map(Fields {
        body: &mut *body,
        attributes: &mut *attributes,
    });
    match read {
        Ok(extracted) if extracted.message => extracted,
        Ok(extracted) => {
            body.reset(body_mark);
            attributes.reset(attributes_mark);
            any_value::write(BODY, json, body);
            Extracted {
                request_id: extracted.request_id,
                ..Extracted::default()
            }
        }
        Err(_) => {
            body.reset(body_mark);
            attributes.reset(attributes_mark);
            any_value::string_value(BODY, json, body);
            Extracted::default()
        }
    }
}

/// A text record's JSON string literal as the body's `stringValue`, minus one trailing `\n`
/// (or `\r\n`): the line as the function wrote it. JSON copies it without unescaping.
fn text_body(json: &str, w: &mut Writer) {
    let mut inner = json.strip_suffix('"').unwrap_or(json);
    for escape in ["\\n", "\\r"] {
        if let Some(rest) = inner.strip_suffix(escape) {
            // An escape only if the backslash is not itself escaped.
            let backslashes = rest.bytes().rev().take_while(|&b| b == b'\\').count();
            if backslashes % 2 == 0 {
                inner = rest;
            }
        }
    }
    w.message(BODY, |w| w.string_literal(STRING_VALUE, inner));
}

/// Walks a JSON-format record's fields once.
struct Fields<'w, 'a, 'b> {
    body: &'w mut Writer<'a>,
    attributes: &'w mut Writer<'b>,
}

impl<'de> Visitor<'de> for Fields<'_, '_, '_> {
    type Value = Extracted<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Extracted<'de>, A::Error> {
        let mut extracted = Extracted::default();
        while let Some(key) = map.next_key_seed(any_value::Key)? {
            let raw: &'de RawValue = map.next_value()?;
            let text = || crate::telemetry::record::text(raw.get());
            match key.as_ref() {
                "message" | "msg" if !extracted.message => {
                    extracted.message = true;
                    any_value::write(BODY, raw.get(), self.body);
                    continue;
                }
                "level" if extracted.level.is_none() && text().is_some() => {
                    extracted.level = text();
                    continue;
                }
                "requestId" if extracted.request_id.is_none() && text().is_some() => {
                    extracted.request_id = text();
                    continue;
                }
                "timestamp" if extracted.time_ms.is_none() => {
                    let ms = match text() {
                        Some(stamp) => time_ms(Some(&stamp)),
                        None => raw
                            .get()
                            .parse::<f64>()
                            .ok()
                            .filter(|n| n.is_finite())
                            .map(|n| n as i64),
                    };
                    if ms.is_some() {
                        extracted.time_ms = ms;
                        continue;
                    }
                }
                _ => {}
            }
            json_attribute(&key, raw.get(), self.attributes);
        }
        Ok(extracted)
    }
}

/// OTLP severity number for a log level (SPEC.md §6.3), case-insensitively; 0 if unknown.
fn severity_number(level: &str) -> u8 {
    Level::named(level).map_or(0, Level::severity_number)
}

impl Encoder for Logs {
    fn content_type(&self) -> &'static str {
        self.common.encoding.content_type()
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        self.common.open(&ENVELOPE, &mut self.request.on(out));
    }

    fn skipped(&mut self, event: &Event) {
        // A dropped `platform.start` still tells which invocation text lines belong to.
        self.track(event);
    }

    fn event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        self.track(event);
        self.write_record(event, out);
        true
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.request.on(out).end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::otlp::tests_support::{common, encode};
    use crate::sinks::otlp::wire::Encoding;
    use serde_json::Value;

    #[test]
    fn one_trailing_line_break_is_dropped_and_nothing_else() {
        let cases = [
            (r#""line\n""#, "line"),
            (r#""line\r\n""#, "line"),
            (r#""two\nlines\n""#, "two\nlines"),
            (
                r#""ends in a backslash and n: \\n""#,
                "ends in a backslash and n: \\n",
            ),
            (r#""no break""#, "no break"),
            (r#""""#, ""),
        ];
        for (json, text) in cases {
            for encoding in [Encoding::Json, Encoding::Protobuf] {
                let mut out = Vec::new();
                let mut state = State::new(encoding);
                let mut w = state.on(&mut out);
                w.begin();
                text_body(json, &mut w);
                w.end();
                if encoding == Encoding::Json {
                    let value: Value = serde_json::from_slice(&out).unwrap();
                    assert_eq!(value["body"]["stringValue"], text, "{json}");
                } else {
                    // body { stringValue "<text>" }, every length under 128.
                    assert_eq!(&out[4..], text.as_bytes(), "{json}");
                    assert_eq!(usize::from(out[3]), text.len(), "{json}");
                }
            }
        }
    }

    #[test]
    fn levels_map_to_severity_numbers() {
        for (level, n) in [
            ("trace", 1),
            ("DEBUG", 5),
            ("Info", 9),
            ("WARNING", 13),
            ("error", 17),
            ("CRITICAL", 21),
            ("notice", 9),
            ("fail", 17),
            ("loud", 0),
        ] {
            assert_eq!(severity_number(level), n, "{level}");
        }
    }

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
