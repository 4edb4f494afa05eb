//! Outputs that aggregate (OTLP metrics): their encoder folds events in as they arrive, and
//! exports what it holds on its interval (`OTEL_METRIC_EXPORT_INTERVAL`), as an SDK's periodic
//! reader does, rather than one request per batch. Folding settles the events for the buffer
//! at once, so an aggregating output never holds batches back; its counters settle them when
//! the export that carries them does.
//!
//! An export is due when the interval has passed since the last one, checked whenever events
//! arrive: a frozen environment cannot export, so the first batch after a long pause exports
//! at once, and under the `end` flush policy that happens before the freeze, since the flush
//! waits for an export in flight. The first export is not held for an interval: an
//! environment's first invocation is often its only one for a while. On SHUTDOWN everything
//! held is exported. A failed export is retried by carrying it in the next one (the encoder
//! keeps it until it is settled), never by folding its events again.

use std::time::Instant;

use super::Delivery;
use super::output::{InFlight, Output};
use crate::counters::add;
use crate::msg::Outcome;

impl Delivery {
    /// Folds output `index`'s new events into its encoder, and exports if that is due.
    pub(super) fn fold_and_export(&mut self, index: usize, deadline: Instant) {
        let now = Instant::now();
        let closing = self.closing;
        let Some(output) = self.outputs.get_mut(index) else {
            return;
        };
        let start = output.cursor;
        let mut seq = start;
        let mut events = 0;
        let mut nothing = Vec::new();
        for entry in &self.entries {
            for (event, seen_by) in entry.events(seq, u64::MAX) {
                seq += 1;
                let encoder = &mut *output.sink.encoder;
                let (carried, _) = super::offer(encoder, &event, seen_by, &mut nothing);
                events += u64::from(carried);
            }
        }
        output.cursor = seq;
        if let Some(a) = &mut output.aggregate
            && events > 0
        {
            a.folded += events;
            a.from.get_or_insert(start);
        }
        if output.export_due(now, closing) {
            let mut body = std::mem::take(&mut self.scratch);
            body.clear();
            if let Some(unused) = export(output, index, body, deadline, now) {
                self.scratch = unused;
            }
        }
        self.release();
    }
}

/// Hands output's export to its sender; returns the body when there was nothing to export.
fn export(
    output: &mut Output,
    index: usize,
    mut body: Vec<u8>,
    deadline: Instant,
    now: Instant,
) -> Option<Vec<u8>> {
    let a = output.aggregate.as_mut()?;
    let (events, from) = (std::mem::take(&mut a.folded), a.from.take());
    if !output.sink.encoder.export(&mut body) {
        // Folded events that make no data point (an init report without a duration): done.
        add(&mut output.counters.sent, events);
        return Some(body);
    }
    a.last_export = Some(now);
    let flight = InFlight {
        start: from.unwrap_or(output.cursor),
        end: output.cursor,
        events,
        evicted: 0,
    };
    if !output.hand_over(index, body, deadline, flight)
        && let Some(a) = &mut output.aggregate
    {
        // The encoder still holds the export unsettled: the next one carries it.
        a.folded += events;
        a.from = from;
    }
    None
}

/// What an export's receipt means for the aggregate (the counters are the caller's): a final
/// outcome settles it in the encoder; a retry puts its events back to go with the next one.
pub(super) fn settle(output: &mut Output, flight: InFlight, outcome: &Outcome) {
    match outcome {
        Outcome::Retry { .. } => {
            if let Some(a) = &mut output.aggregate {
                a.folded += flight.events;
                a.from = Some(a.from.map_or(flight.start, |f| f.min(flight.start)));
            }
        }
        Outcome::Sent | Outcome::Partial { .. } | Outcome::Rejected(_) => {
            output.sink.encoder.settled();
        }
    }
}
