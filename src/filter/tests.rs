//! The filter driven with batches, no relay: what each event's audience comes out as.

use super::decide::sampled_by_hash;
use super::*;
use crate::counters::FilterCounters;
use crate::telemetry::batch::parse;

fn filter(pairs: &[(&str, &str)]) -> Filter {
    let mut all = vec![("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")];
    all.extend_from_slice(pairs);
    Filter::new(&Config::parse(&crate::testing::env(&all)).unwrap())
}

fn event(kind: &str, record: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"time": "2024-05-01T10:00:00.000Z", "type": kind, "record": record})
}

/// An invocation's events: start, its lines (Python's text format), runtimeDone and report.
fn invocation(id: &str, status: &str, ms: f64, lines: &[&str]) -> Vec<serde_json::Value> {
    let mut events = vec![event(
        "platform.start",
        serde_json::json!({"requestId": id}),
    )];
    for line in lines {
        let text = format!("[INFO]\t2024-05-01T10:00:00.000Z\t{id}\t{line}\n");
        events.push(event("function", serde_json::json!(text)));
    }
    let done =
        serde_json::json!({"requestId": id, "status": status, "metrics": {"durationMs": ms}});
    events.push(event("platform.runtimeDone", done.clone()));
    events.push(event("platform.report", done));
    events
}

/// What came out of the filter: (type, record text, audience), in order.
type Seen = Vec<(String, String, Audience)>;

fn admit(f: &mut Filter, events: &[serde_json::Value], seen: &mut Seen) {
    let body = serde_json::to_vec(events).unwrap();
    let parsed = parse(body);
    let kept = (0..parsed.batch.len() as u32).collect();
    let mut out = Vec::new();
    f.admit(parsed.batch, kept, &mut out);
    collect(out, seen);
}

fn collect(out: Vec<Released>, seen: &mut Seen) {
    for r in out {
        for p in r.picks {
            let e = r.batch.get(p.index()).unwrap();
            seen.push((
                e.type_name().to_string(),
                e.record.to_string(),
                p.audience(),
            ));
        }
    }
}

fn records(seen: &Seen) -> Vec<&str> {
    seen.iter()
        .filter(|(_, _, a)| a.reaches(Audience::RECORDS))
        .map(|(_, r, _)| r.as_str())
        .collect()
}

fn lines_of<'a>(seen: &'a Seen, id: &str) -> Vec<&'a (String, String, Audience)> {
    seen.iter().filter(|(_, r, _)| r.contains(id)).collect()
}

/// The first invocation is a cold start; these tests start with a warm-up one.
fn warm(f: &mut Filter, seen: &mut Seen) {
    admit(
        f,
        &invocation("cold-00000000", "success", 1.0, &["cold"]),
        seen,
    );
}

#[test]
fn the_default_passes_every_batch_as_it_is() {
    let mut f = filter(&[]);
    let mut seen = Seen::new();
    admit(
        &mut f,
        &invocation("a-000000000", "success", 1.0, &["x", "y"]),
        &mut seen,
    );
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|(_, _, a)| *a == Audience::ALL));
    assert!(!f.holding());
    assert_eq!(f.counters, FilterCounters::default());
}

#[test]
fn at_rate_zero_only_interesting_invocations_are_relayed_whole() {
    let mut f = filter(&[
        ("TELEMETRY_RELAY_SAMPLE_RATE", "0"),
        ("TELEMETRY_RELAY_KEEP_SLOWER_THAN_MS", "1000"),
    ]);
    let mut seen = Seen::new();
    warm(&mut f, &mut seen);
    for (id, status, ms) in [
        ("ok-0000000001", "success", 10.0),
        ("err-000000001", "error", 10.0),
        ("ok-0000000002", "success", 999.0),
        ("slow-00000001", "success", 1000.5),
        ("tmo-000000001", "timeout", 3000.0),
        ("crash-0000001", "failure", 5.0),
    ] {
        admit(
            &mut f,
            &invocation(id, status, ms, &["one", "two"]),
            &mut seen,
        );
    }
    assert_eq!(lines_of(&seen, "cold-00000000").len(), 4);
    for id in [
        "cold-00000000",
        "err-000000001",
        "slow-00000001",
        "tmo-000000001",
        "crash-0000001",
    ] {
        let all = lines_of(&seen, id);
        assert!(all.len() >= 4, "{id}");
        assert!(all.iter().all(|(_, _, a)| *a == Audience::ALL), "{id}");
    }
    for id in ["ok-0000000001", "ok-0000000002"] {
        let all = lines_of(&seen, id);
        assert_eq!(all.len(), 5, "{id}: still seen by metrics");
        assert!(all.iter().all(|(_, _, a)| *a == Audience::METRICS), "{id}");
    }
    assert_eq!(f.counters.invocations_sampled_out, 2);
    assert_eq!(f.counters.records_sampled_out, 10);
    assert!(!f.holding());
}

