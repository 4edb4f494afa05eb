//! What the threads tell the relay: the one channel's message type, and the vocabulary the
//! senders share with it. A leaf: it imports only the event model, so the listener, the
//! lifecycle loop and the network senders can all speak to the relay without knowing it.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::SystemTime;

use crate::telemetry::batch::Parsed;

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
    /// The lifecycle loop stopped on a Runtime API error it cannot go on from.
    LifecycleFailed(String),
    /// A telemetry POST, answered and parsed. `seq` numbers POSTs in the order they were
    /// answered: readers parse in parallel and may finish out of that order, and the relay
    /// puts them back in it (the platform sends the next batch only once this one is
    /// answered, so answer order is the platform's order).
    Post { seq: u64, parsed: Parsed },
    /// A POST that was answered (and numbered) but whose reader panicked before handing it on:
    /// counted as refused, and its place in the order freed.
    Lost { seq: u64 },
    /// A POST refused with 413 for its size (`declared` from Content-Length, if it had one).
    Oversize { declared: Option<u64> },
    /// A request the listener answered without reading it (bad path, method, or a read that
    /// stalled or failed): counted, never relayed.
    Refused,
    /// The listener has stopped: no more POSTs will come.
    ListenerClosed,
    /// A network output's sender finished a request.
    Delivered(Receipt),
}

/// What became of one request a network output's sender made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The output's index in the delivery buffer.
    pub output: usize,
    /// Body bytes sent.
    pub bytes: u64,
    pub outcome: Outcome,
    /// The request's buffer, handed back for reuse.
    pub body: Vec<u8>,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted (2xx).
    Sent,
    /// Accepted, but the backend says it rejected `rejected` items of it (OTLP partial
    /// success): counted, not retried.
    Partial { rejected: u64, message: String },
    /// Refused for good (any 4xx or 5xx but 429, 502, 503, 504; a TLS setup or handshake that
    /// failed), and why: the events are dropped, counted.
    Rejected(String),
    /// Not accepted before the deadline (429, 502–504, timeout, connection refused…): re-queue,
    /// not before `after` if the backend said when.
    Retry {
        why: String,
        after: Option<std::time::Duration>,
    },
}
