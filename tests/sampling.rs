//! Tail sampling, the level floor, dropped types and redaction (issue #11), the real binary
//! under the emulator with failed, timed-out, crashed and slow invocations mixed in.
//!
//! The emulator's function lines carry markers `marker fn-<nonce>-<invocation>-<line>`, so
//! each relayed line names its invocation whatever output it came out of.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use support::Run;

/// Invocation → the line numbers of it found in `text`.
type Found = BTreeMap<u64, BTreeSet<u64>>;

fn markers<'a>(texts: impl IntoIterator<Item = &'a str>) -> Found {
    let mut found = Found::new();
    for text in texts {
        for (at, _) in text.match_indices("marker fn-") {
            let rest = &text[at + "marker fn-".len()..];
            let mut parts = rest.splitn(4, |c: char| !c.is_ascii_digit());
            let (_nonce, i, j) = (parts.next(), parts.next(), parts.next());
            if let (Some(Ok(i)), Some(Ok(j))) = (i.map(str::parse), j.map(str::parse)) {
                found.entry(i).or_default().insert(j);
            }
        }
    }
    found
}

/// The lines of each invocation on the run's stdout.
fn on_stdout(run: &Run) -> Found {
    markers(run.stdout().iter().map(String::as_str))
}

/// Invocation number (1-based) → its outcome, as the emulator reports it.
fn outcomes(run: &Run) -> BTreeMap<u64, (String, String)> {
    let invokes = run.report["invokes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    invokes
        .iter()
        .enumerate()
        .map(|(n, v)| {
            let outcome = v["outcome"].as_str().unwrap_or_default().to_string();
            let id = v["request_id"].as_str().unwrap_or_default().to_string();
            (n as u64 + 1, (outcome, id))
        })
        .collect()
}

/// Bodies of the backend's accepted requests on `path`.
fn bodies(run: &Run, path: &str) -> Vec<String> {
    run.report["backend"]["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == 200 && r["path"] == path)
        .map(|r| r["body"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn run(args: &[&str], env: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    for e in [
        "TELEMETRY_RELAY_LOG=info",
        "TELEMETRY_RELAY_STDOUT_FORMAT=json",
    ]
    .iter()
    .chain(env)
    {
        all.push("--env");
        all.push(e);
    }
    let run = Run::new(&all);
    run.assert_clean_exit();
    run
}

/// A batch with secrets in nested JSON values, and a text line, for `--inject`.
const NESTED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/payloads/nested-secrets.json"
);

const MIX: &str = "error:7,timeout:11,crash:17,slow:13";

#[test]
fn at_rate_zero_only_failed_timed_out_and_slow_invocations_are_relayed_whole() {
    let run = run(
        &["--invokes", "60", "--lines", "3", "--outcomes", MIX],
        &[
            "TELEMETRY_RELAY_SAMPLE_RATE=0",
            "TELEMETRY_RELAY_KEEP_SLOWER_THAN_MS=1000",
            "TELEMETRY_RELAY_KEEP_COLD_STARTS=false",
        ],
    );
    let found = on_stdout(&run);
    let mut interesting = 0;
    for (i, (outcome, _)) in outcomes(&run) {
        let lines = found.get(&i).map_or(0, BTreeSet::len);
        if outcome == "success" {
            run.check(
                lines == 0,
                &format!("successful invocation {i} is sampled out"),
            );
        } else {
            interesting += 1;
            run.check(
                lines == 3,
                &format!("{outcome} invocation {i} has all 3 lines"),
            );
        }
    }
    assert!(interesting >= 15, "{interesting}");
    let successes = 60 - interesting;
    run.check(
        run.counter("invocations_sampled_out") == successes,
        "every successful invocation is counted as sampled out",
    );
    // Each: start, 3 lines, runtimeDone, report.
    run.check(
        run.counter("records_sampled_out") == successes * 6,
        "and every record of them",
    );
    // Metrics still see every invocation: the report of each is buffered for nobody else.
    run.check(run.counter("invokes") == 60, "every invocation counted");
}

#[test]
fn at_a_tenth_every_output_makes_the_same_all_or_nothing_decision() {
    let run = run(
        &[
            "--invokes",
            "500",
            "--lines",
            "2",
            "--outcomes",
            MIX,
            "--backend",
            "healthy",
        ],
        &[
            "TELEMETRY_RELAY_SAMPLE_RATE=0.1",
            "TELEMETRY_RELAY_KEEP_SLOWER_THAN_MS=1000",
            "TELEMETRY_RELAY_HTTP_URL={backend}/ingest",
            "OTEL_EXPORTER_OTLP_ENDPOINT={backend}",
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/json",
        ],
    );
    let stdout_kept = on_stdout(&run);
    let ndjson = bodies(&run, "/ingest");
    let on_ndjson = markers(ndjson.iter().map(String::as_str));
    let logs = bodies(&run, "/v1/logs");
    let on_otlp = markers(logs.iter().map(String::as_str));
    for (name, found) in [("NDJSON", &on_ndjson), ("OTLP logs", &on_otlp)] {
        run.check(
            found == &stdout_kept,
            &format!("{name} keeps exactly the invocations stdout keeps"),
        );
    }
    let spans: BTreeSet<String> = bodies(&run, "/v1/traces")
        .iter()
        .flat_map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            let mut ids = Vec::new();
            for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        for a in span["attributes"].as_array().into_iter().flatten() {
                            if a["key"] == "faas.invocation_id" {
                                ids.push(a["value"]["stringValue"].as_str().unwrap().to_string());
                            }
                        }
                    }
                }
            }
            ids
        })
        .collect();
    let (mut successes, mut kept_successes) = (0u64, 0u64);
    for (i, (outcome, id)) in outcomes(&run) {
        let lines = stdout_kept.get(&i).map_or(0, BTreeSet::len);
        run.check(
            lines == 0 || lines == 2,
            &format!("invocation {i} is all or nothing"),
        );
        run.check(
            spans.contains(&id) == (lines == 2),
            &format!("invocation {i}'s span follows its logs"),
        );
        // The cold start is kept as such.
        if outcome == "success" && i > 1 {
            successes += 1;
            kept_successes += u64::from(lines == 2);
        } else {
            run.check(lines == 2, &format!("{outcome} invocation {i} is kept"));
        }
    }
    // Bound: the kept fraction of successes is within four standard deviations of 0.1
    // (sigma = sqrt(0.1 * 0.9 / n); n is about 350 here, so 0.1 ± 0.064).
    let n = successes as f64;
    let fraction = kept_successes as f64 / n;
    let bound = 4.0 * (0.1 * 0.9 / n).sqrt();
    run.check(
        (fraction - 0.1).abs() <= bound,
        &format!(
            "kept {kept_successes} of {successes} successes ({fraction:.3}), 0.1 ± {bound:.3}"
        ),
    );
    run.check(
        run.counter("invocations_sampled_out") == successes - kept_successes,
        "the sampled-out invocations are counted",
    );
}

