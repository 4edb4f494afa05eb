//! The relay, on `main`'s thread: the channel's only receiver. It owns the listener's handle,
//! what we print (`print`: stdout, EMF, the echo guard), the delivery buffer and its network
//! outputs, the counters, the flush policy (`flush`) and the SHUTDOWN wait (`shutdown`).
//!
//! Three kinds of sender feed it: the lifecycle loop (subscription outcome, INVOKE, SHUTDOWN,
//! or the Runtime API error that stopped it),
//! the listener (each POST, then `ListenerClosed`) and each network output's sender thread (a
//! receipt per request). It never waits on `/next`, which blocks for hours on Lambda Managed
//! Instances, nor on a network call, so events are relayed while the lifecycle thread is
//! blocked and a dead backend stalls only its own output. It runs on `main`'s thread and
//! returns why it ended, and `main` alone decides how the process exits.

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

pub mod flush;
mod order;
mod print;
mod shutdown;

use crate::by_request::ByRequest;
use crate::config::{Config, TelemetryType};
use crate::counters::{Counters, add};
use crate::delivery::Delivery;
use crate::filter::{Filter, Released};
use crate::listener::Listener;
use crate::msg::{Backlog, Msg};
use crate::telemetry::batch::{Kind, Parsed};
use crate::{debug, info, sinks, warn};
use flush::{Flush, FlushReport};
use order::InOrder;
use print::Printer;

/// How often a blocked relay looks at the SIGTERM count.
const SIGNAL_POLL: Duration = Duration::from_millis(200);
/// Invocations awaiting their report, at most (LMI runs many at once; reports can be lost).
const MAX_PENDING: usize = crate::by_request::PENDING_CAP;

/// Why the relay stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// SHUTDOWN came, the last batch was in and the outputs were drained (or the hard stop
    /// came first: the summary says what was dropped).
    Drained,
    /// A second SIGTERM: we were asked to stop now; what could be written was.
    SecondSigterm,
    /// Every sender of the channel went away without a SHUTDOWN.
    Disconnected,
    /// The lifecycle loop failed (the text says how); what was received was relayed.
    LifecycleFailed(String),
}

/// The relay's state.
pub struct Relay {
    backlog: Backlog,
    /// The bound socket, until the listener is started on it (off the init path).
    socket: Option<TcpListener>,
    listener: Option<Listener>,
    max_body_bytes: u64,
    /// Our own channel's sender, for the listener; dropped once it has its own.
    tx: Option<Sender<Msg>>,
    printer: Printer,
    track_reports: bool,
    quiet: Duration,
    telemetry: bool,
    /// Invocations started and not yet reported, with when we heard of them.
    pending: ByRequest<Instant>,
    counters: Counters,
    delivery: Option<Delivery>,
    /// How long a background request may take, retries included.
    request_budget: Duration,
    listener_closed: bool,
    /// After SHUTDOWN: when we must be done.
    hard_stop: Option<Instant>,
    flush: Flush,
    /// Redaction, sampling and its hold, the level floor, dropped types.
    filter: Filter,
    /// What the filter released for the outputs, reused.
    released: Vec<Released>,
    /// POSTs put back in the order they were answered.
    order: InOrder,
    ready: Vec<Parsed>,
}

impl Relay {
    /// `socket` is the one `main` bound and subscribed with (`None` without a subscription);
    /// `tx` a sender on the relay's own channel, for the listener and the network outputs;
    /// `flushed` is the lifecycle's end of the `end` flush policy's wait.
    pub fn new(
        config: &Config,
        socket: Option<TcpListener>,
        tx: Sender<Msg>,
        flushed: Option<Sender<FlushReport>>,
    ) -> Relay {
        let sinks = sinks::build(config);
        // Whatever we print (relayed lines, EMF) comes back as `extension` records.
        let prints = sinks.stdout.is_some() || sinks.emf.is_some();
        let echoes = prints && config.subscribes(TelemetryType::Extension);
        let delivery = (!sinks.network.is_empty())
            .then(|| Delivery::new(config.outputs.buffer_bytes, sinks.network, tx.clone()));
        Relay {
            backlog: Backlog::default(),
            socket,
            listener: None,
            max_body_bytes: config.max_body_bytes,
            tx: Some(tx),
            printer: Printer::new(sinks.stdout, sinks.emf, echoes),
            track_reports: config.subscribes(TelemetryType::Platform),
            quiet: Duration::from_millis(u64::from(config.buffering.timeout_ms))
                + shutdown::QUIET_EXTRA,
            telemetry: false,
            pending: ByRequest::new(MAX_PENDING),
            counters: Counters::default(),
            delivery,
            request_budget: request_budget(config),
            listener_closed: false,
            hard_stop: None,
            flush: Flush::new(config.outputs.flush, config.outputs.flush_budget, flushed),
            filter: Filter::new(config),
            released: Vec::new(),
            order: InOrder::default(),
            ready: Vec::new(),
        }
    }

