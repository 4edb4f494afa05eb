//! The AWS destinations (issue #10), end to end with the real binary under the emulator:
//! - Firehose against moto in server mode with its request authentication on (a signature it
//!   cannot verify is refused): every function line of the run lands in the stream's S3
//!   bucket, plain or with gzipped records; a wrong secret is refused and counted;
//! - what moto cannot do, against `tests/validate/aws_standin.py`, which checks each signature
//!   with botocore: OTLP traces to X-Ray and logs to CloudWatch Logs (the log stream made first,
//!   its headers on every request, bodies read with the official messages), and a Firehose
//!   stream that throttles a call and fails a record, from which nothing is lost.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{Daemon, Run, free_port, missing, venv_python, without_own_echoes};

const EMULATOR_KEY: &str = "ASIAEMULATOREXAMPLE1";
const EMULATOR_SECRET: &str = "emulator/secret/access/key/EXAMPLE";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/validate")
        .join(name)
}

fn temp(name: &str, port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("telemetry-relay-{name}-{port}.json"))
}

/// Runs a script of the venv to completion.
fn run_script(python: &Path, name: &str, args: &[&str]) {
    let status = Command::new(python)
        .arg(script(name))
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "{name} {args:?} failed");
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "[]".to_string());
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).unwrap()
}

/// The function lines the run produced, as the extension received them.
fn function_lines(run: &Run) -> Vec<String> {
    let lines: Vec<String> = without_own_echoes(&run.delivered())
        .iter()
        .filter(|e| e["type"] == "function")
        .filter_map(|e| e["record"].as_str().map(str::to_string))
        .collect();
    run.check(lines.len() >= 3, "the run produced function lines");
    lines
}

/// The function records among NDJSON lines of events.
fn function_records(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "function")
        .filter_map(|e| e["record"].as_str().map(str::to_string))
        .collect()
}

fn moto_server() -> Option<PathBuf> {
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/moto_server");
    if !server.exists() {
        missing(
            "moto",
            "target/py/bin/moto_server missing; `make test` installs moto[server]",
        );
        return None;
    }
    Some(server)
}

/// moto with an IAM user, a bucket and a Firehose stream to it, authentication on; the
/// user's keys.
fn moto(python: &Path, server: &Path) -> (Daemon, Value) {
    let port = free_port();
    let mut command = Command::new(server);
    command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let daemon = Daemon::start(command, port, "moto_server");
    let keys = temp("moto-keys", port);
    run_script(
        python,
        "moto_firehose.py",
        &["setup", &port.to_string(), keys.to_str().unwrap()],
    );
    let value: Value = serde_json::from_str(&std::fs::read_to_string(&keys).unwrap()).unwrap();
    (daemon, value)
}

fn firehose_run(port: u16, keys: (&str, &str), stream: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "--invokes".to_string(),
        "3".to_string(),
        "--error-invoke".to_string(),
        "2".to_string(),
    ];
    for env in [
        format!("TELEMETRY_RELAY_FIREHOSE_STREAM={stream}"),
        format!("AWS_ENDPOINT_URL_FIREHOSE=http://127.0.0.1:{port}"),
        format!("AWS_ACCESS_KEY_ID={}", keys.0),
        format!("AWS_SECRET_ACCESS_KEY={}", keys.1),
        "TELEMETRY_RELAY_TYPES=platform,function,extension".to_string(),
        "TELEMETRY_RELAY_LOG=info".to_string(),
    ]
    .into_iter()
    .chain(extra.iter().map(|e| e.to_string()))
    {
        args.push("--env".to_string());
        args.push(env);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Run::new(&args)
}

fn into_moto(gzip: bool) {
    let (Some(python), Some(server)) = (venv_python("moto"), moto_server()) else {
        return;
    };
    let (daemon, keys) = moto(&python, &server);
    let (key, secret) = (
        keys["key"].as_str().unwrap(),
        keys["secret"].as_str().unwrap(),
    );
    let compression = format!(
        "TELEMETRY_RELAY_FIREHOSE_COMPRESSION={}",
        if gzip { "gzip" } else { "none" }
    );
    // An IAM user's long-term keys have no session token.
    let extra = ["AWS_SESSION_TOKEN=".to_string(), compression];
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let run = firehose_run(
        daemon.port,
        (key, secret),
        keys["stream"].as_str().unwrap(),
        &extra,
    );
    run.assert_clean_exit();
    let line = run.output_line("firehose");
    run.check(
        line.contains(" dropped=0") && line.contains(" rejected=0"),
        &format!("moto took every event: {line}"),
    );
    let objects = temp("moto-objects", daemon.port);
    let (port, keys_file) = (daemon.port.to_string(), temp("moto-keys", daemon.port));
    let args = [
        "fetch",
        &port,
        keys_file.to_str().unwrap(),
        objects.to_str().unwrap(),
    ];
    run_script(&python, "moto_firehose.py", &args);
    let _ = std::fs::remove_file(&keys_file);
    let objects = read_json(&objects);
    let objects = objects.as_array().unwrap();
    run.check(!objects.is_empty(), "objects landed in the bucket");
    run.check(
        objects.iter().all(|o| o["gzip"] == gzip),
        &format!("objects are gzip files exactly when records are gzipped ({gzip})"),
    );
    let text: String = objects.iter().filter_map(|o| o["text"].as_str()).collect();
    let landed = function_records(&text);
    for line in function_lines(&run) {
        run.check(landed.contains(&line), &format!("{line:?} is in S3"));
    }
}

#[test]
fn firehose_records_land_in_s3_through_moto() {
    into_moto(false);
}

