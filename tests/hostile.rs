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
