//! The buffer's cursors and counters, driven without threads: requests are put in flight by
//! hand and settled with receipts, so every interleaving of eviction and answer can be set up.

use super::*;
use crate::config::outputs::Destination;
use crate::sinks::Endpoint;
use crate::telemetry::batch::{Kind, parse};
use std::sync::mpsc;

/// Carries every event.
struct Lines;
impl Encoder for Lines {
    fn content_type(&self) -> &'static str {
        "text/plain"
    }
    fn event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        out.extend_from_slice(event.type_name().as_bytes());
        out.push(b'\n');
        true
    }
}

/// Carries only reports, like the metrics output.
struct Reports;
impl Encoder for Reports {
    fn content_type(&self) -> &'static str {
        "text/plain"
    }
    fn carries(&self, event: &Event) -> bool {
        event.kind == Kind::Report
    }
    fn event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool {
        self.carries(event) && {
            out.push(b'r');
            true
        }
    }
}

fn sink(name: &'static str, encoder: Box<dyn Encoder>) -> NetworkSink {
    NetworkSink {
        name,
        encoder,
        endpoint: Endpoint {
            to: Destination {
                url: "http://127.0.0.1:9/".to_string(),
                headers: Vec::new(),
                timeout: Duration::from_millis(10),
                gzip: false,
                tls: Default::default(),
                sign: None,
                api: Default::default(),
                log_stream: None,
            },
            content_type: "",
        },
    }
}

