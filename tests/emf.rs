//! The EMF output under the emulator: every document passes the EMF schema and the format's
//! limits, checked by the `jsonschema` package (tests/validate/emf.py); one document per
//! invocation and per init; LMI's sparse reports give only what they carry; our EMF lines,
//! which come back as `extension` records, are never relayed again.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::Value;
use support::{Run, validate_with};

/// The EMF documents on the extension's stdout.
fn documents(run: &Run) -> Vec<Value> {
    run.stdout()
        .iter()
        .filter(|l| l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The documents of invocations (not init or counters).
fn invocation_documents(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| d.get("Invocations").is_some())
        .collect()
}

/// Runs the third-party validator over the documents; `false` if it is not installed.
fn validate(run: &Run) -> bool {
    let lines: Vec<String> = run
        .stdout()
        .into_iter()
        .filter(|l| l.contains("\"_aws\""))
        .collect();
    validate_with(run, "emf.py", &lines.join("\n"))
}

const EMF_ON: [&str; 2] = ["--env", "TELEMETRY_RELAY_EMF=on"];

#[test]
fn every_document_is_valid_emf_with_one_per_invocation_and_init() {
    let run = Run::new(&[
        EMF_ON[0],
        EMF_ON[1],
        "--invokes",
        "4",
        "--error-invoke",
        "2",
        "--env",
        "TELEMETRY_RELAY_EMF_DIMENSIONS=FunctionName;FunctionName,FunctionVersion",
        "--env",
        "TELEMETRY_RELAY_EMF_NAMESPACE=Shop/Checkout",
    ]);
    validate(&run);
    let docs = documents(&run);
    let invocations = invocation_documents(&docs);
    run.check(
        invocations.len() == 4,
        "one document per invocation, the last one after SHUTDOWN",
    );
    run.check(
        docs.iter()
            .filter(|d| d.get("InitDuration").is_some())
            .count()
            == 1,
        "one init document",
    );
    run.check(
        docs.iter()
            .filter(|d| d.get("EventsReceived").is_some())
            .count()
            == 1,
        "one counters document",
    );
    run.check(
        invocations.iter().filter(|d| d["Errors"] == 1.0).count() == 1,
        "the error counted",
    );
    run.check(
        invocations.iter().filter(|d| d["ColdStart"] == 1.0).count() == 1,
        "one cold start",
    );
    run.check(
        docs.iter()
            .all(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Shop/Checkout"),
        "namespace",
    );
    run.check(
        docs.iter().all(|d| d["FunctionVersion"] == "$LATEST"),
        "dimension values at the root",
    );
    run.assert_clean_exit();
}

#[test]
fn managed_instances_documents_carry_only_what_lmi_reports_have() {
    let run = Run::new(&[EMF_ON[0], EMF_ON[1], "--lmi", "--invokes", "3"]);
    validate(&run);
    let docs = documents(&run);
    let invocations = invocation_documents(&docs);
    run.check(invocations.len() == 3, "one document per invocation");
    for doc in invocations {
        run.check(doc.get("Duration").is_some(), "duration carried");
        for absent in ["BilledDuration", "MemorySize", "MaxMemoryUsed", "ColdStart"] {
            run.check(
                doc.get(absent).is_none(),
                &format!("{absent} is not made up"),
            );
        }
    }
    run.assert_clean_exit();
}

#[test]
fn our_emf_lines_coming_back_are_not_relayed_again() {
    for format in ["text", "json", "none"] {
        let env = format!("TELEMETRY_RELAY_STDOUT_FORMAT={format}");
        let run = Run::new(&[
            EMF_ON[0],
            EMF_ON[1],
            "--env",
            &env,
            "--env",
            "TELEMETRY_RELAY_TYPES=platform,function,extension",
            "--env",
            "TELEMETRY_RELAY_LOG=info",
            "--json-logs",
        ]);
        let lines: Vec<String> = run
            .stdout()
            .into_iter()
            .filter(|l| l.contains("\"_aws\""))
            .collect();
        for line in &lines {
            let n = run.count_line(line);
            run.check(
                n == 1,
                &format!("{format}: an EMF document printed once, not {n} times"),
            );
        }
        run.check(
            run.counter("own_echoes_dropped") > 0,
            "the echoes were recognised",
        );
        if validate(&run) {
            run.check(!lines.is_empty(), "documents were written");
        }
        run.assert_clean_exit();
    }
}

#[test]
fn emf_without_platform_events_is_a_config_error() {
    let run = Run::new(&[
        EMF_ON[0],
        EMF_ON[1],
        "--env",
        "TELEMETRY_RELAY_TYPES=function",
    ]);
    let message = run.init_error_message();
    run.check(
        message.contains(
            "TELEMETRY_RELAY_EMF=\"on\" is not valid: EMF metrics come from platform events",
        ),
        &message,
    );
}