#[test]
fn xray_mode_follows_each_invocations_sampled_flag() {
    let run = run(
        &[
            "--invokes",
            "30",
            "--xray-sampled",
            "3",
            "--error-invoke",
            "4",
        ],
        &[
            "TELEMETRY_RELAY_SAMPLE_RATE=xray",
            "TELEMETRY_RELAY_KEEP_COLD_STARTS=false",
        ],
    );
    let found = on_stdout(&run);
    for (i, (outcome, _)) in outcomes(&run) {
        let kept = found.contains_key(&i);
        let expected = i % 3 == 0 || outcome != "success";
        run.check(
            kept == expected,
            &format!("invocation {i} (Sampled={})", u8::from(i % 3 == 0)),
        );
    }
}

#[test]
fn the_level_floor_reads_every_runtimes_format() {
    for style in [
        "python",
        "node",
        "dotnet",
        "java",
        "log4j2",
        "json",
        "powertools",
    ] {
        let run = run(
            &[
                "--invokes",
                "4",
                "--lines",
                "5",
                "--log-style",
                style,
                "--error-invoke",
                "3",
            ],
            &[
                "TELEMETRY_RELAY_MIN_LEVEL=warn",
                "TELEMETRY_RELAY_KEEP_COLD_STARTS=false",
            ],
        );
        let found = on_stdout(&run);
        for i in 1..=4u64 {
            // Lines cycle debug, info, warn, error, and one whose level cannot be read.
            let expected: BTreeSet<u64> = if i == 3 {
                (1..=5).collect()
            } else {
                [3, 4, 5].into()
            };
            let got = found.get(&i).cloned().unwrap_or_default();
            run.check(
                got == expected,
                &format!("{style}: invocation {i} keeps {expected:?}, got {got:?}"),
            );
        }
        run.check(
            run.counter("records_dropped_by_level") == 6,
            &format!("{style}: 2 lines × 3 counted"),
        );
    }
}

#[test]
fn dropped_types_are_not_relayed_but_still_make_spans() {
    let run = run(
        &["--invokes", "3", "--backend", "healthy"],
        &[
            "TELEMETRY_RELAY_DROP_TYPES=platform.start,platform.runtimeDone",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={backend}/v1/traces",
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/json",
        ],
    );
    let stdout = run.stdout();
    let types: Vec<String> = stdout
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|e| e["type"].as_str().map(str::to_string))
        .collect();
    run.check(
        !types
            .iter()
            .any(|t| t == "platform.start" || t == "platform.runtimeDone"),
        "not on stdout",
    );
    run.check(
        types.iter().filter(|t| *t == "platform.report").count() == 3,
        "reports are",
    );
    run.check(
        run.counter("records_dropped_by_type") == 6,
        "6 records dropped by type",
    );
    let traces = bodies(&run, "/v1/traces").join("\n");
    for (_, (_, id)) in outcomes(&run) {
        run.check(traces.contains(&id), &format!("{id} still has its span"));
    }
}

