//! The plain HTTP output: batches of events as NDJSON, one event per line, as received
//! (whitespace removed), `Content-Type: application/x-ndjson`.

use crate::sinks::Encoder;
use crate::telemetry::batch::Event;
use crate::telemetry::text::compact_into;

/// NDJSON request bodies.
pub struct Ndjson;

impl Encoder for Ndjson {
    fn content_type(&self) -> &'static str {
        "application/x-ndjson"
    }

    fn event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        compact_into(event.raw, out);
        out.push(b'\n');
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::batch::parse;

    #[test]
    fn one_compact_event_per_line() {
        let parsed = parse(br#"[{"time": "t", "type": "function", "record": "a\n"}, {"time":"t","type":"x","record":{ "k" : 1 }}]"#.to_vec());
        let mut out = Vec::new();
        for event in parsed.batch.events() {
            assert!(Ndjson.event(&event, &mut out));
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"time\":\"t\",\"type\":\"function\",\"record\":\"a\\n\"}\n{\"time\":\"t\",\"type\":\"x\",\"record\":{\"k\":1}}\n"
        );
    }
}
