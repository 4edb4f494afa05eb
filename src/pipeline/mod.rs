//! The relay thread: the channel's only receiver. It owns the outputs (stdout and EMF written
//! directly, network outputs through `delivery`), the echo guard, the counters, the flush
//! policy (`flush`) and the decision of when the last batch is in.
//!
//! Three kinds of sender feed it: `main` (subscription outcome, INVOKE, SHUTDOWN), the listener
//! (each POST, then `ListenerClosed`) and each network output's sender thread (the result of
//! each request). It never waits on `/next`, which blocks for hours on Lambda Managed Instances,
//! nor on a network call, so events are relayed while the lifecycle thread is blocked and a
//! dead backend stalls only its own output.
//!
//! SHUTDOWN (SPEC.md §3, trap 1): the platform's final batch, with the last invocation's
//! `platform.report` and any lines the function logged after SHUTDOWN was sent, arrives after
//! the SHUTDOWN event. So the relay keeps reading until every invocation it saw start has its
//! report and no POST came for a quiet period (the subscription's `timeoutMs` + 50 ms), capped at
//! the SHUTDOWN deadline minus a safety margin, or until a second SIGTERM. Then it tells `main`,
//! which stops the listener; the relay takes what the listener still sent, lets the network
//! outputs send what is buffered until the same hard stop, counts the rest as dropped, and
//! returns its counters. Without a subscription or outputs it returns at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

pub mod flush;

use crate::config::{Config, TelemetryType};
use crate::delivery::Delivery;
use crate::delivery::sender::{Endpoint, Outcome};
use crate::signal;
use crate::sinks::emf::Emf;
use crate::sinks::http::Ndjson;
use crate::sinks::otlp::{Common, logs::Logs, metrics::Metrics, traces::Traces};
use crate::sinks::stdout::StdoutSink;
use crate::sinks::stdout::write_lines;
use crate::telemetry::echo::EchoGuard;
use crate::telemetry::event::{Kind, Parsed};
use crate::{debug, info, warn};
use flush::{Flush, FlushReport};

/// Time kept in hand before the SHUTDOWN deadline for draining and exiting.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(300);
/// How long after the platform's `timeoutMs` a batch may still be on its way.
const QUIET_EXTRA: Duration = Duration::from_millis(50);
/// How often a blocked relay looks at the SIGTERM count.
const SIGNAL_POLL: Duration = Duration::from_millis(200);
/// How often it looks while waiting for the last batch.
const SHUTDOWN_POLL: Duration = Duration::from_millis(10);
/// Invocations awaiting their report, at most (LMI runs many at once; reports can be lost).
const MAX_PENDING: usize = 1024;
/// An invocation whose report has not come in this long is forgotten.
const PENDING_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// Bytes of parsed POSTs the listener may have handed over before it waits for the relay.
pub const BACKLOG_LIMIT: usize = 1024 * 1024;

/// Bytes handed to the relay and not yet relayed. The listener adds, the relay subtracts; over
/// [`BACKLOG_LIMIT`] the listener stops reading POSTs, so a slow stdout holds the platform back
/// (it counts what it then drops in `platform.logsDropped`) instead of growing our memory.
pub type Backlog = Arc<AtomicUsize>;

/// What the relay hears.
#[derive(Debug)]
pub enum Msg {
    /// Whether the Telemetry API subscription succeeded.
    Subscribed(bool),
    /// An INVOKE from `/next`, with its X-Ray trace header if it is traced.
    Invoke {
        request_id: String,
        xray: Option<String>,
    },
    /// SHUTDOWN from `/next`; `deadline` is when Lambda kills us.
    Shutdown { deadline: SystemTime },
    /// A telemetry POST, answered and parsed.
    Post(Parsed),
    /// A POST refused with 413 for its size (`declared` from Content-Length, if it had one).
    Oversize { declared: Option<u64> },
    /// The listener has stopped: no more POSTs will come.
    ListenerClosed,
    /// A network output's sender finished a request.
    Delivered {
        output: usize,
        end_seq: u64,
        events: u64,
        bytes: u64,
        outcome: Outcome,
    },
}

/// The relay's own counters, as the outputs that report them (EMF, OTLP metrics) see them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub events_received: u64,
    pub events_relayed: u64,
    pub dropped_by_platform: u64,
    pub dropped_by_buffer: u64,
    pub failed_sends: u64,
    pub malformed_posts: u64,
}

