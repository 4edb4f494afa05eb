//! SHUTDOWN (SPEC.md §3, trap 1): the platform's final batch, with the last invocation's
//! `platform.report` and any lines the function logged after SHUTDOWN was sent, arrives after
//! the SHUTDOWN event. So the relay keeps reading until every invocation it saw start has its
//! report and no POST came for a quiet period (the subscription's `timeoutMs` + 50 ms), capped
//! at the SHUTDOWN deadline minus a safety margin, or until a second SIGTERM. The network
//! outputs keep sending all along. Then it stops the listener, takes what the listener still
//! sent, lets the outputs send what is buffered until the same hard stop, and counts the rest
//! as dropped. Without a subscription it does not wait for a batch at all.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use super::{Ended, Relay};
use crate::delivery::Delivery;
use crate::msg::Msg;
use crate::{sys, warn};

/// Time kept in hand before the SHUTDOWN deadline for draining and exiting.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(300);
/// Time kept for the outputs' last requests (aggregated metrics are exported only then) when
/// the wait for missing reports would otherwise use all that is left (at most a quarter of it).
const DRAIN_RESERVE: Duration = Duration::from_millis(500);
/// How long after the platform's `timeoutMs` a batch may still be on its way.
pub const QUIET_EXTRA: Duration = Duration::from_millis(50);
/// How often the wait looks at the clock and the SIGTERM count.
const SHUTDOWN_POLL: Duration = Duration::from_millis(10);
/// After a second SIGTERM: how long the outputs may still send.
pub const SECOND_TERM_BUDGET: Duration = Duration::from_millis(200);
/// An invocation whose report has not come in this long is forgotten.
const PENDING_EXPIRY: Duration = Duration::from_secs(15 * 60);

impl Relay {
    /// Notes that `request_id` started and its report is to come.
    pub(super) fn expect_report(&mut self, request_id: &str) {
        if !self.track_reports || request_id.is_empty() {
            return;
        }
        let now = Instant::now();
        self.pending
            .retain(|since| now.duration_since(*since) < PENDING_EXPIRY);
        self.pending.insert(request_id, now);
    }

    /// Reads until the last batch is in, the deadline margin is reached, or a second SIGTERM.
    pub(super) fn wait_for_last_batch(
        &mut self,
        rx: &Receiver<Msg>,
        deadline: SystemTime,
    ) -> Ended {
        let start = Instant::now();
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(SHUTDOWN_MARGIN);
        let hard_stop = start + left;
        self.hard_stop = Some(hard_stop);
        // Missing reports are waited for only so long that the outputs keep time to drain.
        let reports_until = hard_stop - (left / 4).min(DRAIN_RESERVE);
        if !self.telemetry {
            return Ended::Drained;
        }
        let mut last_post = start;
        loop {
            // Late events go out as they come, not after the wait.
            self.pump();
            let now = Instant::now();
            let quiet_until = last_post + self.quiet;
            if self.pending.is_empty() && now >= quiet_until {
                return Ended::Drained;
            }
            if now >= reports_until {
                self.counters.reports_missing_at_shutdown = self.pending.len() as u64;
                warn!(
                    "SHUTDOWN deadline near: exiting without the report of {} invocation(s)",
                    self.pending.len()
                );
                return Ended::Drained;
            }
            if sys::terms() >= 2 {
                warn!("second SIGTERM during SHUTDOWN: exiting with what has been relayed");
                self.hard_stop = Some(hard_stop.min(now + SECOND_TERM_BUDGET));
                return Ended::SecondSigterm;
            }
            let until = if self.pending.is_empty() {
                quiet_until.min(hard_stop)
            } else {
                reports_until
            };
            let wait = until.saturating_duration_since(now).min(SHUTDOWN_POLL);
            match rx.recv_timeout(wait) {
                Ok(msg) => {
                    if matches!(msg, Msg::Post { .. } | Msg::Oversize { .. }) {
                        last_post = Instant::now();
                    }
                    self.handle(msg);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ended::Disconnected,
            }
        }
    }

    /// After the last batch: stop the listener, take what it still sent, and let the network
    /// outputs send everything buffered, until the hard stop; then count what is left.
    pub(super) fn finish(&mut self, rx: &Receiver<Msg>) {
        let hard_stop = self.hard_stop.unwrap_or_else(Instant::now);
        if let Some(listener) = &self.listener {
            listener.stop();
        }
        if let Some(delivery) = &mut self.delivery {
            delivery.closing();
        }
        loop {
            if self.listener_closed {
                self.relay_waiting();
                self.release_held();
            }
            self.send_now(hard_stop);
            let outputs_idle = self.delivery.as_ref().is_none_or(Delivery::idle);
            if self.listener_closed && outputs_idle {
                break;
            }
            let now = Instant::now();
            if now >= hard_stop {
                break;
            }
            match rx.recv_timeout((hard_stop - now).min(SHUTDOWN_POLL)) {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // Whatever is still held is at least printed; the outputs count it as dropped.
        self.relay_waiting();
        self.release_held();
        if let Some(delivery) = &mut self.delivery {
            delivery.abandon();
        }
        if let Some(listener) = self.listener.take() {
            listener.join();
        }
    }
}
