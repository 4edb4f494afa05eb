//! Fuzzing the POST body parser and every encoder, with this toolchain (no nightly, no
//! `cargo fuzz`): a mutational fuzzer seeded with the fixtures, plus generated event arrays
//! that reach the encoders' deeper paths (known types, odd field types, extreme numbers).
//!
//! Properties: nothing panics; the parser never reports an event whose pieces are not the
//! JSON they claim to be; every encoder's output is valid JSON (NDJSON and EMF line by line,
//! OTLP bodies whole, stdout's `json` lines), and EMF lines carry `_aws`; the filter (sampling,
//! level floor, dropped types, every redaction detector) hands on every event it was given
//! exactly once, as valid JSON.
//!
//! `FUZZ_ITERATIONS` sets the inputs per target (default 2,000, what `make test` runs);
//! `make fuzz` runs 1,000,000 per target in a release build and prints the counts.

use serde::de::IgnoredAny;

use crate::config::{Config, StdoutFormat};
use crate::sinks::otlp::wire_check;
use crate::sinks::{self, stdout};
use crate::telemetry::batch::{Batch, parse};

/// xorshift64*: fast, and deterministic from its seed, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\u",
    "\\ud800",
    "null",
    "true",
    "1e300",
    "-1",
    "18446744073709551616",
    "-9223372036854775809",
    "0.5",
    "\"platform.report\"",
    "\"platform.start\"",
    "\"function\"",
    "\"extension\"",
    "\"record\"",
    "\"type\"",
    "\"time\"",
    "\"requestId\"",
    "\"metrics\"",
    "\"durationMs\"",
    "\"spans\"",
    "\"\u{fffd}\"",
    "\u{0}",
    "\"status\"",
    "\"success\"",
    "\"level\"",
    "\"DEBUG\"",
    "password=",
    "Bearer ",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.",
    "4111 1111 1111 1111",
    "a@b.co",
    "AKIAIOSFODNN7EXAMPLE",
];

const TYPES: &[&str] = &[
    "platform.initStart",
    "platform.initRuntimeDone",
    "platform.initReport",
    "platform.restoreStart",
    "platform.restoreReport",
    "platform.start",
    "platform.runtimeDone",
    "platform.report",
    "platform.extension",
    "platform.telemetrySubscription",
    "platform.logsDropped",
    "function",
    "extension",
    "platform.fault",
];

const VALUES: &[&str] = &[
    "null",
    "true",
    "0",
    "-1",
    "1e300",
    "-1e300",
    "1.5",
    "9007199254740993",
    "18446744073709551615",
    "\"\"",
    "\"x\"",
    "\"2026-03-14T09:21:07.124Z\"",
    "\"9999-12-31T23:59:59.999+14:00\"",
    "\"0000-01-01T00:00:00Z\"",
    "1773480067124",
    "[]",
    "{}",
    "[1,{\"a\":[null]}]",
    "\"Root=1-69b52883-1e685f6e5413b0143f9b2a07;Parent=a14af2721e102a9f\"",
    "\"\\u0000\\n\\ud83d\\ude00\"",
    "{\"message\":\"m\",\"level\":\"ERROR\",\"requestId\":\"r\"}",
];

const FIELDS: &[&str] = &[
    "requestId",
    "status",
    "errorType",
    "initializationType",
    "phase",
    "metrics",
    "spans",
    "tracing",
    "durationMs",
    "billedDurationMs",
    "memorySizeMB",
    "maxMemoryUsedMB",
    "initDurationMs",
    "producedBytes",
    "name",
    "start",
    "value",
    "droppedRecords",
    "message",
    "level",
    "timestamp",
];

