//! SHUTDOWN: the last batch comes after the SHUTDOWN event (see `telemetry.rs`); a report that
//! never comes is waited for only up to the deadline's safety margin; a second SIGTERM ends
//! the wait early. Either way the extension exits 0 by itself, never SIGKILLed.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::Run;

#[test]
fn a_lost_report_is_waited_for_only_until_the_deadline_margin() {
    let run = Run::new(&[
        "--invokes",
        "2",
        "--drop-last-report",
        "--shutdown-ms",
        "1000",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ]);
    run.assert_clean_exit();
    run.check(
        run.counter("reports_missing") == 1,
        "the missing report is counted",
    );
    let relayed = run
        .stdout()
        .iter()
        .filter(|l| l.contains(" platform.report "))
        .count();
    run.check(relayed == 1, "what did arrive was relayed");
}

#[test]
fn a_second_sigterm_ends_the_wait() {
    let run = Run::new(&[
        "--invokes",
        "1",
        "--drop-last-report",
        "--sigterm-twice",
        "--shutdown-ms",
        "30000",
    ]);
    run.assert_clean_exit();
    run.check(
        run.stderr().iter().any(|l| l.contains("second SIGTERM")),
        "the second SIGTERM is reported",
    );
}

#[test]
fn a_stalled_stderr_does_not_hold_shutdown() {
    // Our stderr is a full pipe nobody reads. Before, the SHUTDOWN line blocked the lifecycle
    // thread until the SIGKILL; now only the log writer waits.
    let run = Run::new(&[
        "--invokes",
        "2",
        "--stall-stderr",
        "--env",
        "TELEMETRY_RELAY_LOG=debug",
    ]);
    run.assert_clean_exit();
    run.check(
        run.stdout()
            .iter()
            .any(|l| l.contains("invoke 2 line 1 marker")),
        "relaying went on",
    );
}

#[test]
fn a_second_sigterm_before_shutdown_still_drains_and_reports() {
    // Before, the relay called exit(0) itself: no drain, no final EMF counters.
    let run = Run::new(&[
        "--invokes",
        "2",
        "--term-twice-early",
        "--env",
        "TELEMETRY_RELAY_EMF=on",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ]);
    run.check(
        run.report["exited_before_shutdown"] == true,
        "it exited on the signals alone",
    );
    run.check(run.report["exit_code"] == 0, "exit code 0");
    run.check(
        run.stdout()
            .iter()
            .any(|l| l.contains("\"EventsReceived\"")),
        "the final EMF counters were written",
    );
    run.check(run.counter("invokes") == 2, "the summary was printed");
}