#[test]
fn every_detector_redacts_text_lines_and_json_records_which_stay_json() {
    for style in ["python", "json"] {
        let run = run(
            &[
                "--invokes",
                "2",
                "--lines",
                "2",
                "--secrets",
                "--log-style",
                style,
                "--backend",
                "healthy",
                "--inject",
                NESTED,
            ],
            &[
                "TELEMETRY_RELAY_REDACT=all",
                r"TELEMETRY_RELAY_REDACT_PATTERNS=order#\d+|cust-[a-z]+",
                "TELEMETRY_RELAY_HTTP_URL={backend}/ingest",
            ],
        );
        let stdout = run.stdout();
        let ndjson = bodies(&run, "/ingest");
        let lines: Vec<&str> = stdout
            .iter()
            .map(String::as_str)
            .chain(ndjson.iter().flat_map(|b| b.lines()))
            .collect();
        let mut function_lines = 0;
        for line in &lines {
            let event: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{style}: not JSON ({e}): {line}"));
            if event["type"] != "function" {
                continue;
            }
            function_lines += 1;
            for secret in [
                "AKIAIOSFODNN7EXAMPLE",
                "hunter2",
                "abcdef0123456789",
                "eyJhbGciOiJIUzI1NiJ9",
                "4111 1111",
                "jane.doe@",
                "order#77",
                "cust-acme",
                "s3cr3t-nested",
                "4012888888881881",
            ] {
                run.check(
                    !line.contains(secret),
                    &format!("{style}: {secret} is gone from {line}"),
                );
            }
        }
        run.check(
            function_lines >= 8,
            &format!("{style}: function lines were relayed"),
        );
        let text = lines.join("\n");
        for name in [
            "aws-key",
            "secret",
            "authorization",
            "jwt",
            "card",
            "email",
            "pattern",
        ] {
            run.check(
                text.contains(&format!("[REDACTED:{name}]")),
                &format!("{style}: [REDACTED:{name}]"),
            );
        }
        // The nested record's structure survives.
        let nested = stdout
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["record"]["order"]["id"].is_string())
            .unwrap_or_else(|| panic!("{style}: the injected nested record is relayed"));
        assert_eq!(nested["record"]["order"]["id"], "[REDACTED:pattern]");
        assert_eq!(
            nested["record"]["order"]["customer"]["password"],
            "[REDACTED:secret]"
        );
        assert_eq!(
            nested["record"]["order"]["payment"]["card"],
            "[REDACTED:card]"
        );
        assert_eq!(nested["record"]["order"]["items"][0]["qty"], 2);
        for name in [
            "aws_key",
            "secret",
            "authorization",
            "jwt",
            "card",
            "email",
            "pattern",
        ] {
            run.check(
                run.counter(&format!("redactions_{name}")) > 0,
                &format!("{style}: redactions_{name} counted"),
            );
        }
    }
}

#[test]
fn an_overflowing_hold_keeps_its_invocation_whole_and_counts_it() {
    // 2,000 lines of about 150 bytes: over the 256 KiB one invocation may hold.
    let run = run(
        &["--invokes", "2", "--lines", "2000"],
        &[
            "TELEMETRY_RELAY_SAMPLE_RATE=0",
            "TELEMETRY_RELAY_KEEP_COLD_STARTS=false",
        ],
    );
    let found = on_stdout(&run);
    for i in [1, 2] {
        run.check(
            found.get(&i).map_or(0, BTreeSet::len) == 2000,
            &format!("invocation {i} kept whole"),
        );
    }
    run.check(
        run.counter("records_kept_hold_overflow") >= 4000,
        "its records counted",
    );
    run.check(
        run.counter("invocations_sampled_out") == 0,
        "none sampled out",
    );
}

#[test]
fn an_outcome_that_never_comes_keeps_the_records_and_counts_them() {
    // On Lambda Managed Instances the report is the outcome; the last one is lost.
    let run = run(
        &["--invokes", "3", "--lmi", "--drop-last-report"],
        &[
            "TELEMETRY_RELAY_SAMPLE_RATE=0",
            "TELEMETRY_RELAY_KEEP_COLD_STARTS=false",
        ],
    );
    let found = on_stdout(&run);
    run.check(
        !found.contains_key(&1) && !found.contains_key(&2),
        "decided ones sampled out",
    );
    run.check(
        found.get(&3).map_or(0, BTreeSet::len) == 2,
        "the undecided one kept",
    );
    // Its start and two lines.
    run.check(
        run.counter("records_kept_outcome_missing") == 3,
        "and counted",
    );
}

