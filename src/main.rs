//! telemetry-relay: a Lambda external extension that relays Telemetry API events to stdout.
//!
//! This file is wiring, in the order of SPEC.md §3. Init is register → bind → subscribe →
//! first `/next` and nothing else, because everything before the first `/next` is billed Init
//! Duration: the one thread started on the way is the relay, which then starts the listener
//! (and with it tiny_http's own threads) while we already wait in `/next`. The threads share
//! one channel: this one runs the Extensions API loop and sends INVOKE/SHUTDOWN, the listener
//! sends each POST, each network output's sender reports its requests, and the relay, the only
//! receiver, owns the outputs. Under the `end` flush policy this thread also waits, bounded, on
//! a reply channel before the `/next` that ends an invocation. Failures become exit codes
//! here: a config mistake goes to `/extension/init/error`.

// Tests may unwrap and panic: a failed expectation is exactly what should stop them.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod config;
mod delivery;
mod lambda;
mod log;
mod pipeline;
mod signal;
mod sinks;
mod telemetry;

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use config::Config;
use lambda::RuntimeApi;
use lambda::extensions::{self, NextEvent};
use lambda::telemetry_api::{self, Subscription};
use pipeline::flush::FlushReport;
use pipeline::{Msg, Relay};

/// How often a lost Runtime API connection is retried before it is taken as SHUTDOWN.
const NEXT_RETRIES: u32 = 5;

fn main() -> ExitCode {
    signal::install();
    let name = extension_name();
    let env = config::from_env();
    let runtime_api = match config::runtime_api(&env) {
        Ok(address) => address,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let parsed = Config::parse(&env);
    if let Ok(config) = &parsed {
        log::set_level(config.log_level);
    }
    let api = RuntimeApi::new(&runtime_api);
    let events: &[&str] = if config::managed_instances(&env) {
        &["SHUTDOWN"]
    } else {
        &["INVOKE", "SHUTDOWN"]
    };
    let registration = match extensions::register(&api, &name, events) {
        Ok(r) => r,
        Err(e) => {
            error!("cannot register as {name:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let id = registration.identifier.as_str();
    let config = match parsed {
        Ok(config) => config,
        Err(e) => {
            error!("{e}");
            extensions::init_error(&api, id, "Extension.ConfigInvalid", &e.to_string());
            return ExitCode::FAILURE;
        }
    };
    match run(&api, id, &name, &config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal {
            error_type,
            message,
            during_init,
        }) => {
            error!("{message}");
            if during_init {
                extensions::init_error(&api, id, error_type, &message);
            } else {
                extensions::exit_error(&api, id, error_type, &message);
            }
            ExitCode::FAILURE
        }
    }
}

/// An error that ends the extension, reported to Lambda as `error_type`.
struct Fatal {
    error_type: &'static str,
    message: String,
    during_init: bool,
}

fn run(api: &RuntimeApi, id: &str, name: &str, config: &Config) -> Result<(), Fatal> {
    // Init: bind, subscribe with the port the OS gave (SPEC.md trap 7), one thread, `/next`.
    let socket = TcpListener::bind(config.listen).map_err(|e| Fatal {
        error_type: "Extension.ListenerFailed",
        message: format!(
            "cannot listen on {} ({}): {e}",
            config.listen,
            config::LISTEN
        ),
        during_init: true,
    })?;
    let port = socket.local_addr().map_or(0, |a| a.port());
    let subscribed = subscribe(api, id, name, config, port);
    let (tx, rx) = mpsc::channel();
    let _ = tx.send(Msg::Subscribed(subscribed));
    let server: Arc<OnceLock<Arc<tiny_http::Server>>> = Arc::default();
    let (last_batch_tx, last_batch_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let (flushed_tx, flushed_rx) = mpsc::channel();
    let flushed = pipeline::waits_for_flush(config).then_some(flushed_rx);
    let flushed_tx = flushed.is_some().then_some(flushed_tx);
    let relay = {
        let (config, server, tx) = (config.clone(), server.clone(), tx.clone());
        let socket = subscribed.then_some(socket);
        move || {
            // Started here, not in main: tiny_http starts five threads of its own.
            let backlog = pipeline::Backlog::default();
            let listener = socket.and_then(|socket| {
                let started = telemetry::listener::start(socket, tx.clone(), backlog.clone(), config.max_body_bytes);
                match started {
                    Ok((started, thread)) => {
                        server.get_or_init(|| started);
                        Some(thread)
                    }
                    Err(e) => {
                        error!("the telemetry listener did not start: {e}; no telemetry will be relayed");
                        let _ = tx.send(Msg::ListenerClosed);
                        None
                    }
                }
            });
            // The relay's own sender is for the network outputs' results.
            Relay::new(&config, backlog, tx, flushed_tx).run(rx, last_batch_tx);
            if let Some(thread) = listener {
                let _ = thread.join();
            }
            let _ = done_tx.send(());
        }
    };
    std::thread::Builder::new()
        .name("relay".to_string())
        .spawn(relay)
        .map_err(|e| Fatal {
            error_type: "Extension.ThreadFailed",
            message: format!("cannot start the relay thread: {e}"),
            during_init: true,
        })?;

    let deadline = lifecycle(api, id, &tx, flushed.as_ref())?;

    // SHUTDOWN: the relay waits for the last batch, bounded by the deadline; so do we.
    let _ = tx.send(Msg::Shutdown { deadline });
    let left = || {
        deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    };
    let _ = last_batch_rx.recv_timeout(left().saturating_sub(Duration::from_millis(100)));
    if let Some(server) = server.get() {
        server.unblock();
    }
    drop(tx);
    let _ = done_rx.recv_timeout(left().saturating_sub(Duration::from_millis(50)));
    Ok(())
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
) -> Result<SystemTime, Fatal> {
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
            Err(e) => {
                return Err(Fatal {
                    error_type: "Extension.NextFailed",
                    message: e.to_string(),
                    during_init: false,
                });
            }
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
