//! Both encodings of the same events carry the same content, as the official
//! opentelemetry-proto messages see it (`tests/validate/otlp.py --same`): every telemetry
//! fixture through every signal's encoder, once as JSON and once as protobuf.

use serde_json::json;

use super::tests_support::{encode, encoder};
use super::wire::Encoding;

const FIXTURES: [&str; 7] = [
    "edge-cases.json",
    "json-log-format.json",
    "lmi.json",
    "logs-dropped.json",
    "ondemand-cold-start.json",
    "ondemand-warm-invokes.json",
    "snapstart-restore.json",
];

#[test]
fn json_and_protobuf_carry_the_same_content() {
    let Some(python) = crate::testing::python("otlp.py --same") else {
        return;
    };
    let mut pairs = Vec::new();
    for fixture in FIXTURES {
        for signal in ["logs", "metrics", "traces"] {
            let json = encode(&mut *encoder(signal, Encoding::Json), fixture);
            let protobuf = encode(&mut *encoder(signal, Encoding::Protobuf), fixture);
            if json.is_empty() && protobuf.is_empty() {
                continue;
            }
            let hex: String = protobuf.iter().map(|b| format!("{b:02x}")).collect();
            pairs.push(json!({
                "path": format!("/v1/{signal}"),
                "json": String::from_utf8(json).unwrap(),
                "protobuf_hex": hex,
            }));
        }
    }
    crate::testing::validate(&python, "otlp.py", &["--same"], &json!(pairs));
    assert!(pairs.len() >= 15, "{} pairs", pairs.len());
}
