//! telemetry-relay: a Lambda external extension that relays Telemetry API events to stdout,
//! CloudWatch EMF, OTLP and HTTP.
//!
//! This file is wiring, in the order of SPEC.md §3. Init is register → bind → subscribe →
//! first `/next` and nothing else, because everything before the first `/next` is billed Init
//! Duration: the one thread started on the way is the lifecycle thread, which makes that
//! `/next` call and every later one, while `main` goes on to run the relay (which starts the
//! listener, and with it tiny_http's own threads). So `main` hears how the run ended from the
//! relay: drained after SHUTDOWN, a second SIGTERM while `/next` still blocks, or a fatal
//! Runtime API error the lifecycle thread passed on. `main` alone turns that into Lambda error
//! reports and the exit code; no other thread exits the process. See the README's "How it is
//! built" for the threads and the one channel.

// Tests may unwrap and panic: a failed expectation is exactly what should stop them.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod by_request;
mod config;
mod counters;
mod delivery;
mod filter;
#[cfg(test)]
mod fuzz;
mod lambda;
mod listener;
mod log;
mod msg;
mod relay;
mod sinks;
mod sys;
mod telemetry;
#[cfg(test)]
mod testing;

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use config::{Config, ConfigError};
use lambda::extensions::{self, NextEvent};
use lambda::telemetry_api::{self, Subscription};
use lambda::{LambdaError, RuntimeApi};
use msg::Msg;
use relay::flush::FlushReport;
use relay::{Ended, Relay};

/// How often a lost Runtime API connection is retried before it is taken as SHUTDOWN.
const NEXT_RETRIES: u32 = 5;
/// How long our last log lines may take to reach a stalled stderr before we exit anyway.
const LOG_FLUSH: Duration = Duration::from_millis(100);

/// What ends the extension with an error; [`Failure::error_type`] maps each to Lambda's
/// `errorType`, and [`Failure::during_init`] says which error endpoint reports it.
enum Failure {
    Config(ConfigError),
    Listen { addr: SocketAddr, error: String },
    Thread(std::io::Error),
    Next(String),
    RelayPanicked,
}

impl Failure {
    fn error_type(&self) -> &'static str {
        match self {
            Failure::Config(_) => "Extension.ConfigInvalid",
            Failure::Listen { .. } => "Extension.ListenerFailed",
            Failure::Thread(_) => "Extension.ThreadFailed",
            Failure::Next(_) => "Extension.NextFailed",
            Failure::RelayPanicked => "Extension.Crash",
        }
    }

    fn during_init(&self) -> bool {
        matches!(
            self,
            Failure::Config(_) | Failure::Listen { .. } | Failure::Thread(_)
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Config(e) => write!(f, "{e}"),
            Failure::Listen { addr, error } => {
                write!(f, "cannot listen on {addr} ({}): {error}", config::LISTEN)
            }
            Failure::Thread(e) => write!(f, "cannot start a thread: {e}"),
            Failure::Next(e) => write!(f, "{e}"),
            Failure::RelayPanicked => write!(f, "the relay stopped on a bug (a panic)"),
        }
    }
}

fn main() -> ExitCode {
    sys::install();
    log::install_panic_hook();
    let code = start();
    log::flush(Instant::now() + LOG_FLUSH);
    code
}

