//! The delivery pipeline: one bounded buffer between the relay and every network output.
//!
//! Batches are kept as they arrived (the POST body and its event ranges), not copied per
//! output: each output only has a cursor, the sequence number of the next event it must send.
//! A batch leaves the buffer when every output is past it. When the buffer is over its byte
//! limit the oldest batch is dropped, and each output that had not sent it counts those events
//! as dropped by our buffer (SPEC.md trap 10): memory stays bounded whatever the input rate.
//!
//! Owned by the relay thread. It encodes a request for an idle output and hands it to that
//! output's sender thread (`sender`), so no network call ever runs on the relay or lifecycle
//! threads; the result comes back as a `Msg::Delivered` and moves the cursor. A request not
//! accepted by its deadline is re-queued (the cursor stays), with a growing pause before the
//! next attempt so a dead backend is not hammered.

pub mod sender;

use std::collections::VecDeque;
use std::sync::mpsc::{Sender, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use crate::pipeline::{Counters, Msg};
use crate::telemetry::event::{Batch, Event};
use crate::warn;
use sender::{Endpoint, Outcome, Request};

/// Largest request body an output sends at once.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Pause before re-sending after a failed request, doubling up to the cap.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const RETRY_PAUSE_CAP: Duration = Duration::from_secs(5);

/// Turns events into one output's request bodies.
pub trait Encoder: Send {
    fn content_type(&self) -> &'static str;
    /// Appends one event; returns false if this output does not carry it.
    fn event(&mut self, event: &Event, first: bool, out: &mut Vec<u8>) -> bool;
    /// INVOKE `request_id` arrived, with its X-Ray trace header if traced.
    fn invoked(&mut self, _request_id: &str, _xray: Option<&str>) {}
    /// The relay's counters as they are now, before a request is encoded.
    fn counters(&mut self, _counters: &Counters) {}
    /// Opens and closes a request body around the events.
    fn start(&mut self, _out: &mut Vec<u8>) {}
    fn finish(&mut self, _out: &mut Vec<u8>) {}
}

/// Counters of one output, for the shutdown summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OutputStats {
    /// Events the backend accepted.
    pub sent: u64,
    /// Bytes of request bodies the backend accepted.
    pub sent_bytes: u64,
    /// Requests that failed (re-queued or rejected).
    pub failed_sends: u64,
    /// Events the backend refused for good (4xx).
    pub rejected: u64,
    /// Events dropped from the full buffer before this output sent them.
    pub dropped: u64,
}

struct Output {
    name: &'static str,
    encoder: Box<dyn Encoder>,
    endpoint: Endpoint,
    sender: Option<SyncSender<Request>>,
    cursor: u64,
    /// Where the request in flight starts: its events are before `cursor` already, and a retry
    /// rewinds to here.
    in_flight: Option<u64>,
    retry_at: Option<Instant>,
    retry_pause: Duration,
    warned: bool,
    warned_full: bool,
    stats: OutputStats,
}

impl Output {
    /// Everything before this is accepted, refused or counted as dropped.
    fn settled(&self) -> u64 {
        self.in_flight.unwrap_or(self.cursor)
    }
}

struct Entry {
    batch: Batch,
    /// Indices into `batch` of the events that are relayed (our own echoes are not).
    kept: Vec<usize>,
    first_seq: u64,
    footprint: usize,
}

impl Entry {
    fn end_seq(&self) -> u64 {
        self.first_seq + self.kept.len() as u64
    }
}

/// The buffer and the network outputs.
pub struct Delivery {
    entries: VecDeque<Entry>,
    bytes: usize,
    limit: usize,
    next_seq: u64,
    outputs: Vec<Output>,
    results: Sender<Msg>,
    scratch: Vec<u8>,
}

impl Delivery {
    /// `results` is the relay's own channel: sender threads report there.
    pub fn new(limit: usize, results: Sender<Msg>) -> Delivery {
        Delivery {
            entries: VecDeque::new(),
            bytes: 0,
            limit,
            next_seq: 0,
            outputs: Vec::new(),
            results,
            scratch: Vec::new(),
        }
    }

