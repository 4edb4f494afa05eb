//! One emulated environment lifetime: Init, the invocations, SHUTDOWN; and the report of it.
//!
//! The order follows SPEC.md §3: the extension registers, Init ends when it calls `/next`;
//! each invocation's `platform.report` is produced only after the extension called `/next`
//! again; after the last one the environment is idle (frozen on AWS), so the final batch is
//! held until SHUTDOWN has been sent, together with lines the function logs in its SIGTERM
//! handler; at the deadline the extension is SIGKILLed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::api::{Api, Behaviour};
use crate::backend;
use crate::delivery::Telemetry;
use crate::events::{self, Stream, epoch_ms, ms};
use crate::options::Options;
use crate::process::{Extension, OnLine, Output, Pipe};

mod traffic;

/// How long the extension may take to register and reach `/next` (Lambda's Init limit).
const INIT_LIMIT: Duration = Duration::from_secs(10);
/// How long an invocation may wait for the extension's `/next`.
const INVOKE_LIMIT: Duration = Duration::from_secs(10);
const MEMORY_MB: u64 = 128;

pub fn run(options: &Options) -> Result<Value, String> {
    let name = Path::new(&options.extension)
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the extension path has no file name")?
        .to_string();
    let telemetry = Arc::new(Telemetry::default());
    let (api, address) = start_api(options, name, &telemetry)?;
    let (test_backend, options) = start_backend(options)?;
    let options = &options;
    say(
        options,
        &format!("runtime API on {address}; starting {}", options.extension),
    );

    let output = Arc::new(Output::default());
    let on_line = echo_lines(options, output.clone(), telemetry.clone());
    let init_type = if options.lmi {
        "lambda-managed-instances"
    } else {
        "on-demand"
    };
    let nonce = epoch_ms(SystemTime::now()) ^ u64::from(std::process::id()) << 20;
    telemetry.emit(events::platform(
        "platform.initStart",
        json!({"initializationType": init_type, "phase": "init", "runtimeVersion": "provided:al2023.v100",
               "functionName": crate::FUNCTION_NAME, "functionVersion": "$LATEST",
               "instanceMaxMemory": MEMORY_MB * 1024 * 1024}),
    ));
    // An extension that exits (say, refused at register) ends every wait on the API.
    let closing = api.clone();
    let mut ext = Extension::spawn(
        &options.extension,
        &environment(options, &address.to_string()),
        options.nofile,
        options.stall_stderr,
        on_line,
        Box::new(move || closing.close()),
    )
    .map_err(|e| format!("cannot start {}: {e}", options.extension))?;

    let mut run = Run {
        options,
        backend: test_backend.as_ref(),
        api: &api,
        telemetry: &telemetry,
        ext: &ext,
        output: &output,
        nonce,
        report: json!({"extension": options.extension, "lmi": options.lmi, "post_runtime_ms": [], "invokes": [],
            "backend_had_invoke_before_next": []}),
        held: Vec::new(),
    };
    if run.init(init_type) {
        run.invocations();
    }
    run.shutdown();
    let report = run.report;
    ext.finish_output();
    telemetry.close();
    api.close();
    Ok(crate::report::finish(
        report,
        &api,
        &telemetry,
        &ext,
        &output,
        test_backend.as_ref(),
    ))
}

/// The Runtime API on a port of its own, and the thread that delivers telemetry.
fn start_api(
    options: &Options,
    name: String,
    telemetry: &Arc<Telemetry>,
) -> Result<(Arc<Api>, std::net::SocketAddr), String> {
    let server =
        tiny_http::Server::http("127.0.0.1:0").map_err(|e| format!("cannot listen: {e}"))?;
    let address = server.server_addr().to_ip().ok_or("no address")?;
    let behaviour = Behaviour {
        name: options.register_as.clone().unwrap_or(name),
        lmi: options.lmi,
        not_supported: options.not_supported,
        reject_schema: options.reject_schema.clone(),
        hang_errors: options.hang_errors,
    };
    let api = Api::new(behaviour, telemetry.clone());
    let serving = api.clone();
    std::thread::spawn(move || serving.serve(server));
    let delivering = telemetry.clone();
    std::thread::spawn(move || delivering.deliver());
    Ok((api, address))
}