#[test]
fn gzipped_firehose_records_land_as_gzip_files() {
    into_moto(true);
}

#[test]
fn moto_refuses_a_wrong_signature_and_it_is_counted() {
    let (Some(python), Some(server)) = (venv_python("moto"), moto_server()) else {
        return;
    };
    let (daemon, keys) = moto(&python, &server);
    let key = keys["key"].as_str().unwrap();
    let extra = ["AWS_SESSION_TOKEN="];
    let run = firehose_run(daemon.port, (key, "not-the-secret"), "relay-to-s3", &extra);
    run.assert_clean_exit();
    let rejected = run.output_counter("firehose", "rejected");
    run.check(rejected > 0, "the refused events are counted as rejected");
    run.check(
        run.output_counter("firehose", "sent") == 0,
        "nothing was taken with a wrong signature",
    );
}

/// A run beside the stand-in (checking signatures for the emulator's credentials), given its
/// port; the run, which must have exited cleanly, and every request the stand-in saw.
fn beside_standin(python: &Path, run: impl FnOnce(u16) -> Run) -> (Run, Vec<Value>) {
    let port = free_port();
    let report = temp("aws-standin", port);
    let mut command = Command::new(python);
    command.arg(script("aws_standin.py")).args([
        &port.to_string(),
        report.to_str().unwrap(),
        EMULATOR_KEY,
        EMULATOR_SECRET,
    ]);
    let daemon = Daemon::start(command, port, "aws_standin.py");
    let run = run(port);
    run.assert_clean_exit();
    drop(daemon);
    let requests = read_json(&report)
        .as_array()
        .cloned()
        .expect("the stand-in reports a list");
    (run, requests)
}

#[test]
fn otlp_to_xray_and_cloudwatch_logs_is_signed_for_each_service() {
    let Some(python) = venv_python("aws_standin.py") else {
        return;
    };
    let (run, requests) = beside_standin(&python, |port| {
        Run::new(&[
            "--invokes",
            "3",
            "--env",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://xray.us-east-1.amazonaws.com/v1/traces",
            "--env",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=https://logs.us-east-1.amazonaws.com/v1/logs",
            "--env",
            &format!("AWS_ENDPOINT_URL=http://127.0.0.1:{port}"),
            "--env",
            "TELEMETRY_RELAY_CLOUDWATCH_LOG_GROUP=/relay/test",
            "--env",
            "TELEMETRY_RELAY_TYPES=platform,function,extension",
            "--env",
            "TELEMETRY_RELAY_LOG=info",
        ])
    });
    run.check(
        requests
            .iter()
            .all(|r| r["signature_ok"] == true && r["error"].is_null()),
        &format!("every request is signed as botocore would, and readable: {requests:?}"),
    );
    run.check(
        requests
            .iter()
            .all(|r| r["token"] == "emulator-session-token-EXAMPLE"),
        "every request carries the session token",
    );
    let traces: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/v1/traces")
        .collect();
    let logs: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/v1/logs")
        .collect();
    run.check(
        traces.iter().all(|r| r["service"] == "xray") && !traces.is_empty(),
        "traces are signed for xray",
    );
    let spans: usize = traces
        .iter()
        .map(|r| r["spans"].as_array().map_or(0, Vec::len))
        .sum();
    run.check(
        spans >= 3,
        &format!("the invocations' spans arrived ({spans})"),
    );
    let created = requests.iter().position(|r| !r["created"].is_null());
    run.check(
        created.is_some() && created < requests.iter().position(|r| r["path"] == "/v1/logs"),
        "the log stream is made before the first logs request",
    );
    let made = &requests[created.unwrap()]["created"];
    let stream = made["logStreamName"].as_str().unwrap_or_default();
    run.check(
        made["logGroupName"] == "/relay/test" && stream.contains("/[$LATEST]"),
        &format!("the stream is named like the function's own: {made}"),
    );
    run.check(
        logs.iter().all(|r| {
            r["service"] == "logs" && r["log_group"] == "/relay/test" && r["log_stream"] == stream
        }),
        "logs are signed for logs and name the group and stream",
    );
    let bodies: Vec<Value> = logs
        .iter()
        .flat_map(|r| r["bodies"].as_array().cloned().unwrap_or_default())
        .collect();
    for line in function_lines(&run) {
        let text = line.trim_end_matches('\n');
        run.check(
            bodies.iter().any(|b| b == text),
            &format!("{text:?} reached CloudWatch Logs"),
        );
    }
}

#[test]
fn a_throttled_call_and_a_failed_record_lose_nothing() {
    let Some(python) = venv_python("aws_standin.py") else {
        return;
    };
    let (run, calls) = beside_standin(&python, |port| {
        firehose_run(port, (EMULATOR_KEY, EMULATOR_SECRET), "relay", &[])
    });
    run.check(
        calls
            .iter()
            .all(|c| c["signature_ok"] == true && c["service"] == "firehose"),
        "every call is signed for firehose",
    );
    run.check(
        calls.first().is_some_and(|c| c["injected"] == "throttled")
            && calls
                .get(1)
                .is_some_and(|c| c["injected"] == "first record failed"),
        "the stand-in throttled the first call and failed a record of the second",
    );
    let text: String = calls
        .iter()
        .flat_map(|c| c["records"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let landed = function_records(&text);
    for line in function_lines(&run) {
        let n = landed.iter().filter(|l| **l == line).count();
        run.check(n == 1, &format!("{line:?} arrived once, not {n} times"));
    }
    let out = run.output_line("firehose");
    run.check(
        out.contains(" dropped=0") && out.contains(" rejected=0"),
        &format!("nothing dropped: {out}"),
    );
}