fn seeds() -> Vec<Vec<u8>> {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    for sub in ["", "/malformed"] {
        for entry in std::fs::read_dir(format!("{dir}{sub}"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().is_file() {
                seeds.extend(std::fs::read(entry.path()).ok());
            }
        }
    }
    seeds
}

/// A random value for a record field, sometimes nested with more fields.
fn value(rng: &mut Rng, depth: usize) -> String {
    if depth < 3 && rng.below(4) == 0 {
        let fields: Vec<String> = (0..rng.below(5))
            .map(|_| format!("\"{}\":{}", rng.pick(FIELDS), value(rng, depth + 1)))
            .collect();
        return format!("{{{}}}", fields.join(","));
    }
    if depth < 3 && rng.below(8) == 0 {
        let items: Vec<String> = (0..rng.below(3)).map(|_| value(rng, depth + 1)).collect();
        return format!("[{}]", items.join(","));
    }
    rng.pick(VALUES).to_string()
}

/// An array of events of known types with random records.
fn generated(rng: &mut Rng) -> Vec<u8> {
    let ids = ["a", "b", "r-1"];
    let events: Vec<String> = (0..1 + rng.below(12))
        .map(|_| {
            let kind = rng.pick(TYPES);
            let record = if kind.starts_with("platform.") {
                let mut fields = vec![format!("\"requestId\":\"{}\"", rng.pick(&ids))];
                fields.extend(
                    (0..rng.below(6))
                        .map(|_| format!("\"{}\":{}", rng.pick(FIELDS), value(rng, 1))),
                );
                format!("{{{}}}", fields.join(","))
            } else {
                value(rng, 0)
            };
            format!(
                "{{\"time\":{},\"type\":\"{kind}\",\"record\":{record}}}",
                rng.pick(VALUES)
            )
        })
        .collect();
    format!("[{}]", events.join(",")).into_bytes()
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], mut input: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        let at = rng.below(len + 1);
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => input.insert(at, rng.next() as u8),
            2 if len > 0 => {
                let end = (at + rng.below(16)).min(len);
                input.drain(at..end);
            }
            3 => {
                let token = rng.pick(TOKENS).as_bytes();
                input.splice(at..at, token.iter().copied());
            }
            4 if len > 0 => {
                let from = rng.below(len);
                let piece: Vec<u8> = input[from..(from + rng.below(64)).min(len)].to_vec();
                input.splice(at..at, piece);
            }
            _ => {
                let other = rng.pick(seeds);
                let from = rng.below(other.len() + 1);
                let piece = &other[from..(from + rng.below(256)).min(other.len())];
                input.splice(at..at, piece.iter().copied());
            }
        }
    }
    input
}

/// Runs `check` on `FUZZ_ITERATIONS` inputs, half mutated seeds, half generated arrays.
fn fuzz(target: &str, mut check: impl FnMut(&[u8], Batch)) {
    let iterations: u64 = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let seeds = seeds();
    assert!(!seeds.is_empty(), "no fixtures to seed from");
    let mut rng = Rng(0x5eed ^ target.len() as u64 ^ iterations);
    let mut events = 0usize;
    for _ in 0..iterations {
        let input = if rng.below(2) == 0 {
            generated(&mut rng)
        } else {
            let seed = rng.pick(&seeds).clone();
            mutate(&mut rng, &seeds, seed)
        };
        let parsed = parse(input.clone());
        events += parsed.batch.len();
        check(&input, parsed.batch);
    }
    eprintln!("fuzz {target}: {iterations} inputs, {events} events parsed, no failure");
}

fn assert_json(what: &str, bytes: &[u8], input: &[u8]) {
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(bytes) {
        panic!(
            "{what} is not JSON ({e}):\n{}\nfrom input:\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(input)
        );
    }
}

fn config() -> Config {
    config_with(&[])
}

