//! A POST body parsed into events that borrow from it.
//!
//! A 256 KiB batch parsed into `serde_json::Value` costs several times its size, so a [`Batch`]
//! keeps the body as one `String` and, per event, where its pieces sit in it (36 bytes an
//! event). Records are read lazily, by whoever needs them, into the lenient types of `record`.
//!
//! What cannot be read is counted, never fatal, and costs only itself (SPEC.md §5, trap 5):
//! - a body that is not UTF-8 is repaired (U+FFFD) and its events kept;
//! - trailing garbage after the array, or a body cut short, keeps the complete events before it;
//! - a body that is not a JSON array is dropped whole;
//! - an element that is not an object with a string `type` and a `record` is dropped alone.
//!
//! Unknown event types are kept as [`Kind::Other`] and relayed raw; unknown fields stay in the raw
//! text, which is what the JSON output prints.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::record::{Lenient, LogRecord, PlatformRecord};

/// The event types we know, plus everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    InitStart,
    InitRuntimeDone,
    InitReport,
    RestoreStart,
    RestoreRuntimeDone,
    RestoreReport,
    Start,
    RuntimeDone,
    Report,
    /// `platform.extension`: an extension's state during Init.
    ExtensionState,
    TelemetrySubscription,
    LogsDropped,
    /// A `function` log record.
    Function,
    /// An `extension` log record (any extension's stdout/stderr, ours included).
    Extension,
    /// Anything else, relayed as received.
    Other,
}

impl Kind {
    fn of(type_name: &str) -> Kind {
        match type_name {
            "platform.initStart" => Kind::InitStart,
            "platform.initRuntimeDone" => Kind::InitRuntimeDone,
            "platform.initReport" => Kind::InitReport,
            "platform.restoreStart" => Kind::RestoreStart,
            "platform.restoreRuntimeDone" => Kind::RestoreRuntimeDone,
            "platform.restoreReport" => Kind::RestoreReport,
            "platform.start" => Kind::Start,
            "platform.runtimeDone" => Kind::RuntimeDone,
            "platform.report" => Kind::Report,
            "platform.extension" => Kind::ExtensionState,
            "platform.telemetrySubscription" => Kind::TelemetrySubscription,
            "platform.logsDropped" => Kind::LogsDropped,
            "function" => Kind::Function,
            "extension" => Kind::Extension,
            _ => Kind::Other,
        }
    }

    /// `function` or `extension`: the record is a log line, not a platform record.
    pub fn is_log(self) -> bool {
        matches!(self, Kind::Function | Kind::Extension)
    }
}

/// A piece of the body: offset and length. `u32` halves a slot against `Range<usize>`: a body
/// is capped far below 4 GiB, and 125k tiny events in one POST cost 36 bytes each, not 80.
#[derive(Debug, Clone, Copy, Default)]
struct Piece {
    start: u32,
    len: u32,
}

/// Where one readable event sits in its batch's body.
#[derive(Debug, Clone)]
struct Slot {
    raw: Piece,
    /// Empty when the event has no usable `time` (no JSON value is empty text).
    time: Piece,
    type_name: Piece,
    record: Piece,
    kind: Kind,
}

/// One POST body and the events that could be read from it, in order.
#[derive(Debug, Default)]
pub struct Batch {
    body: String,
    slots: Vec<Slot>,
}

/// What was wrong with a body as a whole; each is counted as one malformed POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyProblem {
    /// Bytes that are not UTF-8 were replaced; the events were kept.
    InvalidUtf8,
    /// Empty, not JSON, or JSON but not an array: nothing kept.
    NotAnArray(String),
    /// The array is cut short or followed by other bytes; complete events before that were kept.
    Damaged(String),
}

impl fmt::Display for BodyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyProblem::InvalidUtf8 => {
                write!(f, "body is not valid UTF-8 (repaired, events kept)")
            }
            BodyProblem::NotAnArray(why) => write!(f, "body is not a JSON array of events: {why}"),
            BodyProblem::Damaged(why) => {
                write!(
                    f,
                    "body is not one well-formed JSON array (events before the damage kept): {why}"
                )
            }
        }
    }
}

