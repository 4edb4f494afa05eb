//! What the user asked to leave out, applied between the listener's batches and every output:
//! redaction, invocation sampling with its hold, the level floor and the dropped types.
//!
//! **Sampling is per invocation and decided once**, when the invocation's outcome is known:
//! its `platform.runtimeDone` (or its `platform.report`, on Lambda Managed Instances, where
//! there is no runtimeDone). An invocation that failed, timed out or crashed, one slower than
//! the threshold and (by default) a cold start is kept whole; any other is kept when a hash of
//! its request id falls under the rate (or when its X-Ray header says `Sampled=1`), so the
//! decision does not depend on which output asks, or on which process makes it. Until then
//! its events wait in the **hold**: copied out of their batch into one per invocation, at most
//! [`HOLD_BYTES_PER_INVOCATION`] each and [`HOLD_BYTES`] in all. An invocation whose hold
//! overflows, whose outcome never comes (the next invocation starts first, it is pushed out of
//! the map by [`MAX_HELD`] newer ones, or SHUTDOWN comes) is kept whole: nothing is dropped
//! because we could not decide, and each such record is counted.
//!
//! Events are routed, not removed: each released event carries an [`Audience`]. Metrics see
//! every event (sampling never changes a metric); a sampled-out invocation's events reach
//! metrics only; a dropped type still feeds spans and metrics; a line under the level floor
//! reaches metrics only.
//!
//! Which invocation a line belongs to: the request id it names (the JSON format's
//! `requestId`, the Python/Node.js/.NET/Log4j2 text prefixes), else (outside Lambda Managed
//! Instances, where one invocation runs at a time) the one started last. A line that belongs to
//! none (Init's, or one after the last report, such as a SIGTERM handler's) is not sampled.

pub mod redact;

use crate::by_request::ByRequest;
use crate::config::Config;
use crate::config::filter::{Filtering, Sample};
use crate::counters::{FilterCounters, add};
use crate::telemetry::batch::{Audience, Batch, BatchBuilder, Event, Kind, Pick};
use crate::telemetry::echo::fnv1a;
use crate::telemetry::level;
use redact::Redactor;

/// Bytes of event text one invocation may hold while its outcome is awaited.
pub const HOLD_BYTES_PER_INVOCATION: usize = 256 * 1024;
/// Bytes all holds together may keep.
pub const HOLD_BYTES: usize = 1024 * 1024;
/// Invocations held at once, at most.
pub const MAX_HELD: usize = 64;
/// Decisions remembered for events that come after them (reports, extensions' lines).
const DECISIONS_KEPT: usize = crate::by_request::PENDING_CAP;

/// Why an invocation's events are kept or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Failed, timed out, slow or a cold start: every level is kept.
    Interesting,
    /// Could not be decided (hold overflow, outcome missing): kept whole, counted.
    Overflowed,
    Missing,
    /// Chosen by the sample: the level floor applies.
    Sampled,
    /// Not chosen: its events reach metrics only.
    Out,
}

/// Events copied out of their batches while their invocation's outcome is awaited, each with
/// the audience it would have had.
#[derive(Default)]
struct Held {
    events: BatchBuilder,
    audiences: Vec<Audience>,
    cold: bool,
    /// Decided while its batch is read; released at the end of it.
    decision: Option<Decision>,
}

/// A batch (or a hold) and the events of it to hand on, in order.
pub struct Released {
    pub batch: Batch,
    pub picks: Vec<Pick>,
}

/// The filter's state, owned by the relay.
pub struct Filter {
    rules: Filtering,
    redactor: Option<Redactor>,
    /// Whether anything waits for outcomes at all; without sampling or a level floor, batches
    /// pass straight through.
    deciding: bool,
    /// Lambda Managed Instances: invocations run concurrently, lines carry no "current" one.
    concurrent: bool,
    /// The invocation started last, for lines that name none.
    current: Option<Box<str>>,
    started_any: bool,
    held: ByRequest<Held>,
    held_bytes: usize,
    decided: ByRequest<Decision>,
    /// `Sampled=` flags of INVOKEs, for `xray` mode.
    xray: ByRequest<bool>,
    pub counters: FilterCounters,
    /// Per-batch scratch: which held invocation each kept event belongs to, if any.
    owners: Vec<Option<Box<str>>>,
}

