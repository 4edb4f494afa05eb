//! The emulator's report of one run: everything the tests and `make bench` read, as JSON,
//! and the one-line summary a person reads.

use serde_json::{Value, json};

use crate::api::Api;
use crate::backend::Backend;
use crate::delivery::Telemetry;
use crate::process::{Extension, Output};

/// Completes `report` with what the API, the delivery, the process and the backend saw.
pub fn finish(
    mut report: Value,
    api: &Api,
    telemetry: &Telemetry,
    ext: &Extension,
    output: &Output,
    test_backend: Option<&Backend>,
) -> Value {
    let (produced, posts, undelivered) = telemetry.results();
    let (peak_rss_kb, cpu_ms) = ext.usage();
    report["peak_rss_kb"] = json!(peak_rss_kb);
    report["cpu_ms"] = json!(cpu_ms);
    report["registered_events"] = json!(api.registered_events());
    report["subscribe_answers"] = json!(api.subscribe_answers());
    report["errors"] = json!(
        api.errors()
            .iter()
            .map(|e| json!({"path": e.path, "error_type": e.error_type, "body": e.body}))
            .collect::<Vec<_>>()
    );
    report["produced"] = json!(
        produced
            .iter()
            .map(|e| json!({"stream": e.stream.name(), "json": e.json}))
            .collect::<Vec<_>>()
    );
    report["posts"] = json!(
        posts
            .iter()
            .map(|p| json!({"outcome": p.outcome, "events": p.events}))
            .collect::<Vec<_>>()
    );
    report["undelivered"] = json!(undelivered.len());
    // Events still queued when the extension exited: typically its own last lines (the
    // shutdown summary), written after the last delivery. Lambda cannot deliver those either.
    report["undelivered_events"] = json!(
        undelivered
            .iter()
            .map(|e| describe(&e.json))
            .collect::<Vec<_>>()
    );
    report["backend"] = test_backend.map_or(Value::Null, Backend::report);
    report["stdout"] = json!(output.stdout_lines());
    report["stderr"] = json!(output.stderr_lines());
    report
}

/// The human-readable end-of-run summary.
pub fn summary(report: &Value) -> String {
    let posts = report["posts"].as_array().map_or(0, Vec::len);
    let delivered: usize = report["posts"].as_array().map_or(0, |p| {
        p.iter()
            .filter(|p| p["outcome"] == "200")
            .map(|p| p["events"].as_array().map_or(0, Vec::len))
            .sum()
    });
    format!(
        "lambda-emulator: init {} ms; post-runtime {} ms; SHUTDOWN to exit {} ms (exit code {}, killed {}); \
         peak RSS {} KiB; CPU {} ms; {} events delivered in {} POSTs, {} never delivered{}",
        report["init_ms"],
        report["post_runtime_ms"],
        report["shutdown_to_exit_ms"],
        report["exit_code"],
        report["killed"],
        report["peak_rss_kb"],
        report["cpu_ms"],
        delivered,
        posts,
        report["undelivered"],
        never_delivered(report)
    )
}

/// An event as `type "start of its record"`.
fn describe(json: &str) -> String {
    let event: Value = serde_json::from_str(json).unwrap_or_default();
    let record: String = match &event["record"] {
        Value::String(text) => text.chars().take(60).collect(),
        other => other.to_string().chars().take(60).collect(),
    };
    format!("{} {record:?}", event["type"].as_str().unwrap_or("?"))
}

/// What the undelivered events were, for the summary line.
fn never_delivered(report: &Value) -> String {
    let events = report["undelivered_events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if events.is_empty() {
        return String::new();
    }
    let described: Vec<&str> = events.iter().take(3).filter_map(Value::as_str).collect();
    format!(
        " ({}: still queued when the extension exited, as its own last lines are; Lambda \
         cannot deliver those either)",
        described.join("; ")
    )
}