/// `n` events; every other one a report.
fn batch(n: usize) -> (Batch, Vec<u32>) {
    let events: Vec<String> = (0..n)
        .map(|i| {
            let kind = if i % 2 == 1 {
                "platform.report"
            } else {
                "function"
            };
            format!(r#"{{"time":"t","type":"{kind}","record":{{}}}}"#)
        })
        .collect();
    let parsed = parse(format!("[{}]", events.join(",")).into_bytes());
    (parsed.batch, (0..n as u32).collect())
}

fn delivery(limit: usize) -> Delivery {
    let (tx, _rx) = mpsc::channel();
    let sinks = vec![
        sink("a", Box::new(Lines)),
        sink("b", Box::new(Lines)),
        sink("reports", Box::new(Reports)),
    ];
    Delivery::new(limit, sinks, tx)
}

/// As if output `i` had handed the backend everything up to `end` in one request.
fn in_flight(d: &mut Delivery, i: usize, end: u64) {
    let events = carried(
        &d.entries,
        &*d.outputs[i].sink.encoder,
        d.outputs[i].cursor,
        end,
    );
    let output = &mut d.outputs[i];
    output.in_flight = Some(InFlight {
        start: output.cursor,
        end,
        events,
        evicted: 0,
    });
    output.cursor = end;
}

fn receipt(output: usize, outcome: Outcome) -> Receipt {
    Receipt {
        output,
        bytes: 10,
        outcome,
        body: Vec::new(),
    }
}

fn counters(d: &Delivery, i: usize) -> OutputCounters {
    d.outputs[i].counters
}

fn assert_balanced(d: &Delivery) {
    for (name, c) in d.counters() {
        assert!(c.balanced(), "{name}: {c:?}");
    }
}

/// Room for exactly two 2-event entries.
fn two_entries() -> usize {
    let (b, kept) = batch(2);
    (b.footprint() + kept.capacity() * 4) * 2
}

#[test]
fn a_batch_stays_until_every_output_sent_it() {
    let mut d = delivery(1 << 20);
    let (b, kept) = batch(3);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    in_flight(&mut d, 0, 3);
    d.delivered(receipt(0, Outcome::Sent));
    in_flight(&mut d, 2, 3);
    d.delivered(receipt(2, Outcome::Sent));
    assert_eq!(d.entries.len(), 1);
    assert!(!d.idle());
    in_flight(&mut d, 1, 3);
    assert_eq!(
        d.entries.len(),
        1,
        "kept while a request holding it is unanswered"
    );
    d.delivered(receipt(1, Outcome::Sent));
    assert!(d.entries.is_empty() && d.bytes == 0 && d.idle());
    assert_eq!(counters(&d, 0).sent, 3);
    assert_eq!(
        counters(&d, 2).sent,
        1,
        "only the report is the metrics output's"
    );
    assert_balanced(&d);
}

#[test]
fn a_full_buffer_drops_the_oldest_and_counts_per_output() {
    let mut d = delivery(two_entries());
    let (b, kept) = batch(2);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    in_flight(&mut d, 0, 2);
    d.delivered(receipt(0, Outcome::Sent));
    for _ in 0..3 {
        let (b, kept) = batch(2);
        d.push(b, kept.into_iter().map(Pick::all).collect());
    }
    // Output a had sent the first batch; b had not. Each lost the second one.
    assert_eq!(counters(&d, 0).dropped, 2);
    assert_eq!(counters(&d, 1).dropped, 4);
    assert_eq!(counters(&d, 2).dropped, 2, "one report per batch");
    d.abandon();
    assert_balanced(&d);
}

#[test]
fn events_evicted_while_in_flight_are_counted_once() {
    let mut d = delivery(two_entries());
    let (b, kept) = batch(2);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    for i in 0..3 {
        in_flight(&mut d, i, 2);
    }
    for _ in 0..3 {
        let (b, kept) = batch(2);
        d.push(b, kept.into_iter().map(Pick::all).collect());
    }
    // Output a's request is accepted: its 2 events are sent, not dropped.
    d.delivered(receipt(0, Outcome::Sent));
    // Output b's fails after its batch was evicted: those 2 are dropped, counted once.
    d.delivered(receipt(
        1,
        Outcome::Retry {
            why: "HTTP 503".into(),
            after: None,
        },
    ));
    // The reports output is still waiting at the hard stop.
    d.abandon();
    for (name, c) in d.counters() {
        assert!(c.balanced(), "{name}: {c:?}");
        assert_eq!(c.received, if name == "reports" { 4 } else { 8 }, "{name}");
    }
    assert_eq!(counters(&d, 0).sent, 2);
    assert_eq!(counters(&d, 1).dropped, 8);
}

#[test]
fn a_retry_after_eviction_does_not_count_the_gap_again() {
    // The SHUTDOWN double count: a retry rewinds to the oldest batch left, the batches evicted
    // meanwhile were counted then, and giving up later must not count them again.
    let mut d = delivery(two_entries());
    let (b, kept) = batch(2);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    in_flight(&mut d, 1, 2);
    for _ in 0..4 {
        let (b, kept) = batch(2);
        d.push(b, kept.into_iter().map(Pick::all).collect());
    }
    d.delivered(receipt(
        1,
        Outcome::Retry {
            why: "hang".into(),
            after: None,
        },
    ));
    d.abandon();
    let c = counters(&d, 1);
    assert_eq!((c.received, c.dropped, c.sent), (10, 10, 0), "{c:?}");
    assert_balanced(&d);
}

#[test]
fn retry_keeps_the_cursor_and_rejection_drops_with_a_count() {
    let mut d = delivery(1 << 20);
    let (b, kept) = batch(4);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    in_flight(&mut d, 0, 4);
    d.delivered(receipt(
        0,
        Outcome::Retry {
            why: "HTTP 503".into(),
            after: None,
        },
    ));
    in_flight(&mut d, 1, 4);
    d.delivered(receipt(1, Outcome::Rejected("HTTP 400".into())));
    assert_eq!((counters(&d, 0).sent, counters(&d, 0).failed_sends), (0, 1));
    assert_eq!(d.outputs[0].cursor, 0);
    assert!(d.outputs[0].retry_at.is_some());
    assert_eq!((counters(&d, 1).rejected, d.outputs[1].cursor), (4, 4));
    d.abandon();
    assert_eq!(counters(&d, 0).dropped, 4);
    assert_balanced(&d);
}

#[test]
fn an_output_that_carries_nothing_in_a_batch_moves_on_without_a_request() {
    let mut d = delivery(1 << 20);
    let (b, kept) = batch(1);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    d.send(2, Instant::now());
    assert!(d.outputs[2].in_flight.is_none());
    assert_eq!(d.outputs[2].cursor, 1);
    assert_eq!(counters(&d, 2).received, 0);
}

/// Random pushes, answers and evictions: whatever the interleaving, every output's counters
/// balance at the end.
#[test]
fn counters_balance_under_any_interleaving() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let mut d = delivery(two_entries() * 2);
        for _ in 0..40 {
            let i = (next() % 3) as usize;
            match next() % 4 {
                0 | 1 => {
                    let (b, kept) = batch(1 + (next() % 4) as usize);
                    d.push(b, kept.into_iter().map(Pick::all).collect());
                }
                2 if d.outputs[i].in_flight.is_none() && d.outputs[i].cursor < d.next_seq => {
                    let end = d.next_seq.min(d.outputs[i].cursor + 1 + next() % 5);
                    in_flight(&mut d, i, end);
                }
                _ if d.outputs[i].in_flight.is_some() => {
                    let outcome = match next() % 3 {
                        0 => Outcome::Sent,
                        1 => Outcome::Rejected("HTTP 400".into()),
                        _ => Outcome::Retry {
                            why: "x".into(),
                            after: None,
                        },
                    };
                    d.delivered(receipt(i, outcome));
                }
                _ => {}
            }
        }
        d.abandon();
        assert_balanced(&d);
    }
}