/// The outcome of parsing one POST body.
#[derive(Debug, Default)]
pub struct Parsed {
    pub batch: Batch,
    pub problem: Option<BodyProblem>,
    /// Array elements that were not readable events.
    pub bad_events: usize,
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(borrow, default)]
    time: Option<&'a RawValue>,
    #[serde(rename = "type", borrow)]
    type_name: &'a RawValue,
    #[serde(borrow)]
    record: &'a RawValue,
}

/// Reads array elements into slots as they are parsed, until the array ends or one fails to
/// parse; no list of elements is built first.
struct Elements<'v> {
    base: usize,
    slots: &'v mut Vec<Slot>,
    bad_events: &'v mut usize,
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of events")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<&'de RawValue>()? {
            match read_slot(element.get(), self.base) {
                Some(slot) => self.slots.push(slot),
                None => *self.bad_events += 1,
            }
        }
        Ok(())
    }
}

/// Parses a POST body. Never fails: problems are reported in [`Parsed`].
pub fn parse(body: Vec<u8>) -> Parsed {
    let (body, mut problem) = match String::from_utf8(body) {
        Ok(body) => (body, None),
        Err(e) => (
            String::from_utf8_lossy(e.as_bytes()).into_owned(),
            Some(BodyProblem::InvalidUtf8),
        ),
    };
    let mut slots = Vec::new();
    let mut bad_events = 0;
    let mut deserializer = serde_json::Deserializer::from_str(&body);
    let elements = Elements {
        base: body.as_ptr() as usize,
        slots: &mut slots,
        bad_events: &mut bad_events,
    };
    let outcome = elements
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    if let Err(e) = outcome {
        problem = Some(if body.trim_start().starts_with('[') {
            BodyProblem::Damaged(e.to_string())
        } else {
            BodyProblem::NotAnArray(e.to_string())
        });
    }
    // The slots live as long as the batch: give back what doubling left unused.
    slots.shrink_to_fit();
    Parsed {
        batch: Batch { body, slots },
        problem,
        bad_events,
    }
}

/// Where `part`, a slice of the body starting at address `base`, sits.
fn piece(part: &str, base: usize) -> Option<Piece> {
    let start = (part.as_ptr() as usize).checked_sub(base)?;
    Some(Piece {
        start: u32::try_from(start).ok()?,
        len: u32::try_from(part.len()).ok()?,
    })
}

fn read_slot(raw: &str, base: usize) -> Option<Slot> {
    let wire: WireEvent = serde_json::from_str(raw).ok()?;
    let type_name: Cow<str> = serde_json::from_str(wire.type_name.get()).ok()?;
    let time = wire
        .time
        .map(RawValue::get)
        .filter(|t| t.starts_with('"') || t.starts_with(|c: char| c.is_ascii_digit()));
    Some(Slot {
        raw: piece(raw, base)?,
        time: match time {
            Some(t) => piece(t, base)?,
            None => Piece::default(),
        },
        type_name: piece(wire.type_name.get(), base)?,
        record: piece(wire.record.get(), base)?,
        kind: Kind::of(&type_name),
    })
}

impl Batch {
    /// Roughly the memory this batch holds, for the backlog limit.
    pub fn footprint(&self) -> usize {
        self.body.capacity() + self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    /// Number of readable events.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The events, in the order the platform sent them.
    pub fn events(&self) -> impl Iterator<Item = Event<'_>> {
        self.slots.iter().map(|slot| self.event_at(slot))
    }

    /// Event `index`, in O(1): outputs keep indices of the events they relay.
    pub fn get(&self, index: usize) -> Option<Event<'_>> {
        self.slots.get(index).map(|slot| self.event_at(slot))
    }

    fn event_at(&self, slot: &Slot) -> Event<'_> {
        let text = |p: Piece| {
            let start = p.start as usize;
            self.body
                .get(start..start + p.len as usize)
                .unwrap_or_default()
        };
        Event {
            raw: text(slot.raw),
            time: (slot.time.len > 0).then(|| text(slot.time)),
            type_json: text(slot.type_name),
            record: text(slot.record),
            kind: slot.kind,
        }
    }
}