    /// Runs until SHUTDOWN is done or a second SIGTERM; says which.
    pub fn run(mut self, rx: Receiver<Msg>) -> Ended {
        self.start_listener();
        let ended = loop {
            self.pump();
            let wait = self
                .flush
                .wake_in(Instant::now())
                .map_or(SIGNAL_POLL, |w| w.min(SIGNAL_POLL));
            match rx.recv_timeout(wait) {
                Ok(Msg::Shutdown { deadline }) => break self.wait_for_last_batch(&rx, deadline),
                Ok(Msg::LifecycleFailed(why)) => break Ended::LifecycleFailed(why),
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) if crate::sys::terms() >= 2 => {
                    warn!("second SIGTERM before SHUTDOWN: stopping with what has been relayed");
                    self.hard_stop = Some(Instant::now() + shutdown::SECOND_TERM_BUDGET);
                    break Ended::SecondSigterm;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break Ended::Disconnected,
            }
        };
        self.finish(&rx);
        self.printer.counters(&self.snapshot(), &mut self.counters);
        self.summary();
        ended
    }

    /// Starts the listener on the subscribed socket; tiny_http starts threads of its own, which
    /// is why this runs here, while the lifecycle thread already waits in `/next`.
    fn start_listener(&mut self) {
        // Our own sender goes either way: the channel closes once its other senders are gone.
        let tx = self.tx.take();
        let (Some(socket), Some(tx)) = (self.socket.take(), tx) else {
            return;
        };
        let started = Listener::start(socket, tx, self.backlog.clone(), self.max_body_bytes);
        match started {
            Ok(listener) => self.listener = Some(listener),
            Err(e) => {
                crate::error!(
                    "the telemetry listener did not start: {e}; no telemetry will be relayed"
                );
                self.listener_closed = true;
            }
        }
    }

    /// The counters as the outputs that report them (EMF, OTLP metrics) see them now.
    fn snapshot(&self) -> Counters {
        let (dropped, failed) = self.delivery.as_ref().map_or((0, 0), Delivery::losses);
        Counters {
            dropped_by_buffer: dropped,
            failed_sends: failed,
            filter: self.filter.counters(),
            ..self.counters
        }
    }

    /// Hands requests to idle network outputs when the flush policy allows, and answers an
    /// `end` flush that is done.
    fn pump(&mut self) {
        let now = Instant::now();
        let mut deadline = now + self.request_budget;
        if let Some(stop) = self.hard_stop.or(self.flush.deadline()) {
            deadline = deadline.min(stop);
        }
        if self.hard_stop.is_some() || self.flush.may_send(now) {
            self.send_now(deadline);
        }
        if let Some(delivery) = &self.delivery {
            self.flush.check(delivery);
        }
    }

    fn send_now(&mut self, deadline: Instant) {
        let counters = self.snapshot();
        if let Some(delivery) = &mut self.delivery {
            delivery.pump(deadline, &counters);
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Subscribed(active) => {
                self.telemetry = active;
                self.listener_closed |= !active;
            }
            Msg::ListenerClosed => self.listener_closed = true,
            Msg::Delivered(receipt) => {
                if let Some(delivery) = &mut self.delivery {
                    delivery.delivered(receipt);
                }
            }
            Msg::Invoke { request_id, xray } => {
                add(&mut self.counters.invokes, 1);
                self.filtered(|filter, out| filter.invoked(&request_id, xray.as_deref(), out));
                if let Some(delivery) = &mut self.delivery {
                    delivery.invoked(&request_id, xray.as_deref());
                    self.flush.invoked(&request_id, delivery);
                }
                self.expect_report(&request_id);
            }
            Msg::Shutdown { .. } | Msg::LifecycleFailed(_) => {}
            Msg::Post { seq, parsed } => self.in_order(seq, Some(parsed)),
            Msg::Lost { seq } => {
                add(&mut self.counters.refused_requests, 1);
                self.in_order(seq, None);
            }
            Msg::Oversize { declared } => {
                add(&mut self.counters.posts, 1);
                add(&mut self.counters.oversize_posts, 1);
                warn!(
                    "telemetry POST refused with 413: body over the cap ({} bytes declared)",
                    declared.map_or_else(|| "unknown".to_string(), |n| n.to_string())
                );
            }
            Msg::Refused => add(&mut self.counters.refused_requests, 1),
        }
    }