impl Filter {
    pub fn new(config: &Config) -> Filter {
        let rules = config.filtering.clone();
        let redactor = rules
            .redaction
            .is_on()
            .then(|| Redactor::new(rules.redaction.clone()));
        Filter {
            deciding: rules.decides_per_invocation(),
            redactor,
            rules,
            concurrent: config.managed_instances,
            current: None,
            started_any: false,
            held: ByRequest::new(MAX_HELD),
            held_bytes: 0,
            decided: ByRequest::new(DECISIONS_KEPT),
            xray: ByRequest::new(DECISIONS_KEPT),
            counters: FilterCounters::default(),
            owners: Vec::new(),
        }
    }

    /// INVOKE arrived, with its X-Ray trace header if any.
    pub fn invoked(&mut self, request_id: &str, xray: Option<&str>) {
        if self.rules.sample == Sample::Xray
            && let Some(flag) = xray.and_then(sampled_flag)
        {
            self.xray.insert(request_id, flag);
        }
    }

    /// Redactions made so far, per detector.
    pub fn redactions(&self) -> redact::Counts {
        self.redactor.as_ref().map(|r| r.counts).unwrap_or_default()
    }

    /// Takes a batch and the indices of its events the relay relays; appends to `out` what may
    /// go on now, in order: this batch's events that need no decision, then the holds of the
    /// invocations its events decided.
    pub fn admit(&mut self, batch: Batch, kept: Vec<u32>, out: &mut Vec<Released>) {
        let batch = self.redact(batch, &kept);
        if !self.deciding && self.rules.drop_types.is_empty() {
            let picks = kept.into_iter().map(Pick::all).collect();
            out.push(Released { batch, picks });
            return;
        }
        if !self.deciding {
            let picks = kept
                .iter()
                .filter_map(|&i| Some(Pick::new(i, self.base(&batch.get(i as usize)?))))
                .collect();
            out.push(Released { batch, picks });
            return;
        }
        let mut decided_now: Vec<Box<str>> = Vec::new();
        let mut owners = std::mem::take(&mut self.owners);
        owners.clear();
        // First pass: who each event belongs to, and what its outcome decides.
        for &i in &kept {
            let Some(event) = batch.get(i as usize) else {
                owners.push(None);
                continue;
            };
            let owner = self.owner(&event, &mut decided_now);
            if let Some(id) = &owner {
                if self.held.get(id).is_none() && self.decided.get(id).is_none() {
                    self.hold_new(id, out);
                }
                if event.kind == Kind::Start {
                    self.started(id, &event);
                }
                if matches!(event.kind, Kind::RuntimeDone | Kind::Report)
                    && self.held.get(id).is_some_and(|h| h.decision.is_none())
                {
                    let cold = self.held.get(id).is_some_and(|h| h.cold);
                    let decision = self.decide(id, &event, cold);
                    self.set_decision(id, decision, &mut decided_now);
                }
            }
            owners.push(owner);
        }
        // Second pass: events with no hold go out with this batch; the others are copied
        // into their invocation's hold.
        let mut picks = Vec::with_capacity(kept.len());
        for (&i, owner) in kept.iter().zip(&owners) {
            let Some(event) = batch.get(i as usize) else {
                continue;
            };
            let base = self.base(&event);
            match owner {
                // Init's lines and events: not sampled.
                None => picks.push(Pick::new(i, base)),
                Some(id) => match self.decided.get(id).copied() {
                    Some(d) if self.held.get(id).is_none() => {
                        picks.push(Pick::new(i, self.apply(d, &event, base)));
                    }
                    _ => self.hold_event(id, &batch, i as usize, base, &mut decided_now),
                },
            }
        }
        self.owners = owners;
        out.push(Released { batch, picks });
        for id in decided_now {
            self.release(&id, out);
        }
        while self.held_bytes > HOLD_BYTES {
            let Some(oldest) = self.held.oldest().map(Box::from) else {
                break;
            };
            self.set_decision(&oldest, Decision::Overflowed, &mut Vec::new());
            self.release(&oldest, out);
        }
    }

