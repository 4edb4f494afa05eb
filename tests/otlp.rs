//! The OTLP output under the emulator, against a healthy local backend: every request parses
//! strictly into the official opentelemetry-proto messages (tests/validate/otlp.py), every
//! event arrives as exactly one log record, every invocation as one span, and the metrics count
//! every invocation.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::{Run, assert_gzipped, validate_with, without_own_echoes};

fn run(extra: &[&str]) -> Run {
    let mut args = vec![
        "--invokes",
        "3",
        "--error-invoke",
        "2",
        "--backend",
        "healthy",
        "--env",
        "OTEL_EXPORTER_OTLP_ENDPOINT={backend}",
        "--env",
        "OTEL_EXPORTER_OTLP_HEADERS=x-honeycomb-team=s3cr3t",
        "--env",
        "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=test",
        "--env",
        "TELEMETRY_RELAY_TYPES=platform,function,extension",
    ];
    args.extend_from_slice(extra);
    Run::new(&args)
}

/// The accepted requests' parsed bodies for one signal.
fn bodies(run: &Run, signal: &str) -> Vec<Value> {
    let requests = run.report["backend"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    requests
        .iter()
        .filter(|r| r["status"] == 200 && r["path"] == format!("/v1/{signal}"))
        .map(|r| {
            run.check(
                r["headers"]["content-type"] == "application/json",
                "JSON content type",
            );
            run.check(
                r["headers"]["x-honeycomb-team"] == "s3cr3t",
                "OTEL_EXPORTER_OTLP_HEADERS sent",
            );
            serde_json::from_str(r["body"].as_str().unwrap()).unwrap()
        })
        .collect()
}

/// Runs the official protobuf messages over every request; `false` if not installed.
fn validate(run: &Run) -> bool {
    let requests: Vec<Value> = run.report["backend"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| json!({"path": r["path"], "body": r["body"]}))
        .collect();
    validate_with(run, "otlp.py", &serde_json::to_string(&requests).unwrap())
}

fn items<'a>(bodies: &'a [Value], resources: &str, scopes: &str, list: &str) -> Vec<&'a Value> {
    bodies
        .iter()
        .flat_map(|b| b[resources].as_array().into_iter().flatten())
        .flat_map(|r| r[scopes].as_array().into_iter().flatten())
        .flat_map(|s| s[list].as_array().into_iter().flatten())
        .collect()
}

#[test]
fn every_signal_is_valid_otlp_and_complete() {
    check_complete(&run(&[]));
}

#[test]
fn gzipped_requests_are_valid_gzip_and_carry_the_same_content() {
    let run = run(&["--env", "OTEL_EXPORTER_OTLP_COMPRESSION=gzip"]);
    let requests = assert_gzipped(&run);
    let smaller = requests.iter().all(|r| {
        r["wire_bytes"].as_u64().unwrap_or(u64::MAX) < r["body"].as_str().map_or(0, str::len) as u64
    });
    run.check(smaller, "and smaller than its content");
    check_complete(&run);
}