/// The test backend, if asked for, and the options with its URL put into `--env` values.
fn start_backend(options: &Options) -> Result<(Option<backend::Backend>, Options), String> {
    let test_backend = match &options.backend {
        Some(mode) => Some(
            backend::Backend::start(backend::Mode::parse(mode)?)
                .map_err(|e| format!("backend: {e}"))?,
        ),
        None => None,
    };
    let mut options = options.clone();
    if let Some(test_backend) = &test_backend {
        for (_, value) in &mut options.env {
            let address = test_backend.url.trim_start_matches("http://");
            *value = value
                .replace("{backend}", &test_backend.url)
                .replace("{backend_address}", address);
        }
    }
    Ok((test_backend, options))
}

struct Run<'a> {
    options: &'a Options,
    backend: Option<&'a backend::Backend>,
    api: &'a Api,
    telemetry: &'a Telemetry,
    ext: &'a Extension,
    output: &'a Output,
    nonce: u64,
    report: Value,
    /// Connections hostile clients left open: (closed after the next invocation?, streams).
    held: Vec<(bool, Vec<std::net::TcpStream>)>,
}

impl Run<'_> {
    /// Register, runtime init, first `/next`. Returns whether Init succeeded.
    fn init(&mut self, init_type: &str) -> bool {
        let Some(registered) = self.api.wait_registered(INIT_LIMIT) else {
            say(self.options, "the extension did not register");
            self.report["init_failed"] = json!("no registration");
            return false;
        };
        self.telemetry.emit(events::platform(
            "platform.extension",
            json!({"name": self.ext_name(), "state": "Registered", "events": registered}),
        ));
        self.telemetry.emit(events::function_line(
            self.options.json_logs,
            "",
            &format!("function init marker fn-{}-init", self.nonce),
        ));
        let Some(first_next) = self.api.wait_next_call(1, INIT_LIMIT) else {
            let errors = self.api.errors();
            say(self.options, &format!("Init failed: {errors:?}"));
            self.report["init_failed"] = json!(
                errors
                    .first()
                    .map_or("no /next".to_string(), |e| e.error_type.clone())
            );
            return false;
        };
        self.ext.sample();
        let init = first_next.duration_since(self.ext.started);
        self.report["init_ms"] = json!(ms(init));
        self.api.end_init();
        self.telemetry.emit(events::platform(
            "platform.extension",
            json!({"name": self.ext_name(), "state": "Ready", "events": registered}),
        ));
        self.telemetry.emit(events::platform(
            "platform.initRuntimeDone",
            json!({"initializationType": init_type, "phase": "init", "status": "success"}),
        ));
        self.telemetry.emit(events::platform(
            "platform.initReport",
            json!({"initializationType": init_type, "phase": "init", "status": "success", "metrics": {"durationMs": ms(init)}}),
        ));
        true
    }

    fn ext_name(&self) -> String {
        Path::new(&self.options.extension)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn invocations(&mut self) {
        let o = self.options;
        let mut frozen = false;
        for i in 1..=o.invokes {
            if frozen {
                self.ext.signal("CONT");
                frozen = false;
            }
            let last = i == o.invokes || o.timeout_invoke == Some(i);
            if !self.invoke(i, last) {
                return;
            }
            if i == 1 {
                self.inject();
                self.attack();
                self.blast();
            }
            if i == 2 {
                // `hold` connections end here, so the next invocation shows the recovery.
                self.held.retain(|(early, _)| !early);
            }
            if o.timeout_invoke == Some(i) {
                self.report["shutdown_reason"] = json!("timeout");
                return;
            }
            if o.freeze && !last {
                self.ext.signal("STOP");
                frozen = true;
            }
        }
    }

    /// One invocation; returns false if the extension never came back to `/next`.
    fn invoke(&mut self, i: u64, last: bool) -> bool {
        let o = self.options;
        let rid = events::request_id(self.nonce, i);
        let started = Instant::now();
        self.start_invocation(i, &rid);
        let outcome = if o.timeout_invoke == Some(i) {
            "timeout"
        } else if o.error_invoke == Some(i) {
            "error"
        } else {
            o.outcomes
                .iter()
                .find(|(_, every)| i.is_multiple_of(*every))
                .map_or("success", |(kind, _)| kind.as_str())
        };
        let (status, error_type) = if outcome == "timeout" {
            ("timeout", Some("Sandbox.Timedout"))
        } else if outcome == "error" {
            ("error", Some("Runtime.Unknown"))
        } else if outcome == "crash" {
            ("failure", Some("Runtime.ExitError"))
        } else {
            ("success", None)
        };
        // A slow invocation is told, not waited for.
        let extra = if outcome == "slow" { 2000.0 } else { 0.0 };
        if !o.lmi && !self.end_runtime(i, &rid, started, status, error_type, extra) {
            return false;
        }
        let total = ms(started.elapsed()) + extra;
        if last {
            // The environment goes idle: the rest is delivered only after SHUTDOWN.
            self.telemetry.wait_idle(INVOKE_LIMIT);
            self.telemetry.hold(true);
        }
        let mut record = if o.lmi {
            json!({"requestId": rid, "status": status, "metrics": {"durationMs": total}})
        } else {
            let mut metrics = json!({"durationMs": total, "billedDurationMs": total.ceil() as u64,
                "memorySizeMB": MEMORY_MB, "maxMemoryUsedMB": 31});
            if i == 1 {
                metrics["initDurationMs"] = self.report["init_ms"].clone();
            }
            json!({"requestId": rid, "status": status, "metrics": metrics,
                   "spans": [{"name": "extensionOverhead", "start": events::rfc3339(SystemTime::now()), "durationMs": 0.0}]})
        };
        if let Some(t) = error_type {
            record["errorType"] = json!(t);
        }
        if !(last && o.drop_last_report) {
            self.telemetry
                .emit(events::platform("platform.report", record));
        }
        let xray_sampled = self.xray_sampled(i);
        push(
            &mut self.report["invokes"],
            json!({"request_id": rid, "status": status, "outcome": outcome,
                   "xray_sampled": xray_sampled}),
        );
        true
    }

    /// `platform.start`, the INVOKE (not on LMI), and what the function and another
    /// extension log.
    fn start_invocation(&mut self, i: u64, rid: &str) {
        let o = self.options;
        let arn = format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            crate::FUNCTION_NAME
        );
        let trace = format!(
            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled={}",
            i,
            self.nonce,
            i,
            u8::from(self.xray_sampled(i))
        );
        self.telemetry.emit(events::platform(
            "platform.start",
            json!({"requestId": rid, "version": "$LATEST", "functionArn": arn,
                   "tracing": {"spanId": format!("{:016x}", self.nonce ^ i), "type": "X-Amzn-Trace-Id", "value": trace}}),
        ));
        if !o.lmi {
            let deadline = epoch_ms(SystemTime::now()) + 3000;
            self.api.send_event(
                json!({"eventType": "INVOKE", "deadlineMs": deadline, "requestId": rid,
                "invokedFunctionArn": arn, "tracing": {"type": "X-Amzn-Trace-Id", "value": trace}}),
            );
        }
        for j in 1..=o.lines {
            let mut message = format!("invoke {i} line {j} marker fn-{}-{i}-{j}", self.nonce);
            if o.secrets {
                message = format!("{message} {}", events::SECRETS);
            }
            let line = match &o.log_style {
                Some(style) => {
                    let level = events::LEVELS[(j as usize - 1) % events::LEVELS.len()];
                    events::styled_line(style, level, rid, &message)
                }
                None => events::function_line(o.json_logs, rid, &message),
            };
            self.telemetry.emit(line);
        }
        if o.other_extension {
            let line = json!(format!(
                "[other-extension] invoke {i} marker ext-{}-{i}\n",
                self.nonce
            ));
            self.telemetry
                .emit(events::log_record(Stream::Extension, &line.to_string()));
        }
    }

    /// The runtime is done: `platform.runtimeDone`, then the wait for the extension's next
    /// `/next`, timed. False if it never came.
    fn end_runtime(
        &mut self,
        i: u64,
        rid: &str,
        started: Instant,
        status: &str,
        error_type: Option<&str>,
        extra_ms: f64,
    ) -> bool {
        let o = self.options;
        let runtime_done = Instant::now();
        let duration = ms(runtime_done - started) + extra_ms;
        let mut record = json!({"requestId": rid, "status": status,
            "metrics": {"durationMs": duration, "producedBytes": 42},
            "spans": [{"name": "responseLatency", "start": events::rfc3339(SystemTime::now()), "durationMs": duration},
                      {"name": "responseDuration", "start": events::rfc3339(SystemTime::now()), "durationMs": 0.01}]});
        if let Some(t) = error_type {
            record["errorType"] = json!(t);
        }
        self.telemetry
            .emit(events::platform("platform.runtimeDone", record));
        let Some(next_at) = self
            .api
            .wait_next_call(usize::try_from(i).unwrap_or(0) + 1, INVOKE_LIMIT)
        else {
            say(
                o,
                &format!("invoke {i}: the extension did not call /next again"),
            );
            self.report["stuck_invoke"] = json!(i);
            return false;
        };
        self.ext.sample();
        if let Some(backend) = self.backend {
            // Under the `end` flush policy this invocation's lines must be out by now.
            let marker = format!("marker fn-{}-{i}-", self.nonce);
            push(
                &mut self.report["backend_had_invoke_before_next"],
                json!(backend.accepted(&marker)),
            );
        }
        let post_runtime = next_at.saturating_duration_since(runtime_done);
        push(&mut self.report["post_runtime_ms"], json!(ms(post_runtime)));
        true
    }

    /// Whether invocation `i`'s trace header says `Sampled=1`.
    fn xray_sampled(&self, i: u64) -> bool {
        self.options
            .xray_sampled
            .is_none_or(|every| i.is_multiple_of(every))
    }

    fn shutdown(&mut self) {
        let o = self.options;
        if o.wait_relay {
            let relayed = self.wait_relayed();
            self.report["relayed_before_shutdown"] = json!(relayed);
        }
        self.ext.signal("CONT");
        let reason = self.report["shutdown_reason"]
            .as_str()
            .unwrap_or(&o.shutdown_reason)
            .to_string();
        let budget = Duration::from_millis(o.shutdown_ms);
        let deadline = Instant::now() + budget;
        let sent = Instant::now();
        if o.term_twice_early {
            self.ext.signal("TERM");
            self.ext.wait_term_taken(budget);
            self.ext.signal("TERM");
            if let Some((status, _)) = self.ext.wait_exit(budget) {
                self.report["exit_code"] = json!(status.code());
                self.report["exited_before_shutdown"] = json!(true);
                self.report["killed"] = json!(false);
                return;
            }
        }
        if o.sigterm_twice {
            self.ext.signal("TERM");
        }
        let registered = self.api.registered_events();
        if registered.iter().any(|e| e == "SHUTDOWN") && self.api.next_calls() > 0 {
            self.api
                .send_event(json!({"eventType": "SHUTDOWN", "shutdownReason": reason,
                "deadlineMs": epoch_ms(SystemTime::now() + budget)}));
        } else {
            self.ext.signal("TERM");
        }
        self.telemetry.emit(events::function_line(
            o.json_logs,
            "",
            &format!("function SIGTERM handler marker fn-{}-shutdown", self.nonce),
        ));
        self.telemetry.hold(false);
        if o.sigterm_twice {
            self.telemetry.wait_idle(budget);
            self.ext.wait_term_taken(budget);
            self.ext.signal("TERM");
        }
        let exit = match self
            .ext
            .wait_exit(deadline.saturating_duration_since(Instant::now()))
        {
            Some(exit) => Some(exit),
            None => {
                say(o, "SHUTDOWN deadline reached: SIGKILL");
                self.report["killed"] = json!(true);
                self.ext.signal("KILL");
                self.ext.wait_exit(Duration::from_secs(5))
            }
        };
        if let Some((status, at)) = exit {
            self.report["exit_code"] = json!(status.code());
            self.report["shutdown_to_exit_ms"] = json!(ms(at.saturating_duration_since(sent)));
            if let Some(last_post) = self.telemetry.last_post_at() {
                self.report["exit_after_last_post_ms"] =
                    json!(ms(at.saturating_duration_since(last_post)));
            }
        }
        self.report["killed"] = json!(self.report["killed"].as_bool().unwrap_or(false));
    }

    /// Waits until every function line delivered so far shows on the extension's stdout.
    fn wait_relayed(&self) -> bool {
        self.telemetry.wait_idle(Duration::from_secs(10));
        let until = Instant::now() + Duration::from_secs(10);
        let (produced, _, _) = self.telemetry.results();
        let markers: Vec<String> = produced
            .iter()
            .filter(|e| e.stream == Stream::Function)
            .filter_map(|e| {
                e.json
                    .split("marker ")
                    .nth(1)
                    .map(|m| m.chars().take_while(|c| *c != '\\' && *c != '"').collect())
            })
            .collect();
        self.output.wait_stdout(until, |stdout| {
            markers
                .iter()
                .all(|m| stdout.iter().any(|l| l.contains(m.as_str())))
        })
    }
}

