//! What encoding costs, per event and per signal: `make bench-encode` runs this (ignored)
//! test in the release musl build, the one that ships, and prints a table. Not a pass or
//! fail: timings vary with the machine. The events are the warm-invocations fixture's
//! invocations, repeated with fresh request ids, in POST-sized bodies, encoded by all three
//! signals in turn on one heap, as the relay does; gzip is timed apart (the sender does it).

use std::time::{Duration, Instant};

use super::gzip;
use crate::sinks::otlp::tests_support::encoder;
use crate::sinks::otlp::wire::Encoding;
use crate::telemetry::batch::{Parsed, parse};

/// Invocations per body, and bodies.
const PER_BODY: usize = 100;
const BODIES: usize = 40;
/// Times every body is encoded.
const ROUNDS: usize = 5;

/// POST bodies of the fixture's invocations, each with its own request id.
fn bodies() -> Vec<Parsed> {
    let path = format!(
        "{}/tests/fixtures/ondemand-warm-invokes.json",
        env!("CARGO_MANIFEST_DIR")
    );
    // Each event's own text, in the fixture's key order (Lambda's: a record's requestId
    // first), which a `serde_json::Value` would sort.
    let text = std::fs::read_to_string(path).unwrap();
    let raw: Vec<&serde_json::value::RawValue> = serde_json::from_str(&text).unwrap();
    let events: Vec<(serde_json::Value, &str)> = raw
        .iter()
        .map(|r| (serde_json::from_str(r.get()).unwrap(), r.get()))
        .collect();
    let ids: Vec<String> = events
        .iter()
        .filter_map(|(e, _)| e["record"]["requestId"].as_str().map(str::to_string))
        .fold(Vec::new(), |mut ids, id| {
            if !ids.contains(&id) {
                ids.push(id);
            }
            ids
        });
    let invocation: Vec<String> = events
        .iter()
        .filter(|(e, _)| {
            !e["type"]
                .as_str()
                .unwrap_or_default()
                .starts_with("platform.init")
        })
        .map(|(_, text)| text.to_string())
        .collect();
    let mut n = 0;
    (0..BODIES)
        .map(|_| {
            let mut items = Vec::new();
            for _ in 0..PER_BODY / ids.len().max(1) {
                let fresh: Vec<String> = ids
                    .iter()
                    .map(|_| {
                        n += 1;
                        format!("{n:08x}-0000-4000-8000-{n:012x}")
                    })
                    .collect();
                for event in &invocation {
                    let mut event = event.clone();
                    for (old, new) in ids.iter().zip(&fresh) {
                        event = event.replace(old, new);
                    }
                    items.push(event);
                }
            }
            parse(format!("[{}]", items.join(",")).into_bytes())
        })
        .collect()
}

#[test]
#[ignore = "a benchmark: make bench-encode"]
fn encoding_cost() {
    let bodies = bodies();
    let events: usize = bodies.iter().map(|p| p.batch.len()).sum::<usize>() * ROUNDS;
    println!(
        "\nOTLP encoding cost, {} events ({} invocations a body), each encoded {ROUNDS} times:\n\n\
         | signal | encoding | encode, us/event | gzip, us/event | bytes/event | gzipped |\n\
         |---|---|---|---|---|---|",
        events / ROUNDS,
        PER_BODY
    );
    // `ENCODING=protobuf` (or `json`) measures one, to profile it alone.
    let only = std::env::var("ENCODING").unwrap_or_default().to_lowercase();
    for encoding in [Encoding::Protobuf, Encoding::Json] {
        if !only.is_empty() && format!("{encoding:?}").to_lowercase() != only {
            continue;
        }
        let mut total = (Duration::ZERO, Duration::ZERO);
        for signal in ["logs", "metrics", "traces"] {
            let mut encoder = encoder(signal, encoding);
            let (mut encode, mut compress) = (Duration::ZERO, Duration::ZERO);
            let (mut bytes, mut wire) = (0, 0);
            let (mut out, mut gzipped) = (Vec::new(), Vec::new());
            for body in bodies.iter().cycle().take(bodies.len() * ROUNDS) {
                let started = Instant::now();
                out.clear();
                encoder.start(&mut out);
                for event in body.batch.events() {
                    encoder.event(&event, &mut out);
                }
                encoder.export(&mut out);
                encoder.finish(&mut out);
                encoder.settled();
                let encoded = Instant::now();
                gzip::compress(&out, &mut gzipped);
                compress += encoded.elapsed();
                encode += encoded - started;
                bytes += out.len();
                wire += gzipped.len();
            }
            total = (total.0 + encode, total.1 + compress);
            let per = |d: Duration| d.as_secs_f64() * 1e6 / events as f64;
            println!(
                "| {signal} | {encoding:?} | {:.3} | {:.3} | {} | {} |",
                per(encode),
                per(compress),
                bytes / events,
                wire / events
            );
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / events as f64;
        println!(
            "| all three | {encoding:?} | **{:.3}** | **{:.3}** | | |",
            per(total.0),
            per(total.1)
        );
    }
    firehose(&bodies, events);
}

/// Firehose: the NDJSON lines (relay thread), then the records and the `PutRecordBatch` body
/// (sender thread), all on this one core; as events per second, the unit.
fn firehose(bodies: &[Parsed], events: usize) {
    use crate::sinks::Encoder;
    for gzip_records in [false, true] {
        let (mut out, mut call) = (Vec::new(), Vec::new());
        let mut wire = 0;
        let started = Instant::now();
        for body in bodies.iter().cycle().take(bodies.len() * ROUNDS) {
            out.clear();
            for event in body.batch.events() {
                crate::sinks::http::Ndjson.event(&event, &mut out);
            }
            let (records, _) = super::firehose::records(&out, gzip_records);
            let data: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            super::firehose::call_body("stream", &data, &mut call);
            wire += call.len();
        }
        let took = started.elapsed().as_secs_f64();
        println!(
            "| firehose{} | NDJSON → PutRecordBatch | {:.3} | | {} | {:.0} events/s |",
            if gzip_records { ", gzip records" } else { "" },
            took * 1e6 / events as f64,
            wire / events,
            events as f64 / took
        );
    }
}
