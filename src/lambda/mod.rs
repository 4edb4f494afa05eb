//! The Lambda-side HTTP client: the Runtime API base URL, one plain-HTTP `ureq` agent, and the
//! error every Extensions/Telemetry API call returns.
//!
//! The agent has no timeout at all: `/event/next` blocks across freezes for minutes or hours,
//! and a client timeout there is the bug that broke Sentry's extension (SPEC.md §2.2, trap 3).
//! It never uses a proxy (a function's `HTTP_PROXY` must not capture calls to the sandbox) and
//! never does TLS or DNS: the Runtime API is an IP literal on loopback. URLs are built by string
//! concatenation because the address may carry a path prefix (SPEC.md §1, trap 13).

pub mod extensions;
pub mod telemetry_api;

use std::fmt;

/// Size of the agent's read and write buffers: headers and bodies here are small.
const BUFFER_BYTES: usize = 8 * 1024;

/// The Runtime API as seen from the extension. Clones share one connection pool.
#[derive(Clone)]
pub struct RuntimeApi {
    base: String,
    agent: ureq::Agent,
}

impl RuntimeApi {
    /// `address` is `AWS_LAMBDA_RUNTIME_API` without scheme, e.g. `127.0.0.1:9001` or `host:9000/.rt`.
    pub fn new(address: &str) -> RuntimeApi {
        let config = ureq::Agent::config_builder()
            .timeout_global(None)
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            // Runtime API messages are a few hundred bytes; ureq's 128 KiB defaults for each
            // buffer would be a fifth of our memory budget.
            .input_buffer_size(BUFFER_BYTES)
            .output_buffer_size(BUFFER_BYTES)
            .build();
        RuntimeApi {
            base: format!("http://{address}"),
            agent: config.into(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// What a Lambda API call can fail with. `call` names the call, e.g. `register`.
#[derive(Debug)]
pub enum LambdaError {
    /// No HTTP answer: connection refused, reset, or closed mid-response.
    Transport { call: &'static str, detail: String },
    /// An answer we cannot go on with (non-2xx, or a 2xx missing what we need).
    Status {
        call: &'static str,
        status: u16,
        body: String,
    },
}

impl LambdaError {
    fn transport(call: &'static str, error: ureq::Error) -> LambdaError {
        LambdaError::Transport {
            call,
            detail: error.to_string(),
        }
    }

    /// Whether the call may succeed if simply tried again.
    pub fn is_transport(&self) -> bool {
        matches!(self, LambdaError::Transport { .. })
    }
}

impl fmt::Display for LambdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LambdaError::Transport { call, detail } => {
                write!(f, "{call}: no answer from the Runtime API: {detail}")
            }
            LambdaError::Status { call, status, body } => {
                let body: String = body.chars().take(300).collect();
                write!(f, "{call}: Runtime API answered {status}: {body}")
            }
        }
    }
}

impl std::error::Error for LambdaError {}

/// Status and body of one answered call; the body is capped, we only ever read small ones.
struct Answer {
    status: u16,
    identifier: Option<String>,
    body: String,
}

impl Answer {
    fn read(
        call: &'static str,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<Answer, LambdaError> {
        let status = response.status().as_u16();
        let identifier = response
            .headers()
            .get("Lambda-Extension-Identifier")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .map_err(|e| LambdaError::transport(call, e))?;
        Ok(Answer {
            status,
            identifier,
            body,
        })
    }

    fn into_error(self, call: &'static str) -> LambdaError {
        LambdaError::Status {
            call,
            status: self.status,
            body: self.body,
        }
    }

    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}
