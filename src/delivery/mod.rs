//! The delivery buffer: one bounded buffer between the relay and every network output.
//!
//! Batches are kept as they arrived (the POST body and its event ranges), not copied per
//! output: each output only has a cursor, the sequence number of the next event it must send.
//! A batch leaves the buffer when every output is past it. When the buffer is over its byte
//! limit the oldest batch is dropped, and each output that had not sent it counts those events
//! as dropped by our buffer (SPEC.md trap 10): memory stays bounded whatever the input rate.
//!
//! Owned by the relay thread. It encodes a request for an idle output and hands it to that
//! output's sender thread (`sender`), so no network call ever runs on the relay or lifecycle
//! threads; the [`Receipt`] comes back on the relay's channel and settles the request. A
//! request not accepted by its deadline is re-queued (the cursor rewinds), with a growing
//! pause before the next attempt so a dead backend is not hammered.
//!
//! Accounting is exact and per output (see `counters`): an output counts only the events it
//! carries ([`Encoder::carries`]); each is counted once as sent, rejected or dropped. Events of
//! a request in flight are settled by its receipt, never by the eviction that may free their
//! batch meanwhile: the eviction only notes how many of them can no longer be re-sent.

mod aggregate;
mod answer;
mod aws_json;
#[cfg(test)]
mod cost_bench;
mod firehose;
mod gzip;
mod output;
mod resolve;
pub mod sender;
#[cfg(feature = "tls")]
mod sigv4;
/// The slim build cannot sign: its config refuses every AWS destination, so no signer exists.
#[cfg(not(feature = "tls"))]
mod sigv4 {
    pub enum Signer {}

    pub fn signer(_: Option<&crate::config::aws::SigV4>) -> Option<Signer> {
        None
    }

    impl Signer {
        pub fn headers_for_post(
            &mut self,
            _: &str,
            _: &[(&str, &str)],
            _: &[u8],
        ) -> Vec<(&'static str, String)> {
            match *self {}
        }
    }
}
#[cfg(feature = "tls")]
mod tls;

use std::collections::VecDeque;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::counters::{OutputCounters, add};
use crate::msg::{Msg, Outcome, Receipt};
use crate::sinks::{Encoder, NetworkSink};
use crate::telemetry::batch::{Audience, Batch, Event, Pick};
use crate::warn;
use output::{Aggregate, Health, InFlight, Output};
use sender::SenderThread;

/// Largest request body an output sends at once.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// A request buffer bigger than this is not kept for reuse.
const KEEP_BUFFER_BYTES: usize = 256 * 1024;
/// Pause before re-sending after a failed request, doubling up to the cap.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const RETRY_PAUSE_CAP: Duration = Duration::from_secs(5);

struct Entry {
    batch: Batch,
    /// The events of `batch` that are relayed (our own echoes are not), with who sees each.
    kept: Vec<Pick>,
    first_seq: u64,
    footprint: usize,
}

impl Entry {
    fn end_seq(&self) -> u64 {
        self.first_seq + self.kept.len() as u64
    }

    /// The events at sequence numbers `from..to` that sit in this entry.
    fn events(&self, from: u64, to: u64) -> impl Iterator<Item = (Event<'_>, Audience)> {
        let skip = from.saturating_sub(self.first_seq);
        let take = to
            .min(self.end_seq())
            .saturating_sub(from.max(self.first_seq));
        let (skip, take) = (
            usize::try_from(skip).unwrap_or(usize::MAX),
            usize::try_from(take).unwrap_or(0),
        );
        self.kept
            .iter()
            .skip(skip)
            .take(take)
            .filter_map(|&p| Some((self.batch.get(p.index())?, p.audience())))
    }
}

/// `scheme://host:port` of a URL: what decides whether two outputs can share a connection.
fn destination(url: &str) -> &str {
    crate::config::outputs::split_origin(url).0
}

/// Whether `encoder`'s output carries `event`, which `seen_by` may see.
fn carries(encoder: &dyn Encoder, event: &Event, seen_by: Audience) -> bool {
    seen_by.reaches(encoder.audience()) && encoder.carries(event)
}

