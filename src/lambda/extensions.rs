//! The Extensions API (`2020-01-01`, SPEC.md §2): register, `event/next`, init and exit errors.
//!
//! Bodies are read leniently (rule zero): an INVOKE without a request id still counts as an
//! invoke, a SHUTDOWN reason is free text compared case-insensitively, and a deadline of 0, in
//! the past or missing is replaced by now + 1.5 s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::{Answer, LambdaError, RuntimeApi};

const BASE: &str = "/2020-01-01/extension";

/// What register told us; the identifier goes on every later call.
#[derive(Debug)]
pub struct Registration {
    pub identifier: String,
}

/// Why the environment is shutting down (SPEC.md §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    Spindown,
    Timeout,
    Failure,
}

impl ShutdownReason {
    /// Maps any spelling seen in the wild; unknown reasons are a normal spindown.
    pub fn parse(reason: &str) -> ShutdownReason {
        let reason = reason.to_ascii_lowercase();
        if reason == "timeout" {
            ShutdownReason::Timeout
        } else if reason == "failure" {
            ShutdownReason::Failure
        } else {
            ShutdownReason::Spindown
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "spindown",
            ShutdownReason::Timeout => "timeout",
            ShutdownReason::Failure => "failure",
        }
    }
}

/// One answer of `GET /event/next`.
#[derive(Debug, PartialEq)]
pub enum NextEvent {
    /// `deadline` is the function timeout (now + 1.5 s if Lambda sent none); `xray` the
    /// `X-Amzn-Trace-Id` value when the invocation is traced.
    Invoke {
        request_id: String,
        deadline: SystemTime,
        xray: Option<String>,
    },
    /// `deadline` is the wall-clock time Lambda SIGKILLs us.
    Shutdown {
        reason: ShutdownReason,
        deadline: SystemTime,
    },
    /// An event type we do not know; we ask for the next one.
    Other(String),
}

#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "eventType", default)]
    event_type: Option<String>,
    #[serde(rename = "requestId", default)]
    request_id: Option<serde_json::Value>,
    #[serde(rename = "deadlineMs", default)]
    deadline_ms: Option<serde_json::Value>,
    #[serde(rename = "shutdownReason", default)]
    shutdown_reason: Option<serde_json::Value>,
    #[serde(default)]
    tracing: Option<serde_json::Value>,
}