/// Counters, reported in the shutdown summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub invokes: u64,
    pub posts: u64,
    pub events: u64,
    pub relayed: u64,
    pub malformed_posts: u64,
    pub bad_events: u64,
    pub oversize_posts: u64,
    pub own_echoes: u64,
    pub platform_dropped_records: u64,
    pub write_errors: u64,
    pub reports_missing_at_shutdown: u64,
}

/// The relay's state.
pub struct Relay {
    backlog: Backlog,
    stdout: Option<StdoutSink>,
    guard: Option<EchoGuard>,
    track_reports: bool,
    quiet: Duration,
    telemetry: bool,
    pending: Vec<(String, Instant)>,
    stats: Stats,
    delivery: Option<Delivery>,
    /// How long a background request may take, retries included.
    request_budget: Duration,
    listener_closed: bool,
    /// After SHUTDOWN: when we must be done.
    hard_stop: Option<Instant>,
    flush: Flush,
    emf: Option<Emf>,
    emf_buffer: Vec<u8>,
}

impl Relay {
    /// `results` is a sender on the relay's own channel, for the network outputs' results;
    /// `flushed` is `main`'s end of the `end` flush policy's wait (see [`waits_for_flush`]).
    pub fn new(
        config: &Config,
        backlog: Backlog,
        results: Sender<Msg>,
        flushed: Option<Sender<FlushReport>>,
    ) -> Relay {
        let stdout = StdoutSink::new(config.stdout_format);
        // Whatever we print (relayed lines, EMF) comes back as `extension` records.
        let prints = stdout.is_some() || config.outputs.emf.is_some();
        let echoes = prints && config.subscribes(TelemetryType::Extension);
        Relay {
            backlog,
            stdout,
            guard: echoes.then(EchoGuard::default),
            track_reports: config.subscribes(TelemetryType::Platform),
            quiet: Duration::from_millis(u64::from(config.buffering.timeout_ms)) + QUIET_EXTRA,
            telemetry: false,
            pending: Vec::new(),
            stats: Stats::default(),
            delivery: network_outputs(config, results),
            request_budget: request_budget(config),
            listener_closed: false,
            hard_stop: None,
            flush: Flush::new(config.outputs.flush, config.outputs.flush_budget, flushed),
            emf: config
                .outputs
                .emf
                .clone()
                .map(|emf| Emf::new(emf, &config.function_name, &config.function_version)),
            emf_buffer: Vec::new(),
        }
    }

