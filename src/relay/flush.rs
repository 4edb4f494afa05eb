//! When network outputs send: the flush policy (`TELEMETRY_RELAY_FLUSH`).
//!
//! `background` sends whenever there is something to send; `periodic,<ms>` only on its ticks.
//! `end` sends like `background` and also holds the lifecycle thread before the `/next` that
//! ends an invocation: once that invocation's `platform.runtimeDone` arrives, everything
//! buffered up to it is flushed, within the flush budget, and the relay replies to `main`,
//! which waits for the reply. What does not fit in the budget stays buffered for the
//! background path, never dropped. The wait is billed time, so it is bounded here (budget) and
//! in `main` (the invocation's deadline). SPEC.md trap 15.

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::by_request::ByRequest;
use crate::config::outputs::FlushPolicy;
use crate::delivery::Delivery;
use crate::info;

/// Request ids whose runtimeDone came before their INVOKE was seen, at most.
const EARLY_CAP: usize = 64;

/// What flushing cost one invocation, for `main` (which waits for it) and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub request_id: String,
    pub held: Duration,
    pub events: u64,
    pub bytes: u64,
    pub deferred: u64,
}

struct Active {
    request_id: String,
    target_seq: u64,
    started: Instant,
    deadline: Instant,
    totals_before: (u64, u64),
}

/// The flush policy's state; owned by the relay.
pub struct Flush {
    policy: FlushPolicy,
    budget: Duration,
    next_tick: Instant,
    waiting: Option<String>,
    early: ByRequest<()>,
    active: Option<Active>,
    reply: Option<Sender<FlushReport>>,
}

impl Flush {
    /// `reply` is `main`'s end of the wait; `None` unless the policy is `end`.
    pub fn new(policy: FlushPolicy, budget: Duration, reply: Option<Sender<FlushReport>>) -> Flush {
        Flush {
            policy,
            budget,
            next_tick: Instant::now(),
            waiting: None,
            early: ByRequest::new(EARLY_CAP),
            active: None,
            reply,
        }
    }

    /// Whether outputs may send now; `periodic` advances its tick when it says yes.
    pub fn may_send(&mut self, now: Instant) -> bool {
        match self.policy {
            FlushPolicy::Periodic(every) if self.active.is_none() => {
                if now < self.next_tick {
                    return false;
                }
                self.next_tick = now + every;
                true
            }
            _ => true,
        }
    }

    /// The deadline for requests handed out now, if an `end` flush is running.
    pub fn deadline(&self) -> Option<Instant> {
        self.active.as_ref().map(|a| a.deadline)
    }

    /// How long the relay may block before this needs a look.
    pub fn wake_in(&self, now: Instant) -> Option<Duration> {
        let tick = match self.policy {
            FlushPolicy::Periodic(_) => Some(self.next_tick.saturating_duration_since(now)),
            _ => None,
        };
        let end = self.deadline().map(|d| d.saturating_duration_since(now));
        tick.into_iter().chain(end).min()
    }

    /// `main` got INVOKE `request_id` and, under `end`, now waits for our reply.
    pub fn invoked(&mut self, request_id: &str, delivery: &Delivery) {
        if self.reply.is_none() {
            return;
        }
        if self.early.remove(request_id).is_some() {
            self.start(request_id, delivery);
        } else {
            self.waiting = Some(request_id.to_string());
        }
    }

    /// `platform.runtimeDone` of `request_id` is buffered.
    pub fn runtime_done(&mut self, request_id: &str, delivery: &Delivery) {
        if self.reply.is_none() {
            return;
        }
        if self.waiting.as_deref() == Some(request_id) {
            self.waiting = None;
            self.start(request_id, delivery);
        } else {
            self.early.insert(request_id, ());
        }
    }

    fn start(&mut self, request_id: &str, delivery: &Delivery) {
        let now = Instant::now();
        self.active = Some(Active {
            request_id: request_id.to_string(),
            target_seq: delivery.next_seq(),
            started: now,
            deadline: now + self.budget,
            totals_before: delivery.totals(),
        });
    }

    /// Replies to `main` once the invocation's data is out or the budget is spent.
    pub fn check(&mut self, delivery: &Delivery) {
        let Some(active) = &self.active else {
            return;
        };
        let now = Instant::now();
        if !delivery.caught_up(active.target_seq) && now < active.deadline {
            return;
        }
        let (events, bytes) = delivery.totals();
        let report = FlushReport {
            request_id: active.request_id.clone(),
            held: now - active.started,
            events: events.saturating_sub(active.totals_before.0),
            bytes: bytes.saturating_sub(active.totals_before.1),
            deferred: delivery.behind(active.target_seq),
        };
        info!(
            "invocation {}: held {:.1} ms, flushed {} events ({} bytes), deferred {}",
            report.request_id,
            report.held.as_secs_f64() * 1000.0,
            report.events,
            report.bytes,
            report.deferred
        );
        if let Some(reply) = &self.reply {
            let _ = reply.send(report);
        }
        self.active = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn delivery() -> Delivery {
        Delivery::new(1 << 20, Vec::new(), mpsc::channel().0)
    }

    #[test]
    fn periodic_sends_only_on_its_ticks() {
        let mut flush = Flush::new(
            FlushPolicy::Periodic(Duration::from_secs(60)),
            Duration::ZERO,
            None,
        );
        let now = Instant::now();
        assert!(flush.may_send(now));
        assert!(!flush.may_send(now + Duration::from_secs(1)));
        assert!(flush.may_send(now + Duration::from_secs(61)));
        assert!(flush.wake_in(now).is_some());
    }

    #[test]
    fn end_replies_for_the_invocation_main_waits_on_in_either_order() {
        let (tx, rx) = mpsc::channel();
        let d = delivery();
        let mut flush = Flush::new(FlushPolicy::End, Duration::from_secs(1), Some(tx));
        // INVOKE first, then its runtimeDone; nothing buffered, so the reply is immediate.
        flush.invoked("a", &d);
        flush.runtime_done("other", &d);
        flush.check(&d);
        assert!(rx.try_recv().is_err(), "not for another invocation");
        flush.runtime_done("a", &d);
        flush.check(&d);
        assert_eq!(rx.try_recv().unwrap().request_id, "a");
        // runtimeDone first (a fast function), then INVOKE.
        flush.runtime_done("b", &d);
        flush.invoked("b", &d);
        flush.check(&d);
        assert_eq!(rx.try_recv().unwrap().deferred, 0);
    }

    #[test]
    fn background_never_waits() {
        let d = delivery();
        let mut flush = Flush::new(FlushPolicy::Background, Duration::from_secs(1), None);
        flush.invoked("a", &d);
        flush.runtime_done("a", &d);
        assert!(flush.deadline().is_none());
        assert!(flush.may_send(Instant::now()));
    }
}