    /// Adds an output; its sender thread starts with its first request.
    pub fn add(&mut self, name: &'static str, encoder: Box<dyn Encoder>, mut endpoint: Endpoint) {
        endpoint.content_type = encoder.content_type();
        self.outputs.push(Output {
            name,
            encoder,
            endpoint,
            sender: None,
            cursor: self.next_seq,
            in_flight: None,
            retry_at: None,
            retry_pause: RETRY_PAUSE,
            warned: false,
            warned_full: false,
            stats: OutputStats::default(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Buffers the `kept` events of `batch`, dropping the oldest batches if over the limit.
    pub fn push(&mut self, batch: Batch, kept: Vec<usize>) {
        if kept.is_empty() || self.outputs.is_empty() {
            return;
        }
        let footprint = batch.footprint() + kept.capacity() * std::mem::size_of::<usize>();
        let entry = Entry {
            first_seq: self.next_seq,
            batch,
            kept,
            footprint,
        };
        self.next_seq = entry.end_seq();
        self.bytes += footprint;
        self.entries.push_back(entry);
        while self.bytes > self.limit && self.entries.len() > 1 {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        let Some(entry) = self.entries.pop_front() else {
            return;
        };
        self.bytes -= entry.footprint;
        let end = entry.end_seq();
        for output in &mut self.outputs {
            if output.cursor < end {
                let lost = end - output.cursor.max(entry.first_seq);
                output.stats.dropped += lost;
                output.cursor = end;
                if !output.warned_full {
                    output.warned_full = true;
                    warn!(
                        "{}: buffer full, dropped {lost} events it had not sent (counted; \
                         further drops are only counted)",
                        output.name
                    );
                }
            }
        }
    }

    /// Frees batches every output is past.
    fn release(&mut self) {
        // A batch may be needed again until every request holding it has its answer.
        let done = self
            .outputs
            .iter()
            .map(Output::settled)
            .min()
            .unwrap_or(self.next_seq);
        while self.entries.front().is_some_and(|e| e.end_seq() <= done) {
            if let Some(entry) = self.entries.pop_front() {
                self.bytes -= entry.footprint;
            }
        }
    }

    /// Tells every output about an INVOKE (its trace context may not be in the telemetry).
    pub fn invoked(&mut self, request_id: &str, xray: Option<&str>) {
        for output in &mut self.outputs {
            output.encoder.invoked(request_id, xray);
        }
    }

    /// Gives every output the relay's current counters.
    pub fn set_counters(&mut self, counters: &Counters) {
        for output in &mut self.outputs {
            output.encoder.counters(counters);
        }
    }

    /// Hands a request to every idle output that has something to send.
    pub fn pump(&mut self, deadline: Instant) {
        let now = Instant::now();
        for index in 0..self.outputs.len() {
            let ready = self.outputs.get(index).is_some_and(|o| {
                o.in_flight.is_none()
                    && o.cursor < self.next_seq
                    && o.retry_at.is_none_or(|at| at <= now)
            });
            if ready {
                self.send(index, deadline);
            }
        }
    }

    fn send(&mut self, index: usize, deadline: Instant) {
        let Some(output) = self.outputs.get_mut(index) else {
            return;
        };
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        output.encoder.start(&mut body);
        let mut seq = output.cursor;
        let mut events = 0;
        'entries: for entry in &self.entries {
            if entry.end_seq() <= seq {
                continue;
            }
            // After a retry the buffer may have a gap where batches were dropped.
            seq = seq.max(entry.first_seq);
            let skip = usize::try_from(seq.saturating_sub(entry.first_seq)).unwrap_or(usize::MAX);
            for &i in entry.kept.iter().skip(skip) {
                if body.len() >= MAX_REQUEST_BYTES {
                    break 'entries;
                }
                if let Some(event) = entry.batch.get(i)
                    && output.encoder.event(&event, events == 0, &mut body)
                {
                    events += 1;
                }
                seq += 1;
            }
        }
        output.encoder.finish(&mut body);
        if events == 0 {
            // Nothing this output carries: move on without a request.
            output.cursor = seq;
            self.scratch = body;
            self.release();
            return;
        }
        let request = Request {
            body,
            end_seq: seq,
            events,
            deadline,
        };
        let sender = match &output.sender {
            Some(sender) => sender.clone(),
            None => match sender::spawn(index, output.endpoint.clone(), self.results.clone()) {
                Ok((sender, _thread)) => output.sender.insert(sender).clone(),
                Err(e) => {
                    warn!("{}: cannot start its sender thread: {e}", output.name);
                    return;
                }
            },
        };
        match sender.try_send(request) {
            Ok(()) => {
                output.in_flight = Some(output.cursor);
                output.cursor = seq;
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                warn!("{}: sender thread unavailable", output.name);
            }
        }
    }

    /// A sender thread's result.
    pub fn delivered(
        &mut self,
        index: usize,
        end_seq: u64,
        events: u64,
        bytes: u64,
        outcome: Outcome,
    ) {
        let Some(output) = self.outputs.get_mut(index) else {
            return;
        };
        let start = output.in_flight.take();
        match outcome {
            Outcome::Sent => {
                output.stats.sent += events;
                output.stats.sent_bytes += bytes;
                output.retry_at = None;
                output.retry_pause = RETRY_PAUSE;
            }
            Outcome::Rejected(status) => {
                output.stats.failed_sends += 1;
                output.stats.rejected += events;
                if !output.warned {
                    warn!(
                        "{}: backend refused {events} events with HTTP {status}; not retried (counted)",
                        output.name
                    );
                    output.warned = true;
                }
            }
            Outcome::Retry(why) => {
                output.stats.failed_sends += 1;
                // Send these again, except what the full buffer dropped meanwhile (counted).
                let oldest = self.entries.front().map_or(self.next_seq, |e| e.first_seq);
                if let Some(start) = start {
                    output.stats.dropped += end_seq.min(oldest).saturating_sub(start);
                    let from = start.max(oldest);
                    if from < end_seq {
                        output.cursor = from;
                    }
                }
                output.retry_at = Some(Instant::now() + output.retry_pause);
                output.retry_pause = (output.retry_pause * 2).min(RETRY_PAUSE_CAP);
                if !output.warned {
                    warn!(
                        "{}: send failed ({why}); kept for a later attempt (counted)",
                        output.name
                    );
                    output.warned = true;
                }
            }
        }
        self.release();
    }

    /// Whether every output has sent everything buffered.
    pub fn idle(&self) -> bool {
        self.caught_up(self.next_seq)
    }

    /// The position after the last buffered event.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether every output has had every event before `seq` accepted (or settled).
    pub fn caught_up(&self, seq: u64) -> bool {
        self.outputs.iter().all(|o| o.settled() >= seq)
    }

    /// Events not yet settled by the slowest output, of those before `seq`.
    pub fn behind(&self, seq: u64) -> u64 {
        self.outputs
            .iter()
            .map(|o| seq.saturating_sub(o.settled()))
            .max()
            .unwrap_or(0)
    }

    /// Events dropped by the buffer and requests failed, summed over all outputs.
    pub fn losses(&self) -> (u64, u64) {
        self.outputs.iter().fold((0, 0), |(d, f), o| {
            (d + o.stats.dropped, f + o.stats.failed_sends)
        })
    }

    /// Events and bytes accepted so far, over all outputs.
    pub fn totals(&self) -> (u64, u64) {
        self.outputs.iter().fold((0, 0), |(e, b), o| {
            (e + o.stats.sent, b + o.stats.sent_bytes)
        })
    }

    /// At exit: what could not be sent counts as dropped.
    pub fn abandon(&mut self) {
        let end = self.next_seq;
        for output in &mut self.outputs {
            output.stats.dropped += end.saturating_sub(output.settled());
            output.cursor = end;
            output.in_flight = None;
        }
    }

    /// `(name, counters)` of every output.
    pub fn stats(&self) -> Vec<(&'static str, OutputStats)> {
        self.outputs
            .iter()
            .map(|o| (o.name, o.stats.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::event::parse;
    use std::sync::mpsc;

    struct Lines;
    impl Encoder for Lines {
        fn content_type(&self) -> &'static str {
            "text/plain"
        }
        fn event(&mut self, event: &Event, _first: bool, out: &mut Vec<u8>) -> bool {
            out.extend_from_slice(event.type_name().as_bytes());
            out.push(b'\n');
            true
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            url: "http://127.0.0.1:9/".to_string(),
            headers: Vec::new(),
            content_type: "",
            timeout: Duration::from_millis(10),
        }
    }

    fn batch(n: usize) -> (Batch, Vec<usize>) {
        let events: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"time":"t","type":"e{i}","record":{{}}}}"#))
            .collect();
        let parsed = parse(format!("[{}]", events.join(",")).into_bytes());
        (parsed.batch, (0..n).collect())
    }

    /// As if output `i` had handed the backend everything up to `end` in one request.
    fn in_flight(d: &mut Delivery, i: usize, end: u64) {
        let output = &mut d.outputs[i];
        output.in_flight = Some(output.cursor);
        output.cursor = end;
    }

    fn delivery(limit: usize) -> Delivery {
        let (tx, _rx) = mpsc::channel();
        let mut d = Delivery::new(limit, tx);
        d.add("a", Box::new(Lines), endpoint());
        d.add("b", Box::new(Lines), endpoint());
        d
    }

    #[test]
    fn a_batch_stays_until_every_output_sent_it() {
        let mut d = delivery(1 << 20);
        let (b, kept) = batch(3);
        d.push(b, kept);
        in_flight(&mut d, 0, 3);
        d.delivered(0, 3, 3, 10, Outcome::Sent);
        assert_eq!(d.entries.len(), 1);
        assert!(!d.idle());
        in_flight(&mut d, 1, 3);
        assert_eq!(
            d.entries.len(),
            1,
            "kept while a request holding it is unanswered"
        );
        d.delivered(1, 3, 3, 10, Outcome::Sent);
        assert!(d.entries.is_empty() && d.bytes == 0 && d.idle());
        assert_eq!(d.stats()[0].1.sent, 3);
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_per_output() {
        let (b, kept) = batch(2);
        // Room for exactly two entries (an entry also holds its index vector).
        let limit = (b.footprint() + 64) * 2;
        let mut d = delivery(limit);
        d.push(b, kept);
        in_flight(&mut d, 0, 2);
        d.delivered(0, 2, 2, 10, Outcome::Sent);
        for _ in 0..3 {
            let (b, kept) = batch(2);
            d.push(b, kept);
        }
        assert!(d.bytes <= limit + 64);
        let stats = d.stats();
        // Output a had sent the first batch; b had not. Each lost the second one.
        assert_eq!(stats[0].1.dropped, 2);
        assert_eq!(stats[1].1.dropped, 4);
    }

    #[test]
    fn events_evicted_while_in_flight_are_counted_once() {
        let (b, kept) = batch(2);
        let limit = (b.footprint() + 64) * 2;
        let mut d = delivery(limit);
        d.push(b, kept);
        in_flight(&mut d, 0, 2);
        in_flight(&mut d, 1, 2);
        for _ in 0..3 {
            let (b, kept) = batch(2);
            d.push(b, kept);
        }
        // Output a's request is accepted: its 2 events are sent, not dropped.
        d.delivered(0, 2, 2, 10, Outcome::Sent);
        // Output b's fails after its batch was evicted: those 2 are dropped, counted once.
        d.delivered(1, 2, 2, 10, Outcome::Retry("HTTP 503".into()));
        d.abandon();
        for (name, stats) in d.stats() {
            assert_eq!(stats.sent + stats.dropped, 8, "{name}: {stats:?}");
        }
    }

    #[test]
    fn retry_keeps_the_cursor_and_rejection_drops_with_a_count() {
        let mut d = delivery(1 << 20);
        let (b, kept) = batch(4);
        d.push(b, kept);
        in_flight(&mut d, 0, 4);
        d.delivered(0, 4, 4, 10, Outcome::Retry("HTTP 503".into()));
        in_flight(&mut d, 1, 4);
        d.delivered(1, 4, 4, 10, Outcome::Rejected(400));
        let stats = d.stats();
        assert_eq!((stats[0].1.sent, stats[0].1.failed_sends), (0, 1));
        assert_eq!(d.outputs[0].cursor, 0);
        assert!(d.outputs[0].retry_at.is_some());
        assert_eq!((stats[1].1.rejected, d.outputs[1].cursor), (4, 4));
        d.abandon();
        assert_eq!(d.stats()[0].1.dropped, 4);
    }
}