#[test]
fn an_invocation_spread_over_batches_is_all_or_nothing() {
    let mut f = filter(&[("TELEMETRY_RELAY_SAMPLE_RATE", "0")]);
    let mut seen = Seen::new();
    warm(&mut f, &mut seen);
    let events = invocation("split-0000001", "error", 1.0, &["a", "b", "c"]);
    let before = seen.len();
    admit(&mut f, &events[..2], &mut seen);
    admit(&mut f, &events[2..4], &mut seen);
    assert_eq!(seen.len(), before, "held until its outcome");
    assert!(f.holding());
    admit(&mut f, &events[4..], &mut seen);
    let kinds: Vec<&str> = seen[before..].iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "platform.start",
            "function",
            "function",
            "function",
            "platform.runtimeDone",
            "platform.report"
        ],
        "in order"
    );
    assert!(seen[before..].iter().all(|(_, _, a)| *a == Audience::ALL));
}

#[test]
fn text_lines_without_an_id_belong_to_the_invocation_started_last() {
    let mut f = filter(&[("TELEMETRY_RELAY_SAMPLE_RATE", "0")]);
    let mut seen = Seen::new();
    warm(&mut f, &mut seen);
    let mut events = invocation("plain-0000001", "success", 1.0, &[]);
    events.insert(1, event("function", serde_json::json!("print() output\n")));
    events.insert(
        2,
        event("extension", serde_json::json!("an extension's line\n")),
    );
    admit(&mut f, &events, &mut seen);
    let plain = seen.iter().find(|(_, r, _)| r.contains("print()")).unwrap();
    assert_eq!(plain.2, Audience::METRICS);
    assert!(!records(&seen).iter().any(|r| r.contains("extension's")));
    // Init's lines belong to none: never sampled.
    let mut g = filter(&[("TELEMETRY_RELAY_SAMPLE_RATE", "0")]);
    let mut seen = Seen::new();
    admit(
        &mut g,
        &[event("function", serde_json::json!("init line\n"))],
        &mut seen,
    );
    assert_eq!(records(&seen), ["\"init line\\n\""]);
}

#[test]
fn the_level_floor_applies_to_sampled_invocations_only() {
    let mut f = filter(&[("TELEMETRY_RELAY_MIN_LEVEL", "warn")]);
    let mut seen = Seen::new();
    warm(&mut f, &mut seen);
    let lines = |id: &str| {
        let mut events = invocation(id, "success", 1.0, &[]);
        let more = [
            format!("[DEBUG]\t2024-05-01T10:00:00.000Z\t{id}\tdebug line\n"),
            format!("2024-05-01T10:00:00.000Z\t{id}\tINFO\tnode info\n"),
            format!("2024-05-01T10:00:00.000Z\t{id}\twarn\tdotnet warn\n"),
            format!("[ERROR]\t2024-05-01T10:00:00.000Z\t{id}\tpython error\n"),
            "no level here\n".to_string(),
        ];
        for (i, line) in more.iter().enumerate() {
            events.insert(1 + i, event("function", serde_json::json!(line)));
        }
        events.insert(
            1,
            event(
                "function",
                serde_json::json!({"level": "DEBUG", "message": "json debug", "requestId": id}),
            ),
        );
        events.insert(
            1,
            event(
                "function",
                serde_json::json!({"level": "ERROR", "message": "json error", "requestId": id}),
            ),
        );
        events
    };
    admit(&mut f, &lines("good-00000001"), &mut seen);
    let kept: Vec<&str> = records(&seen)
        .into_iter()
        .filter(|r| !r.starts_with('{') || r.contains("message"))
        .collect();
    let texts = kept.join("|");
    for wanted in ["dotnet warn", "python error", "no level here", "json error"] {
        assert!(texts.contains(wanted), "{wanted}: {texts}");
    }
    for dropped in ["debug line", "node info", "json debug"] {
        assert!(!texts.contains(dropped), "{dropped}: {texts}");
    }
    assert_eq!(f.counters.dropped_by_level, 3);
    // A failed invocation keeps every level.
    let mut failed = lines("bad-000000001");
    for e in &mut failed {
        if e["type"] == "platform.runtimeDone" {
            e["record"]["status"] = "error".into();
        }
    }
    seen.clear();
    admit(&mut f, &failed, &mut seen);
    assert_eq!(records(&seen).len(), seen.len());
    assert_eq!(f.counters.dropped_by_level, 3);
}

