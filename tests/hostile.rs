//! Hostile POSTs to the listener: every malformed fixture, a 10 MB body and deep nesting are
//! answered as SPEC.md §5 says (200, or 413 over the cap), counted, and relaying goes on
//! before and after them.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::{Run, fixture};

const MALFORMED: [&str; 7] = [
    "empty.txt",
    "invalid-utf8.txt",
    "ndjson-not-array.txt",
    "not-an-array.txt",
    "trailing-garbage.txt",
    "truncated.txt",
    "wrong-types.txt",
];

#[test]
fn hostile_posts_are_answered_counted_and_survived() {
    let paths: Vec<String> = MALFORMED
        .iter()
        .map(|f| fixture(&format!("malformed/{f}")))
        .collect();
    let mut args = vec![
        "--invokes",
        "3",
        "--inject-bytes",
        "10485760",
        "--inject-deep",
        "100000",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ];
    for path in &paths {
        args.push("--inject");
        args.push(path);
    }
    let run = Run::new(&args);
    let injections = run.report["injections"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    run.check(injections.len() == 9, "every hostile body was sent");
    for injection in &injections {
        let expected = if injection["name"] == "bytes-10485760" {
            "413"
        } else {
            "200"
        };
        run.check(
            injection["outcome"] == expected,
            &format!("{} answered {expected}", injection["name"]),
        );
    }
    // Six bodies with a body-level problem plus the deep one; wrong-types has four bad elements.
    run.check(
        run.counter("malformed_posts") == 7,
        "malformed POSTs counted",
    );
    run.check(
        run.counter("bad_events") == 4,
        "unreadable elements counted",
    );
    run.check(
        run.counter("oversize_posts") == 1,
        "the oversized POST counted",
    );
    let warnings = run
        .stderr()
        .iter()
        .filter(|l| l.contains("malformed telemetry POST"))
        .count();
    run.check(warnings == 1, "reported once on stderr");
    let stdout = run.stdout();
    for i in 1..=3 {
        let marker = format!("invoke {i} line 1 marker");
        run.check(
            stdout.iter().any(|l| l.contains(&marker)),
            &format!("invoke {i} relayed around the hostile POSTs"),
        );
    }
    // Well-formed siblings in damaged bodies are kept.
    run.check(
        stdout
            .iter()
            .any(|l| l.starts_with("1773480067124 platform.start")),
        "wrong-types sibling relayed",
    );
    run.check(
        stdout.iter().any(|l| l == "ok"),
        "the event before trailing garbage relayed",
    );
    run.check(
        stdout.iter().any(|l| l.starts_with("bad bytes ")),
        "the invalid-UTF-8 event relayed, repaired",
    );
    run.assert_clean_exit();
}

/// The lines the emulated function logged in invocation `i`, found on stdout.
fn relayed_invocation(run: &Run, i: u64) -> bool {
    let marker = format!("invoke {i} line 1 marker");
    run.stdout().iter().any(|l| l.contains(&marker))
}

#[test]
fn hostile_local_clients_do_not_stop_the_listener() {
    // Each of these stopped relaying (or the process) before: a Content-Length past memory
    // aborted it, one past isize panicked the listener, a stalled body or a 413 not followed
    // by its body held every later POST. The stalled connections stay open to the end.
    let run = Run::new(&[
        "--invokes",
        "3",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
        "--attack",
        "huge-length",
        "--attack",
        "overflow-length",
        "--attack",
        "stall-body",
        "--attack",
        "stall-413",
    ]);
    let results = run.report["attacks"]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    run.check(results.len() == 4, "every attack ran");
    for (result, expected) in results
        .iter()
        .zip(["HTTP/1.1 413", "HTTP/1.1 413", "held", "held"])
    {
        run.check(
            result["outcome"] == expected,
            &format!("{} saw {expected}", result["name"]),
        );
    }
    for i in 1..=3 {
        run.check(
            relayed_invocation(&run, i),
            &format!("invocation {i} relayed"),
        );
    }
    run.check(run.counter("oversize_posts") == 3, "three 413s counted");
    run.assert_clean_exit();
}

#[test]
fn the_listener_recovers_when_held_connections_exhaust_descriptors() {
    // Lambda's limit is 1024 descriptors; each held connection costs tiny_http two, so 600
    // exhaust it and tiny_http's accept thread dies. They close after invocation 2.
    let run = Run::new(&[
        "--invokes",
        "3",
        "--nofile",
        "1024",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
        "--attack",
        "hold:600",
    ]);
    run.check(
        run.stderr()
            .iter()
            .any(|l| l.contains("the telemetry listener stopped accepting")),
        "the exhaustion was seen",
    );
    for i in 1..=3 {
        run.check(
            relayed_invocation(&run, i),
            &format!("invocation {i} relayed"),
        );
    }
    run.assert_clean_exit();
}

#[test]
fn a_huge_header_is_survived_at_a_cost_tiny_http_sets() {
    // tiny_http reads headers whole with no limit (README, Behaviour): a 32 MiB header costs
    // its size twice in RSS. This shows the limit that remains; the listener goes on.
    let run = Run::new(&["--invokes", "2", "--attack", "big-header:33554432"]);
    run.check(
        run.report["attacks"]["results"][0]["outcome"] == "HTTP/1.1 200",
        "answered",
    );
    run.check(relayed_invocation(&run, 2), "invocation 2 relayed");
    let peak_kb = run.report["peak_rss_kb"].as_u64().unwrap_or(0);
    run.check(
        peak_kb > 32 * 1024,
        "the header's cost is still there (if not, tiny_http fixed it: update the README)",
    );
    run.assert_clean_exit();
}