/// EMF documents of the injected fixture's invocations, by request id.
fn fixture_docs(run: &Run) -> BTreeMap<String, String> {
    run.stdout()
        .into_iter()
        .filter(|l| l.contains("\"_aws\""))
        .filter_map(|l| {
            let doc: Value = serde_json::from_str(&l).ok()?;
            let id = doc["RequestId"].as_str()?.to_string();
            Some((id, l))
        })
        .collect()
}

#[test]
fn metrics_are_the_same_with_sampling_on_and_off() {
    let fixture = support::fixture("ondemand-warm-invokes.json");
    let args = [
        "--invokes",
        "20",
        "--outcomes",
        MIX,
        "--backend",
        "healthy",
        "--inject",
        &fixture,
    ];
    let common = [
        "TELEMETRY_RELAY_EMF=on",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT={backend}/v1/metrics",
        "OTEL_EXPORTER_OTLP_PROTOCOL=http/json",
    ];
    let off = run(&args, &common);
    let mut sampled = common.to_vec();
    sampled.extend([
        "TELEMETRY_RELAY_SAMPLE_RATE=0",
        "TELEMETRY_RELAY_MIN_LEVEL=error",
        "TELEMETRY_RELAY_DROP_TYPES=platform.report",
    ]);
    let on = run(&args, &sampled);
    on.check(
        on.counter("invocations_sampled_out") > 0,
        "sampling did something",
    );
    let (docs_off, docs_on) = (fixture_docs(&off), fixture_docs(&on));
    // The emulator's own invocations have new ids each run; the fixture's are fixed.
    let fixture = std::fs::read_to_string(support::fixture("ondemand-warm-invokes.json")).unwrap();
    let fixture_ids: Vec<&String> = docs_off
        .keys()
        .filter(|id| fixture.contains(id.as_str()))
        .collect();
    on.check(
        fixture_ids.len() >= 3,
        "the fixture's invocations have EMF documents",
    );
    for id in fixture_ids {
        on.check(
            docs_on.get(id) == docs_off.get(id),
            &format!("{id}: the same EMF document"),
        );
    }
    on.check(
        docs_on.len() == docs_off.len(),
        "as many invocation documents",
    );
    // OTLP metrics: the invocation count over the whole run.
    let invocations = |run: &Run| -> f64 {
        let mut total = 0.0;
        for body in bodies(run, "/v1/metrics") {
            let v: Value = serde_json::from_str(&body).unwrap();
            for rm in v["resourceMetrics"].as_array().into_iter().flatten() {
                for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                    for m in sm["metrics"].as_array().into_iter().flatten() {
                        if m["name"] == "faas.invocations" {
                            for p in m["sum"]["dataPoints"].as_array().into_iter().flatten() {
                                total += p["asInt"]
                                    .as_str()
                                    .and_then(|s| s.parse().ok())
                                    .or(p["asInt"].as_f64())
                                    .unwrap_or(0.0);
                            }
                        }
                    }
                }
            }
        }
        total
    };
    for run in [&off, &on] {
        // The fixture starts an invocation whose report never comes: waiting for it must
        // still leave the metrics output time for its export.
        run.check(
            run.output_counter("otlp-metrics", "dropped") == 0,
            "no metric event dropped",
        );
    }
    let (n_off, n_on) = (invocations(&off), invocations(&on));
    on.check(
        n_off > 20.0 && n_off == n_on,
        &format!("faas.invocations {n_off} off, {n_on} on"),
    );
    // The decisions are counted in the summary, EMF and OTLP metrics alike.
    let sampled_out = on.counter("invocations_sampled_out");
    let emf = on
        .stdout()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|doc| doc["InvocationsSampledOut"].as_f64());
    on.check(
        emf == Some(sampled_out as f64),
        &format!("EMF's InvocationsSampledOut is {emf:?}, the summary's {sampled_out}"),
    );
    let otlp = bodies(&on, "/v1/metrics").iter().rev().find_map(|body| {
        let v: Value = serde_json::from_str(body).ok()?;
        let metrics = v["resourceMetrics"][0]["scopeMetrics"][0]["metrics"].as_array()?;
        let m = metrics
            .iter()
            .find(|m| m["name"] == "telemetry_relay.filter.invocations_sampled_out")?;
        m["sum"]["dataPoints"][0]["asInt"]
            .as_str()?
            .parse::<u64>()
            .ok()
    });
    on.check(
        otlp == Some(sampled_out),
        &format!("OTLP's telemetry_relay.filter.invocations_sampled_out is {otlp:?}"),
    );
}
