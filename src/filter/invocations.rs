//! Every invocation the filter knows of, in one bounded map: its decision once made (events
//! that come after it, a report or an extension's line, follow it), the events held until
//! then, whether it was the cold start, and its X-Ray `Sampled=` flag. One map, so each event
//! costs one lookup, with its id's hash computed once per batch.

use crate::by_request::{ByRequest, PENDING_CAP};
use crate::telemetry::batch::{Audience, Batch, BatchBuilder};

use super::decide::Decision;

/// Invocations known at once: more than can be open together on Lambda Managed Instances,
/// and decisions remembered for a few hundred invocations after them.
pub const KNOWN: usize = PENDING_CAP;

/// What is known of one invocation.
#[derive(Default)]
pub struct Invocation {
    pub decision: Option<Decision>,
    pub cold: bool,
    pub xray: Option<bool>,
    /// Events copied out of their batches while the decision is awaited, with the audience
    /// each would have had.
    held: BatchBuilder,
    audiences: Vec<Audience>,
}

impl Invocation {
    /// Whether it has events waiting.
    pub fn holds(&self) -> bool {
        !self.audiences.is_empty()
    }
}

/// An invocation's held events, as a hold to release (none if it held nothing).
fn taken(invocation: Invocation) -> Option<Taken> {
    if !invocation.holds() {
        return None;
    }
    Some(Taken {
        decision: invocation.decision.unwrap_or(Decision::Missing),
        events: invocation.held.finish(),
        audiences: invocation.audiences,
    })
}

/// A hold handed back to be released.
pub struct Taken {
    pub decision: Decision,
    pub events: Batch,
    pub audiences: Vec<Audience>,
}

pub struct Invocations {
    map: ByRequest<Invocation>,
    held_bytes: usize,
}

impl Invocations {
    pub fn new() -> Invocations {
        Invocations {
            map: ByRequest::new(KNOWN),
            held_bytes: 0,
        }
    }

    pub fn get(&self, hash: u64, id: &str) -> Option<&Invocation> {
        self.map.get_hashed(hash, id)
    }

    pub fn get_mut(&mut self, hash: u64, id: &str) -> Option<&mut Invocation> {
        self.map.get_mut_hashed(hash, id)
    }

    /// `id`'s entry, made if it has none; the oldest entry, pushed out to make room, comes
    /// back if it held events (its decision, or [`Decision::Missing`]).
    pub fn ensure(&mut self, hash: u64, id: &str) -> (Option<&mut Invocation>, Option<Taken>) {
        let (invocation, evicted) = self.map.get_or_insert_hashed(hash, id, Invocation::default);
        let taken = evicted.and_then(|evicted| {
            self.held_bytes -= evicted.held.bytes();
            taken(evicted)
        });
        (invocation, taken)
    }

    /// Copies event `index` of `batch` into `id`'s hold; returns the bytes it now holds.
    pub fn hold(
        &mut self,
        hash: u64,
        id: &str,
        batch: &Batch,
        index: usize,
        seen: Audience,
    ) -> usize {
        let Some(invocation) = self.map.get_mut_hashed(hash, id) else {
            return 0;
        };
        let before = invocation.held.bytes();
        invocation.held.push(batch, index, None);
        invocation.audiences.push(seen);
        let after = invocation.held.bytes();
        self.held_bytes += after - before;
        after
    }

    /// Takes `id`'s held events out; its entry stays, for what comes after the decision.
    pub fn take(&mut self, hash: u64, id: &str) -> Option<Taken> {
        let invocation = self.map.get_mut_hashed(hash, id)?;
        let held = Invocation {
            decision: invocation.decision,
            held: std::mem::take(&mut invocation.held),
            audiences: std::mem::take(&mut invocation.audiences),
            ..Invocation::default()
        };
        self.held_bytes -= held.held.bytes();
        taken(held)
    }

    /// Bytes of event text held, over all invocations.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The oldest invocation with events waiting.
    pub fn oldest_holding(&self) -> Option<Box<str>> {
        self.map.oldest_where(Invocation::holds).map(Box::from)
    }
}
