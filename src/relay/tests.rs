//! The relay's own bookkeeping, driven by messages with no threads or sockets.

use super::*;
use crate::config::StdoutFormat;
use crate::telemetry::batch::parse;
use std::time::SystemTime;

/// A config for the relay: stdout off, these telemetry types, no network output.
fn config(types: &str) -> Config {
    let env = crate::testing::env(&[
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1"),
        ("TELEMETRY_RELAY_TYPES", types),
        ("TELEMETRY_RELAY_STDOUT_FORMAT", "none"),
    ]);
    let config = Config::parse(&env).unwrap();
    assert_eq!(config.stdout_format, StdoutFormat::None);
    config
}

fn relay(types: &str) -> Relay {
    POSTS.set(0);
    Relay::new(&config(types), None, std::sync::mpsc::channel().0, None)
}

thread_local! {
    /// The next POST's number, for the relay made last on this thread.
    static POSTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn post(body: &str) -> Msg {
    let seq = POSTS.replace(POSTS.get() + 1);
    Msg::Post {
        seq,
        parsed: parse(body.as_bytes().to_vec()),
    }
}

#[test]
fn reports_clear_pending_invocations_by_request_id() {
    let mut relay = relay("platform,function");
    relay.handle(Msg::Invoke {
        request_id: "a".into(),
        xray: None,
    });
    relay.handle(post(
        r#"[{"time":"t","type":"platform.start","record":{"requestId":"b"}}]"#,
    ));
    assert_eq!(relay.pending.len(), 2);
    relay.handle(post(
        r#"[{"time":"t","type":"platform.report","record":{"requestId":"b"}}]"#,
    ));
    assert_eq!(relay.pending.len(), 1);
    relay.handle(post(
        r#"[{"time":"t","type":"platform.start","record":{"requestId":"a"}}]"#,
    ));
    assert_eq!(relay.pending.len(), 1);
}

#[test]
fn without_platform_events_no_report_is_awaited() {
    let mut relay = relay("function");
    relay.handle(Msg::Invoke {
        request_id: "a".into(),
        xray: None,
    });
    assert!(relay.pending.is_empty());
    assert_eq!(relay.counters.invokes, 1);
}

#[test]
fn pending_invocations_are_bounded() {
    let mut relay = relay("platform");
    for i in 0..MAX_PENDING + 10 {
        relay.handle(Msg::Invoke {
            request_id: i.to_string(),
            xray: None,
        });
    }
    assert_eq!(relay.pending.len(), MAX_PENDING);
}

#[test]
fn problems_and_platform_drops_are_counted() {
    let mut relay = relay("platform");
    relay.handle(post("{}"));
    relay.handle(post(r#"[7, {"time":"t","type":"platform.logsDropped","record":{"droppedRecords":12,"droppedBytes":3400,"reason":"x"}}]"#));
    relay.handle(Msg::Oversize { declared: Some(10) });
    let s = &relay.counters;
    assert_eq!(
        (s.posts, s.malformed_posts, s.bad_events, s.oversize_posts),
        (3, 1, 1, 1)
    );
    assert_eq!(s.events, 1);
    assert_eq!(s.platform_dropped_records, 12);
}

#[test]
fn shutdown_without_telemetry_returns_at_once() {
    let mut relay = relay("platform");
    relay.handle(Msg::Invoke {
        request_id: "never-reported".into(),
        xray: None,
    });
    let (_tx, rx) = std::sync::mpsc::channel();
    // No subscription: nothing will come, so nothing is awaited even with a far deadline.
    let ended = relay.wait_for_last_batch(&rx, SystemTime::now() + Duration::from_secs(3600));
    assert_eq!(ended, Ended::Drained);
    assert_eq!(relay.counters.reports_missing_at_shutdown, 0);
}

#[test]
fn the_relay_ends_when_every_sender_is_gone() {
    // No listener and no network output: once the lifecycle's sender is dropped, nothing can
    // speak to the relay any more, and it says so instead of waiting for ever.
    let (tx, rx) = std::sync::mpsc::channel();
    let lifecycle = tx.clone();
    let relay = Relay::new(&config("platform"), None, tx, None);
    drop(lifecycle);
    assert_eq!(relay.run(rx), Ended::Disconnected);
}

/// A background request may take three timeouts of the slowest output, whichever outputs are
/// on: before, a Firehose-only config had a budget of zero, and every request failed at once.
#[test]
#[cfg(feature = "tls")]
fn every_network_output_counts_for_the_request_budget() {
    let env = crate::testing::env(&[
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1"),
        ("TELEMETRY_RELAY_FIREHOSE_STREAM", "s"),
        ("TELEMETRY_RELAY_FIREHOSE_TIMEOUT_MS", "700"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "k"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
    ]);
    let config = Config::parse(&env).unwrap();
    assert_eq!(request_budget(&config), Duration::from_millis(2100));
}
