//! Runs the real `telemetry-relay` binary under the real `lambda-emulator` binary and reads
//! back the emulator's JSON report: what it produced, what it POSTed, what the extension
//! printed, its exit and its timings. Each run gets its own report file; every listener is on
//! port 0, so tests run in parallel. A run that does not finish within a generous guard is
//! killed and the test fails with both processes' output.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const RELAY: &str = env!("CARGO_BIN_EXE_telemetry-relay");
pub const EMULATOR: &str = env!("CARGO_BIN_EXE_lambda-emulator");

/// Guard against a hung run; never reached by a passing test.
const GUARD: Duration = Duration::from_secs(120);

/// The path of a file in `tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Kills a process group when dropped: the emulator and the extension it started, so a test
/// that fails or times out never leaves either behind.
struct GroupGuard(u32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", self.0))
            .stderr(Stdio::null())
            .status();
    }
}

/// One emulated environment lifetime and what the emulator reported of it.
pub struct Run {
    pub report: Value,
    pub emulator_stderr: String,
}

impl Run {
    /// Runs the relay under the emulator with `args`.
    pub fn new(args: &[&str]) -> Run {
        Run::with_extension(RELAY, args)
    }

    pub fn with_extension(extension: &str, args: &[&str]) -> Run {
        static N: AtomicU32 = AtomicU32::new(0);
        let report_path: PathBuf = std::env::temp_dir().join(format!(
            "telemetry-relay-test-{}-{}.json",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        // Its own process group, which the extension joins: a guard can kill both.
        let mut child = Command::new(EMULATOR)
            .process_group(0)
            .args(args)
            .arg("--quiet")
            .arg("--json")
            .arg(&report_path)
            .arg(extension)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lambda-emulator");
        let guard = GroupGuard(child.id());
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        let emulator_stderr = match rx.recv_timeout(GUARD) {
            Ok(text) => text,
            Err(_) => {
                drop(guard);
                let _ = child.wait();
                panic!("lambda-emulator {args:?} did not finish within {GUARD:?}");
            }
        };
        let status = child.wait().unwrap();
        drop(guard);
        let report = std::fs::read_to_string(&report_path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| {
                panic!("no report from lambda-emulator {args:?} ({status}):\n{emulator_stderr}")
            });
        let _ = std::fs::remove_file(&report_path);
        let run = Run {
            report,
            emulator_stderr,
        };
        run.check(status.success(), "lambda-emulator exits 0");
        run
    }

    /// Fails with everything needed to debug unless `ok`.
    pub fn check(&self, ok: bool, what: &str) {
        if !ok {
            let mut report = self.report.clone();
            // The event lists are long; what was printed tells more.
            report["produced"] =
                Value::from(self.report["produced"].as_array().map_or(0, Vec::len));
            panic!(
                "expectation failed: {what}\n--- emulator stderr ---\n{}\n--- report ---\n{}",
                self.emulator_stderr,
                serde_json::to_string_pretty(&report).unwrap()
            );
        }
    }

    pub fn stdout(&self) -> Vec<String> {
        strings(&self.report["stdout"])
    }

    pub fn stderr(&self) -> Vec<String> {
        strings(&self.report["stderr"])
    }

    /// Every event the emulator POSTed and the extension answered 200, in order.
    pub fn delivered(&self) -> Vec<Value> {
        let mut events = Vec::new();
        for post in self.report["posts"].as_array().into_iter().flatten() {
            if post["outcome"] == "200" {
                for event in strings(&post["events"]) {
                    events.push(serde_json::from_str(&event).unwrap());
                }
            }
        }
        events
    }

    /// The extension exited by itself, with code 0, before the SHUTDOWN deadline.
    pub fn assert_clean_exit(&self) {
        self.check(
            self.report["exit_code"] == 0,
            "the extension exits with code 0",
        );
        self.check(
            self.report["killed"] == false,
            "the extension exits before the SHUTDOWN deadline",
        );
    }

    /// The `INFO output <name>:` summary line of one network output (empty if absent).
    pub fn output_line(&self, output: &str) -> String {
        self.stderr()
            .into_iter()
            .find(|l| l.contains(&format!("INFO output {output}:")))
            .unwrap_or_default()
    }

    /// `name=value` from one network output's summary line.
    pub fn output_counter(&self, output: &str, name: &str) -> u64 {
        let value = self
            .output_line(output)
            .split(&format!(" {name}="))
            .nth(1)
            .and_then(|v| v.split(' ').next())
            .and_then(|v| v.parse().ok());
        self.check(
            value.is_some(),
            &format!("the {output} output summary has {name}"),
        );
        value.unwrap_or(0)
    }

    /// The `errorMessage` of the first `/extension/init/error` report, if any.
    pub fn init_error_message(&self) -> String {
        let body = self.report["errors"][0]["body"].as_str().unwrap_or("{}");
        let body: Value = serde_json::from_str(body).unwrap_or_default();
        body["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The shutdown summary's counter `name`.
    pub fn counter(&self, name: &str) -> u64 {
        let key = format!(" {name}=");
        let line = self
            .stderr()
            .into_iter()
            .find(|l| l.contains("shutdown summary:"));
        self.check(
            line.is_some(),
            "the shutdown summary is printed (TELEMETRY_RELAY_LOG=info)",
        );
        let line = line.unwrap_or_default();
        let value = line
            .split(&key)
            .nth(1)
            .and_then(|v| v.split(' ').next())
            .and_then(|v| v.parse().ok());
        self.check(value.is_some(), &format!("the summary has {name}"));
        value.unwrap_or(0)
    }

    /// How many stdout lines equal `line`.
    pub fn count_line(&self, line: &str) -> usize {
        self.stdout().iter().filter(|l| *l == line).count()
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The delivered events that are not the extension's own output coming back. Another
/// extension's line, once relayed, comes back with identical content; the original is always
/// delivered first, so only its first occurrence counts.
pub fn without_own_echoes(delivered: &[Value]) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    delivered
        .iter()
        .filter(|event| {
            if event["type"] != "extension" {
                return true;
            }
            let record = event["record"].as_str().unwrap_or_default();
            record.starts_with("[other-extension]") && seen.insert(record.to_string())
        })
        .cloned()
        .collect()
}

/// The line the `text` format prints for `event`.
pub fn text_line(event: &Value) -> String {
    let record = &event["record"];
    if event["type"] == "function" || event["type"] == "extension" {
        return match record.as_str() {
            Some(text) => text.strip_suffix('\n').unwrap_or(text).to_string(),
            None => record.to_string(),
        };
    }
    let time = event["time"].as_str().unwrap_or("-");
    let kind = event["type"].as_str().unwrap_or_default();
    match record["requestId"].as_str() {
        Some(id) => format!("{time} {kind} {id} {}", emulator_order(record)),
        None => format!("{time} {kind} {record}"),
    }
}

/// A record as the emulator writes it (and Lambda does): `requestId` first, then the other
/// keys, which serde_json sorts.
fn emulator_order(record: &Value) -> String {
    let mut rest = record.clone();
    let id = rest.as_object_mut().and_then(|o| o.remove("requestId"));
    match (id, rest.as_object().is_some_and(|o| o.is_empty())) {
        (Some(id), true) => format!("{{\"requestId\":{id}}}"),
        (Some(id), false) => format!("{{\"requestId\":{id},{}", &rest.to_string()[1..]),
        (None, _) => record.to_string(),
    }
}

/// Runs `tests/validate/<script>` from `make test`'s venv over `input`, failing `run` with its
/// output unless it passes. Without the venv: a failure under `CI=true`, else `false` and a
/// loud skip.
/// A missing prerequisite of `what`: under `CI=true` a failure, locally a loud skip.
pub fn missing(what: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} cannot run under CI=true: {why}");
    }
    eprintln!("SKIPPED ({what}): {why}; under CI=true this fails");
}

/// The python of the venv `make test` builds in `target/py`, or `None` if it is missing
/// (see [`missing`]).
pub fn venv_python(what: &str) -> Option<PathBuf> {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/python");
    if python.exists() {
        return Some(python);
    }
    missing(
        what,
        &format!("{} missing; `make test` installs it", python.display()),
    );
    None
}

pub fn validate_with(run: &Run, script: &str, input: &str) -> bool {
    python(run, script, &[], input, false).is_some()
}

/// Runs `tests/validate/<script> [args] <input file> [<output file>]` in the venv `make test`
/// makes, checks that it passed, and returns what it wrote to the output file (empty if
/// `output` is false); `None` if the venv is missing (a failure under `CI=true`).
pub fn python(
    run: &Run,
    script: &str,
    args: &[&str],
    input: &str,
    output: bool,
) -> Option<Vec<u8>> {
    static N: AtomicU32 = AtomicU32::new(0);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = venv_python(script)?;
    let file = std::env::temp_dir().join(format!(
        "telemetry-relay-validate-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let out = file.with_extension("out");
    std::fs::write(&file, input).unwrap();
    let mut command = Command::new(python);
    command
        .arg(root.join("tests/validate").join(script))
        .args(args)
        .arg(&file);
    if output {
        command.arg(&out);
    }
    let result = command.output().unwrap();
    let _ = std::fs::remove_file(&file);
    let written = std::fs::read(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    run.check(
        result.status.success(),
        &format!(
            "{script}:\n{}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        ),
    );
    Some(written)
}

/// Every request the test backend received was gzipped, and each is a valid gzip stream of
/// what the backend decoded (checked with Python's gzip by `tests/validate/gunzip.py`).
/// Returns the requests, for further checks.
pub fn assert_gzipped(run: &Run) -> Vec<Value> {
    let requests = run.report["backend"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    run.check(
        !requests.is_empty()
            && requests
                .iter()
                .all(|r| r["headers"]["content-encoding"] == "gzip"),
        "every request is gzipped",
    );
    let raw: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::json!({"raw_hex": r["raw_hex"], "body": r["body"], "body_hex": r["body_hex"]}))
        .collect();
    validate_with(run, "gunzip.py", &serde_json::to_string(&raw).unwrap());
    requests
}

/// A free TCP port on 127.0.0.1 (bound and let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server a test runs beside the emulator (a collector, moto, a stand-in): started, waited
/// for until it accepts connections on `port`, killed when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    pub port: u16,
}

impl Daemon {
    pub fn start(mut command: Command, port: u16, what: &str) -> Daemon {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let daemon = Daemon { child, port };
        // The guard is never reached when it works.
        let guard = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < guard, "{what} never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
