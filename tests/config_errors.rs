//! A configuration mistake fails Init through `/extension/init/error` with a message that names
//! the variable, the value and what is accepted, and the process exits non-zero.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::Run;

#[test]
fn config_mistakes_reach_init_error() {
    let cases = [
        (
            "TELEMETRY_RELAY_BATCH_TIMEOUT_MS=5",
            "TELEMETRY_RELAY_BATCH_TIMEOUT_MS=\"5\" is not valid: expected a whole number from 25 to 30000",
        ),
        (
            "TELEMETRY_RELAY_TYPES=platform,logs",
            "TELEMETRY_RELAY_TYPES=\"platform,logs\" is not valid: \"logs\" is unknown",
        ),
        (
            "TELEMETRY_RELAY_STDOUT_FORMAT=yaml",
            "expected text (default), json or none",
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
            "OTLP over HTTP only, not gRPC (use the collector's HTTP port, usually 4318)",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=\"grpc\" is not valid",
        ),
        (
            "OTEL_TRACES_EXPORTER=zipkin",
            "OTEL_TRACES_EXPORTER=\"zipkin\" is not valid: expected otlp (default) or none",
        ),
        (
            "OTEL_EXPORTER_OTLP_COMPRESSION=zstd",
            "OTEL_EXPORTER_OTLP_COMPRESSION=\"zstd\" is not valid: expected gzip or none (default)",
        ),
        (
            "OTEL_SDK_DISABLED=yes",
            "OTEL_SDK_DISABLED=\"yes\" is not valid: expected true",
        ),
        (
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT=5s",
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT=\"5s\" is not valid: expected a whole number",
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/xml",
            "OTEL_EXPORTER_OTLP_PROTOCOL=\"http/xml\" is not valid: expected http/protobuf (default) or http/json",
        ),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE=/var/task/missing-ca.pem",
            "OTEL_EXPORTER_OTLP_CERTIFICATE=\"/var/task/missing-ca.pem\" is not valid: no such file",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY=/var/task/missing-key.pem",
            "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY=\"/var/task/missing-key.pem\" is not valid: no such file",
        ),
        (
            "TELEMETRY_RELAY_HTTP_CLIENT_CERTIFICATE=/opt/missing.pem",
            "TELEMETRY_RELAY_HTTP_CLIENT_CERTIFICATE=\"/opt/missing.pem\" is not valid: no such file",
        ),
        (
            "OTEL_METRIC_EXPORT_INTERVAL=1m",
            "OTEL_METRIC_EXPORT_INTERVAL=\"1m\" is not valid: expected a whole number from 0 to 86400000 (default 60000)",
        ),
        (
            "TELEMETRY_RELAY_REDACT_PATTERNS=cust-(\\d+",
            "TELEMETRY_RELAY_REDACT_PATTERNS=\"cust-(\\\\d+\" is not valid: it is not a regular expression this build can compile",
        ),
        (
            "TELEMETRY_RELAY_SAMPLE_RATE=10%",
            "TELEMETRY_RELAY_SAMPLE_RATE=\"10%\" is not valid: expected a fraction from 0 to 1",
        ),
        (
            "TELEMETRY_RELAY_REDACT=emails",
            "TELEMETRY_RELAY_REDACT=\"emails\" is not valid: \"emails\" is not a detector",
        ),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=/proc/self/status",
            "a client certificate needs its private key: set OTEL_EXPORTER_OTLP_CLIENT_KEY too",
        ),
    ];
    for (env, message) in cases {
        assert_config_error(&Run::new(&["--env", env]), message);
    }
}

/// An AWS destination without what it needs to sign: Lambda sets credentials and region for
/// every process, so this is a role or an emulator without them, or a stray variable.
#[test]
fn an_aws_destination_without_credentials_or_region_names_what_is_missing() {
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "TELEMETRY_RELAY_FIREHOSE_STREAM=logs",
                "AWS_SECRET_ACCESS_KEY=",
            ],
            "TELEMETRY_RELAY_FIREHOSE_STREAM needs AWS_SECRET_ACCESS_KEY, which is not set",
        ),
        (
            &["TELEMETRY_RELAY_FIREHOSE_STREAM=logs", "AWS_ACCESS_KEY_ID="],
            "TELEMETRY_RELAY_FIREHOSE_STREAM needs AWS_ACCESS_KEY_ID, which is not set",
        ),
        (
            &[
                "TELEMETRY_RELAY_FIREHOSE_STREAM=logs",
                "AWS_REGION=",
                "AWS_DEFAULT_REGION=",
            ],
            "TELEMETRY_RELAY_FIREHOSE_STREAM needs AWS_REGION, which is not set",
        ),
        (
            &[
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://xray.us-east-1.amazonaws.com/v1/traces",
                "AWS_SECRET_ACCESS_KEY=",
            ],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT needs AWS_SECRET_ACCESS_KEY, which is not set",
        ),
        (
            &["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=https://logs.eu-west-1.amazonaws.com/v1/logs"],
            "OTLP logs sent to CloudWatch Logs needs TELEMETRY_RELAY_CLOUDWATCH_LOG_GROUP",
        ),
    ];
    for (envs, message) in cases {
        let mut args = Vec::new();
        for env in envs {
            args.extend(["--env", env]);
        }
        let run = Run::new(&args);
        assert_config_error(&run, message);
        run.check(
            !run.report
                .to_string()
                .contains("emulator/secret/access/key"),
            "the secret is never repeated",
        );
    }
}

/// The run failed Init with one `Extension.ConfigInvalid` report whose message has `message`.
fn assert_config_error(run: &Run, message: &str) {
    let errors = run.report["errors"].as_array().cloned().unwrap_or_default();
    run.check(errors.len() == 1, "one error report");
    run.check(
        errors[0]["path"] == "init/error",
        "reported as an init error",
    );
    run.check(
        errors[0]["error_type"] == "Extension.ConfigInvalid",
        "error type Extension.ConfigInvalid",
    );
    let body: serde_json::Value =
        serde_json::from_str(errors[0]["body"].as_str().unwrap_or("{}")).unwrap_or_default();
    run.check(
        body["errorType"] == "Extension.ConfigInvalid",
        "body errorType",
    );
    run.check(
        body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains(message)),
        &format!("message contains {message:?}"),
    );
    run.check(run.report["exit_code"] == 1, "exits non-zero");
    run.check(run.report["init_failed"].is_string(), "Init failed");
}

#[test]
fn outside_lambda_it_says_so_and_exits_non_zero() {
    let output = std::process::Command::new(support::RELAY)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[telemetry-relay] ERROR AWS_LAMBDA_RUNTIME_API is not set"),
        "{stderr}"
    );
}

#[test]
fn an_init_error_report_that_is_never_answered_does_not_hold_the_exit() {
    // Before, the report went through an agent with no timeout: the extension hung there.
    let run = Run::new(&[
        "--hang-errors",
        "--shutdown-ms",
        "10000",
        "--env",
        "TELEMETRY_RELAY_STDOUT_FORMAT=yaml",
    ]);
    run.check(
        run.report["errors"].as_array().map_or(0, Vec::len) == 1,
        "the report was made",
    );
    run.check(run.report["exit_code"] == 1, "then the extension exited 1");
    run.check(run.report["killed"] == false, "by itself");
}