/// Every request valid by the official messages, and every signal complete.
fn check_complete(run: &Run) {
    validate(run);
    let logs = bodies(run, "logs");
    let records = items(&logs, "resourceLogs", "scopeLogs", "logRecords");
    let expected = without_own_echoes(&run.delivered()).len();
    run.check(
        records.len() == expected,
        &format!("{} log records for {expected} events", records.len()),
    );
    let resource = logs[0]["resourceLogs"][0]["resource"].to_string();
    for attribute in [
        "faas.name",
        "cloud.region",
        "faas.max_memory",
        "service.name",
        "deployment.environment",
    ] {
        run.check(
            resource.contains(attribute),
            &format!("resource has {attribute}"),
        );
    }
    let traces = bodies(run, "traces");
    let spans = items(&traces, "resourceSpans", "scopeSpans", "spans");
    let invocations: Vec<&&Value> = spans.iter().filter(|s| s["kind"] == 2).collect();
    run.check(invocations.len() == 3, "one span per invocation");
    run.check(
        invocations
            .iter()
            .filter(|s| s["status"]["code"] == 2)
            .count()
            == 1,
        "the failed one has an error status",
    );
    run.check(spans.iter().any(|s| s["name"] == "init"), "an init span");
    let metric_bodies = bodies(run, "metrics");
    let metrics = items(&metric_bodies, "resourceMetrics", "scopeMetrics", "metrics");
    let invocations: u64 = metrics
        .iter()
        .filter(|m| m["name"] == "faas.invocations")
        .map(|m| {
            m["sum"]["dataPoints"][0]["asInt"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    run.check(invocations == 3, "faas.invocations adds up to 3");
    let received = metrics
        .iter()
        .filter(|m| m["name"] == "telemetry_relay.events.received")
        .count();
    run.check(received > 0, "the relay's own counters are sent as metrics");
    run.check(
        !run.stderr().iter().any(|l| l.contains("s3cr3t")),
        "the header value is never printed",
    );
    run.assert_clean_exit();
}

#[test]
fn json_format_records_and_managed_instances_encode_validly() {
    validate(&run(&["--json-logs"]));
    validate(&run(&["--lmi"]));
}

#[test]
fn flushing_at_the_end_works_with_otlp_alone() {
    let run = Run::new(&[
        "--invokes",
        "3",
        "--backend",
        "healthy",
        "--env",
        "OTEL_EXPORTER_OTLP_ENDPOINT={backend}",
        "--env",
        "TELEMETRY_RELAY_FLUSH=end",
        // Far above what a debug build needs, below the invocation's 3 s deadline.
        "--env",
        "TELEMETRY_RELAY_FLUSH_BUDGET_MS=2000",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ]);
    run.check(
        run.report["backend_had_invoke_before_next"] == json!([true, true, true]),
        "each invocation's log records were accepted before the /next that ended it",
    );
    let held = run
        .stderr()
        .iter()
        .filter(|l| l.contains("INFO invocation ") && l.contains(" held "))
        .count();
    run.check(held == 3, "each invocation's flush reported");
    run.assert_clean_exit();
}

#[test]
fn a_partial_success_is_counted_and_not_retried() {
    let run = Run::new(&[
        "--invokes",
        "2",
        "--backend",
        "partial:3",
        "--env",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT={backend}/v1/logs",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ]);
    let requests = run.report["backend"]["requests"]
        .as_array()
        .map_or(0, Vec::len) as u64;
    let line = run
        .stderr()
        .into_iter()
        .find(|l| l.contains("INFO output otlp-logs:"))
        .unwrap_or_default();
    run.check(
        requests > 0 && line.contains(&format!(" partially_rejected={}", 3 * requests)),
        &format!("3 items counted per accepted request ({requests}): {line}"),
    );
    run.check(line.contains(" failed_sends=0 "), "nothing retried");
    let warnings = run
        .stderr()
        .iter()
        .filter(|l| l.contains("rejected part of it"))
        .count();
    run.check(warnings == 1, "warned once, with the backend's message");
    run.assert_clean_exit();
}

#[test]
fn the_standard_switches_turn_signals_off() {
    let sent = |extra: &[&str]| {
        let mut args = vec![
            "--invokes",
            "1",
            "--backend",
            "healthy",
            "--env",
            "OTEL_EXPORTER_OTLP_ENDPOINT={backend}",
        ];
        args.extend_from_slice(extra);
        let run = Run::new(&args);
        run.assert_clean_exit();
        let paths: std::collections::BTreeSet<String> = run.report["backend"]["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["path"].as_str().map(str::to_string))
            .collect();
        paths
    };
    assert!(sent(&["--env", "OTEL_SDK_DISABLED=true"]).is_empty());
    let logs_only = sent(&[
        "--env",
        "OTEL_METRICS_EXPORTER=none",
        "--env",
        "OTEL_TRACES_EXPORTER=none",
    ]);
    assert_eq!(logs_only.into_iter().collect::<Vec<_>>(), ["/v1/logs"]);
}