fn config_with(extra: &[(&str, &str)]) -> Config {
    let env = [
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1"),
        ("TELEMETRY_RELAY_EMF", "on"),
        ("TELEMETRY_RELAY_HTTP_URL", "http://127.0.0.1:9/"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
    ];
    Config::parse(&crate::testing::env(&[&env[..], extra].concat())).unwrap()
}

#[test]
fn fuzz_the_post_body_parser() {
    fuzz("parser", |_, batch| {
        for event in batch.events() {
            serde_json::from_str::<String>(event.type_json).unwrap();
            serde_json::from_str::<IgnoredAny>(event.record).unwrap();
            serde_json::from_str::<IgnoredAny>(event.raw).unwrap();
            let _ = (event.request_id(), event.platform(), event.time_text());
        }
    });
}

#[test]
fn fuzz_stdout_and_emf() {
    let config = config();
    let mut emf = sinks::build(&config).emf.unwrap();
    let mut out = Vec::new();
    fuzz("stdout+emf", |input, batch| {
        for event in batch.events() {
            out.clear();
            stdout::render(StdoutFormat::Text, &event, &mut out);
            out.clear();
            stdout::render(StdoutFormat::Json, &event, &mut out);
            assert_json("a stdout json line", &out, input);
            out.clear();
            emf.event(&event, &mut out);
            for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                assert_json("an EMF line", line, input);
                let doc: serde_json::Value = serde_json::from_slice(line).unwrap();
                assert!(doc["_aws"]["CloudWatchMetrics"].is_array(), "{doc}");
            }
        }
    });
}

#[test]
fn fuzz_the_network_encoders() {
    let json = config_with(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
    let mut network = sinks::build(&config()).network;
    network.extend(sinks::build(&json).network.into_iter().skip(1));
    assert_eq!(
        network.len(),
        7,
        "http and three OTLP signals in two encodings"
    );
    let mut body = Vec::new();
    fuzz("ndjson+otlp", |input, batch| {
        for sink in &mut network {
            let encoder = &mut sink.encoder;
            encoder.invoked(
                "a",
                Some("Root=1-69b52883-1e685f6e5413b0143f9b2a07;Sampled=1"),
            );
            body.clear();
            encoder.start(&mut body);
            let mut wrote = false;
            for event in batch.events() {
                let _ = encoder.carries(&event);
                wrote |= encoder.event(&event, &mut body);
            }
            encoder.finish(&mut body);
            if encoder.interval().is_some() {
                wrote = encoder.export(&mut body);
                encoder.settled();
            }
            if sink.name == "http" {
                for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    assert_json("an NDJSON line", line, input);
                }
            } else if !wrote && body.is_empty() {
            } else if sink.endpoint.content_type == "application/json" {
                assert_json(sink.name, &body, input);
            } else if let Err(e) = wire_check::check(sink.name, &body) {
                panic!(
                    "{} is not a valid request ({e}):\n{body:?}\nfrom input:\n{}",
                    sink.name,
                    String::from_utf8_lossy(input)
                );
            }
        }
    });
}

#[test]
fn fuzz_the_filter() {
    let config = config_with(&[
        ("TELEMETRY_RELAY_SAMPLE_RATE", "0.5"),
        ("TELEMETRY_RELAY_MIN_LEVEL", "warn"),
        ("TELEMETRY_RELAY_DROP_TYPES", "platform.start"),
        ("TELEMETRY_RELAY_REDACT", "all"),
        (
            "TELEMETRY_RELAY_REDACT_PATTERNS",
            "cust-[0-9]{3,}|xy+z|[0-9]{12}",
        ),
    ]);
    let mut filter = crate::filter::Filter::new(&config);
    let mut out = Vec::new();
    let check = |input: &[u8], out: &mut Vec<crate::filter::Released>| -> usize {
        let mut n = 0;
        for released in out.drain(..) {
            for pick in &released.picks {
                let event = released.batch.get(pick.index()).unwrap();
                assert_json("a filtered event", event.raw.as_bytes(), input);
                assert_json("a filtered record", event.record.as_bytes(), input);
                n += 1;
            }
        }
        n
    };
    let (mut given, mut handed_on) = (0, 0);
    fuzz("filter", |input, batch| {
        let kept: Vec<u32> = (0..batch.len() as u32).collect();
        given += kept.len();
        filter.admit(batch, kept, &mut out);
        handed_on += check(input, &mut out);
    });
    filter.release_all(&mut out);
    handed_on += check(b"(the end)", &mut out);
    assert_eq!(handed_on, given, "every event handed on exactly once");
}