    /// Runs until SHUTDOWN is done; after the wait for the last batch, signals `last_batch_in`.
    pub fn run(mut self, rx: Receiver<Msg>, last_batch_in: Sender<()>) -> Stats {
        loop {
            self.pump();
            let wait = self
                .flush
                .wake_in(Instant::now())
                .map_or(SIGNAL_POLL, |w| w.min(SIGNAL_POLL));
            match rx.recv_timeout(wait) {
                Ok(Msg::Shutdown { deadline }) => {
                    self.wait_for_last_batch(&rx, deadline);
                    let _ = last_batch_in.send(());
                    break;
                }
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) if signal::terms() >= 2 => {
                    warn!("second SIGTERM before SHUTDOWN: exiting with what has been relayed");
                    self.summary();
                    std::process::exit(0);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.finish(&rx);
        self.emit_counters();
        self.summary();
        self.stats
    }

    /// The counters the EMF and OTLP metrics outputs report.
    fn counters(&self) -> Counters {
        // Called before every pump: sum in place, no per-output copies.
        let (dropped, failed) = self.delivery.as_ref().map_or((0, 0), Delivery::losses);
        let s = &self.stats;
        Counters {
            events_received: s.events,
            events_relayed: s.relayed,
            dropped_by_platform: s.platform_dropped_records,
            dropped_by_buffer: dropped,
            failed_sends: failed,
            malformed_posts: s.malformed_posts + s.oversize_posts,
        }
    }

    /// The relay's own counters as a last EMF document.
    fn emit_counters(&mut self) {
        let counters = self.counters();
        let Some(emf) = &self.emf else {
            return;
        };
        emf.counters(&counters, &mut self.emf_buffer);
        self.flush_emf();
    }

    /// After the last batch: take what the stopping listener still sent, and let the network
    /// outputs send everything buffered, until the hard stop.
    fn finish(&mut self, rx: &Receiver<Msg>) {
        let hard_stop = self.hard_stop.unwrap_or_else(Instant::now);
        loop {
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
        if let Some(delivery) = &mut self.delivery {
            delivery.abandon();
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
        if self.flush.may_send(now) {
            self.send_now(deadline);
        }
        if let Some(delivery) = &self.delivery {
            self.flush.check(delivery);
        }
    }

    fn send_now(&mut self, deadline: Instant) {
        let counters = self.counters();
        if let Some(delivery) = &mut self.delivery {
            delivery.set_counters(&counters);
            delivery.pump(deadline);
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Subscribed(active) => {
                self.telemetry = active;
                self.listener_closed |= !active;
            }
            Msg::ListenerClosed => self.listener_closed = true,
            Msg::Delivered {
                output,
                end_seq,
                events,
                bytes,
                outcome,
            } => {
                if let Some(delivery) = &mut self.delivery {
                    delivery.delivered(output, end_seq, events, bytes, outcome);
                }
            }
            Msg::Invoke { request_id, xray } => {
                self.stats.invokes += 1;
                if let Some(delivery) = &mut self.delivery {
                    delivery.invoked(&request_id, xray.as_deref());
                    self.flush.invoked(request_id.clone(), delivery);
                }
                self.expect_report(request_id);
            }
            Msg::Shutdown { .. } => {}
            Msg::Post(parsed) => self.relay(parsed),
            Msg::Oversize { declared } => {
                self.stats.posts += 1;
                self.stats.oversize_posts += 1;
                warn!(
                    "telemetry POST refused with 413: body over the cap ({} bytes declared)",
                    declared.map_or_else(|| "unknown".to_string(), |n| n.to_string())
                );
            }
        }
    }

    fn relay(&mut self, parsed: Parsed) {
        let footprint = parsed.batch.footprint();
        self.relay_batch(parsed);
        self.backlog.fetch_sub(footprint, Ordering::Release);
    }

    fn relay_batch(&mut self, parsed: Parsed) {
        self.stats.posts += 1;
        self.stats.malformed_posts += u64::from(parsed.problem.is_some());
        self.stats.bad_events += parsed.bad_events as u64;
        self.stats.events += parsed.batch.len() as u64;
        if parsed.batch.is_empty() {
            return;
        }
        debug!("batch of {} events", parsed.batch.len());
        let mut runtime_done = Vec::new();
        let mut kept = Vec::with_capacity(parsed.batch.len());
        for (i, event) in parsed.batch.events().enumerate() {
            if self.guard.as_mut().is_some_and(|g| g.is_own(&event)) {
                self.stats.own_echoes += 1;
            } else {
                kept.push(i);
            }
            match event.kind {
                Kind::RuntimeDone => {
                    runtime_done.extend(event.request_id().map(|id| id.into_owned()))
                }
                Kind::Start => {
                    if let Some(id) = event.request_id() {
                        self.expect_report(id.into_owned());
                    }
                }
                Kind::Report => {
                    if let Some(id) = event.request_id() {
                        self.pending.retain(|(pending, _)| *pending != id);
                    }
                }
                Kind::LogsDropped => {
                    let dropped = event.platform().dropped_records.whole().unwrap_or(0);
                    self.stats.platform_dropped_records += dropped;
                    warn!(
                        "the platform dropped {dropped} telemetry records before they reached us"
                    );
                }
                _ => {}
            }
        }
        self.write_stdout(&parsed, &kept);
        self.write_emf(&parsed, &kept);
        if let Some(delivery) = &mut self.delivery {
            delivery.push(parsed.batch, kept);
            for request_id in runtime_done {
                self.flush.runtime_done(request_id, delivery);
            }
        }
    }

    /// EMF documents for the events that complete one, on stdout like our relayed lines.
    fn write_emf(&mut self, parsed: &Parsed, kept: &[usize]) {
        let Some(emf) = &mut self.emf else {
            return;
        };
        self.emf_buffer.clear();
        for event in kept.iter().filter_map(|&i| parsed.batch.get(i)) {
            emf.event(&event, &mut self.emf_buffer);
        }
        self.flush_emf();
    }

    fn flush_emf(&mut self) {
        if self.emf_buffer.is_empty() {
            return;
        }
        if let Err(e) = write_lines(&self.emf_buffer, self.guard.as_mut()) {
            self.stats.write_errors += 1;
            debug!("writing EMF to stdout failed: {e}");
        }
        self.emf_buffer.clear();
    }

    fn write_stdout(&mut self, parsed: &Parsed, kept: &[usize]) {
        if let Some(stdout) = &mut self.stdout {
            let kept = kept.iter().filter_map(|&i| parsed.batch.get(i));
            match stdout.write(kept, self.guard.as_mut()) {
                Ok(n) => self.stats.relayed += n as u64,
                Err(e) => {
                    self.stats.write_errors += 1;
                    if self.stats.write_errors == 1 {
                        warn!(
                            "writing to stdout failed (counted; further failures are only counted): {e}"
                        );
                    }
                }
            }
        }
    }

    fn expect_report(&mut self, request_id: String) {
        if !self.track_reports || request_id.is_empty() {
            return;
        }
        let now = Instant::now();
        self.pending
            .retain(|(id, since)| *id != request_id && now.duration_since(*since) < PENDING_EXPIRY);
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push((request_id, now));
    }

    /// Reads until the last batch is in, the deadline margin is reached, or a second SIGTERM.
    fn wait_for_last_batch(&mut self, rx: &Receiver<Msg>, deadline: SystemTime) {
        let start = Instant::now();
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(SHUTDOWN_MARGIN);
        let hard_stop = start + left;
        self.hard_stop = Some(hard_stop);
        if !self.telemetry {
            return;
        }
        let mut last_post = start;
        loop {
            let now = Instant::now();
            let quiet_until = last_post + self.quiet;
            if self.pending.is_empty() && now >= quiet_until {
                return;
            }
            if now >= hard_stop {
                self.stats.reports_missing_at_shutdown = self.pending.len() as u64;
                warn!(
                    "SHUTDOWN deadline near: exiting without the report of {} invocation(s)",
                    self.pending.len()
                );
                return;
            }
            if signal::terms() >= 2 {
                warn!("second SIGTERM during SHUTDOWN: exiting with what has been relayed");
                return;
            }
            let until = if self.pending.is_empty() {
                quiet_until.min(hard_stop)
            } else {
                hard_stop
            };
            let wait = until.saturating_duration_since(now).min(SHUTDOWN_POLL);
            match rx.recv_timeout(wait) {
                Ok(msg) => {
                    if matches!(msg, Msg::Post(_) | Msg::Oversize { .. }) {
                        last_post = Instant::now();
                    }
                    self.handle(msg);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn summary(&self) {
        let s = &self.stats;
        info!(
            "shutdown summary: invokes={} posts={} events={} relayed={} malformed_posts={} \
             bad_events={} oversize_posts={} own_echoes_dropped={} platform_dropped_records={} \
             write_errors={} reports_missing={}",
            s.invokes,
            s.posts,
            s.events,
            s.relayed,
            s.malformed_posts,
            s.bad_events,
            s.oversize_posts,
            s.own_echoes,
            s.platform_dropped_records,
            s.write_errors,
            s.reports_missing_at_shutdown
        );
        for (name, o) in self
            .delivery
            .as_ref()
            .map(Delivery::stats)
            .unwrap_or_default()
        {
            info!(
                "output {name}: sent={} failed_sends={} rejected={} dropped={}",
                o.sent, o.failed_sends, o.rejected, o.dropped
            );
        }
    }
}

/// How long a background request may take, retries included: three timeouts of the slowest
/// output.
fn request_budget(config: &Config) -> Duration {
    let http = config.outputs.http.as_ref().map(|h| h.timeout);
    let otlp = config.outputs.otlp.as_ref().map(|o| o.timeout);
    http.into_iter().chain(otlp).max().unwrap_or_default() * 3
}

/// Whether `main` must wait for a [`FlushReport`] before the `/next` that ends an invocation.
pub fn waits_for_flush(config: &Config) -> bool {
    config.outputs.flush == crate::config::outputs::FlushPolicy::End && config.outputs.network()
}

/// The network outputs the config asks for; `None` if there are none.
fn network_outputs(config: &Config, results: Sender<Msg>) -> Option<Delivery> {
    let mut delivery = Delivery::new(config.outputs.buffer_bytes, results);
    if let Some(http) = &config.outputs.http {
        let endpoint = Endpoint {
            url: http.url.clone(),
            headers: http.headers.clone(),
            content_type: "",
            timeout: http.timeout,
        };
        delivery.add("http", Box::new(Ndjson), endpoint);
    }
    if let Some(otlp) = &config.outputs.otlp {
        let common = Common::new(config);
        let endpoint = |url: &String| Endpoint {
            url: url.clone(),
            headers: otlp.headers.clone(),
            content_type: "",
            timeout: otlp.timeout,
        };
        if let Some(url) = &otlp.logs_url {
            let logs = Logs::new(common.clone(), config.managed_instances);
            delivery.add("otlp-logs", Box::new(logs), endpoint(url));
        }
        if let Some(url) = &otlp.metrics_url {
            delivery.add(
                "otlp-metrics",
                Box::new(Metrics::new(common.clone())),
                endpoint(url),
            );
        }
        if let Some(url) = &otlp.traces_url {
            delivery.add("otlp-traces", Box::new(Traces::new(common)), endpoint(url));
        }
    }
    (!delivery.is_empty()).then_some(delivery)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StdoutFormat;
    use crate::telemetry::event::parse;
    use std::collections::HashMap;

    fn relay(types: &str) -> Relay {
        let mut env = HashMap::new();
        env.insert(
            "AWS_LAMBDA_RUNTIME_API".to_string(),
            "127.0.0.1:1".to_string(),
        );
        env.insert("TELEMETRY_RELAY_TYPES".to_string(), types.to_string());
        env.insert(
            "TELEMETRY_RELAY_STDOUT_FORMAT".to_string(),
            "none".to_string(),
        );
        let config = Config::parse(&env).unwrap();
        assert_eq!(config.stdout_format, StdoutFormat::None);
        Relay::new(
            &config,
            Backlog::default(),
            std::sync::mpsc::channel().0,
            None,
        )
    }

    fn post(body: &str) -> Msg {
        Msg::Post(parse(body.as_bytes().to_vec()))
    }

    #[test]
    fn reports_clear_pending_invocations_by_request_id() {
        let mut relay = relay("platform,function");
        relay.handle(Msg::Invoke {
            request_id: "a".into(),
            xray: None,
        });
        relay.handle(post(
            r#"[{"time":"t","type":"platform.start","record":{"requestId":"b"}}]"#,
        ));
        assert_eq!(relay.pending.len(), 2);
        relay.handle(post(
            r#"[{"time":"t","type":"platform.report","record":{"requestId":"b"}}]"#,
        ));
        assert_eq!(relay.pending.len(), 1);
        relay.handle(post(
            r#"[{"time":"t","type":"platform.start","record":{"requestId":"a"}}]"#,
        ));
        assert_eq!(relay.pending.len(), 1);
    }

    #[test]
    fn without_platform_events_no_report_is_awaited() {
        let mut relay = relay("function");
        relay.handle(Msg::Invoke {
            request_id: "a".into(),
            xray: None,
        });
        assert!(relay.pending.is_empty());
        assert_eq!(relay.stats.invokes, 1);
    }

    #[test]
    fn pending_invocations_are_bounded() {
        let mut relay = relay("platform");
        for i in 0..MAX_PENDING + 10 {
            relay.handle(Msg::Invoke {
                request_id: i.to_string(),
                xray: None,
            });
        }
        assert_eq!(relay.pending.len(), MAX_PENDING);
    }

    #[test]
    fn problems_and_platform_drops_are_counted() {
        let mut relay = relay("platform");
        relay.handle(post("{}"));
        relay.handle(post(r#"[7, {"time":"t","type":"platform.logsDropped","record":{"droppedRecords":12,"droppedBytes":3400,"reason":"x"}}]"#));
        relay.handle(Msg::Oversize { declared: Some(10) });
        let s = &relay.stats;
        assert_eq!(
            (s.posts, s.malformed_posts, s.bad_events, s.oversize_posts),
            (3, 1, 1, 1)
        );
        assert_eq!(s.events, 1);
        assert_eq!(s.platform_dropped_records, 12);
    }

    #[test]
    fn shutdown_without_telemetry_returns_at_once() {
        let mut relay = relay("platform");
        relay.handle(Msg::Invoke {
            request_id: "never-reported".into(),
            xray: None,
        });
        let (_tx, rx) = std::sync::mpsc::channel();
        // No subscription: nothing will come, so nothing is awaited even with a far deadline.
        relay.wait_for_last_batch(&rx, SystemTime::now() + Duration::from_secs(3600));
        assert_eq!(relay.stats.reports_missing_at_shutdown, 0);
    }
}
