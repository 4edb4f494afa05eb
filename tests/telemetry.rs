//! Every event the platform delivers is relayed exactly once, in both stdout formats; our own
//! output, which Lambda hands back as `extension` records, is never relayed again.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use support::{Run, text_line, without_own_echoes};

const ALL_TYPES: &str = "TELEMETRY_RELAY_TYPES=platform,function,extension";

/// How a relayed event looks on stdout.
#[derive(Clone, Copy)]
enum Format {
    Text,
    Json,
}

impl Format {
    fn named(name: &str) -> Format {
        if name == "json" {
            Format::Json
        } else {
            Format::Text
        }
    }
}

/// Asserts each delivered event is on stdout exactly once and nothing else is, so our own
/// output that came back as `extension` records was not printed again.
fn assert_relayed_exactly_once(run: &Run, format: Format) {
    let delivered = run.delivered();
    run.check(!delivered.is_empty(), "events were delivered");
    let stdout = run.stdout();
    let parsed: Vec<Option<Value>> = stdout
        .iter()
        .map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut expected_lines = 0;
    for event in &without_own_echoes(&delivered) {
        expected_lines += 1;
        let (count, shown) = match format {
            Format::Text => {
                let line = text_line(event);
                (run.count_line(&line), line)
            }
            // The relay prints the event as received; key order is the sender's.
            Format::Json => (
                parsed.iter().filter(|v| v.as_ref() == Some(event)).count(),
                event.to_string(),
            ),
        };
        run.check(
            count == 1,
            &format!("{shown:?} printed once, not {count} times"),
        );
    }
    run.check(
        stdout.len() == expected_lines,
        &format!(
            "stdout holds nothing but the {expected_lines} relayed events, not {} lines",
            stdout.len()
        ),
    );
    run.assert_clean_exit();
}

/// The final batch arrives after SHUTDOWN: its report and the SIGTERM-handler line are relayed.
fn assert_last_batch_relayed(run: &Run) {
    let last_id = run.report["invokes"]
        .as_array()
        .and_then(|i| i.last())
        .map(|i| i["request_id"].clone());
    let delivered = run.delivered();
    let last_report = delivered.iter().any(|e| {
        e["type"] == "platform.report" && Some(&e["record"]["requestId"]) == last_id.as_ref()
    });
    run.check(
        last_report,
        "the last invocation's platform.report was delivered (after SHUTDOWN)",
    );
    let stdout = run.stdout();
    run.check(
        stdout.iter().any(|l| {
            l.contains("platform.report")
                && last_id
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|id| l.contains(id))
        }),
        "the last invocation's platform.report is on stdout",
    );
    run.check(
        stdout.iter().any(|l| l.contains("SIGTERM handler marker")),
        "the line the function logged after SHUTDOWN was sent is on stdout",
    );
}

#[test]
fn text_format_relays_every_event_once() {
    let run = Run::new(&["--invokes", "3", "--other-extension", "--env", ALL_TYPES]);
    assert_relayed_exactly_once(&run, Format::Text);
    assert_last_batch_relayed(&run);
}

#[test]
fn json_format_relays_every_event_once_as_received() {
    let run = Run::new(&[
        "--invokes",
        "3",
        "--other-extension",
        "--env",
        ALL_TYPES,
        "--env",
        "TELEMETRY_RELAY_STDOUT_FORMAT=json",
    ]);
    // Each stdout line is the delivered event itself.
    assert_relayed_exactly_once(&run, Format::Json);
    assert_last_batch_relayed(&run);
}

#[test]
fn json_log_format_records_stay_objects_in_both_formats() {
    for format in ["text", "json"] {
        let env = format!("TELEMETRY_RELAY_STDOUT_FORMAT={format}");
        let run = Run::new(&[
            "--json-logs",
            "--other-extension",
            "--env",
            ALL_TYPES,
            "--env",
            &env,
        ]);
        let function_objects = run
            .delivered()
            .iter()
            .filter(|e| e["type"] == "function" && e["record"].is_object())
            .count();
        run.check(function_objects > 0, "the function logged JSON objects");
        assert_relayed_exactly_once(&run, Format::named(format));
    }
}

#[test]
fn own_output_never_loops_back() {
    for (format, json_logs) in [
        ("text", false),
        ("json", false),
        ("text", true),
        ("json", true),
    ] {
        let env = format!("TELEMETRY_RELAY_STDOUT_FORMAT={format}");
        let mut args = vec![
            "--invokes",
            "5",
            "--lines",
            "4",
            "--env",
            ALL_TYPES,
            "--env",
            &env,
            "--env",
            "TELEMETRY_RELAY_LOG=info",
        ];
        if json_logs {
            args.push("--json-logs");
        }
        let run = Run::new(&args);
        let printed = run.stdout().len() + run.stderr().len();
        let echoes = run
            .delivered()
            .iter()
            .filter(|e| e["type"] == "extension")
            .count();
        // Every line we print comes back once; none of those is printed again, so the number of
        // extension events is bounded by what we printed instead of growing without end.
        run.check(
            echoes <= printed,
            &format!("{format}/{json_logs}: {echoes} extension events for {printed} printed lines"),
        );
        run.check(
            !run.stdout().iter().any(|l| l.contains("[telemetry-relay]")),
            "our own stderr lines are never relayed",
        );
        run.check(
            run.counter("own_echoes_dropped") > 0,
            "echoes were recognised and dropped",
        );
        assert_relayed_exactly_once(&run, Format::named(format));
    }
}

#[test]
fn only_platform_events_when_asked() {
    let run = Run::new(&["--env", "TELEMETRY_RELAY_TYPES=platform"]);
    run.check(
        run.delivered().iter().all(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("platform."))
        }),
        "only platform events delivered",
    );
    assert_relayed_exactly_once(&run, Format::Text);
}

#[test]
fn stdout_none_prints_nothing() {
    let run = Run::new(&[
        "--env",
        "TELEMETRY_RELAY_STDOUT_FORMAT=none",
        "--env",
        ALL_TYPES,
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ]);
    run.check(run.stdout().is_empty(), "nothing on stdout");
    let delivered = run.delivered().len() as u64;
    run.check(delivered > 0, "the platform delivered events");
    run.check(
        run.counter("events") == delivered,
        "every delivered event was received",
    );
    run.check(run.counter("relayed") == 0, "and none was written");
    run.assert_clean_exit();
}
