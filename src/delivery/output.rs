//! One network output as the delivery buffer sees it: its sink, its sender thread, its cursor
//! into the buffer, the request it has in flight, its pause before a retry and its counters.

use std::time::{Duration, Instant};

use super::sender::SenderThread;
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

pub struct Output {
    pub sink: NetworkSink,
    pub sender: Option<SenderThread>,
    pub cursor: u64,
    pub in_flight: Option<InFlight>,
    pub retry_at: Option<Instant>,
    pub retry_pause: Duration,
    pub health: Health,
    pub warned_full: bool,
    pub counters: OutputCounters,
}

impl Output {
    /// Everything before this is accepted, refused or counted as dropped.
    pub fn settled(&self) -> u64 {
        self.in_flight.map_or(self.cursor, |f| f.start)
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