#[test]
fn a_partial_success_is_sent_and_its_rejected_items_counted_apart() {
    let mut d = delivery(1 << 20);
    let (b, kept) = batch(4);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    in_flight(&mut d, 0, 4);
    let outcome = Outcome::Partial {
        rejected: 7,
        message: "quota".into(),
    };
    d.delivered(receipt(0, outcome));
    let c = counters(&d, 0);
    assert_eq!((c.sent, c.partially_rejected, c.failed_sends), (4, 7, 0));
    assert!(d.outputs[0].retry_at.is_none(), "not retried");
    d.abandon();
    assert_balanced(&d);
}

#[test]
fn a_retry_waits_at_least_as_long_as_the_backend_asked() {
    let mut d = delivery(1 << 20);
    let (b, kept) = batch(2);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    in_flight(&mut d, 0, 2);
    let asked = Duration::from_secs(30);
    let before = Instant::now();
    let outcome = Outcome::Retry {
        why: "HTTP 429".into(),
        after: Some(asked),
    };
    d.delivered(receipt(0, outcome));
    assert!(d.outputs[0].retry_at.unwrap() >= before + asked);
}

/// Aggregates reports like the metrics output: folds them, exports the count held, keeps an
/// export until it is settled.
struct Folding {
    interval: Duration,
    current: u64,
    unacked: u64,
    exports: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}
impl Encoder for Folding {
    fn content_type(&self) -> &'static str {
        "text/plain"
    }
    fn carries(&self, event: &Event) -> bool {
        event.kind == Kind::Report
    }
    fn interval(&self) -> Option<Duration> {
        Some(self.interval)
    }
    fn event(&mut self, event: &Event, _out: &mut Vec<u8>) -> bool {
        self.current += u64::from(self.carries(event));
        self.carries(event)
    }
    fn export(&mut self, out: &mut Vec<u8>) -> bool {
        self.unacked += std::mem::take(&mut self.current);
        out.extend_from_slice(self.unacked.to_string().as_bytes());
        self.exports.lock().unwrap().push(self.unacked);
        self.unacked > 0
    }
    fn settled(&mut self) {
        self.unacked = 0;
    }
}

fn folding(interval: Duration) -> (Delivery, std::sync::Arc<std::sync::Mutex<Vec<u64>>>) {
    let exports = std::sync::Arc::default();
    let encoder = Folding {
        interval,
        current: 0,
        unacked: 0,
        exports: std::sync::Arc::clone(&exports),
    };
    let (tx, _rx) = mpsc::channel();
    let mut d = Delivery::new(1 << 20, vec![sink("metrics", Box::new(encoder))], tx);
    d.outputs[0].sender = Some(sender::Feed::inert());
    (d, exports)
}

