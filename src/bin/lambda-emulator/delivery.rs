//! The Telemetry API's delivery side (SPEC.md §5): events are queued as the platform and the
//! function produce them, replayed to a late subscriber, batched by maxItems/maxBytes/timeoutMs
//! and POSTed as JSON arrays, one batch at a time, in the order they were produced.
//!
//! The scenario can hold delivery (the environment is frozen after the last `/next`, so the
//! final batch reaches the extension only after SHUTDOWN) and close it (the extension exited).
//! A POST that fails is dropped and announced with `platform.logsDropped`, as RIE-LMI does.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::events::{self, Emitted, Stream};

/// An accepted subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Where to POST, with `sandbox.localdomain` rewritten to 127.0.0.1 as RIE does.
    pub url: String,
    pub port: u16,
    pub streams: Vec<Stream>,
    pub max_items: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// One POST made to the extension.
#[derive(Debug, Clone)]
pub struct Post {
    pub events: Vec<String>,
    /// `200`, another status, or a transport error.
    pub outcome: String,
}

#[derive(Default)]
struct Inner {
    subscription: Option<Subscription>,
    /// Everything produced before a subscription existed, for replay.
    before_subscription: Vec<Emitted>,
    pending: VecDeque<Emitted>,
    pending_bytes: usize,
    oldest: Option<Instant>,
    held: bool,
    closed: bool,
    in_flight: bool,
    posts: Vec<Post>,
    last_post_at: Option<Instant>,
    produced: Vec<Emitted>,
}

/// The delivery queue, shared by the scenario, the API server and the delivery thread.
#[derive(Default)]
pub struct Telemetry {
    inner: Mutex<Inner>,
    changed: Condvar,
}

impl Telemetry {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The platform or the function produced an event.
    pub fn emit(&self, event: Emitted) {
        let mut inner = self.lock();
        inner.produced.push(event.clone());
        match &inner.subscription {
            None => inner.before_subscription.push(event),
            Some(sub) if sub.streams.contains(&event.stream) => queue(&mut inner, event),
            Some(_) => {}
        }
        self.changed.notify_all();
    }

    /// Accepts a subscription and replays what it missed.
    pub fn subscribe(&self, subscription: Subscription) {
        let mut inner = self.lock();
        let missed = std::mem::take(&mut inner.before_subscription);
        for event in missed
            .into_iter()
            .filter(|e| subscription.streams.contains(&e.stream))
        {
            queue(&mut inner, event);
        }
        inner.subscription = Some(subscription);
        self.changed.notify_all();
    }

    /// Whether events of `stream` would be delivered (or replayed to a later subscriber).
    pub fn wants(&self, stream: Stream) -> bool {
        self.lock()
            .subscription
            .as_ref()
            .is_none_or(|s| s.streams.contains(&stream))
    }

    pub fn subscription(&self) -> Option<Subscription> {
        self.lock().subscription.clone()
    }

    /// Holds or releases delivery.
    pub fn hold(&self, held: bool) {
        self.lock().held = held;
        self.changed.notify_all();
    }

    /// Stops delivery for good; what is still queued is never delivered.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Waits until nothing deliverable is queued or in flight, up to `limit`.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        let mut inner = self.lock();
        while inner.subscription.is_some()
            && ((!inner.pending.is_empty() && !inner.held) || inner.in_flight)
        {
            let now = Instant::now();
            if now >= until {
                return false;
            }
            inner = self
                .changed
                .wait_timeout(inner, until - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }

    /// Every event produced (subscribed or not), every POST made, and how many were never sent.
    pub fn results(&self) -> (Vec<Emitted>, Vec<Post>, Vec<Emitted>) {
        let inner = self.lock();
        (
            inner.produced.clone(),
            inner.posts.clone(),
            inner.pending.iter().cloned().collect(),
        )
    }

    /// When the last POST was answered.
    pub fn last_post_at(&self) -> Option<Instant> {
        self.lock().last_post_at
    }

    /// The delivery thread's body: returns once closed.
    pub fn deliver(self: Arc<Self>) {
        let agent = http_agent(Duration::from_secs(10));
        while let Some((url, batch)) = self.next_batch() {
            let body = format!(
                "[{}]",
                batch
                    .iter()
                    .map(|e| e.json.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let outcome = match agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.as_bytes())
            {
                Ok(response) => response.status().as_u16().to_string(),
                Err(e) => format!("error: {e}"),
            };
            let failed = outcome != "200";
            let mut inner = self.lock();
            inner.in_flight = false;
            inner.last_post_at = Some(Instant::now());
            inner.posts.push(Post {
                events: batch.iter().map(|e| e.json.clone()).collect(),
                outcome,
            });
            if failed {
                let dropped = events::platform(
                    "platform.logsDropped",
                    json!({
                        "droppedBytes": body.len(),
                        "droppedRecords": batch.len(),
                        "reason": "Some logs were dropped because the subscriber failed to accept them",
                    }),
                );
                inner.produced.push(dropped.clone());
                queue(&mut inner, dropped);
            }
            self.changed.notify_all();
        }
    }

    /// Blocks until a batch is due; `None` once closed.
    fn next_batch(&self) -> Option<(String, Vec<Emitted>)> {
        let mut inner = self.lock();
        loop {
            if inner.closed {
                return None;
            }
            let wait = match (&inner.subscription, inner.oldest) {
                (Some(sub), Some(oldest)) if !inner.held => {
                    let due = oldest + sub.timeout;
                    if inner.pending.len() >= sub.max_items
                        || inner.pending_bytes >= sub.max_bytes
                        || Instant::now() >= due
                    {
                        break;
                    }
                    Some(due.saturating_duration_since(Instant::now()))
                }
                _ => None,
            };
            inner = match wait {
                Some(d) => self
                    .changed
                    .wait_timeout(inner, d)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0),
                None => self.changed.wait(inner).unwrap_or_else(|p| p.into_inner()),
            };
        }
        let sub = inner.subscription.clone()?;
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(event) = inner.pending.front() {
            if !batch.is_empty()
                && (batch.len() >= sub.max_items || bytes + event.json.len() > sub.max_bytes)
            {
                break;
            }
            bytes += event.json.len();
            if let Some(event) = inner.pending.pop_front() {
                batch.push(event);
            }
        }
        inner.pending_bytes -= bytes;
        inner.oldest = (!inner.pending.is_empty()).then(Instant::now);
        inner.in_flight = true;
        Some((sub.url, batch))
    }
}

/// A client for POSTing to the extension's listener: statuses as values, a bound on every call.
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

fn queue(inner: &mut Inner, event: Emitted) {
    inner.pending_bytes += event.json.len();
    inner.pending.push_back(event);
    inner.oldest.get_or_insert_with(Instant::now);
}