/// Who is to see an event: the outputs of records (stdout, OTLP logs, NDJSON, Firehose), of
/// spans (OTLP traces) and of metrics (EMF, OTLP metrics). Sampling and the dropped types
/// narrow it; metrics see every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audience(u8);

impl Audience {
    pub const RECORDS: Audience = Audience(1);
    pub const SPANS: Audience = Audience(2);
    pub const METRICS: Audience = Audience(4);
    pub const ALL: Audience = Audience(7);

    /// Without the outputs in `other`.
    pub fn without(self, other: Audience) -> Audience {
        Audience(self.0 & !other.0)
    }

    /// Whether any output in `other` is in this audience.
    pub fn reaches(self, other: Audience) -> bool {
        self.0 & other.0 != 0
    }
}

/// An event of a batch, by index, and its audience, in four bytes: the delivery buffer keeps
/// one per buffered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick(u32);

impl Pick {
    /// Index bits; a body is capped far below 2^29 events.
    const INDEX: u32 = (1 << 29) - 1;

    pub fn new(index: u32, audience: Audience) -> Pick {
        Pick((index & Pick::INDEX) | (u32::from(audience.0) << 29))
    }

    /// Seen by every output.
    pub fn all(index: u32) -> Pick {
        Pick::new(index, Audience::ALL)
    }

    pub fn index(self) -> usize {
        (self.0 & Pick::INDEX) as usize
    }

    pub fn audience(self) -> Audience {
        Audience((self.0 >> 29) as u8)
    }
}

/// A batch made of events copied out of others, each record kept or replaced: what a held
/// invocation's events are kept in, and what redaction makes of a batch.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    batch: Batch,
}

impl BatchBuilder {
    /// Appends event `index` of `from`, with `record` in place of its record if given.
    pub fn push(&mut self, from: &Batch, index: usize, record: Option<&str>) {
        let Some(slot) = from.slots.get(index) else {
            return;
        };
        let text = |p: Piece| {
            let start = p.start as usize;
            from.body
                .get(start..start + p.len as usize)
                .unwrap_or_default()
        };
        let body = &mut self.batch.body;
        let Ok(base) = u32::try_from(body.len()) else {
            return;
        };
        let raw = slot.raw;
        let old = slot.record;
        let (record, grew) = match record {
            Some(r) => (r, r.len() as i64 - i64::from(old.len)),
            None => (text(old), 0),
        };
        let before = Piece {
            start: raw.start,
            len: old.start - raw.start,
        };
        let after_start = old.start + old.len;
        let after = Piece {
            start: after_start,
            len: (raw.start + raw.len).saturating_sub(after_start),
        };
        body.push_str(text(before));
        body.push_str(record);
        body.push_str(text(after));
        // Pieces keep their place relative to the event; those after the record move by as
        // much as it grew.
        let moved = |p: Piece| -> Piece {
            let offset = i64::from(p.start) - i64::from(raw.start);
            let offset = if p.start >= after_start {
                offset + grew
            } else {
                offset
            };
            Piece {
                start: base.saturating_add(u32::try_from(offset).unwrap_or(0)),
                len: p.len,
            }
        };
        let new_len = u32::try_from(i64::from(raw.len) + grew).unwrap_or(0);
        self.batch.slots.push(Slot {
            raw: Piece {
                start: base,
                len: new_len,
            },
            time: if slot.time.len > 0 {
                moved(slot.time)
            } else {
                Piece::default()
            },
            type_name: moved(slot.type_name),
            record: Piece {
                start: base + (old.start - raw.start),
                len: u32::try_from(record.len()).unwrap_or(0),
            },
            kind: slot.kind,
        });
    }

    /// Bytes of event text held.
    pub fn bytes(&self) -> usize {
        self.batch.body.len()
    }

    pub fn finish(mut self) -> Batch {
        self.batch.body.shrink_to_fit();
        self.batch.slots.shrink_to_fit();
        self.batch
    }
}