fn pump(d: &mut Delivery) {
    d.pump(Instant::now() + Duration::from_secs(1), &Default::default());
}

#[test]
fn an_aggregating_output_exports_on_its_interval_and_on_closing() {
    let (mut d, exports) = folding(Duration::from_secs(3600));
    let (b, kept) = batch(4);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    pump(&mut d);
    // The first export is not held.
    assert_eq!(d.outputs[0].in_flight.map(|f| f.events), Some(2));
    d.delivered(receipt(0, Outcome::Sent));
    let (b, kept) = batch(4);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    pump(&mut d);
    // Folded, not due: nothing in flight, the batch released, but not idle.
    assert!(d.outputs[0].in_flight.is_none());
    assert!(d.entries.is_empty());
    assert!(d.caught_up(d.next_seq()) && !d.idle());
    d.closing();
    pump(&mut d);
    assert_eq!(d.outputs[0].in_flight.map(|f| f.events), Some(2));
    d.delivered(receipt(
        0,
        Outcome::Retry {
            why: "503".into(),
            after: None,
        },
    ));
    assert_eq!(counters(&d, 0).failed_sends, 1);
    let (b, kept) = batch(2);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    d.outputs[0].retry_at = None;
    pump(&mut d);
    // The failed export goes again with what came since, folded once.
    assert_eq!(d.outputs[0].in_flight.map(|f| f.events), Some(3));
    d.delivered(receipt(0, Outcome::Sent));
    assert_eq!(*exports.lock().unwrap(), [2, 2, 3]);
    let c = counters(&d, 0);
    assert_eq!((c.received, c.sent, c.dropped), (5, 5, 0));
    assert!(d.idle());
    assert_balanced(&d);
}

#[test]
fn what_an_aggregating_output_never_exported_is_dropped_at_the_end() {
    let (mut d, _) = folding(Duration::from_secs(3600));
    let (b, kept) = batch(4);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    pump(&mut d);
    d.delivered(receipt(0, Outcome::Rejected("HTTP 400".into())));
    let (b, kept) = batch(6);
    d.push(b, kept.into_iter().map(Pick::all).collect());
    pump(&mut d);
    d.abandon();
    let c = counters(&d, 0);
    assert_eq!((c.received, c.rejected, c.dropped), (5, 2, 3));
    assert_balanced(&d);
}

#[test]
fn an_interval_of_zero_exports_every_batch() {
    let (mut d, exports) = folding(Duration::ZERO);
    for _ in 0..3 {
        let (b, kept) = batch(2);
        d.push(b, kept.into_iter().map(Pick::all).collect());
        pump(&mut d);
        d.delivered(receipt(0, Outcome::Sent));
    }
    assert_eq!(*exports.lock().unwrap(), [1, 1, 1]);
    assert_balanced(&d);
}

#[test]
fn outputs_to_one_destination_share_a_thread() {
    assert_eq!(
        destination("http://127.0.0.1:9/v1/logs"),
        "http://127.0.0.1:9"
    );
    assert_eq!(
        destination("https://api.honeycomb.io"),
        "https://api.honeycomb.io"
    );
    assert_eq!(destination("https://h:443/a/b"), "https://h:443");
    let mut other = sink("other", Box::new(Lines));
    other.endpoint.to.url = "http://127.0.0.1:10/x".to_string();
    let mut private = sink("private", Box::new(Lines));
    private.endpoint.to.tls.ca = Some("/ca.pem".to_string());
    let (tx, _rx) = mpsc::channel();
    let sinks = vec![
        sink("a", Box::new(Lines)),
        other,
        sink("b", Box::new(Reports)),
        private,
    ];
    let d = Delivery::new(1 << 20, sinks, tx);
    let groups: Vec<Vec<usize>> = d.threads.iter().map(|t| t.outputs.clone()).collect();
    assert_eq!(groups, [vec![0, 2], vec![1], vec![3]]);
}
