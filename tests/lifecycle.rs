//! The Extensions API loop under every mode the emulator has: classic invokes, frozen
//! environments, Lambda Managed Instances, hosts without a Telemetry API, failing invokes.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::Run;

#[test]
fn classic_mode_registers_for_invoke_and_shutdown_and_serves_every_invoke() {
    let run = Run::new(&["--invokes", "4"]);
    run.check(
        run.report["registered_events"] == serde_json::json!(["INVOKE", "SHUTDOWN"]),
        "INVOKE+SHUTDOWN registered",
    );
    run.check(
        run.report["post_runtime_ms"].as_array().map_or(0, Vec::len) == 4,
        "every invoke got its /next",
    );
    run.check(run.report["init_ms"].is_number(), "Init completed");
    run.check(run.report["subscribe_answers"][0][0] == 200, "subscribed");
    run.assert_clean_exit();
}

#[test]
fn frozen_between_invokes_still_relays_everything() {
    let run = Run::new(&["--invokes", "3", "--freeze"]);
    let markers = run
        .delivered()
        .iter()
        .filter(|e| e["type"] == "function")
        .count();
    let printed = run
        .stdout()
        .iter()
        .filter(|l| l.contains(" marker fn-"))
        .count();
    run.check(
        markers > 0 && printed == markers,
        "every function line relayed across freezes",
    );
    run.assert_clean_exit();
}

#[test]
fn managed_instances_register_shutdown_only_and_relay_while_next_blocks() {
    let run = Run::new(&["--lmi", "--invokes", "3", "--wait-relay"]);
    run.check(
        run.report["registered_events"] == serde_json::json!(["SHUTDOWN"]),
        "SHUTDOWN-only registration",
    );
    run.check(
        run.report["subscribe_answers"][0][0] == 200,
        "schema 2025-01-29 accepted",
    );
    // /next is blocked from Init to SHUTDOWN: these lines were relayed while it was.
    run.check(
        run.report["relayed_before_shutdown"] == true,
        "function lines relayed before SHUTDOWN",
    );
    let reports = run
        .stdout()
        .iter()
        .filter(|l| l.contains(" platform.report "))
        .count();
    run.check(
        reports == 3,
        "every sparse report relayed, the last one after SHUTDOWN",
    );
    run.assert_clean_exit();
}

#[test]
fn without_telemetry_api_invokes_are_still_served() {
    let run = Run::new(&["--not-supported", "--invokes", "3"]);
    run.check(
        run.report["subscribe_answers"][0][0] == 202,
        "subscribe answered 202 NotSupported",
    );
    run.check(
        run.report["post_runtime_ms"].as_array().map_or(0, Vec::len) == 3,
        "every invoke served",
    );
    let warnings = run
        .stderr()
        .iter()
        .filter(|l| l.contains("Telemetry API is unavailable"))
        .count();
    run.check(warnings == 1, "one warning, not one per invoke");
    run.check(run.stdout().is_empty(), "nothing relayed");
    run.assert_clean_exit();
}

#[test]
fn failed_and_timed_out_invokes_are_relayed() {
    let run = Run::new(&[
        "--invokes",
        "3",
        "--error-invoke",
        "1",
        "--timeout-invoke",
        "2",
    ]);
    let stdout = run.stdout();
    run.check(
        stdout
            .iter()
            .any(|l| l.contains(" platform.report ") && l.contains("\"status\":\"error\"")),
        "error report relayed",
    );
    run.check(
        stdout.iter().any(|l| {
            l.contains(" platform.report ") && l.contains("\"errorType\":\"Sandbox.Timedout\"")
        }),
        "timeout report relayed (after the SHUTDOWN that the timeout caused)",
    );
    run.assert_clean_exit();
}

#[test]
fn every_shutdown_reason_ends_cleanly() {
    for reason in ["timeout", "failure", "SandboxTerminated"] {
        let run = Run::new(&["--invokes", "1", "--shutdown-reason", reason]);
        run.assert_clean_exit();
    }
}

#[test]
fn a_host_without_the_newest_schema_gets_the_previous_one() {
    let run = Run::new(&["--reject-schema", "2025-01-29", "--invokes", "2"]);
    let answers = run.report["subscribe_answers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    run.check(
        answers.len() == 2 && answers[0][0] == 400 && answers[1][0] == 200,
        "400 on 2025-01-29, then subscribed",
    );
    let reports = run
        .stdout()
        .iter()
        .filter(|l| l.contains(" platform.report "))
        .count();
    run.check(reports == 2, "events relayed under the fallback schema");
    run.assert_clean_exit();
}

#[test]
fn a_refused_registration_exits_non_zero_with_the_reason() {
    let run = Run::new(&["--register-as", "someone-else"]);
    run.check(run.report["exit_code"] == 1, "exits 1");
    run.check(
        run.stderr().iter().any(|l| {
            l.starts_with("[telemetry-relay] ERROR cannot register")
                && l.contains("Extension.InvalidExtensionName")
        }),
        "one line says why",
    );
    run.check(
        run.report["errors"].as_array().is_some_and(Vec::is_empty),
        "no init/error without an identifier",
    );
}
