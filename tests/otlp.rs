//! The OTLP output under the emulator, against a healthy local backend: every request parses
//! strictly into the official opentelemetry-proto messages (tests/validate/otlp.py), every
//! event arrives as exactly one log record, every invocation as one span, and the metrics count
//! every invocation.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::{Run, assert_gzipped, python, without_own_echoes};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

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

/// The accepted requests' content for one signal, as OTLP JSON whatever their encoding
/// (protobuf is converted by the official messages); `None` when those are not installed.
fn bodies(run: &Run, signal: &str, content_type: &str) -> Option<Vec<Value>> {
    let requests: Vec<Value> = run.report["backend"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["status"] == 200 && r["path"] == format!("/v1/{signal}"))
        .collect();
    for r in &requests {
        run.check(
            r["headers"]["content-type"] == content_type,
            &format!("{content_type} content type"),
        );
        run.check(
            r["headers"]["x-honeycomb-team"] == "s3cr3t",
            "OTEL_EXPORTER_OTLP_HEADERS sent",
        );
    }
    let contents = validate_requests(run, &requests, true)?;
    Some(serde_json::from_slice(&contents).unwrap())
}

/// Runs the official protobuf messages over every request the backend received.
fn validate(run: &Run) {
    let requests = run.report["backend"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    validate_requests(run, &requests, false);
}

fn validate_requests(run: &Run, requests: &[Value], output: bool) -> Option<Vec<u8>> {
    let requests: Vec<Value> = requests
        .iter()
        .map(|r| match r.get("body_hex") {
            Some(hex) => json!({"path": r["path"], "body_hex": hex}),
            None => json!({"path": r["path"], "body": r["body"]}),
        })
        .collect();
    let input = serde_json::to_string(&requests).unwrap();
    python(run, "otlp.py", &[], &input, output)
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
fn every_signal_is_valid_otlp_protobuf_by_default_and_complete() {
    check_complete(&run(&[]), PROTOBUF);
}

#[test]
fn every_signal_is_valid_otlp_json_and_complete() {
    check_complete(
        &run(&["--env", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"]),
        JSON,
    );
}

#[test]
fn gzipped_requests_are_valid_gzip_and_carry_the_same_content() {
    for (protocol, content_type) in [("http/protobuf", PROTOBUF), ("http/json", JSON)] {
        let run = run(&[
            "--env",
            "OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
            "--env",
            &format!("OTEL_EXPORTER_OTLP_PROTOCOL={protocol}"),
        ]);
        let requests = assert_gzipped(&run);
        let smaller = requests.iter().all(|r| {
            let content = r["body_hex"]
                .as_str()
                .map_or_else(|| r["body"].as_str().map_or(0, str::len), |h| h.len() / 2);
            r["wire_bytes"].as_u64().unwrap_or(u64::MAX) < content as u64
        });
        run.check(smaller, "and smaller than its content");
        check_complete(&run, content_type);
    }
}

/// Every request valid by the official messages, and every signal complete.
fn check_complete(run: &Run, content_type: &str) {
    validate(run);
    let Some(logs) = bodies(run, "logs", content_type) else {
        return;
    };
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
    let traces = bodies(run, "traces", content_type).unwrap_or_default();
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
    let metric_bodies = bodies(run, "metrics", content_type).unwrap_or_default();
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
    for protocol in ["http/protobuf", "http/json"] {
        let protocol = format!("OTEL_EXPORTER_OTLP_PROTOCOL={protocol}");
        validate(&run(&["--json-logs", "--env", &protocol]));
        validate(&run(&["--lmi", "--env", &protocol]));
    }
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
fn a_partial_success_is_counted_and_not_retried_in_either_encoding() {
    for protocol in ["http/protobuf", "http/json"] {
        a_partial_success_is_counted(protocol);
    }
}

fn a_partial_success_is_counted(protocol: &str) {
    let protocol = format!("OTEL_EXPORTER_OTLP_PROTOCOL={protocol}");
    let run = Run::new(&[
        "--env",
        &protocol,
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
    let line = run.output_line("otlp-logs");
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

/// With `OTEL_METRIC_EXPORT_INTERVAL`, reports are aggregated and exported on the interval
/// (the first export is not held) and on SHUTDOWN, not per invocation; nothing is lost or
/// counted twice either way.
#[test]
fn metrics_are_exported_on_their_interval_not_per_invocation() {
    let exports = |interval: &str| -> (usize, u64) {
        let interval = format!("OTEL_METRIC_EXPORT_INTERVAL={interval}");
        let run = Run::new(&[
            "--invokes",
            "5",
            "--backend",
            "healthy",
            "--env",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT={backend}/v1/metrics",
            "--env",
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/json",
            "--env",
            "TELEMETRY_RELAY_FLUSH=end",
            "--env",
            "TELEMETRY_RELAY_FLUSH_BUDGET_MS=2000",
            "--env",
            &interval,
        ]);
        run.assert_clean_exit();
        let requests: Vec<Value> = run.report["backend"]["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["status"] == 200)
            .collect();
        let invocations: u64 = requests
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(r["body"].as_str()?).ok())
            .flat_map(|b| {
                items(&[b], "resourceMetrics", "scopeMetrics", "metrics")
                    .into_iter()
                    .filter(|m| m["name"] == "faas.invocations")
                    .filter_map(|m| {
                        m["sum"]["dataPoints"][0]["asInt"]
                            .as_str()?
                            .parse::<u64>()
                            .ok()
                    })
                    .collect::<Vec<_>>()
            })
            .sum();
        (requests.len(), invocations)
    };
    let (every, counted) = exports("0");
    assert!(
        every >= 5 && counted == 5,
        "interval 0: {every} exports, {counted} invocations"
    );
    let (held, counted) = exports("600000");
    assert!(
        held == 2 && counted == 5,
        "10 min: {held} exports, {counted} invocations"
    );
}