/// One event, borrowed from its batch. Every `&str` here is raw JSON text.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The whole event as received.
    pub raw: &'a str,
    /// `time` as a JSON string or number, if it was one.
    pub time: Option<&'a str>,
    /// `type` as a JSON string.
    pub type_json: &'a str,
    /// `record`, any JSON value.
    pub record: &'a str,
    pub kind: Kind,
}

impl<'a> Event<'a> {
    /// The event type as text (escapes, if any, left as sent).
    pub fn type_name(&self) -> &'a str {
        unquote(self.type_json)
    }

    /// The time as sent (a number is epoch milliseconds), if any.
    pub fn time_text(&self) -> Option<&'a str> {
        self.time.map(unquote)
    }

    /// `record.requestId`, read without parsing the rest of the record.
    pub fn request_id(&self) -> Option<Cow<'a, str>> {
        #[derive(Deserialize)]
        struct RequestId<'a> {
            #[serde(rename = "requestId", borrow, default)]
            request_id: Lenient<Cow<'a, str>>,
        }
        if self.kind.is_log() {
            return None;
        }
        // Lambda writes it first, unescaped: read it as it stands when it does.
        let ws = |s: &'a str| s.trim_start_matches([' ', '\t', '\n', '\r']);
        if let Some(rest) = self.record.strip_prefix('{').map(ws)
            && let Some(rest) = rest.strip_prefix(r#""requestId""#).map(ws)
            && let Some(rest) = rest.strip_prefix(':').map(ws)
            && let Some(rest) = rest.strip_prefix('"')
            && let Some((id, _)) = rest.split_once('"')
            && !id.contains('\\')
        {
            return Some(Cow::Borrowed(id));
        }
        let record: RequestId<'a> = serde_json::from_str(self.record).ok()?;
        record.request_id.0
    }

    /// The platform record's fields; all `None` for records that are not objects.
    pub fn platform(&self) -> PlatformRecord<'a> {
        if self.kind.is_log() {
            return PlatformRecord::default();
        }
        serde_json::from_str(self.record).unwrap_or_default()
    }

    /// The record as a log line, for `function`/`extension` events.
    pub fn log_record(&self) -> LogRecord<'a> {
        if self.record.starts_with('"') {
            LogRecord::Text(self.record)
        } else {
            LogRecord::Json(self.record)
        }
    }
}