/// Shows `event` to `encoder`: encoded into `out` if its output is among `seen_by`, else only
/// passed by. Returns whether the output carries it and whether anything was written.
fn offer(
    encoder: &mut dyn Encoder,
    event: &Event,
    seen_by: Audience,
    out: &mut Vec<u8>,
) -> (bool, bool) {
    if !seen_by.reaches(encoder.audience()) {
        encoder.skipped(event);
        return (false, false);
    }
    (encoder.carries(event), encoder.event(event, out))
}

/// How many of the events at `from..to` in `entries` `encoder` carries.
fn carried<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    encoder: &dyn Encoder,
    from: u64,
    to: u64,
) -> u64 {
    let mut n = 0;
    for entry in entries {
        n += entry
            .events(from, to)
            .filter(|(e, seen_by)| carries(encoder, e, *seen_by))
            .count() as u64;
    }
    n
}

/// The buffer and the network outputs.
pub struct Delivery {
    entries: VecDeque<Entry>,
    bytes: usize,
    limit: usize,
    next_seq: u64,
    outputs: Vec<Output>,
    threads: Vec<SenderThread>,
    scratch: Vec<u8>,
    /// The relay is closing: aggregating outputs export what they hold, due or not.
    closing: bool,
}

impl Delivery {
    /// Starts a sender thread per destination, each with its own sender on `results`, the
    /// relay's channel, where receipts go; no other one is kept, so once the senders are gone
    /// the relay's channel can close. Outputs that send to the same scheme, host and port with
    /// the same certificate files (the OTLP signals, usually) share a thread and its
    /// connection: one TLS handshake instead of three, and one thread. A black-holed backend
    /// still stalls only the outputs that send to it.
    pub fn new(limit: usize, sinks: Vec<NetworkSink>, results: Sender<Msg>) -> Delivery {
        let mut groups: Vec<Vec<(usize, crate::sinks::Endpoint)>> = Vec::new();
        for (index, sink) in sinks.iter().enumerate() {
            let same = |g: &&mut Vec<(usize, crate::sinks::Endpoint)>| {
                g.first().is_some_and(|(_, e)| {
                    destination(&e.to.url) == destination(&sink.endpoint.to.url)
                        && e.to.tls == sink.endpoint.to.tls
                })
            };
            match groups.iter_mut().find(same) {
                Some(group) => group.push((index, sink.endpoint.clone())),
                None => groups.push(vec![(index, sink.endpoint.clone())]),
            }
        }
        let mut feeds: Vec<Option<sender::Feed>> = sinks.iter().map(|_| None).collect();
        let mut threads = Vec::new();
        for group in groups {
            let indices: Vec<usize> = group.iter().map(|(i, _)| *i).collect();
            match SenderThread::spawn(group, results.clone()) {
                Ok((thread, feed)) => {
                    for &i in &indices {
                        if let Some(slot) = feeds.get_mut(i) {
                            *slot = Some(feed.clone());
                        }
                    }
                    threads.push(thread);
                }
                Err(e) => {
                    for &i in &indices {
                        if let Some(sink) = sinks.get(i) {
                            warn!(
                                "{}: cannot start its sender thread: {e}; it sends nothing",
                                sink.name
                            );
                        }
                    }
                }
            }
        }
        let outputs = sinks
            .into_iter()
            .zip(feeds)
            .map(|(sink, sender)| Output {
                sender,
                aggregate: sink.encoder.interval().map(|interval| Aggregate {
                    interval,
                    folded: 0,
                    from: None,
                    last_export: None,
                }),
                sink,
                cursor: 0,
                in_flight: None,
                retry_at: None,
                retry_pause: RETRY_PAUSE,
                health: Health::Sending,
                warned_full: false,
                counters: OutputCounters::default(),
            })
            .collect();
        Delivery {
            entries: VecDeque::new(),
            bytes: 0,
            limit,
            next_seq: 0,
            outputs,
            threads,
            scratch: Vec::new(),
            closing: false,
        }
    }