    /// At the end (the last batch is in, or we must stop): every hold is released, kept.
    pub fn release_all(&mut self, out: &mut Vec<Released>) {
        while let Some(id) = self.held.oldest().map(Box::from) {
            if self.held.get(&id).is_some_and(|h| h.decision.is_none()) {
                self.set_decision(&id, Decision::Missing, &mut Vec::new());
            }
            self.release(&id, out);
        }
    }

    /// Whether any invocation's events are held.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Replaces what the redactor finds in log records, building a new batch only if it
    /// found anything (indices stay as they were).
    fn redact(&mut self, batch: Batch, kept: &[u32]) -> Batch {
        let Some(redactor) = &mut self.redactor else {
            return batch;
        };
        let mut replaced: Vec<(usize, String)> = Vec::new();
        for &i in kept {
            if let Some(event) = batch.get(i as usize)
                && event.kind.is_log()
                && let Some(r) = redactor.record(event.record)
            {
                replaced.push((i as usize, r));
            }
        }
        if replaced.is_empty() {
            return batch;
        }
        let mut built = BatchBuilder::default();
        let mut replacements = replaced.iter().peekable();
        for i in 0..batch.len() {
            let record = replacements
                .next_if(|(at, _)| *at == i)
                .map(|(_, r)| r.as_str());
            built.push(&batch, i, record);
        }
        built.finish()
    }

    /// The audience an event has before sampling: a dropped type is not relayed as a record.
    fn base(&mut self, event: &Event) -> Audience {
        let drops = &self.rules.drop_types;
        if !drops.is_empty() && drops.iter().any(|t| t == event.type_name()) {
            add(&mut self.counters.dropped_by_type, 1);
            Audience::ALL.without(Audience::RECORDS)
        } else {
            Audience::ALL
        }
    }

    /// The invocation `event` belongs to, if any; notes a new start (and, one invocation at
    /// a time, that the previous one's outcome will not come now).
    fn owner(&mut self, event: &Event, decided_now: &mut Vec<Box<str>>) -> Option<Box<str>> {
        if event.kind.is_log() {
            let facts = level::facts(event.log_record());
            return match facts.request_id {
                Some(id) => Some(id.into()),
                None if self.concurrent => None,
                None => self.current.clone(),
            };
        }
        let id: Box<str> = event.request_id()?.into();
        // Its report is an invocation's last event: later lines (a SIGTERM handler's) are
        // not its own.
        if event.kind == Kind::Report && self.current.as_deref() == Some(&*id) {
            self.current = None;
        }
        if event.kind == Kind::Start
            && !self.concurrent
            && let Some(previous) = self.current.replace(id.clone())
            && previous != id
            && self
                .held
                .get(&previous)
                .is_some_and(|h| h.decision.is_none())
        {
            self.set_decision(&previous, Decision::Missing, decided_now);
        }
        Some(id)
    }

    /// `id`'s start: the first is the cold start; its trace header may carry the X-Ray flag.
    fn started(&mut self, id: &str, event: &Event) {
        if !std::mem::replace(&mut self.started_any, true)
            && let Some(held) = self.held.get_mut(id)
        {
            held.cold = true;
        }
        if self.rules.sample == Sample::Xray {
            let record = event.platform();
            let header = record.tracing.0.as_ref().and_then(|t| t.value.0.as_deref());
            if let Some(flag) = header.and_then(sampled_flag) {
                self.xray.insert(id, flag);
            }
        }
    }

    /// Starts a hold for `id`, releasing the oldest one if the map is full.
    fn hold_new(&mut self, id: &str, out: &mut Vec<Released>) {
        if let Some((evicted, mut h)) = self.held.insert(id, Held::default()) {
            let decision = h.decision.unwrap_or(Decision::Missing);
            self.decided.insert(&evicted, decision);
            self.held_bytes -= h.events.bytes();
            let events = std::mem::take(&mut h.events).finish();
            self.release_events(decision, events, &h.audiences, out);
        }
    }

    fn hold_event(
        &mut self,
        id: &str,
        batch: &Batch,
        index: usize,
        base: Audience,
        decided_now: &mut Vec<Box<str>>,
    ) {
        let Some(held) = self.held.get_mut(id) else {
            return;
        };
        let before = held.events.bytes();
        held.events.push(batch, index, None);
        held.audiences.push(base);
        let bytes = held.events.bytes();
        self.held_bytes += bytes - before;
        if bytes > HOLD_BYTES_PER_INVOCATION && held.decision.is_none() {
            self.set_decision(id, Decision::Overflowed, decided_now);
        }
    }

