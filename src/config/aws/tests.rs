use std::collections::HashMap;

use super::*;

/// Lambda's variables, then `pairs` (an empty value unsets one).
fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let lambda = [
        (ACCESS_KEY_ID, "AKIDEXAMPLE"),
        (SECRET_ACCESS_KEY, "secret"),
        (SESSION_TOKEN, "token"),
        (REGION, "eu-west-1"),
    ];
    crate::testing::env(&[&lambda[..], pairs].concat())
}

#[test]
fn firehose_goes_to_the_regional_endpoint_unless_overridden() {
    let f = firehose(&env(&[(FIREHOSE_STREAM, "logs-to-s3")]))
        .unwrap()
        .unwrap();
    assert_eq!(f.url, "https://firehose.eu-west-1.amazonaws.com/");
    assert_eq!(f.sign.service, "firehose");
    assert_eq!(f.sign.region, "eu-west-1");
    assert_eq!(
        f.api,
        Api::Firehose {
            stream: "logs-to-s3".to_string(),
            gzip_records: false
        }
    );
    let general = env(&[
        (FIREHOSE_STREAM, "s"),
        (ENDPOINT_URL, "http://127.0.0.1:5000/"),
    ]);
    assert_eq!(
        firehose(&general).unwrap().unwrap().url,
        "http://127.0.0.1:5000/"
    );
    let own = env(&[
        (FIREHOSE_STREAM, "s"),
        (ENDPOINT_URL, "http://127.0.0.1:5000"),
        (ENDPOINT_URL_FIREHOSE, "http://127.0.0.1:6000"),
    ]);
    assert_eq!(
        firehose(&own).unwrap().unwrap().url,
        "http://127.0.0.1:6000/"
    );
    assert_eq!(firehose(&env(&[])).unwrap(), None);
}

#[test]
fn an_aws_destination_without_credentials_or_region_names_what_is_missing() {
    for var in [ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION] {
        let e = firehose(&env(&[(FIREHOSE_STREAM, "s"), (var, "")])).unwrap_err();
        assert_eq!(
            e,
            ConfigError::Missing {
                var,
                needed_by: FIREHOSE_STREAM
            }
        );
        assert!(e.to_string().contains(var), "{e}");
    }
    // AWS_DEFAULT_REGION stands in for AWS_REGION; no session token is needed.
    let fallback = env(&[
        (FIREHOSE_STREAM, "s"),
        (REGION, ""),
        (DEFAULT_REGION, "us-west-2"),
        (SESSION_TOKEN, ""),
    ]);
    let f = firehose(&fallback).unwrap().unwrap();
    assert_eq!(f.sign.region, "us-west-2");
    assert_eq!(f.sign.credentials.session_token, None);
    let e = firehose(&env(&[(FIREHOSE_STREAM, "arn:aws:firehose:x")])).unwrap_err();
    assert!(e.to_string().contains("not its ARN"), "{e}");
}

const TRACES_VAR: &str = "TELEMETRY_RELAY_OTLP_TRACES_SIGV4_SERVICE";
const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";

fn traces(env: &HashMap<String, String>, url: &str) -> Result<Option<OtlpAws>, ConfigError> {
    otlp(env, TRACES_VAR, ENDPOINT_VAR, "traces", url)
}

#[test]
fn otlp_to_an_aws_host_is_signed_for_the_service_and_region_it_names() {
    let url = "https://xray.us-east-1.amazonaws.com/v1/traces";
    let signed = traces(&env(&[]), url).unwrap().unwrap();
    assert_eq!(
        (signed.sign.service.as_str(), signed.sign.region.as_str()),
        ("xray", "us-east-1")
    );
    assert_eq!(signed.url, url);
    assert_eq!(signed.log_stream, None);
    // Other hosts are not signed unless asked; `none` turns the automatic signing off.
    assert_eq!(
        traces(&env(&[]), "https://collector:4318/v1/traces").unwrap(),
        None
    );
    assert_eq!(
        traces(&env(&[(OTLP_SIGV4_SERVICE, "none")]), url).unwrap(),
        None
    );
    let asked = env(&[(OTLP_SIGV4_SERVICE, "aps"), (TRACES_VAR, "xray")]);
    let signed = traces(&asked, "http://127.0.0.1:4318/v1/traces")
        .unwrap()
        .unwrap();
    assert_eq!(
        (signed.sign.service.as_str(), signed.sign.region.as_str()),
        ("xray", "eu-west-1")
    );
    // The override replaces scheme and host, keeps the path; the service-specific one wins.
    let local = env(&[
        (ENDPOINT_URL, "http://127.0.0.1:1"),
        (ENDPOINT_URL_XRAY, "http://127.0.0.1:2/"),
    ]);
    let signed = traces(&local, url).unwrap().unwrap();
    assert_eq!(signed.url, "http://127.0.0.1:2/v1/traces");
    assert_eq!(signed.sign.region, "us-east-1");
    let e = traces(&env(&[(ACCESS_KEY_ID, "")]), url).unwrap_err();
    assert_eq!(
        e,
        ConfigError::Missing {
            var: ACCESS_KEY_ID,
            needed_by: ENDPOINT_VAR
        }
    );
    let e = traces(&env(&[(TRACES_VAR, "x ray")]), url).unwrap_err();
    assert!(e.to_string().starts_with(TRACES_VAR), "{e}");
}

#[test]
fn otlp_logs_to_cloudwatch_name_their_group_and_stream() {
    let url = "https://logs.eu-west-1.amazonaws.com/v1/logs";
    let logs = |env: &HashMap<String, String>| {
        otlp(env, "L", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "logs", url)
    };
    let e = logs(&env(&[])).unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Missing {
                var: CLOUDWATCH_LOG_GROUP,
                ..
            }
        ),
        "{e}"
    );
    let set = env(&[
        (CLOUDWATCH_LOG_GROUP, "/relay/app"),
        (LOG_STREAM_NAME, "2026/12/01/[$LATEST]abc"),
    ]);
    let stream = logs(&set).unwrap().unwrap().log_stream.unwrap();
    assert_eq!(stream.group, "/relay/app");
    assert_eq!(stream.stream.as_deref(), Some("2026/12/01/[$LATEST]abc"));
    let own = env(&[(CLOUDWATCH_LOG_GROUP, "g"), (CLOUDWATCH_LOG_STREAM, "mine")]);
    let stream = logs(&own).unwrap().unwrap().log_stream.unwrap();
    assert_eq!(stream.stream.as_deref(), Some("mine"));
    let unnamed = env(&[
        (CLOUDWATCH_LOG_GROUP, "g"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "7"),
    ]);
    let stream = logs(&unnamed).unwrap().unwrap().log_stream.unwrap();
    assert_eq!((stream.stream, stream.version.as_str()), (None, "7"));
    let bad = env(&[(CLOUDWATCH_LOG_GROUP, "g"), (CLOUDWATCH_LOG_STREAM, "a:b")]);
    assert!(logs(&bad).is_err());
}
