//! Telemetry API subscription (`PUT /2022-07-01/telemetry`, SPEC.md §4).
//!
//! Only a 2xx whose body is `"OK"` or empty means events will come. Everything else, including
//! the 202 `Telemetry.NotSupported` of RIE and `sam local`, leaves the extension serving
//! INVOKE/SHUTDOWN without telemetry: it must never exit or hang because telemetry is
//! unavailable (trap 14). We send schema `2025-01-29` (required on LMI) and fall back to
//! `2022-12-13` once, on a 400 that names the schema, for older Lambda-compatible hosts.

use serde_json::json;

use super::{Answer, LambdaError, RuntimeApi};
use crate::config::{Buffering, TelemetryType};

const PATH: &str = "/2022-07-01/telemetry";
const SCHEMAS: [&str; 2] = ["2025-01-29", "2022-12-13"];

/// How the subscription went.
#[derive(Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Events will be POSTed to our listener, in this schema version.
    Active { schema: &'static str },
    /// The host has no Telemetry API (202 NotSupported, 404, …); `reason` is worth one warning.
    Unavailable { reason: String },
}

/// The subscribe request body.
pub fn request_body(
    schema: &str,
    types: &[TelemetryType],
    buffering: Buffering,
    port: u16,
) -> String {
    let types: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    json!({
        "schemaVersion": schema,
        "types": types,
        "buffering": {
            "maxItems": buffering.max_items,
            "maxBytes": buffering.max_bytes,
            "timeoutMs": buffering.timeout_ms,
        },
        "destination": {
            "protocol": "HTTP",
            "URI": format!("http://sandbox.localdomain:{port}/"),
        },
    })
    .to_string()
}

/// Subscribes our listener on `port`. Only a transport failure is an `Err`.
pub fn subscribe(
    api: &RuntimeApi,
    identifier: &str,
    name: &str,
    types: &[TelemetryType],
    buffering: Buffering,
    port: u16,
) -> Result<Subscription, LambdaError> {
    const CALL: &str = "telemetry subscribe";
    let mut last = None;
    for schema in SCHEMAS {
        let response = api
            .agent
            .put(api.url(PATH))
            .header("Lambda-Extension-Identifier", identifier)
            .header("Lambda-Extension-Name", name)
            .header("Content-Type", "application/json")
            .send(request_body(schema, types, buffering, port))
            .map_err(|e| LambdaError::transport(CALL, e))?;
        let answer = Answer::read(CALL, response)?;
        match classify(&answer) {
            Verdict::Subscribed => return Ok(Subscription::Active { schema }),
            Verdict::SchemaRejected => last = Some(answer),
            Verdict::Unavailable => {
                return Ok(Subscription::Unavailable {
                    reason: answer.into_error(CALL).to_string(),
                });
            }
        }
    }
    let reason = last.map_or_else(String::new, |a| a.into_error(CALL).to_string());
    Ok(Subscription::Unavailable { reason })
}

/// What a subscribe answer means for us.
enum Verdict {
    Subscribed,
    SchemaRejected,
    Unavailable,
}

fn classify(answer: &Answer) -> Verdict {
    let body = answer.body.trim();
    if answer.is_success() && (body.is_empty() || body == "\"OK\"" || body == "OK") {
        return Verdict::Subscribed;
    }
    if answer.status == 400 && body.to_ascii_lowercase().contains("schema") {
        return Verdict::SchemaRejected;
    }
    Verdict::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            identifier: None,
            body: body.to_string(),
        }
    }

    #[test]
    fn request_matches_the_fixture() {
        let ours: serde_json::Value = serde_json::from_str(&request_body(
            "2025-01-29",
            &[
                TelemetryType::Platform,
                TelemetryType::Function,
                TelemetryType::Extension,
            ],
            Buffering {
                timeout_ms: 25,
                max_bytes: 262_144,
                max_items: 1000,
            },
            41873,
        ))
        .unwrap();
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/subscribe-request.json"))
                .unwrap();
        assert_eq!(ours, fixture);
    }

    #[test]
    fn only_ok_or_empty_2xx_means_subscribed() {
        assert!(matches!(
            classify(&answer(200, "\"OK\"")),
            Verdict::Subscribed
        ));
        assert!(matches!(classify(&answer(200, "")), Verdict::Subscribed));
        let not_supported = r#"{"errorMessage":"Telemetry API is not supported","errorType":"Telemetry.NotSupported"}"#;
        assert!(matches!(
            classify(&answer(202, not_supported)),
            Verdict::Unavailable
        ));
        assert!(matches!(classify(&answer(404, "")), Verdict::Unavailable));
        assert!(matches!(classify(&answer(403, "{}")), Verdict::Unavailable));
        assert!(matches!(classify(&answer(500, "")), Verdict::Unavailable));
    }

    #[test]
    fn a_400_naming_the_schema_falls_back() {
        let body = r#"{"errorType":"ValidationError","errorMessage":"unsupported schemaVersion 2025-01-29"}"#;
        assert!(matches!(
            classify(&answer(400, body)),
            Verdict::SchemaRejected
        ));
        let body =
            r#"{"errorType":"ValidationError","errorMessage":"buffering.timeoutMs out of range"}"#;
        assert!(matches!(classify(&answer(400, body)), Verdict::Unavailable));
    }
}