fn push(list: &mut Value, item: Value) {
    if let Some(items) = list.as_array_mut() {
        items.push(item);
    }
}

fn say(options: &Options, message: &str) {
    if !options.quiet {
        eprintln!("lambda-emulator: {message}");
    }
}

/// The environment Lambda gives an extension (SPEC.md §1), plus `--env`.
fn environment(options: &Options, address: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", address),
        ("AWS_LAMBDA_FUNCTION_NAME", crate::FUNCTION_NAME),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        // Lambda's are temporary credentials of the function's role, token included.
        ("AWS_ACCESS_KEY_ID", "ASIAEMULATOREXAMPLE1"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "emulator/secret/access/key/EXAMPLE",
        ),
        ("AWS_SESSION_TOKEN", "emulator-session-token-EXAMPLE"),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE",
            if options.lmi {
                "lambda-managed-instances"
            } else {
                "on-demand"
            },
        ),
        (
            "AWS_LAMBDA_LOG_FORMAT",
            if options.json_logs { "JSON" } else { "Text" },
        ),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("TZ", ":UTC"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if options.lmi {
        env.push(("AWS_LAMBDA_MAX_CONCURRENCY".to_string(), "4".to_string()));
    }
    env.extend(options.env.iter().cloned());
    env
}

/// Every line the extension writes goes to "CloudWatch" (our output, unless `--quiet`) and comes
/// back as an `extension` record; under JSON log format a JSON-object line stays an object.
fn echo_lines(options: &Options, output: Arc<Output>, telemetry: Arc<Telemetry>) -> OnLine {
    let quiet = options.quiet;
    let json_logs = options.json_logs;
    Arc::new(move |pipe: Pipe, line: &str| {
        output.push(pipe, line);
        if !quiet {
            match pipe {
                Pipe::Stdout => println!("{line}"),
                Pipe::Stderr => eprintln!("{line}"),
            }
        }
        if !telemetry.wants(Stream::Extension) {
            return;
        }
        let is_object =
            json_logs && serde_json::from_str::<serde_json::Map<String, Value>>(line).is_ok();
        let record = if is_object {
            line.to_string()
        } else {
            Value::String(format!("{line}\n")).to_string()
        };
        telemetry.emit(events::log_record(Stream::Extension, &record));
    })
}
