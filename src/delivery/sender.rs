//! One sender thread per destination: it POSTs what the relay encoded and reports back.
//!
//! The relay must never wait on a network, so each destination (scheme, host and port, with
//! its certificate files) gets a thread of its own, fed one request per output at a time; a
//! black-holed backend then stalls only the outputs that send to it. Outputs that share a
//! destination (the OTLP signals to one collector) take turns on one connection, so a cold
//! start pays one TLS handshake, not one per signal. The HTTP client
//! is built on the first request, never during Init (SPEC.md trap 9). Every call is bounded:
//! by the output's timeout, and by the request's deadline (the flush budget, or the SHUTDOWN
//! deadline). A connection that died while the environment was frozen is retried once at once
//! on a fresh connection (trap 6). As the OTLP specification says, only 429, 502, 503, 504 and
//! connection failures or timeouts are retried, with capped backoff, or after the answer's
//! `Retry-After` when it gives one, until the deadline; then the request is handed back to be
//! re-queued. Any other 4xx or 5xx is final. A 2xx may still reject part of an OTLP request
//! (`partialSuccess`): that is counted, not retried (see `answer`).

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::{answer, gzip};
use crate::config::outputs::Secret;
use crate::msg::{Msg, Outcome, Receipt};
use crate::sinks::Endpoint;

/// One encoded request of one output.
#[derive(Debug)]
pub struct Request {
    pub output: usize,
    pub body: Vec<u8>,
    /// Not a moment past this, retries included.
    pub deadline: Instant,
}

const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(1);

/// Where an output's requests go to its sender thread.
#[derive(Clone)]
pub struct Feed(SyncSender<Request>);

impl Feed {
    /// Hands over a request; false if the thread is gone.
    pub fn send(&self, request: Request) -> bool {
        self.0.try_send(request).is_ok()
    }

    /// A feed to a thread that takes requests and never answers, for tests that settle
    /// requests with receipts of their own.
    #[cfg(test)]
    pub fn inert() -> Feed {
        let (requests, rx) = mpsc::sync_channel::<Request>(64);
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Feed(requests)
    }
}

/// One destination's sender thread, serving the outputs that send there.
pub struct SenderThread {
    pub outputs: Vec<usize>,
    thread: JoinHandle<()>,
}

impl SenderThread {
    /// Starts the sender of `endpoints` (output index, endpoint), which share a destination
    /// (see `Delivery::new`); receipts come back on the relay's channel. Each of them has at
    /// most one request in flight, so the queue holds one per output and never refuses one.
    pub fn spawn(
        endpoints: Vec<(usize, Endpoint)>,
        results: Sender<Msg>,
    ) -> std::io::Result<(SenderThread, Feed)> {
        let (requests, rx) = mpsc::sync_channel(endpoints.len().max(1));
        let outputs = endpoints.iter().map(|(i, _)| *i).collect();
        let name = format!("sender-{}", endpoints.first().map_or(0, |(i, _)| *i));
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || serve(&endpoints, &rx, &results))?;
        Ok((SenderThread { outputs, thread }, Feed(requests)))
    }

    /// Waits for the thread to end (its feeds must be gone).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

fn serve(endpoints: &[(usize, Endpoint)], rx: &Receiver<Request>, results: &Sender<Msg>) {
    let mut agent = None;
    // The gzipped body, reused; compressing here keeps the relay thread free of it.
    let mut gzipped = Vec::new();
    while let Ok(request) = rx.recv() {
        let Some((_, endpoint)) = endpoints.iter().find(|(i, _)| *i == request.output) else {
            continue;
        };
        // One client for the destination: its outputs share the connection (and its TLS
        // handshake) in turn.
        let agent = agent.get_or_insert_with(|| build_agent(endpoint));
        let wire = if endpoint.to.gzip {
            gzip::compress(&request.body, &mut gzipped);
            &gzipped[..]
        } else {
            &request.body[..]
        };
        let outcome = match agent {
            Ok(agent) => send(agent, endpoint, wire, request.deadline),
            Err(why) => Outcome::Rejected(why.clone()),
        };
        let receipt = Receipt {
            output: request.output,
            bytes: wire.len() as u64,
            outcome,
            body: request.body,
        };
        if gzipped.capacity() > KEEP_GZIPPED_BYTES {
            gzipped = Vec::new();
        }
        if results.send(Msg::Delivered(receipt)).is_err() {
            return;
        }
    }
}

/// A gzip buffer bigger than this is not kept for the next request.
const KEEP_GZIPPED_BYTES: usize = 256 * 1024;

/// Read and write buffer of each output's client: ureq's 128 KiB defaults, four outputs over,
/// would be a megabyte; bodies stream through and response headers are small.
const BUFFER_BYTES: usize = 16 * 1024;