#[test]
fn a_hold_that_overflows_is_kept_whole_and_counted() {
    let mut f = filter(&[("TELEMETRY_RELAY_SAMPLE_RATE", "0")]);
    let mut seen = Seen::new();
    warm(&mut f, &mut seen);
    let big = "x".repeat(64 * 1024);
    let events = invocation(
        "big-000000001",
        "success",
        1.0,
        &[&big, &big, &big, &big, &big],
    );
    admit(&mut f, &events[..6], &mut seen);
    let held_out = lines_of(&seen, "big-000000001");
    assert_eq!(held_out.len(), 6, "released once over the bound");
    assert!(held_out.iter().all(|(_, _, a)| *a == Audience::ALL));
    // Its success comes later: still kept, as the rest of it already is.
    admit(&mut f, &events[6..], &mut seen);
    let all = lines_of(&seen, "big-000000001");
    assert_eq!(all.len(), 8);
    assert!(all.iter().all(|(_, _, a)| *a == Audience::ALL));
    assert_eq!(f.counters.kept_hold_overflow, 8);
    assert_eq!(f.counters.invocations_sampled_out, 0);
}

#[test]
fn an_outcome_that_never_comes_keeps_the_records() {
    let mut f = filter(&[("TELEMETRY_RELAY_SAMPLE_RATE", "0")]);
    let mut seen = Seen::new();
    warm(&mut f, &mut seen);
    // Its runtimeDone and report were lost: the next start says it is over.
    let lost = invocation("lost-00000001", "success", 1.0, &["a"]);
    admit(&mut f, &lost[..2], &mut seen);
    admit(
        &mut f,
        &invocation("next-00000001", "success", 1.0, &["b"]),
        &mut seen,
    );
    let kept = lines_of(&seen, "lost-00000001");
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|(_, _, a)| *a == Audience::ALL));
    // Lost within one batch: the next start in the same batch says it is over.
    let mut events = invocation("gone-00000001", "success", 1.0, &["g"]);
    events.truncate(2);
    events.extend(invocation("after-0000001", "success", 1.0, &["h"]));
    admit(&mut f, &events, &mut seen);
    assert_eq!(
        lines_of(&seen, "gone-00000001").len(),
        2,
        "relayed at once, not at the end"
    );
    assert!(
        seen.iter()
            .filter(|(_, r, _)| r.contains("gone-00000001"))
            .all(|(_, _, a)| *a == Audience::ALL)
    );
    // The last one's outcome never comes before SHUTDOWN.
    let last = invocation("last-00000001", "success", 1.0, &["c"]);
    admit(&mut f, &last[..2], &mut seen);
    let mut out = Vec::new();
    f.release_all(&mut out);
    collect(out, &mut seen);
    assert_eq!(lines_of(&seen, "last-00000001").len(), 2);
    assert_eq!(f.counters.kept_outcome_missing, 6);
    assert!(!f.holding());
}

