//! The network outputs against local test backends (issue #4): every event reaches a healthy
//! or recovering backend exactly once; a backend that never accepts costs counted drops, never
//! a held `/next`, a crash or a SIGKILL; a 4xx is not retried.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use support::{Run, fixture, without_own_echoes};

const URL: &str = "TELEMETRY_RELAY_HTTP_URL={backend}/ingest";

fn run(mode: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "--invokes",
        "3",
        "--freeze",
        "--backend",
        mode,
        "--env",
        URL,
        "--env",
        "TELEMETRY_RELAY_HTTP_TIMEOUT_MS=300",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ];
    args.extend_from_slice(extra);
    Run::new(&args)
}

/// The events the backend accepted (answered 2xx), one per NDJSON line.
fn accepted(run: &Run) -> Vec<Value> {
    let requests = run.report["backend"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut events = Vec::new();
    for request in requests.iter().filter(|r| r["status"] == 200) {
        run.check(
            request["headers"]["content-type"] == "application/x-ndjson",
            "NDJSON content type",
        );
        for line in request["body"].as_str().unwrap_or_default().lines() {
            let event = serde_json::from_str(line);
            run.check(
                event.is_ok(),
                &format!("each line is one JSON event: {line:?}"),
            );
            events.push(event.unwrap_or_default());
        }
    }
    events
}

/// `name=value` from the `output http:` summary line.
fn output_counter(run: &Run, name: &str) -> u64 {
    run.output_counter("http", name)
}

fn assert_each_event_accepted_once(run: &Run) {
    let expected = without_own_echoes(&run.delivered());
    let accepted = accepted(run);
    for event in &expected {
        let n = accepted.iter().filter(|a| *a == event).count();
        run.check(n == 1, &format!("{event} accepted once, not {n} times"));
    }
    run.check(accepted.len() == expected.len(), "nothing else was sent");
    run.check(
        output_counter(run, "sent") == expected.len() as u64,
        "sent counts them",
    );
    run.check(output_counter(run, "dropped") == 0, "nothing dropped");
}

/// Every one of the three invokes got its `/next`; the extension exited by itself in time.
fn assert_function_unharmed(run: &Run) {
    assert_function_unharmed_after(run, 3);
}

#[test]
fn a_healthy_backend_gets_every_event_once_with_its_headers() {
    let run = run(
        "healthy",
        &[
            "--env",
            "TELEMETRY_RELAY_HTTP_HEADERS=x-api-key=s3cr3t,x-team=a%2Cb",
        ],
    );
    assert_each_event_accepted_once(&run);
    let request = &run.report["backend"]["requests"][0];
    run.check(
        request["headers"]["x-api-key"] == "s3cr3t" && request["headers"]["x-team"] == "a,b",
        "headers sent, decoded",
    );
    run.check(
        !run.stderr().iter().any(|l| l.contains("s3cr3t")),
        "the secret is never printed",
    );
    assert_function_unharmed(&run);
}

#[test]
fn a_recovering_backend_loses_nothing() {
    // Five failures outlast the first request's attempts: it is re-queued, the next one passes.
    let run = run("fail:503:5", &[]);
    assert_each_event_accepted_once(&run);
    // One warning when it starts failing, one line when it recovers: not one per attempt.
    let lines = |text: &str| run.stderr().iter().filter(|l| l.contains(text)).count();
    run.check(
        lines("http: send failed") == 1,
        "the failure is warned once",
    );
    run.check(
        lines("http: sending again") == 1,
        "the recovery is said once",
    );
    assert_function_unharmed(&run);
}

#[test]
fn a_connection_closed_while_frozen_is_retried_on_a_fresh_one() {
    let run = run("reset", &[]);
    assert_each_event_accepted_once(&run);
    assert_function_unharmed(&run);
}

#[test]
fn a_backend_that_never_accepts_costs_counted_drops_only() {
    for mode in ["status:429", "status:503", "hang", "down"] {
        let run = run(mode, &[]);
        let expected = without_own_echoes(&run.delivered()).len() as u64;
        run.check(
            accepted(&run).is_empty(),
            &format!("{mode}: nothing accepted"),
        );
        run.check(output_counter(&run, "sent") == 0, "nothing counted as sent");
        run.check(
            output_counter(&run, "dropped") == expected,
            &format!("{mode}: every event counted as dropped"),
        );
        run.check(
            output_counter(&run, "failed_sends") > 0,
            "failed sends counted",
        );
        let warnings = run
            .stderr()
            .iter()
            .filter(|l| l.contains("http: send failed"))
            .count();
        run.check(
            warnings == 1,
            &format!("{mode}: warned once, not per attempt"),
        );
        // The other output is untouched: stdout still has every event.
        run.check(
            run.stdout().len() as u64 == expected,
            "stdout relayed everything meanwhile",
        );
        assert_function_unharmed(&run);
    }
}

#[test]
fn a_client_error_is_not_retried() {
    let run = run("status:400", &[]);
    let requests = run.report["backend"]["requests"]
        .as_array()
        .map_or(0, Vec::len) as u64;
    run.check(
        output_counter(&run, "failed_sends") == requests,
        "one attempt per request",
    );
    run.check(
        output_counter(&run, "rejected") == without_own_echoes(&run.delivered()).len() as u64,
        "all rejected, counted",
    );
    run.check(
        run.stderr()
            .iter()
            .filter(|l| l.contains("HTTP 400"))
            .count()
            == 1,
        "one warning",
    );
    assert_function_unharmed(&run);
}

#[test]
fn a_config_mistake_in_an_output_fails_init() {
    let run = Run::new(&[
        "--env",
        "TELEMETRY_RELAY_HTTP_URL=collector:4318",
        "--env",
        "TELEMETRY_RELAY_HTTP_HEADERS=x-api-key=s3cr3t",
    ]);
    let message = run.init_error_message();
    run.check(
        message.contains(
            "TELEMETRY_RELAY_HTTP_URL=\"collector:4318\" is not valid: expected an http://",
        ),
        &message,
    );
    run.check(run.report["exit_code"] == 1, "exits 1");
}

/// The `invocation …: held … flushed … deferred N` lines, as their `deferred` counts.
fn flush_reports(run: &Run) -> Vec<u64> {
    run.stderr()
        .iter()
        .filter(|l| l.contains("INFO invocation ") && l.contains(" held "))
        .filter_map(|l| {
            l.rsplit("deferred ")
                .next()
                .and_then(|n| n.trim().parse().ok())
        })
        .collect()
}

#[test]
fn flushing_at_the_end_sends_each_invocation_before_its_next() {
    // A budget no debug build can overrun (the invocation's deadline is 3 s), so the
    // ordering checked is never lost to a slow machine.
    let run = run(
        "healthy",
        &[
            "--env",
            "TELEMETRY_RELAY_FLUSH=end",
            "--env",
            "TELEMETRY_RELAY_FLUSH_BUDGET_MS=2000",
        ],
    );
    run.check(
        run.report["backend_had_invoke_before_next"] == serde_json::json!([true, true, true]),
        "each invocation's lines were accepted before the /next that ended it",
    );
    run.check(
        flush_reports(&run) == vec![0, 0, 0],
        "each invocation's cost reported, nothing deferred",
    );
    assert_each_event_accepted_once(&run);
    assert_function_unharmed(&run);
}

#[test]
fn flushing_at_the_end_never_holds_next_past_the_budget() {
    let run = run("hang", &["--env", "TELEMETRY_RELAY_FLUSH=end"]);
    let reports = flush_reports(&run);
    // /next came for every invoke although nothing could be sent: the budget ended each wait.
    run.check(
        reports.len() == 3 && reports.iter().all(|d| *d > 0),
        "each wait ended with its data deferred",
    );
    assert_function_unharmed(&run);
}

#[test]
fn periodic_flushing_delivers_everything() {
    let run = run("healthy", &["--env", "TELEMETRY_RELAY_FLUSH=periodic,50"]);
    assert_each_event_accepted_once(&run);
    assert_function_unharmed(&run);
}

#[test]
fn an_https_url_speaks_tls_and_a_failed_handshake_is_only_counted() {
    // The local backend speaks plain HTTP, so the TLS handshake fails: proof the https:// path
    // really uses TLS, and that its failure is counted like any other, harming nothing.
    let run = Run::new(&[
        "--invokes",
        "2",
        "--backend",
        "healthy",
        "--env",
        "TELEMETRY_RELAY_HTTP_URL=https://{backend_address}/ingest",
        "--env",
        "TELEMETRY_RELAY_HTTP_TIMEOUT_MS=300",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ]);
    if !cfg!(feature = "tls") {
        run.check(
            run.report["exit_code"] == 1,
            "a build without tls refuses https:// at Init",
        );
        return;
    }
    run.check(output_counter(&run, "sent") == 0, "nothing sent in clear");
    run.check(
        output_counter(&run, "failed_sends") > 0,
        "the failed handshakes are counted",
    );
    run.check(
        run.stdout().len() as u64 == without_own_echoes(&run.delivered()).len() as u64,
        "stdout unharmed",
    );
    run.assert_clean_exit();
}

#[test]
fn late_events_are_sent_while_shutdown_waits_for_a_lost_report() {
    // The last report never comes, so the SHUTDOWN wait runs to the deadline's margin; the
    // final batch (after SHUTDOWN) must still reach a healthy backend meanwhile.
    let run = run("healthy", &["--drop-last-report", "--shutdown-ms", "1500"]);
    assert_each_event_accepted_once(&run);
    run.check(
        run.counter("reports_missing") == 1,
        "the lost report is counted",
    );
    assert_function_unharmed(&run);
}

#[test]
fn a_flood_against_a_hanging_backend_counts_each_event_once() {
    // Before: drops were counted from the start of the request in flight, twice for events
    // evicted meanwhile (22,549 events reported as dropped=43970).
    let run = Run::new(&[
        "--invokes",
        "2",
        "--backend",
        "hang",
        "--blast",
        &fixture("ondemand-warm-invokes.json"),
        "--blast-posts",
        "20",
        "--env",
        URL,
        "--env",
        "TELEMETRY_RELAY_HTTP_TIMEOUT_MS=200",
        "--env",
        "TELEMETRY_RELAY_BUFFER_BYTES=262144",
        "--env",
        "TELEMETRY_RELAY_STDOUT_FORMAT=json",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ]);
    let line = run.output_line("http");
    let n = |name: &str| output_counter(&run, name);
    run.check(
        n("received") == n("sent") + n("dropped") + n("rejected"),
        &format!("received = sent + dropped + rejected: {line}"),
    );
    run.check(
        n("received") == run.counter("events"),
        &format!("the HTTP output carries every event once: {line}"),
    );
    run.assert_clean_exit();
}

#[test]
fn a_request_hanging_at_the_hard_stop_does_not_hold_the_exit() {
    // The default timeout (5 s, so a 15 s background budget) outlasts the 2 s SHUTDOWN budget:
    // the sender still waiting on the hanging backend must not be waited for.
    let run = Run::new(&[
        "--invokes",
        "2",
        "--backend",
        "hang",
        "--env",
        URL,
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ]);
    run.check(output_counter(&run, "sent") == 0, "nothing accepted");
    assert_function_unharmed_after(&run, 2);
}

/// Every invoke got its `/next`, and the extension exited by itself before the deadline.
fn assert_function_unharmed_after(run: &Run, invokes: usize) {
    run.check(
        run.report["post_runtime_ms"].as_array().map_or(0, Vec::len) == invokes,
        "every invoke served",
    );
    run.assert_clean_exit();
}

#[test]
fn a_429_is_retried_no_earlier_than_its_retry_after() {
    let run = run("retry-after:1:1", &[]);
    let requests = run.report["backend"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    run.check(
        requests.first().is_some_and(|r| r["status"] == 429),
        "the first request was throttled",
    );
    // The next request carries the throttled events again (re-encoded with whatever came
    // since, when the wait outlasts the request's own budget, as with a 300 ms timeout).
    run.check(requests.len() >= 2, "the throttled events were sent again");
    let at = |i: usize| requests[i]["at_ms"].as_f64().unwrap_or(0.0);
    let waited = at(1) - at(0);
    run.check(
        waited >= 1000.0,
        &format!("not before the second Retry-After asked for: {waited} ms"),
    );
    assert_each_event_accepted_once(&run);
    assert_function_unharmed(&run);
}

#[test]
fn a_500_or_a_400_is_final_and_never_retried() {
    for mode in ["status:500", "status:400"] {
        let run = run(mode, &[]);
        let bodies: Vec<String> = run.report["backend"]["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["body"].as_str().map(str::to_string))
            .collect();
        let distinct: std::collections::HashSet<&String> = bodies.iter().collect();
        run.check(
            !bodies.is_empty() && distinct.len() == bodies.len(),
            &format!("{mode}: each request sent once"),
        );
        let expected = without_own_echoes(&run.delivered()).len() as u64;
        run.check(
            output_counter(&run, "rejected") == expected,
            &format!("{mode}: every event counted as rejected"),
        );
        assert_function_unharmed(&run);
    }
}

#[test]
fn gzipped_ndjson_is_valid_gzip_of_every_event() {
    let run = run(
        "healthy",
        &["--env", "TELEMETRY_RELAY_HTTP_COMPRESSION=gzip"],
    );
    support::assert_gzipped(&run);
    assert_each_event_accepted_once(&run);
    assert_function_unharmed(&run);
}