/// Everything but the last flush of our log lines.
fn start() -> ExitCode {
    let name = extension_name();
    let env = config::from_env();
    let runtime_api = match config::runtime_api(&env.vars) {
        Ok(address) => address,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let parsed = Config::from(&env);
    if let Ok(config) = &parsed {
        log::set_level(config.log_level);
    }
    let api = RuntimeApi::new(&runtime_api);
    let events: &[&str] = if config::managed_instances(&env.vars) {
        &["SHUTDOWN"]
    } else {
        &["INVOKE", "SHUTDOWN"]
    };
    let id = match extensions::register(&api, &name, events) {
        Ok(r) => r.identifier,
        Err(e) => {
            error!("cannot register as {name:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = parsed
        .map_err(Failure::Config)
        .and_then(|config| run(&api, &id, &name, &config));
    match outcome {
        Ok(ended) => {
            debug!("relay ended: {ended:?}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            let message = failure.to_string();
            error!("{message}");
            if failure.during_init() {
                extensions::init_error(&api, &id, failure.error_type(), &message);
            } else {
                extensions::exit_error(&api, &id, failure.error_type(), &message);
            }
            ExitCode::FAILURE
        }
    }
}

fn run(api: &RuntimeApi, id: &str, name: &str, config: &Config) -> Result<Ended, Failure> {
    // Init: bind, subscribe with the port the OS gave (SPEC.md trap 7), one thread, `/next`.
    let socket = TcpListener::bind(config.listen).map_err(|e| Failure::Listen {
        addr: config.listen,
        error: e.to_string(),
    })?;
    let port = socket.local_addr().map_or(0, |a| a.port());
    let subscribed = subscribe(api, id, name, config, port);
    let (tx, rx) = mpsc::channel();
    let _ = tx.send(Msg::Subscribed(subscribed));
    let (flushed_tx, flushed_rx) = match relay::waits_for_flush(config) {
        true => {
            let (tx, rx) = mpsc::channel();
            (Some(tx), Some(rx))
        }
        false => (None, None),
    };
    let (api, id, lifecycle_tx) = (api.clone(), id.to_string(), tx.clone());
    spawn("lifecycle", move || {
        let msg = match lifecycle(&api, &id, &lifecycle_tx, flushed_rx.as_ref()) {
            // The relay waits for the last batch, bounded by the deadline.
            Ok(deadline) => Msg::Shutdown { deadline },
            Err(e) => Msg::LifecycleFailed(e.to_string()),
        };
        let _ = lifecycle_tx.send(msg);
    })?;
    // Built and run here, off the init path: `/next` is already on its way.
    let relay = Relay::new(config, subscribed.then_some(socket), tx, flushed_tx);
    // A panic is a bug; it is reported like any failure instead of hanging the process.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| relay.run(rx))) {
        Ok(Ended::LifecycleFailed(why)) => Err(Failure::Next(why)),
        Ok(ended) => Ok(ended),
        Err(_) => Err(Failure::RelayPanicked),
    }
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<(), Failure> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(body)
        .map(drop)
        .map_err(Failure::Thread)
}

/// Subscribes to the Telemetry API; whether events will come. Never fatal (SPEC.md §4).
fn subscribe(api: &RuntimeApi, id: &str, name: &str, config: &Config, port: u16) -> bool {
    match telemetry_api::subscribe(api, id, name, &config.types, config.buffering, port) {
        Ok(Subscription::Active { schema }) => {
            debug!(
                "started: listening on port {port}, subscribed to {:?} with schema {schema}, buffering {:?}, stdout {:?}",
                config.types, config.buffering, config.stdout_format
            );
            true
        }
        Ok(Subscription::Unavailable { reason }) => {
            warn!(
                "no telemetry will be relayed: the Telemetry API is unavailable here ({reason}); still serving INVOKE/SHUTDOWN"
            );
            false
        }
        Err(e) => {
            warn!("no telemetry will be relayed: {e}; still serving INVOKE/SHUTDOWN");
            false
        }
    }
}

/// Serves `/next` until SHUTDOWN; returns the SHUTDOWN deadline.
///
/// Under the `end` flush policy (`flushed` is set), the `/next` that ends an invocation waits
/// for the relay's report that its data is out, which the relay bounds by the flush budget;
/// the invocation's own deadline bounds the wait here as well.
fn lifecycle(
    api: &RuntimeApi,
    id: &str,
    tx: &mpsc::Sender<Msg>,
    flushed: Option<&mpsc::Receiver<FlushReport>>,
) -> Result<SystemTime, LambdaError> {
    let mut failures = 0;
    loop {
        match extensions::next(api, id) {
            Ok(NextEvent::Invoke {
                request_id,
                deadline,
                xray,
            }) => {
                failures = 0;
                let _ = tx.send(Msg::Invoke {
                    request_id: request_id.clone(),
                    xray,
                });
                if let Some(flushed) = flushed {
                    wait_for_flush(flushed, &request_id, deadline);
                }
            }
            Ok(NextEvent::Shutdown { reason, deadline }) => {
                info!("SHUTDOWN ({})", reason.as_str());
                return Ok(deadline);
            }
            Ok(NextEvent::Other(kind)) => {
                warn!("ignoring unknown event type {kind:?} from /event/next")
            }
            Err(e) if e.is_transport() && failures < NEXT_RETRIES => {
                failures += 1;
                warn!("{e}; retrying ({failures}/{NEXT_RETRIES})");
                std::thread::sleep(Duration::from_millis(10 << failures));
            }
            Err(e) if e.is_transport() => {
                error!("{e}; giving up and shutting down");
                return Ok(SystemTime::now() + Duration::from_millis(1500));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits for the relay's report on `request_id`, skipping late reports on earlier ones.
fn wait_for_flush(flushed: &mpsc::Receiver<FlushReport>, request_id: &str, deadline: SystemTime) {
    loop {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        match flushed.recv_timeout(left) {
            Ok(report) if report.request_id == request_id => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Our name is our file name: Lambda requires `Lambda-Extension-Name` to match it exactly.
fn extension_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(std::path::Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("telemetry-relay")
        .to_string()
}