    /// POST `seq` arrived (`None`: lost); relays every one whose turn it is.
    fn in_order(&mut self, seq: u64, parsed: Option<Parsed>) {
        self.relay_ready(|order, ready| order.arrive(seq, parsed, ready));
    }

    /// The end: POSTs still waiting for an earlier one are relayed all the same.
    fn relay_waiting(&mut self) {
        self.relay_ready(InOrder::rest);
    }

    /// Relays, in order, the POSTs `step` on the order says are ready.
    fn relay_ready(&mut self, step: impl FnOnce(&mut InOrder, &mut Vec<Parsed>)) {
        let mut ready = std::mem::take(&mut self.ready);
        step(&mut self.order, &mut ready);
        for parsed in ready.drain(..) {
            self.relay(parsed);
        }
        self.ready = ready;
    }

    fn relay(&mut self, parsed: Parsed) {
        let footprint = parsed.batch.footprint();
        self.relay_batch(parsed);
        self.backlog.fetch_sub(footprint, Ordering::Release);
    }

    fn relay_batch(&mut self, parsed: Parsed) {
        let c = &mut self.counters;
        add(&mut c.posts, 1);
        add(&mut c.malformed_posts, u64::from(parsed.problem.is_some()));
        add(&mut c.bad_events, parsed.bad_events as u64);
        add(&mut c.events, parsed.batch.len() as u64);
        if parsed.batch.is_empty() {
            return;
        }
        debug!("batch of {} events", parsed.batch.len());
        let mut runtime_done = Vec::new();
        let mut kept = Vec::with_capacity(parsed.batch.len());
        for (i, event) in parsed.batch.events().enumerate() {
            if self.printer.is_own(&event) {
                add(&mut self.counters.own_echoes, 1);
            } else if let Ok(i) = u32::try_from(i) {
                kept.push(i);
            }
            match event.kind {
                Kind::RuntimeDone => {
                    runtime_done.extend(event.request_id().map(|id| id.into_owned()))
                }
                Kind::Start => {
                    if let Some(id) = event.request_id() {
                        self.expect_report(&id);
                    }
                }
                Kind::Report => {
                    if let Some(id) = event.request_id() {
                        self.pending.remove(&id);
                    }
                }
                Kind::LogsDropped => {
                    let dropped = event.platform().dropped_records.whole().unwrap_or(0);
                    add(&mut self.counters.platform_dropped_records, dropped);
                    warn!(
                        "the platform dropped {dropped} telemetry records before they reached us"
                    );
                }
                _ => {}
            }
        }
        self.filtered(|filter, out| filter.admit(parsed.batch, kept, out));
        if let Some(delivery) = &mut self.delivery {
            for request_id in runtime_done {
                self.flush.runtime_done(&request_id, delivery);
            }
        }
    }

    /// Runs `step` on the filter, then prints and buffers what it released.
    fn filtered(&mut self, step: impl FnOnce(&mut Filter, &mut Vec<Released>)) {
        let mut released = std::mem::take(&mut self.released);
        step(&mut self.filter, &mut released);
        for Released { batch, picks } in released.drain(..) {
            self.printer.print(&batch, &picks, &mut self.counters);
            if let Some(delivery) = &mut self.delivery {
                delivery.push(batch, picks);
            }
        }
        self.released = released;
    }

    /// No batch is to come: what the filter still holds goes on, kept (fail open).
    fn release_held(&mut self) {
        if self.filter.holding() {
            self.filtered(Filter::release_all);
        }
    }

    fn summary(&self) {
        info!(
            "shutdown summary: {} log_lines_dropped={}",
            self.snapshot().summary(),
            crate::log::dropped()
        );
        for (name, c) in self.delivery.iter().flat_map(Delivery::counters) {
            info!("output {name}: {}", c.summary());
            if !c.balanced() {
                crate::error!(
                    "output {name}: counters do not add up (a bug): {}",
                    c.summary()
                );
            }
        }
    }
}

/// How long a background request may take, retries included: three timeouts of the slowest
/// output.
fn request_budget(config: &Config) -> Duration {
    let timeouts = config.outputs.destinations().map(|d| d.timeout);
    timeouts.max().unwrap_or_default() * 3
}

/// Whether the lifecycle must wait for a [`FlushReport`] before the `/next` that ends an
/// invocation.
pub fn waits_for_flush(config: &Config) -> bool {
    config.outputs.flush == crate::config::outputs::FlushPolicy::End && config.outputs.network()
}

#[cfg(test)]
mod tests;
