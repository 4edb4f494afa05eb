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
//! the map by [`invocations::KNOWN`] newer ones, or SHUTDOWN comes) is kept whole: nothing is
//! dropped because we could not decide, and each such record is counted. An invocation whose
//! events and outcome are all in one batch, the usual case for a short one, is decided
//! before any of it is copied: its events go out with their batch.
//!
//! Events are routed, not removed: each released event carries an [`Audience`]. Metrics see
//! every event (sampling never changes a metric); a sampled-out invocation's events reach
//! metrics only; a dropped type still feeds spans and metrics; a line under the level floor
//! reaches metrics only.
//!
//! Which invocation a line belongs to: one invocation at a time, the one started last; on
//! Lambda Managed Instances, where invocations run concurrently, the request id it names (the
//! JSON format's `requestId`, the Python/Node.js/.NET/Log4j2 text prefixes). A line that
//! belongs to none (Init's, one after the last report such as a SIGTERM handler's, or on LMI
//! one naming no id) is not sampled.

pub mod decide;
mod invocations;
pub mod redact;

use std::borrow::Cow;

use crate::by_request;
use crate::config::Config;
use crate::config::filter::{Filtering, Sample};
use crate::counters::{FilterCounters, add};
use crate::telemetry::batch::{Audience, Batch, BatchBuilder, Event, Kind, Pick};
use crate::telemetry::level;
use decide::{Decision, decide, sampled_flag};
use invocations::{Invocation, Invocations, Taken};
use redact::Redactor;

/// Bytes of event text one invocation may hold while its outcome is awaited.
pub const HOLD_BYTES_PER_INVOCATION: usize = 256 * 1024;
/// Bytes all holds together may keep.
pub const HOLD_BYTES: usize = 1024 * 1024;

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
    current: Option<String>,
    started_any: bool,
    /// The hash of the first invocation's id: the cold start.
    cold: Option<u64>,
    invocations: Invocations,
    pub counters: FilterCounters,
    /// Per-batch scratch: the invocations the batch's events belong to, and each kept event's
    /// place in that list ([`NONE`]: none).
    ids: Vec<BatchId>,
    owners: Vec<u16>,
}

/// An invocation a batch's events belong to.
struct BatchId {
    hash: u64,
    id: Box<str>,
    /// Nothing of it was held at its first event in this batch: if the batch decides it, its
    /// events go out with the batch instead of being copied (`None` until that event is read).
    fresh: Option<bool>,
    /// Decided by this batch (its hold, if any, is released after it).
    decided: bool,
}

/// Whom an event belongs to.
enum Owner<'e> {
    Nobody,
    /// The invocation started last.
    Current,
    Id(Cow<'e, str>),
}

