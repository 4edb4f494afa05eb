//! One network output as the delivery buffer sees it: its sink, its sender thread, its cursor
//! into the buffer, the request it has in flight, its pause before a retry and its counters.

use std::time::{Duration, Instant};

use super::sender::{Feed, Request};
use crate::counters::OutputCounters;
use crate::sinks::NetworkSink;
use crate::{info, warn};

/// The request an output has in flight: the events from `start` to `end`, of which it carries
/// `events`; `evicted` of those were dropped from the buffer since, so a retry cannot resend them.
#[derive(Debug, Clone, Copy)]
pub struct InFlight {
    pub start: u64,
    pub end: u64,
    pub events: u64,
    pub evicted: u64,
}

/// What an output's log last said about it: each change is logged once, not every pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Sending,
    Failing,
    Refused,
    /// Accepted with part of it rejected (OTLP partial success).
    Partial,
    NoThread,
}

/// An aggregating output's state (see `aggregate`): events folded into its encoder and not
/// yet settled by an export.
#[derive(Debug, Clone, Copy)]
pub struct Aggregate {
    pub interval: Duration,
    /// Carried events folded in and not in a settled export (including those of a failed
    /// export, which the next one carries again).
    pub folded: u64,
    /// The first of those events; an export in flight starts here, so a flush waits for it.
    pub from: Option<u64>,
    pub last_export: Option<Instant>,
}

pub struct Output {
    pub sink: NetworkSink,
    pub aggregate: Option<Aggregate>,
    pub sender: Option<Feed>,
    pub cursor: u64,
    pub in_flight: Option<InFlight>,
    pub retry_at: Option<Instant>,
    pub retry_pause: Duration,
    pub health: Health,
    pub warned_full: bool,
    pub counters: OutputCounters,
}

impl Output {
    /// Everything before this is accepted, refused, counted as dropped or folded into an
    /// aggregate that is not due.
    pub fn settled(&self) -> u64 {
        self.in_flight.map_or(self.cursor, |f| f.start)
    }

    /// Whether an aggregating output has folded events to export now: its interval has passed
    /// since its last export (the first is not held), or the relay is closing.
    pub fn export_due(&self, now: Instant, closing: bool) -> bool {
        self.aggregate.is_some_and(|a| {
            a.folded > 0
                && (closing
                    || a.last_export
                        .is_none_or(|t| now.duration_since(t) >= a.interval))
        })
    }

    /// Hands output `index`'s request `body` to the sender thread, in flight as `flight`; false
    /// if there is no thread (it could not start, or stopped): the events are kept, and
    /// counted at the end.
    pub fn hand_over(
        &mut self,
        index: usize,
        body: Vec<u8>,
        deadline: Instant,
        flight: InFlight,
    ) -> bool {
        let request = Request {
            output: index,
            body,
            deadline,
        };
        if let Some(sender) = &self.sender
            && sender.send(request)
        {
            self.in_flight = Some(flight);
            return true;
        }
        self.sender = None;
        self.health(Health::NoThread, format_args!("it is not running"));
        self.retry_at = Some(Instant::now() + self.retry_pause);
        false
    }

    /// Logs a change of health once; `detail` is formatted only then.
    pub fn health(&mut self, health: Health, detail: std::fmt::Arguments) {
        if self.health == health {
            return;
        }
        let name = self.sink.name;
        match health {
            Health::Sending => info!("{name}: sending again"),
            Health::Failing => {
                warn!("{name}: send failed ({detail}); kept for a later attempt (counted)")
            }
            Health::Refused => {
                warn!("{name}: backend refused events ({detail}); not retried (counted)")
            }
            Health::Partial => warn!(
                "{name}: backend accepted a request but rejected part of it ({detail}); not \
                 retried (counted as partially_rejected)"
            ),
            Health::NoThread => warn!("{name}: no sender thread ({detail}); kept (counted)"),
        }
        self.health = health;
    }
}
