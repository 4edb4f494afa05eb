//! A strict reader of the OTLP protobuf messages we write, for tests (the fuzzer above all):
//! every field must be one the message has, with its wire type, every length must nest, and
//! every string must be UTF-8. The official messages check the same in `tests/validate`.

#[derive(Clone, Copy)]
enum Kind {
    Message(&'static Schema),
    Text,
    Bytes,
    Varint,
    Fixed64,
    Packed64,
}
use Kind::*;

type Schema = [(u32, Kind)];

static ANY_VALUE: [(u32, Kind); 7] = [
    (1, Text),
    (2, Varint),
    (3, Varint),
    (4, Fixed64),
    (5, Message(&LIST)),
    (6, Message(&KV_LIST)),
    (7, Bytes),
];
static LIST: [(u32, Kind); 1] = [(1, Message(&ANY_VALUE))];
static KV_LIST: [(u32, Kind); 1] = [(1, Message(&KEY_VALUE))];
static KEY_VALUE: [(u32, Kind); 2] = [(1, Text), (2, Message(&ANY_VALUE))];
static RESOURCE: [(u32, Kind); 2] = [(1, Message(&KEY_VALUE)), (2, Varint)];
static SCOPE: [(u32, Kind); 4] = [(1, Text), (2, Text), (3, Message(&KEY_VALUE)), (4, Varint)];
static LOG_RECORD: [(u32, Kind); 8] = [
    (1, Fixed64),
    (11, Fixed64),
    (2, Varint),
    (3, Text),
    (5, Message(&ANY_VALUE)),
    (6, Message(&KEY_VALUE)),
    (9, Bytes),
    (10, Bytes),
];
static SPAN: [(u32, Kind); 9] = [
    (1, Bytes),
    (2, Bytes),
    (4, Bytes),
    (5, Text),
    (6, Varint),
    (7, Fixed64),
    (8, Fixed64),
    (9, Message(&KEY_VALUE)),
    (15, Message(&STATUS)),
];
static STATUS: [(u32, Kind); 2] = [(2, Text), (3, Varint)];
static METRIC: [(u32, Kind); 4] = [
    (1, Text),
    (3, Text),
    (7, Message(&SUM)),
    (9, Message(&HISTOGRAM)),
];
static SUM: [(u32, Kind); 3] = [(1, Message(&NUMBER_POINT)), (2, Varint), (3, Varint)];
static HISTOGRAM: [(u32, Kind); 2] = [(1, Message(&HISTOGRAM_POINT)), (2, Varint)];
static NUMBER_POINT: [(u32, Kind); 3] = [(2, Fixed64), (3, Fixed64), (6, Fixed64)];
static HISTOGRAM_POINT: [(u32, Kind); 8] = [
    (2, Fixed64),
    (3, Fixed64),
    (4, Fixed64),
    (5, Fixed64),
    (6, Packed64),
    (7, Packed64),
    (11, Fixed64),
    (12, Fixed64),
];

/// The export request of a signal, by the name its output has.
fn request(signal: &str) -> &'static Schema {
    static LOGS: [(u32, Kind); 1] = [(1, Message(&RESOURCE_LOGS))];
    static RESOURCE_LOGS: [(u32, Kind); 2] = [(1, Message(&RESOURCE)), (2, Message(&SCOPE_LOGS))];
    static SCOPE_LOGS: [(u32, Kind); 2] = [(1, Message(&SCOPE)), (2, Message(&LOG_RECORD))];
    static TRACES: [(u32, Kind); 1] = [(1, Message(&RESOURCE_SPANS))];
    static RESOURCE_SPANS: [(u32, Kind); 2] = [(1, Message(&RESOURCE)), (2, Message(&SCOPE_SPANS))];
    static SCOPE_SPANS: [(u32, Kind); 2] = [(1, Message(&SCOPE)), (2, Message(&SPAN))];
    static METRICS: [(u32, Kind); 1] = [(1, Message(&RESOURCE_METRICS))];
    static RESOURCE_METRICS: [(u32, Kind); 2] =
        [(1, Message(&RESOURCE)), (2, Message(&SCOPE_METRICS))];
    static SCOPE_METRICS: [(u32, Kind); 2] = [(1, Message(&SCOPE)), (2, Message(&METRIC))];
    match signal {
        "otlp-logs" => &LOGS,
        "otlp-traces" => &TRACES,
        _ => &METRICS,
    }
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let b = *bytes.get(*at).ok_or("varint runs past the end")?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift.min(63);
        if b < 0x80 {
            return Ok(value);
        }
    }
    Err("varint longer than ten bytes".into())
}

/// Checks `bytes` as the message `schema`.
fn message(bytes: &[u8], schema: &Schema) -> Result<(), String> {
    let mut at = 0;
    while at < bytes.len() {
        let tag = varint(bytes, &mut at)?;
        let (number, wire_type) = ((tag >> 3) as u32, tag & 7);
        let kind = schema
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, k)| *k)
            .ok_or(format!("field {number} is not in the message"))?;
        match (kind, wire_type) {
            (Varint, 0) => {
                varint(bytes, &mut at)?;
            }
            (Fixed64, 1) => {
                at += 8;
                if at > bytes.len() {
                    return Err(format!("field {number}: fixed64 past the end"));
                }
            }
            (Message(&_) | Text | Bytes | Packed64, 2) => {
                let len = usize::try_from(varint(bytes, &mut at)?).map_err(|e| e.to_string())?;
                let content = bytes
                    .get(at..at + len)
                    .ok_or(format!("field {number}: length {len} past the end"))?;
                at += len;
                match kind {
                    Message(inner) => {
                        message(content, inner).map_err(|e| format!("in field {number}: {e}"))?;
                    }
                    Text => {
                        std::str::from_utf8(content).map_err(|e| format!("field {number}: {e}"))?;
                    }
                    Packed64 if len % 8 != 0 => {
                        return Err(format!("field {number}: packed length {len}"));
                    }
                    _ => {}
                }
            }
            _ => return Err(format!("field {number}: wire type {wire_type}")),
        }
    }
    Ok(())
}

/// Checks an export request of `signal` (`otlp-logs`, `otlp-metrics`, `otlp-traces`).
pub fn check(signal: &str, bytes: &[u8]) -> Result<(), String> {
    message(bytes, request(signal))
}

#[test]
fn the_checker_refuses_what_is_wrong() {
    assert!(check("otlp-logs", &[0x0a, 5, 0]).is_err(), "past the end");
    assert!(check("otlp-logs", &[0x10, 1]).is_err(), "wrong wire type");
    assert!(check("otlp-logs", &[0x1a, 0]).is_err(), "no such field");
    assert!(check("otlp-logs", &[0x0a, 0]).is_ok());
}