/// The output's client; with certificate files, their TLS setup (read here, on the output's
/// thread), or why it cannot be made.
fn build_agent(endpoint: &Endpoint) -> Result<ureq::Agent, String> {
    let builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .input_buffer_size(BUFFER_BYTES)
        .output_buffer_size(BUFFER_BYTES);
    #[cfg(feature = "tls")]
    let builder = if endpoint.to.tls.is_empty() {
        builder
    } else {
        let tls = super::tls::config(&endpoint.to.tls).map_err(|e| format!("TLS setup: {e}"))?;
        builder.tls_config(tls)
    };
    // The config refuses certificate files in a build without TLS; never sent without them.
    #[cfg(not(feature = "tls"))]
    if !endpoint.to.tls.is_empty() {
        return Err("TLS setup: this build has no TLS".to_string());
    }
    Ok(ureq::Agent::with_parts(
        builder.build(),
        ureq::unversioned::transport::DefaultConnector::default(),
        super::resolve::LiteralFirst::default(),
    ))
}

/// POSTs `request`, retrying as the module doc says, never past its deadline.
pub fn send(agent: &ureq::Agent, endpoint: &Endpoint, body: &[u8], deadline: Instant) -> Outcome {
    let mut backoff = BACKOFF_START;
    let mut fresh_connection_tried = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::Retry {
                why: "deadline reached".to_string(),
                after: None,
            };
        }
        let (why, after) = match attempt(agent, endpoint, body, left.min(endpoint.to.timeout)) {
            Ok(a) if (200..300).contains(&a.status) => {
                return match a.partial {
                    Some(p) => Outcome::Partial {
                        rejected: p.rejected,
                        message: p.message,
                    },
                    None => Outcome::Sent,
                };
            }
            Ok(a) if answer::retryable(a.status) => (format!("HTTP {}", a.status), a.retry_after),
            Ok(a) => return Outcome::Rejected(format!("HTTP {}", a.status)),
            // A certificate the output does not trust (or that a server refused) is not
            // going to change by trying again.
            Err(e) if is_tls_failure(&e) => return Outcome::Rejected(format!("TLS: {e}")),
            Err(e) if is_dead_connection(&e) && !fresh_connection_tried => {
                fresh_connection_tried = true;
                continue;
            }
            Err(e) => (e.to_string(), None),
        };
        // The server's word on when to come back beats our backoff, within the deadline.
        let pause = after.unwrap_or(backoff);
        if Instant::now() + pause >= deadline {
            return Outcome::Retry { why, after };
        }
        std::thread::sleep(pause);
        backoff = (backoff * 2).min(BACKOFF_CAP);
    }
}

/// What one attempt's answer said.
struct Answered {
    status: u16,
    retry_after: Option<Duration>,
    partial: Option<answer::Partial>,
}

/// Most of an answer's body that is read: enough for any `partialSuccess`.
const ANSWER_BYTES: u64 = 64 * 1024;

fn attempt(
    agent: &ureq::Agent,
    endpoint: &Endpoint,
    body: &[u8],
    timeout: Duration,
) -> Result<Answered, ureq::Error> {
    let mut call = agent
        .post(&endpoint.to.url)
        .config()
        .timeout_global(Some(timeout))
        .build()
        .header("Content-Type", endpoint.content_type);
    if endpoint.to.gzip {
        call = call.header("Content-Encoding", "gzip");
    }
    for (name, Secret(value)) in &endpoint.to.headers {
        call = call.header(name.as_str(), value.as_str());
    }
    let mut response = call.send(body)?;
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
    let retry_after = header("Retry-After").and_then(|v| answer::retry_after(v, SystemTime::now()));
    // The specification: the answer is in the request's encoding; read it as it says it is.
    let answer_type = header("Content-Type")
        .unwrap_or(endpoint.content_type)
        .to_string();
    // Read the (small) answer, bounded, so the connection can be reused.
    let answer = response
        .body_mut()
        .with_config()
        .limit(ANSWER_BYTES)
        .read_to_vec()
        .unwrap_or_default();
    // Only OTLP answers carry a partial success.
    let otlp = matches!(
        endpoint.content_type,
        "application/json" | "application/x-protobuf"
    );
    let partial = (otlp && (200..300).contains(&status))
        .then(|| answer::partial_success(&answer_type, &answer))
        .flatten();
    Ok(Answered {
        status,
        retry_after,
        partial,
    })
}

/// A TLS handshake that failed: rustls reports it as invalid data (a certificate it does not
/// trust, an alert from the server such as a missing client certificate).
fn is_tls_failure(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Io(e) => e.kind() == std::io::ErrorKind::InvalidData,
        ureq::Error::Tls(_) => true,
        _ => false,
    }
}

/// A pooled connection that went away, typically across a freeze.
fn is_dead_connection(error: &ureq::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match error {
        ureq::Error::Io(e) => matches!(
            e.kind(),
            BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
        ),
        ureq::Error::Protocol(_) => true,
        _ => false,
    }
}