    /// Buffers the `kept` events of `batch`, dropping the oldest batches if over the limit.
    pub fn push(&mut self, batch: Batch, kept: Vec<Pick>) {
        if kept.is_empty() || self.outputs.is_empty() {
            return;
        }
        let footprint = batch.footprint() + kept.capacity() * std::mem::size_of::<Pick>();
        let entry = Entry {
            first_seq: self.next_seq,
            batch,
            kept,
            footprint,
        };
        for output in &mut self.outputs {
            let n = carried([&entry], &*output.sink.encoder, 0, u64::MAX);
            add(&mut output.counters.received, n);
        }
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
        let (first, end) = (entry.first_seq, entry.end_seq());
        for output in &mut self.outputs {
            let encoder = &*output.sink.encoder;
            if let Some(f) = &mut output.in_flight {
                f.evicted += carried([&entry], encoder, f.start.max(first), f.end.min(end));
            }
            if output.cursor < end {
                let lost = carried([&entry], encoder, output.cursor.max(first), end);
                add(&mut output.counters.dropped, lost);
                output.cursor = end;
                if !output.warned_full && lost > 0 {
                    output.warned_full = true;
                    warn!(
                        "{}: buffer full, dropped {lost} events it had not sent (counted; \
                         further drops are only counted)",
                        output.sink.name
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
            output.sink.encoder.invoked(request_id, xray);
        }
    }

    /// Hands a request to every idle output that has something to send; `counters` are the
    /// relay's, for outputs that report them.
    pub fn pump(&mut self, deadline: Instant, counters: &crate::counters::Counters) {
        let now = Instant::now();
        for index in 0..self.outputs.len() {
            let ready = self.outputs.get(index).is_some_and(|o| {
                o.in_flight.is_none()
                    && (o.cursor < self.next_seq || o.export_due(now, self.closing))
                    && o.retry_at.is_none_or(|at| at <= now)
            });
            if ready {
                if let Some(output) = self.outputs.get_mut(index) {
                    output.sink.encoder.counters(counters);
                }
                self.send(index, deadline);
            }
        }
    }

    fn send(&mut self, index: usize, deadline: Instant) {
        let Some(output) = self.outputs.get_mut(index) else {
            return;
        };
        if output.aggregate.is_some() {
            self.fold_and_export(index, deadline);
            return;
        }
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        let encoder = &mut output.sink.encoder;
        encoder.start(&mut body);
        let start = output.cursor;
        let mut seq = start;
        let mut events = 0;
        let mut wrote = false;
        'entries: for entry in &self.entries {
            for (event, seen_by) in entry.events(seq, u64::MAX) {
                if body.len() >= MAX_REQUEST_BYTES {
                    break 'entries;
                }
                seq += 1;
                let (carried, written) = offer(&mut **encoder, &event, seen_by, &mut body);
                events += u64::from(carried);
                wrote |= written;
            }
            // `seq` is contiguous: entries are, and the cursor never points into a gap.
        }
        encoder.finish(&mut body);
        if !wrote {
            // Nothing to send for these (a report without its start, say): they are done.
            add(&mut output.counters.sent, events);
            output.cursor = seq;
            self.scratch = body;
            self.release();
            return;
        }
        let flight = InFlight {
            start,
            end: seq,
            events,
            evicted: 0,
        };
        if output.hand_over(index, body, deadline, flight) {
            output.cursor = seq;
        }
    }

    /// A sender thread's receipt.
    pub fn delivered(&mut self, receipt: Receipt) {
        let Receipt {
            output: index,
            bytes,
            outcome,
            mut body,
        } = receipt;
        if body.capacity() <= KEEP_BUFFER_BYTES && body.capacity() > self.scratch.capacity() {
            body.clear();
            self.scratch = body;
        }
        let oldest = self.entries.front().map_or(self.next_seq, |e| e.first_seq);
        let Some(output) = self.outputs.get_mut(index) else {
            return;
        };
        let Some(f) = output.in_flight.take() else {
            return;
        };
        if output.aggregate.is_some() {
            aggregate::settle(output, f, &outcome);
        }
        let c = &mut output.counters;
        match outcome {
            Outcome::Sent | Outcome::Partial { .. } => {
                add(&mut c.sent, f.events);
                add(&mut c.sent_bytes, bytes);
                output.retry_at = None;
                output.retry_pause = RETRY_PAUSE;
                if let Outcome::Partial { rejected, message } = outcome {
                    // The items it rejected are counted apart (they are log records, data
                    // points or spans, not our events).
                    add(&mut output.counters.partially_rejected, rejected);
                    let detail = format_args!("{rejected} items rejected: {message:?}");
                    output.health(Health::Partial, detail);
                } else {
                    output.health(Health::Sending, format_args!(""));
                }
            }
            Outcome::Rejected(why) => {
                add(&mut c.failed_sends, 1);
                add(&mut c.rejected, f.events);
                output.health(Health::Refused, format_args!("{why}"));
            }
            Outcome::Retry { why, after } => {
                add(&mut c.failed_sends, 1);
                if output.aggregate.is_none() {
                    // Send these again, except what the full buffer dropped meanwhile.
                    add(&mut c.dropped, f.evicted);
                    let from = f.start.max(oldest);
                    if from < f.end {
                        output.cursor = from;
                    }
                }
                let pause = after.map_or(output.retry_pause, |a| a.max(output.retry_pause));
                output.retry_at = Some(Instant::now() + pause);
                output.retry_pause = (output.retry_pause * 2).min(RETRY_PAUSE_CAP);
                output.health(Health::Failing, format_args!("{why}"));
            }
        }
        self.release();
    }

    /// Whether every output has sent everything buffered, aggregates included.
    pub fn idle(&self) -> bool {
        self.caught_up(self.next_seq)
            && self
                .outputs
                .iter()
                .all(|o| o.aggregate.is_none_or(|a| a.folded == 0))
    }

    /// The relay is closing: aggregating outputs export now what they hold.
    pub fn closing(&mut self) {
        self.closing = true;
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

    /// Events dropped and requests failed, summed over all outputs.
    pub fn losses(&self) -> (u64, u64) {
        self.outputs.iter().fold((0, 0), |(d, f), o| {
            (
                d.saturating_add(o.counters.dropped),
                f.saturating_add(o.counters.failed_sends),
            )
        })
    }

    /// Events and bytes accepted so far, over all outputs.
    pub fn totals(&self) -> (u64, u64) {
        self.outputs.iter().fold((0, 0), |(e, b), o| {
            (
                e.saturating_add(o.counters.sent),
                b.saturating_add(o.counters.sent_bytes),
            )
        })
    }

    /// At the hard stop: what is unsent, or sent and unanswered, counts as dropped. Then the
    /// sender threads are told to stop: idle ones are joined; one still in a request (whose
    /// deadline may lie past the hard stop: a background request's is its full budget) is left
    /// to end with the process, so that it cannot hold the exit.
    pub fn abandon(&mut self) {
        let end = self.next_seq;
        let busy: Vec<bool> = self.outputs.iter().map(|o| o.in_flight.is_some()).collect();
        for output in &mut self.outputs {
            let mut lost = carried(&self.entries, &*output.sink.encoder, output.cursor, end);
            if let Some(f) = output.in_flight.take() {
                lost += f.events;
            }
            if let Some(a) = &mut output.aggregate {
                // Folded, never exported (a failed export's events are among them).
                lost += std::mem::take(&mut a.folded);
            }
            add(&mut output.counters.dropped, lost);
            output.cursor = end;
            // Its thread ends once every feed to it is gone.
            output.sender = None;
        }
        for thread in std::mem::take(&mut self.threads) {
            if !thread.outputs.iter().any(|&i| busy.get(i) == Some(&true)) {
                thread.join();
            }
        }
        self.release();
    }

    /// `(name, counters)` of every output.
    pub fn counters(&self) -> impl Iterator<Item = (&'static str, OutputCounters)> + '_ {
        self.outputs.iter().map(|o| (o.sink.name, o.counters))
    }
}

#[cfg(test)]
mod tests;
