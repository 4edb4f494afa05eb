//! Both encodings of the same events carry the same content, as the official
//! opentelemetry-proto messages see it (`tests/validate/otlp.py --same`): every telemetry
//! fixture through every signal's encoder, once as JSON and once as protobuf.

use std::process::Command;

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
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/py/bin/python");
    if !python.exists() {
        let why = format!("{} missing; `make test` installs it", python.display());
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "cannot compare the encodings under CI=true: {why}"
        );
        eprintln!("SKIPPED (otlp.py --same): {why}; under CI=true this fails");
        return;
    }
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
    let file = std::env::temp_dir().join(format!("telemetry-relay-same-{}", std::process::id()));
    std::fs::write(&file, serde_json::to_string(&pairs).unwrap()).unwrap();
    let output = Command::new(python)
        .arg(root.join("tests/validate/otlp.py"))
        .arg("--same")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(pairs.len() >= 15, "{} pairs", pairs.len());
}