/// No invocation, in [`Filter::owners`].
const NONE: u16 = u16::MAX;

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
            // Under provisioned concurrency no invocation is a cold start.
            started_any: config.filtering.provisioned,
            cold: None,
            invocations: Invocations::new(),
            counters: FilterCounters::default(),
            ids: Vec::new(),
            owners: Vec::new(),
        }
    }

    /// INVOKE arrived, with its X-Ray trace header if any.
    pub fn invoked(&mut self, request_id: &str, xray: Option<&str>, out: &mut Vec<Released>) {
        if self.rules.sample == Sample::Xray
            && let Some(flag) = xray.and_then(sampled_flag)
        {
            self.note_xray(by_request::hash(request_id), request_id, flag, out);
        }
    }

    /// Every decision counted so far, redactions included.
    pub fn counters(&self) -> FilterCounters {
        FilterCounters {
            redactions: self.redactor.as_ref().map(|r| r.counts).unwrap_or_default(),
            ..self.counters
        }
    }

    /// Takes a batch and the indices of its events the relay relays; appends to `out` what may
    /// go on now, in order: holds pushed out of the map, the holds this batch decided (their
    /// events are older), this batch's events that need no hold.
    pub fn admit(&mut self, batch: Batch, kept: Vec<u32>, out: &mut Vec<Released>) {
        let batch = self.redact(batch, &kept);
        if !self.deciding {
            let picks = if self.rules.drop_types.is_empty() {
                kept.into_iter().map(Pick::all).collect()
            } else {
                kept.iter()
                    .filter_map(|&i| Some(Pick::new(i, self.base(&batch.get(i as usize)?))))
                    .collect()
            };
            out.push(Released { batch, picks });
            return;
        }
        let mut ids = std::mem::take(&mut self.ids);
        let mut owners = std::mem::take(&mut self.owners);
        ids.clear();
        owners.clear();
        for &i in &kept {
            let at = batch
                .get(i as usize)
                .and_then(|event| self.first_pass(&event, &mut ids, out));
            owners.push(at.unwrap_or(NONE));
        }
        let mut picks = Vec::with_capacity(kept.len());
        for (&i, &at) in kept.iter().zip(&owners) {
            if let Some(event) = batch.get(i as usize)
                && let Some(pick) =
                    self.second_pass(&event, i, &batch, ids.get_mut(usize::from(at)))
            {
                picks.push(pick);
            }
        }
        for b in ids.iter().filter(|b| b.decided) {
            self.release(b.hash, &b.id, out);
        }
        self.ids = ids;
        self.owners = owners;
        out.push(Released { batch, picks });
        while self.invocations.held_bytes() > HOLD_BYTES {
            let Some(oldest) = self.invocations.oldest_holding() else {
                break;
            };
            let hash = by_request::hash(&oldest);
            self.set_decision(hash, &oldest, Decision::Overflowed);
            self.release(hash, &oldest, out);
        }
    }

    /// Who `event` belongs to (its place in `ids`), noting starts, ends and outcomes.
    fn first_pass(
        &mut self,
        event: &Event,
        ids: &mut Vec<BatchId>,
        out: &mut Vec<Released>,
    ) -> Option<u16> {
        let at = match self.owner_of(event) {
            Owner::Nobody => return None,
            Owner::Id(id) => index_of(ids, &id)?,
            Owner::Current => index_of(ids, self.current.as_deref()?)?,
        };
        let b = ids.get(usize::from(at))?;
        let (hash, id) = (b.hash, &*b.id);
        let mut finished = None;
        match event.kind {
            Kind::Start => {
                finished = self.began(id);
                if !std::mem::replace(&mut self.started_any, true) {
                    self.cold = Some(hash);
                }
            }
            // An invocation's last event: later lines (a SIGTERM handler's) are not its own.
            Kind::Report if self.current.as_deref() == Some(id) => self.current = None,
            _ => {}
        }
        let (invocation, evicted) = self.invocations.ensure(hash, id);
        let mut fresh = false;
        let mut decided = false;
        if let Some(invocation) = invocation {
            // Nothing of it is held: if this batch decides it, its events go with the batch.
            fresh = invocation.decision.is_none() && !invocation.holds();
            if event.kind == Kind::Start {
                invocation.cold |= self.cold == Some(hash);
                if self.rules.sample == Sample::Xray
                    && let Some(flag) = xray_flag(event)
                {
                    invocation.xray = Some(flag);
                }
            }
            if matches!(event.kind, Kind::RuntimeDone | Kind::Report)
                && invocation.decision.is_none()
            {
                let decision = decide(&self.rules, id, event, invocation.cold, invocation.xray);
                record(invocation, decision, &mut self.counters);
                decided = true;
            }
        }
        if let Some(b) = ids.get_mut(usize::from(at)) {
            b.fresh.get_or_insert(fresh);
            b.decided |= decided;
        }
        if let Some(taken) = evicted {
            self.release_taken(taken, out);
        }
        if let Some(previous) = finished {
            self.finish_previous(&previous, ids, out);
        }
        Some(at)
    }

    /// An event of an invocation decided before this batch, or by it when nothing of it was
    /// held, goes out with the batch; one of an invocation undecided, or held since an
    /// earlier batch, is copied into its hold.
    fn second_pass(
        &mut self,
        event: &Event,
        i: u32,
        batch: &Batch,
        owner: Option<&mut BatchId>,
    ) -> Option<Pick> {
        let base = self.base(event);
        // Init's lines and events: not sampled.
        let Some(b) = owner else {
            return Some(Pick::new(i, base));
        };
        let decision = match self.invocations.get(b.hash, &b.id) {
            Some(invocation) if b.fresh == Some(true) || !invocation.holds() => invocation.decision,
            Some(_) => None,
            // Pushed out of the map by this very batch: kept.
            None => Some(Decision::Missing),
        };
        if let Some(d) = decision {
            return Some(Pick::new(i, self.apply(d, event, base)));
        }
        // Copied from now on: it is no longer fresh.
        b.fresh = Some(false);
        let bytes = self
            .invocations
            .hold(b.hash, &b.id, batch, i as usize, base);
        if bytes > HOLD_BYTES_PER_INVOCATION {
            self.set_decision(b.hash, &b.id, Decision::Overflowed);
            b.decided = true;
        }
        None
    }

    /// At the end (the last batch is in, or we must stop): every hold is released, kept.
    pub fn release_all(&mut self, out: &mut Vec<Released>) {
        while let Some(id) = self.invocations.oldest_holding() {
            let hash = by_request::hash(&id);
            self.set_decision(hash, &id, Decision::Missing);
            self.release(hash, &id, out);
        }
    }

    /// Whether any invocation's events are held.
    pub fn holding(&self) -> bool {
        self.invocations.held_bytes() > 0
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

    /// Whom `event` belongs to. One invocation at a time, a line belongs to the one started
    /// last (reading its id from the line would cost a parse per line and say the same);
    /// on Lambda Managed Instances, to the one it names.
    fn owner_of<'e>(&self, event: &Event<'e>) -> Owner<'e> {
        if !event.kind.is_log() {
            return event.request_id().map_or(Owner::Nobody, Owner::Id);
        }
        if !self.concurrent {
            return Owner::Current;
        }
        level::facts(event.log_record())
            .request_id
            .map_or(Owner::Nobody, Owner::Id)
    }

    /// `id` started: one invocation at a time, the one before it is over, outcome or not;
    /// that one is returned if it is still open.
    fn began(&mut self, id: &str) -> Option<Box<str>> {
        if self.concurrent {
            return None;
        }
        let Some(current) = &mut self.current else {
            self.current = Some(id.to_string());
            return None;
        };
        let open = *current != id
            && self
                .invocations
                .get(by_request::hash(current), current)
                .is_some_and(|p| p.decision.is_none());
        let previous = open.then(|| Box::from(current.as_str()));
        // The buffer is reused: one invocation after another costs no allocation here.
        current.clear();
        current.push_str(id);
        previous
    }

    /// The invocation before the one that started will have no outcome: kept, released once
    /// this batch has been read (with the batch's events of it, if any) or now.
    fn finish_previous(&mut self, previous: &str, ids: &mut Vec<BatchId>, out: &mut Vec<Released>) {
        let hash = by_request::hash(previous);
        self.set_decision(hash, previous, Decision::Missing);
        match index_of(ids, previous).and_then(|at| ids.get_mut(usize::from(at))) {
            Some(b) => {
                b.fresh.get_or_insert(false);
                b.decided = true;
            }
            None => self.release(hash, previous, out),
        }
    }

    /// INVOKE's X-Ray flag, for when the invocation's outcome comes.
    fn note_xray(&mut self, hash: u64, id: &str, flag: bool, out: &mut Vec<Released>) {
        let (invocation, evicted) = self.invocations.ensure(hash, id);
        if let Some(invocation) = invocation {
            invocation.xray = Some(flag);
        }
        if let Some(taken) = evicted {
            self.release_taken(taken, out);
        }
    }

    /// Records a decision, counted once per invocation.
    fn set_decision(&mut self, hash: u64, id: &str, decision: Decision) {
        if let Some(invocation) = self.invocations.get_mut(hash, id) {
            record(invocation, decision, &mut self.counters);
        }
    }

    /// Hands on a decided invocation's hold, if it has one.
    fn release(&mut self, hash: u64, id: &str, out: &mut Vec<Released>) {
        if let Some(taken) = self.invocations.take(hash, id) {
            self.release_taken(taken, out);
        }
    }

    fn release_taken(&mut self, taken: Taken, out: &mut Vec<Released>) {
        let Taken {
            decision,
            events,
            audiences,
        } = taken;
        let mut picks = Vec::with_capacity(events.len());
        for (i, (event, &base)) in events.events().zip(&audiences).enumerate() {
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
}

/// Gives `invocation` its decision unless it has one, and counts a sampled-out one.
fn record(invocation: &mut Invocation, decision: Decision, counters: &mut FilterCounters) {
    if invocation.decision.is_none() {
        invocation.decision = Some(decision);
        if decision == Decision::Out {
            add(&mut counters.invocations_sampled_out, 1);
        }
    }
}

/// Where `id` is in `ids`, added if new; `None` past [`NONE`] distinct ids in one batch (their
/// events are then not sampled). The last one is nearly always the one asked for; otherwise
/// only the last [`LOOK_BACK`] are searched, so that a batch of a thousand invocations costs no
/// quadratic search: an id found again further back gets a second entry, which is harmless
/// (both name the same invocation, whose state is in the map).
fn index_of(ids: &mut Vec<BatchId>, id: &str) -> Option<u16> {
    let last = ids.len().checked_sub(1);
    if let Some(at) = last.filter(|&at| ids.get(at).is_some_and(|b| &*b.id == id)) {
        return u16::try_from(at).ok();
    }
    let hash = by_request::hash(id);
    let from = ids.len().saturating_sub(LOOK_BACK);
    let found = ids
        .get(from..)
        .unwrap_or_default()
        .iter()
        .rposition(|b| b.hash == hash && &*b.id == id);
    if let Some(at) = found {
        return u16::try_from(from + at).ok();
    }
    let at = u16::try_from(ids.len()).ok().filter(|&at| at < NONE)?;
    ids.push(BatchId {
        hash,
        id: id.into(),
        fresh: None,
        decided: false,
    });
    Some(at)
}

/// How far back in a batch's invocations [`index_of`] searches.
const LOOK_BACK: usize = 16;

/// The X-Ray `Sampled=` flag of a start event's trace header.
fn xray_flag(start: &Event) -> Option<bool> {
    let record = start.platform();
    let header = record.tracing.0.as_ref().and_then(|t| t.value.0.as_deref());
    header.and_then(sampled_flag)
}

#[cfg(test)]
mod tests;