#[test]
fn too_many_open_invocations_release_the_oldest() {
    let mut f = filter(&[
        ("TELEMETRY_RELAY_SAMPLE_RATE", "0"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"),
    ]);
    let mut seen = Seen::new();
    for i in 0..invocations::KNOWN + 1 {
        let id = format!("open-{i:08}");
        admit(
            &mut f,
            &invocation(&id, "success", 1.0, &["x"])[..2],
            &mut seen,
        );
    }
    assert_eq!(seen.len(), 2, "the oldest hold went out, kept");
    assert!(seen[0].1.contains("open-00000000"));
    assert_eq!(f.counters.kept_outcome_missing, 2);
}

#[test]
fn xray_mode_follows_the_sampled_flag() {
    let mut f = filter(&[("TELEMETRY_RELAY_SAMPLE_RATE", "xray")]);
    let mut seen = Seen::new();
    warm(&mut f, &mut seen);
    f.invoked(
        "yes-000000001",
        Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
        &mut Vec::new(),
    );
    f.invoked(
        "no-0000000001",
        Some("Root=1-5759e988-bd862e3fe1be46a994272794;Sampled=0;Lineage=a:1"),
        &mut Vec::new(),
    );
    for id in ["yes-000000001", "no-0000000001", "none-00000001"] {
        admit(
            &mut f,
            &invocation(id, "success", 1.0, &["line"]),
            &mut seen,
        );
    }
    let kept = records(&seen).join("|");
    assert!(kept.contains("yes-000000001"));
    assert!(!kept.contains("no-0000000001"));
    assert!(kept.contains("none-00000001"), "no header to follow: kept");
    // The flag can also come in the start event's own tracing.
    let mut events = invocation("own-000000001", "success", 1.0, &["line"]);
    events[0]["record"]["tracing"] =
        serde_json::json!({"type": "X-Amzn-Trace-Id", "value": "Root=1-1-1;Sampled=0"});
    admit(&mut f, &events, &mut seen);
    assert!(!records(&seen).join("|").contains("own-000000001"));
}

#[test]
fn cold_starts_are_kept_unless_told_otherwise() {
    for (setting, kept) in [(None, true), (Some("false"), false)] {
        let mut pairs = vec![("TELEMETRY_RELAY_SAMPLE_RATE", "0")];
        pairs.extend(setting.map(|s| ("TELEMETRY_RELAY_KEEP_COLD_STARTS", s)));
        let mut f = filter(&pairs);
        let mut seen = Seen::new();
        warm(&mut f, &mut seen);
        assert_eq!(records(&seen).len() == 4, kept, "{setting:?}");
    }
}

#[test]
fn under_provisioned_concurrency_no_invocation_is_a_cold_start() {
    let mut f = filter(&[
        ("TELEMETRY_RELAY_SAMPLE_RATE", "0"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency"),
    ]);
    let mut seen = Seen::new();
    warm(&mut f, &mut seen);
    assert!(records(&seen).is_empty());
}

#[test]
fn dropped_types_still_feed_spans_and_metrics() {
    let mut f = filter(&[(
        "TELEMETRY_RELAY_DROP_TYPES",
        "platform.start,platform.runtimeDone",
    )]);
    let mut seen = Seen::new();
    admit(
        &mut f,
        &invocation("a-000000000", "success", 1.0, &["x"]),
        &mut seen,
    );
    let audiences: Vec<(&str, Audience)> = seen.iter().map(|(t, _, a)| (t.as_str(), *a)).collect();
    let dropped = Audience::SPANS;
    assert!(audiences[0].1.reaches(dropped) && !audiences[0].1.reaches(Audience::RECORDS));
    assert_eq!(audiences[1].1, Audience::ALL);
    assert!(
        !audiences[2].1.reaches(Audience::RECORDS) && audiences[2].1.reaches(Audience::METRICS)
    );
    assert_eq!(audiences[3].1, Audience::ALL);
    assert_eq!(f.counters.dropped_by_type, 2);
}

#[test]
fn on_managed_instances_lines_follow_the_id_they_name() {
    let mut f = filter(&[
        ("TELEMETRY_RELAY_SAMPLE_RATE", "0"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "lambda-managed-instances"),
    ]);
    let mut seen = Seen::new();
    let start = |id: &str| event("platform.start", serde_json::json!({"requestId": id}));
    let report = |id: &str, status: &str| {
        event(
            "platform.report",
            serde_json::json!({"requestId": id, "status": status, "metrics": {"durationMs": 1.0}}),
        )
    };
    let line = |id: &str| {
        event(
            "function",
            serde_json::json!({"level": "INFO", "message": format!("from {id}"), "requestId": id}),
        )
    };
    admit(
        &mut f,
        &[
            start("first-0000001"),
            line("first-0000001"),
            report("first-0000001", "success"),
        ],
        &mut seen,
    );
    seen.clear();
    admit(
        &mut f,
        &[
            start("one-000000001"),
            start("two-000000001"),
            line("two-000000001"),
            event("function", serde_json::json!("no id\n")),
            line("one-000000001"),
        ],
        &mut seen,
    );
    assert_eq!(
        records(&seen),
        ["\"no id\\n\""],
        "a line naming no id is not held"
    );
    admit(
        &mut f,
        &[
            report("one-000000001", "error"),
            report("two-000000001", "success"),
        ],
        &mut seen,
    );
    let kept = records(&seen).join("|");
    assert!(kept.contains("from one-000000001"));
    assert!(!kept.contains("from two-000000001"));
}

#[test]
fn the_rate_keeps_its_fraction_of_request_ids() {
    let n = 20_000;
    let kept = (0..n)
        .filter(|i| sampled_by_hash(&format!("{:08x}-8c2d-4a47-9a1f-{:012x}", i * 7919, i), 0.1))
        .count();
    let fraction = kept as f64 / n as f64;
    assert!((0.09..=0.11).contains(&fraction), "{fraction}");
    assert!(!sampled_by_hash("any", 0.0));
    assert!(sampled_by_hash("any", 1.0));
}

#[test]
fn redaction_rewrites_records_and_keeps_indices() {
    let mut f = filter(&[("TELEMETRY_RELAY_REDACT", "email,aws-key")]);
    let mut seen = Seen::new();
    admit(
        &mut f,
        &[
            event(
                "platform.start",
                serde_json::json!({"requestId": "a@example.com"}),
            ),
            event("function", serde_json::json!("mail jane@example.com\n")),
            event(
                "function",
                serde_json::json!({"user": {"mail": "joe@example.org"}, "key": "AKIAIOSFODNN7EXAMPLE"}),
            ),
        ],
        &mut seen,
    );
    assert_eq!(
        seen[0].1, r#"{"requestId":"a@example.com"}"#,
        "platform records are not redacted"
    );
    assert_eq!(seen[1].1, r#""mail [REDACTED:email]\n""#);
    let json: serde_json::Value = serde_json::from_str(&seen[2].1).unwrap();
    assert_eq!(json["user"]["mail"], "[REDACTED:email]");
    assert_eq!(json["key"], "[REDACTED:aws-key]");
    let counts = f.counters().redactions;
    assert_eq!((counts[0], counts[5]), (1, 2));
}

/// The filter's own cost per invocation (`cargo test --release filter_cost -- --ignored`).
#[test]
#[ignore]
fn filter_cost() {
    // As Lambda writes them: `requestId` first in platform records; 125 invocations (1,000
    // events, the subscription's default maxItems) a batch.
    let bodies: Vec<Vec<u8>> = (0..160)
        .map(|round| {
            let mut events = Vec::new();
            for i in 0..125 {
                let id = format!("{i:08x}-8c2d-4a47-9a1f-{round:012x}");
                let status = if i % 20 == 0 { "error" } else { "success" };
                let t = r#""time":"2024-05-01T10:00:00.000Z""#;
                events.push(format!(r#"{{{t},"type":"platform.start","record":{{"requestId":"{id}","version":"$LATEST"}}}}"#));
                for line in 0..5 {
                    events.push(format!(r#"{{{t},"type":"function","record":"[INFO]\t2024-05-01T10:00:00.000Z\t{id}\tline {line}\n"}}"#));
                }
                let done = format!(r#"{{"requestId":"{id}","status":"{status}","metrics":{{"durationMs":1.5,"producedBytes":42}},"spans":[{{"name":"responseLatency","start":"2024-05-01T10:00:00.000Z","durationMs":1.2}}]}}"#);
                events.push(format!(r#"{{{t},"type":"platform.runtimeDone","record":{done}}}"#));
                events.push(format!(r#"{{{t},"type":"platform.report","record":{done}}}"#));
            }
            format!("[{}]", events.join(",")).into_bytes()
        })
        .collect();
    for pairs in [
        vec![],
        vec![("TELEMETRY_RELAY_SAMPLE_RATE", "0.1")],
        vec![("TELEMETRY_RELAY_REDACT", "all")],
        vec![
            ("TELEMETRY_RELAY_REDACT", "all"),
            ("TELEMETRY_RELAY_REDACT_PATTERNS", r"cust-\d{6}|order#\w+"),
        ],
    ] {
        let mut f = filter(&pairs);
        let mut total = std::time::Duration::ZERO;
        for body in &bodies {
            let parsed = parse(body.clone());
            assert_eq!(parsed.batch.len(), 1000);
            let kept = (0..parsed.batch.len() as u32).collect();
            let mut out = Vec::new();
            let t = std::time::Instant::now();
            f.admit(parsed.batch, kept, &mut out);
            total += t.elapsed();
        }
        println!(
            "{pairs:?}: {:.3} µs per invocation",
            total.as_secs_f64() * 1e6 / 20_000.0
        );
        assert_eq!(f.counters.kept_outcome_missing, 0);
    }
}