fn string_of(value: Option<serde_json::Value>) -> Option<String> {
    match value {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

/// `POST /register` for `events` under our file name.
pub fn register(
    api: &RuntimeApi,
    name: &str,
    events: &[&str],
) -> Result<Registration, LambdaError> {
    const CALL: &str = "register";
    let body = serde_json::json!({ "events": events }).to_string();
    let response = api
        .agent
        .post(api.url(&format!("{BASE}/register")))
        .header("Lambda-Extension-Name", name)
        .header("Lambda-Extension-Accept-Feature", "accountId")
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| LambdaError::transport(CALL, e))?;
    let answer = Answer::read(CALL, response)?;
    if !answer.is_success() {
        return Err(answer.into_error(CALL));
    }
    let Some(identifier) = answer.identifier.clone().filter(|id| !id.is_empty()) else {
        // Never go on without an identifier (SPEC.md §8: a peer that did spun on 403s).
        return Err(LambdaError::Status {
            call: CALL,
            status: answer.status,
            body: "no Lambda-Extension-Identifier header in the answer".to_string(),
        });
    };
    Ok(Registration { identifier })
}

/// `GET /event/next`: blocks until Lambda has an event for us, however long that takes.
pub fn next(api: &RuntimeApi, identifier: &str) -> Result<NextEvent, LambdaError> {
    const CALL: &str = "event/next";
    let response = api
        .agent
        .get(api.url(&format!("{BASE}/event/next")))
        .header("Lambda-Extension-Identifier", identifier)
        .call()
        .map_err(|e| LambdaError::transport(CALL, e))?;
    let answer = Answer::read(CALL, response)?;
    if !answer.is_success() {
        return Err(answer.into_error(CALL));
    }
    // RIE answers SHUTDOWN as text/plain: parse whatever the content type says.
    match parse_next(&answer.body, SystemTime::now()) {
        Some(event) => Ok(event),
        None => Err(answer.into_error(CALL)),
    }
}

/// Reads one `/event/next` body; `None` if it is not a JSON object at all.
pub fn parse_next(body: &str, now: SystemTime) -> Option<NextEvent> {
    let wire: WireEvent = serde_json::from_str(body).ok()?;
    let kind = wire.event_type.unwrap_or_default();
    if kind.eq_ignore_ascii_case("INVOKE") {
        let xray = wire
            .tracing
            .and_then(|t| string_of(t.get("value").cloned()))
            .filter(|v| !v.is_empty());
        return Some(NextEvent::Invoke {
            request_id: string_of(wire.request_id).unwrap_or_default(),
            deadline: deadline_of(wire.deadline_ms.as_ref(), now),
            xray,
        });
    }
    if kind.eq_ignore_ascii_case("SHUTDOWN") {
        let reason = string_of(wire.shutdown_reason).unwrap_or_default();
        return Some(NextEvent::Shutdown {
            reason: ShutdownReason::parse(&reason),
            deadline: deadline_of(wire.deadline_ms.as_ref(), now),
        });
    }
    Some(NextEvent::Other(kind))
}

fn deadline_of(deadline_ms: Option<&serde_json::Value>, now: SystemTime) -> SystemTime {
    let fallback = now + Duration::from_millis(1500);
    let Some(ms) = deadline_ms.and_then(serde_json::Value::as_f64) else {
        return fallback;
    };
    if !ms.is_finite() || ms <= 0.0 {
        return fallback;
    }
    let deadline = UNIX_EPOCH + Duration::from_millis(ms as u64);
    if deadline <= now { fallback } else { deadline }
}

/// How long an init or exit error report may take: we exit right after it, and a Runtime API
/// that does not answer must not keep us past the phase's deadline.
const REPORT_TIMEOUT: Duration = Duration::from_secs(1);

/// `POST /init/error` or `/exit/error`. Its answer does not matter (emulators 404 it): we exit next.
fn report_error(api: &RuntimeApi, identifier: &str, path: &str, error_type: &str, message: &str) {
    let body = serde_json::json!({
        "errorType": error_type,
        "errorMessage": message,
        "stackTrace": [],
    })
    .to_string();
    let _ = api
        .agent
        .post(api.url(&format!("{BASE}/{path}")))
        .config()
        .timeout_global(Some(REPORT_TIMEOUT))
        .build()
        .header("Lambda-Extension-Identifier", identifier)
        .header("Lambda-Extension-Function-Error-Type", error_type)
        .header("Content-Type", "application/json")
        .send(body);
}

/// Fails Init with `error_type` (`Extension.<Reason>`) and a message the user can act on.
pub fn init_error(api: &RuntimeApi, identifier: &str, error_type: &str, message: &str) {
    report_error(api, identifier, "init/error", error_type, message);
}

/// Reports a fatal error after Init.
pub fn exit_error(api: &RuntimeApi, identifier: &str, error_type: &str, message: &str) {
    report_error(api, identifier, "exit/error", error_type, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn invoke_fixture_parses() {
        let body = include_str!("../../tests/fixtures/invoke.event.json");
        assert_eq!(
            parse_next(body, at(0)),
            Some(NextEvent::Invoke {
                request_id: "e5935a8e-2461-4d6a-9c9b-f0437d2e85f8".to_string(),
                deadline: at(1_773_480_073_124),
                xray: Some(
                    "Root=1-69b52883-1e685f6e5413b0143f9b2a07;Parent=a14af2721e102a9f;Sampled=1"
                        .to_string()
                ),
            })
        );
    }

    #[test]
    fn shutdown_fixtures_parse_with_their_deadlines() {
        let now = at(1_773_480_000_000);
        let cases = [
            (
                include_str!("../../tests/fixtures/shutdown-spindown.event.json"),
                ShutdownReason::Spindown,
                1_773_481_684_000,
            ),
            (
                include_str!("../../tests/fixtures/shutdown-timeout.event.json"),
                ShutdownReason::Timeout,
                1_773_480_298_011,
            ),
        ];
        for (body, reason, deadline) in cases {
            assert_eq!(
                parse_next(body, now),
                Some(NextEvent::Shutdown {
                    reason,
                    deadline: at(deadline)
                })
            );
        }
    }

    #[test]
    fn shutdown_reasons_from_every_emulator_are_mapped() {
        let cases = [
            ("SPINDOWN", ShutdownReason::Spindown),
            ("Timeout", ShutdownReason::Timeout),
            ("FAILURE", ShutdownReason::Failure),
            ("SandboxTerminated", ShutdownReason::Spindown),
            ("recompiling function", ShutdownReason::Spindown),
            ("", ShutdownReason::Spindown),
        ];
        for (text, reason) in cases {
            assert_eq!(ShutdownReason::parse(text), reason, "{text}");
        }
    }

    #[test]
    fn missing_zero_or_past_deadline_means_one_and_a_half_seconds() {
        let now = at(10_000);
        for body in [
            r#"{"eventType":"SHUTDOWN","deadlineMs":0,"shutdownReason":"recompiling function"}"#,
            r#"{"eventType":"SHUTDOWN"}"#,
            r#"{"eventType":"SHUTDOWN","deadlineMs":5000}"#,
            r#"{"eventType":"SHUTDOWN","deadlineMs":"soon"}"#,
        ] {
            let Some(NextEvent::Shutdown { deadline, .. }) = parse_next(body, now) else {
                panic!("{body} is a shutdown");
            };
            assert_eq!(deadline, at(11_500), "{body}");
        }
    }

    #[test]
    fn odd_bodies_do_not_fail() {
        assert_eq!(
            parse_next(r#"{"eventType":"invoke","requestId":7}"#, at(0)),
            Some(NextEvent::Invoke {
                request_id: String::new(),
                deadline: at(1500),
                xray: None,
            })
        );
        assert_eq!(
            parse_next(r#"{"eventType":"RESTORE"}"#, at(0)),
            Some(NextEvent::Other("RESTORE".to_string()))
        );
        assert_eq!(parse_next("not json", at(0)), None);
    }
}