    /// Records a decision; the hold is released when its batch has been read.
    fn set_decision(&mut self, id: &str, decision: Decision, decided_now: &mut Vec<Box<str>>) {
        if let Some(held) = self.held.get_mut(id) {
            held.decision = Some(decision);
        }
        self.decided.insert(id, decision);
        if decision == Decision::Out {
            add(&mut self.counters.invocations_sampled_out, 1);
        }
        if !decided_now.iter().any(|d| &**d == id) {
            decided_now.push(id.into());
        }
    }

    /// Hands on a decided hold.
    fn release(&mut self, id: &str, out: &mut Vec<Released>) {
        let Some(mut held) = self.held.remove(id) else {
            return;
        };
        self.held_bytes -= held.events.bytes();
        let decision = held.decision.unwrap_or(Decision::Missing);
        let events = std::mem::take(&mut held.events).finish();
        self.release_events(decision, events, &held.audiences, out);
    }

    fn release_events(
        &mut self,
        decision: Decision,
        events: Batch,
        audiences: &[Audience],
        out: &mut Vec<Released>,
    ) {
        let mut picks = Vec::with_capacity(events.len());
        for (i, (event, &base)) in events.events().zip(audiences).enumerate() {
            if let Ok(i) = u32::try_from(i) {
                picks.push(Pick::new(i, self.apply(decision, &event, base)));
            }
        }
        if !picks.is_empty() {
            out.push(Released {
                batch: events,
                picks,
            });
        }
    }

    /// The audience of a decided invocation's event, counted.
    fn apply(&mut self, decision: Decision, event: &Event, base: Audience) -> Audience {
        let records = base.reaches(Audience::RECORDS);
        let c = &mut self.counters;
        match decision {
            Decision::Out => {
                if records {
                    add(&mut c.records_sampled_out, 1);
                }
                Audience::METRICS
            }
            Decision::Sampled => {
                let floor = self.rules.min_level;
                if records
                    && event.kind.is_log()
                    && let Some(floor) = floor
                    && level::facts(event.log_record())
                        .level
                        .is_some_and(|l| l < floor)
                {
                    add(&mut c.dropped_by_level, 1);
                    return Audience::METRICS;
                }
                base
            }
            Decision::Overflowed => {
                add(&mut c.kept_hold_overflow, 1);
                base
            }
            Decision::Missing => {
                add(&mut c.kept_outcome_missing, 1);
                base
            }
            Decision::Interesting => base,
        }
    }

    /// The decision for `id`, from its outcome event.
    fn decide(&self, id: &str, outcome: &Event, cold: bool) -> Decision {
        let record = outcome.platform();
        if record.status.0.as_deref() != Some("success") {
            return Decision::Interesting;
        }
        let duration = record.metrics.0.as_ref().and_then(|m| m.duration_ms.0);
        if let (Some(limit), Some(ms)) = (self.rules.keep_slower_than_ms, duration)
            && ms > limit
        {
            return Decision::Interesting;
        }
        if cold && self.rules.keep_cold_starts {
            return Decision::Interesting;
        }
        let keep = match self.rules.sample {
            Sample::Rate(rate) => sampled_by_hash(id, rate),
            // No trace header to follow: kept (the level floor still applies).
            Sample::Xray => self.xray.get(id).copied().unwrap_or(true),
        };
        if keep {
            Decision::Sampled
        } else {
            Decision::Out
        }
    }
}

/// Whether `rate` of all ids keeps this one: the id's hash, mixed, as a fraction of 2^64.
pub fn sampled_by_hash(id: &str, rate: f64) -> bool {
    let mut h = fnv1a(id.bytes());
    // SplitMix64's finaliser: FNV-1a alone leaves the high bits of similar ids alike.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    ((h >> 11) as f64) / ((1u64 << 53) as f64) < rate
}

/// `Sampled=1` or `Sampled=0` of an X-Ray trace header.
fn sampled_flag(header: &str) -> Option<bool> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Sampled="))
        .and_then(|v| match v.trim() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        })
}

#[cfg(test)]
mod tests;