fn unquote(json: &str) -> &str {
    json.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn array_len(bytes: &[u8]) -> usize {
        let value: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        value.as_array().unwrap().len()
    }

    #[test]
    fn every_well_formed_fixture_is_read_whole() {
        for name in [
            "ondemand-cold-start.json",
            "ondemand-warm-invokes.json",
            "json-log-format.json",
            "lmi.json",
            "snapstart-restore.json",
            "logs-dropped.json",
            "edge-cases.json",
        ] {
            let bytes = fixture(name);
            let expected = array_len(&bytes);
            let parsed = parse(bytes);
            assert_eq!(parsed.problem, None, "{name}");
            assert_eq!(parsed.bad_events, 0, "{name}");
            assert_eq!(parsed.batch.len(), expected, "{name}");
            for event in parsed.batch.events() {
                let raw: serde_json::Value = serde_json::from_str(event.raw).unwrap();
                assert_eq!(raw["type"].as_str(), Some(event.type_name()), "{name}");
                let record: serde_json::Value = serde_json::from_str(event.record).unwrap();
                assert_eq!(raw["record"], record, "{name}");
            }
        }
    }

    #[test]
    fn known_types_are_typed_and_unknown_ones_kept() {
        let parsed = parse(fixture("edge-cases.json"));
        let kinds: Vec<(Kind, &str)> = parsed
            .batch
            .events()
            .map(|e| (e.kind, e.type_name()))
            .collect();
        assert!(
            kinds
                .iter()
                .any(|(k, t)| *k == Kind::Other && *t == "platform.fault")
        );
        for (kind, name) in &kinds {
            if *kind == Kind::Other {
                assert!(!name.starts_with("platform.report"), "{name}");
            }
        }
    }

    #[test]
    fn cold_start_records_are_read() {
        let parsed = parse(fixture("ondemand-cold-start.json"));
        let report = parsed
            .batch
            .events()
            .find(|e| e.kind == Kind::Report)
            .unwrap();
        let record = report.platform();
        assert_eq!(
            record.request_id.0.as_deref(),
            Some("e5935a8e-2461-4d6a-9c9b-f0437d2e85f8")
        );
        assert_eq!(record.status.0.as_deref(), Some("success"));
        let metrics = record.metrics.0.unwrap();
        assert!(metrics.duration_ms.0.is_some());
        assert!(metrics.init_duration_ms.0.is_some());
        assert!(metrics.billed_duration_ms.whole().is_some());
        let start = parsed
            .batch
            .events()
            .find(|e| e.kind == Kind::Start)
            .unwrap()
            .platform();
        assert!(
            start
                .tracing
                .0
                .unwrap()
                .value
                .0
                .unwrap()
                .starts_with("Root=1-")
        );
        let init = parsed
            .batch
            .events()
            .find(|e| e.kind == Kind::InitStart)
            .unwrap()
            .platform();
        assert_eq!(init.initialization_type.0.as_deref(), Some("on-demand"));
    }

    #[test]
    fn lmi_sparse_report_has_only_duration() {
        let parsed = parse(fixture("lmi.json"));
        let mut reports = 0;
        for event in parsed.batch.events().filter(|e| e.kind == Kind::Report) {
            reports += 1;
            let record = event.platform();
            assert!(record.request_id.0.is_some());
            let metrics = record.metrics.0.unwrap();
            assert!(metrics.duration_ms.0.is_some());
            assert_eq!(metrics.billed_duration_ms.0, None);
            assert_eq!(metrics.memory_size_mb.0, None);
        }
        assert!(reports >= 2);
    }

    #[test]
    fn logs_dropped_counts_are_read() {
        let parsed = parse(fixture("logs-dropped.json"));
        let total: u64 = parsed
            .batch
            .events()
            .filter(|e| e.kind == Kind::LogsDropped)
            .filter_map(|e| e.platform().dropped_records.whole())
            .sum();
        assert!(total > 0);
    }

    #[test]
    fn json_format_records_stay_objects_and_text_stays_strings() {
        let parsed = parse(fixture("json-log-format.json"));
        let mut objects = 0;
        let mut strings = 0;
        for event in parsed.batch.events().filter(|e| e.kind.is_log()) {
            match event.log_record() {
                LogRecord::Json(raw) => {
                    objects += 1;
                    assert!(!raw.starts_with('"'));
                }
                LogRecord::Text(raw) => {
                    strings += 1;
                    assert!(raw.starts_with('"'));
                }
            }
        }
        assert!(objects > 0 && strings > 0);
    }

    #[test]
    fn malformed_bodies_are_counted_and_keep_what_they_can() {
        // (file, problem kind, events kept, bad events)
        let cases: &[(&str, &str, usize, usize)] = &[
            ("empty.txt", "not-array", 0, 0),
            ("invalid-utf8.txt", "utf8", 1, 0),
            ("ndjson-not-array.txt", "not-array", 0, 0),
            ("not-an-array.txt", "not-array", 0, 0),
            ("trailing-garbage.txt", "damaged", 1, 0),
            ("truncated.txt", "damaged", 0, 0),
            ("wrong-types.txt", "none", 3, 4),
        ];
        for (name, problem, kept, bad) in cases {
            let parsed = parse(fixture(&format!("malformed/{name}")));
            let got = match &parsed.problem {
                None => "none",
                Some(BodyProblem::InvalidUtf8) => "utf8",
                Some(BodyProblem::NotAnArray(_)) => "not-array",
                Some(BodyProblem::Damaged(_)) => "damaged",
            };
            assert_eq!(got, *problem, "{name}: {:?}", parsed.problem);
            assert_eq!(parsed.batch.len(), *kept, "{name}");
            assert_eq!(parsed.bad_events, *bad, "{name}");
        }
    }

    #[test]
    fn wrong_types_keeps_its_well_formed_siblings() {
        let parsed = parse(fixture("malformed/wrong-types.txt"));
        let events: Vec<Event> = parsed.batch.events().collect();
        assert_eq!(events[0].kind, Kind::Start);
        assert_eq!(events[0].time_text(), Some("1773480067124"));
        // A report whose record is a string: kept and relayed, its fields simply absent.
        assert_eq!(events[1].kind, Kind::Report);
        assert_eq!(events[1].platform().request_id.0, None);
        // A report with a string duration and a negative billed duration.
        let metrics = events[2].platform().metrics.0.unwrap();
        assert_eq!(metrics.duration_ms.0, None);
        assert_eq!(metrics.billed_duration_ms.whole(), None);
    }

    #[test]
    fn a_cut_array_keeps_the_complete_events_before_the_cut() {
        let body =
            br#"[{"time":"t","type":"function","record":"a\n"},{"time":"t","type":"function","rec"#;
        let parsed = parse(body.to_vec());
        assert!(matches!(parsed.problem, Some(BodyProblem::Damaged(_))));
        assert_eq!(parsed.batch.len(), 1);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut body = String::from("[{\"time\":\"t\",\"type\":\"function\",\"record\":");
        body.push_str(&"[".repeat(100_000));
        let parsed = parse(body.into_bytes());
        assert!(parsed.problem.is_some());
        assert_eq!(parsed.batch.len(), 0);
    }

    #[test]
    fn odd_records_are_kept() {
        let body = br#"[{"type":"function","record":null},{"time":"t","type":"extension","record":[1,2]},{"time":{},"type":"x.y","record":true}]"#;
        let parsed = parse(body.to_vec());
        assert_eq!(parsed.problem, None);
        assert_eq!(parsed.bad_events, 0);
        let events: Vec<Event> = parsed.batch.events().collect();
        assert_eq!(events[0].log_record(), LogRecord::Json("null"));
        assert_eq!(events[0].time, None);
        assert_eq!(events[1].log_record(), LogRecord::Json("[1,2]"));
        assert_eq!(events[2].kind, Kind::Other);
        assert_eq!(events[2].time, None);
    }

    #[test]
    fn a_built_batch_carries_copied_and_replaced_events() {
        let parsed = parse(
            br#"[{"time":"t1","type":"function","record":"a\n"},
                {"record":{"k":1},"type":"platform.start","time":"t2","x":1},
                {"type":"extension","record":"keep"}]"#
                .to_vec(),
        );
        let mut b = BatchBuilder::default();
        b.push(&parsed.batch, 1, Some(r#"{"k":"longer value"}"#));
        b.push(&parsed.batch, 0, None);
        b.push(&parsed.batch, 2, Some("\"\""));
        b.push(&parsed.batch, 7, None);
        let built = b.finish();
        assert_eq!(built.len(), 3);
        let events: Vec<Event> = built.events().collect();
        assert_eq!(events[0].record, r#"{"k":"longer value"}"#);
        assert_eq!(events[0].time_text(), Some("t2"));
        assert_eq!(events[0].type_name(), "platform.start");
        assert_eq!(events[0].kind, Kind::Start);
        let raw: serde_json::Value = serde_json::from_str(events[0].raw).unwrap();
        assert_eq!(raw["x"], 1);
        assert_eq!(raw["record"]["k"], "longer value");
        assert_eq!(
            events[1].raw,
            r#"{"time":"t1","type":"function","record":"a\n"}"#
        );
        assert_eq!(events[2].record, "\"\"");
        assert_eq!(events[2].type_name(), "extension");
    }

    #[test]
    fn picks_keep_index_and_audience() {
        let p = Pick::new(12345, Audience::ALL.without(Audience::RECORDS));
        assert_eq!(p.index(), 12345);
        assert!(p.audience().reaches(Audience::METRICS));
        assert!(!p.audience().reaches(Audience::RECORDS));
        assert_eq!(Pick::all(0).audience(), Audience::ALL);
    }
}
