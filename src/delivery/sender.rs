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

use super::sigv4::{self, Signer};
use super::{answer, aws_json, firehose, gzip};
use crate::config::aws::Api;
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
    // Each output's signer, if it sends to AWS (outputs of one destination may sign for
    // different services), and its headers, which a CloudWatch log stream's join once the
    // stream is made (`None` until then).
    let mut signers: Vec<Option<Signer>> = endpoints
        .iter()
        .map(|(_, e)| sigv4::signer(e.to.sign.as_ref()))
        .collect();
    let mut headers: Vec<Option<Vec<(String, Secret)>>> = endpoints.iter().map(|_| None).collect();
    // The gzipped body, reused; compressing here keeps the relay thread free of it.
    let mut gzipped = Vec::new();
    while let Ok(request) = rx.recv() {
        let Some(at) = endpoints.iter().position(|(i, _)| *i == request.output) else {
            continue;
        };
        let (Some((_, endpoint)), Some(signer), Some(headers)) =
            (endpoints.get(at), signers.get_mut(at), headers.get_mut(at))
        else {
            continue;
        };
        let mut signer = signer.as_mut();
        // One client for the destination: its outputs share the connection (and its TLS
        // handshake) in turn.
        let agent = agent.get_or_insert_with(|| build_agent(endpoint));
        let wire = if endpoint.to.gzip {
            gzip::compress(&request.body, &mut gzipped);
            &gzipped[..]
        } else {
            &request.body[..]
        };
        let outcome = match (agent, &endpoint.to.api) {
            (Ok(agent), Api::Post) => {
                let headers = headers.get_or_insert_with(|| {
                    let mut all = endpoint.to.headers.clone();
                    let deadline = request.deadline;
                    all.extend(log_stream(agent, endpoint, deadline, signer.as_deref_mut()));
                    all
                });
                send(agent, endpoint, headers, wire, request.deadline, signer)
            }
            (
                Ok(agent),
                Api::Firehose {
                    stream,
                    gzip_records,
                },
            ) => {
                let to = (stream.as_str(), *gzip_records);
                firehose::send(agent, endpoint, to, wire, request.deadline, signer)
            }
            (Err(why), _) => Outcome::Rejected(why.clone()),
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

/// Makes the output's CloudWatch log stream, if it sends to one, and returns the headers that
/// name it (none without one). A stream that cannot be made is warned of; its requests then
/// say the rest.
fn log_stream(
    agent: &ureq::Agent,
    endpoint: &Endpoint,
    deadline: Instant,
    signer: Option<&mut Signer>,
) -> Vec<(String, Secret)> {
    let Some(stream) = &endpoint.to.log_stream else {
        return Vec::new();
    };
    let name = stream
        .stream
        .clone()
        .unwrap_or_else(|| aws_json::default_stream(&stream.version));
    let left = deadline.saturating_duration_since(Instant::now());
    let (url, group, timeout) = (
        &endpoint.to.url,
        &stream.group,
        endpoint.to.timeout.min(left),
    );
    if let Err(why) = aws_json::create_log_stream(agent, url, group, &name, timeout, signer) {
        crate::warn!("cannot create CloudWatch log stream {name:?} in {group:?}: {why}");
    }
    vec![
        ("x-aws-log-group".to_string(), Secret(group.clone())),
        ("x-aws-log-stream".to_string(), Secret(name)),
    ]
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
    let builder = {
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

/// What one attempt came to: an outcome, or a reason to try again (after `after`, if the
/// answer said when).
pub enum Step {
    Done(Outcome),
    Again {
        why: String,
        after: Option<Duration>,
    },
}

/// Runs `attempt` (given the time it may take) until it is done, retrying as the module doc
/// says, never past `deadline`.
pub fn with_retries(
    deadline: Instant,
    timeout: Duration,
    mut attempt: impl FnMut(Duration) -> Result<Step, ureq::Error>,
) -> Outcome {
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
        let (why, after) = match attempt(left.min(timeout)) {
            Ok(Step::Done(outcome)) => return outcome,
            Ok(Step::Again { why, after }) => (why, after),
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

/// POSTs `body` as the endpoint says (an OTLP or NDJSON request), with retries.
pub fn send(
    agent: &ureq::Agent,
    endpoint: &Endpoint,
    headers: &[(String, Secret)],
    body: &[u8],
    deadline: Instant,
    signer: Option<&mut Signer>,
) -> Outcome {
    let mut signer = signer;
    let call = Call {
        url: &endpoint.to.url,
        content_type: endpoint.content_type,
        gzip: endpoint.to.gzip,
        extra: &[],
        headers,
    };
    // Only OTLP answers carry a partial success.
    let otlp = matches!(
        endpoint.content_type,
        "application/json" | "application/x-protobuf"
    );
    with_retries(deadline, endpoint.to.timeout, |timeout| {
        let a = post(agent, &call, body, timeout, signer.as_deref_mut())?;
        Ok(match a.status {
            200..=299 => {
                let partial = otlp
                    .then(|| answer::partial_success(&a.content_type, &a.body))
                    .flatten();
                Step::Done(match partial {
                    Some(p) => Outcome::Partial {
                        rejected: p.rejected,
                        message: p.message,
                    },
                    None => Outcome::Sent,
                })
            }
            status if answer::retryable(status) => Step::Again {
                why: format!("HTTP {status}"),
                after: a.retry_after,
            },
            status => Step::Done(Outcome::Rejected(format!("HTTP {status}"))),
        })
    })
}

/// One request's parts beyond its body.
pub struct Call<'a> {
    pub url: &'a str,
    pub content_type: &'a str,
    /// The body is gzipped (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Headers of the API itself, such as `X-Amz-Target`.
    pub extra: &'a [(&'a str, &'a str)],
    /// The user's headers.
    pub headers: &'a [(String, Secret)],
}

/// What one attempt's answer said.
pub struct Answered {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// The answer's type (the request's when it gives none: the specification asks servers to
    /// answer in the request's encoding) and its body, read up to [`ANSWER_BYTES`].
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Most of an answer's body that is read: enough for any `partialSuccess`, or a Firehose
/// answer's 500 record results.
const ANSWER_BYTES: u64 = 256 * 1024;

/// One POST, signed when a signer is given; the answer read whole (bounded), so that the
/// connection can be reused.
pub fn post(
    agent: &ureq::Agent,
    call: &Call,
    body: &[u8],
    timeout: Duration,
    signer: Option<&mut Signer>,
) -> Result<Answered, ureq::Error> {
    let mut headers: Vec<(&str, &str)> = vec![("content-type", call.content_type)];
    if call.gzip {
        headers.push(("content-encoding", "gzip"));
    }
    headers.extend(call.extra.iter().copied());
    headers.extend(
        call.headers
            .iter()
            .map(|(n, Secret(v))| (n.as_str(), v.as_str())),
    );
    let mut request = agent
        .post(call.url)
        .config()
        .timeout_global(Some(timeout))
        .build();
    for (name, value) in &headers {
        request = request.header(*name, *value);
    }
    if let Some(signer) = signer {
        for (name, value) in signer.headers_for_post(call.url, &headers, body) {
            request = request.header(name, value);
        }
    }
    let mut response = request.send(body)?;
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
    let retry_after = header("Retry-After").and_then(|v| answer::retry_after(v, SystemTime::now()));
    let content_type = header("Content-Type")
        .unwrap_or(call.content_type)
        .to_string();
    let body = response
        .body_mut()
        .with_config()
        .limit(ANSWER_BYTES)
        .read_to_vec()
        .unwrap_or_default();
    Ok(Answered {
        status,
        retry_after,
        content_type,
        body,
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
