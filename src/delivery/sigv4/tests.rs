//! The signer against botocore (`tests/validate/sigv4.py`): the same requests signed at the
//! same instant give the same headers, byte for byte.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::*;
use crate::config::aws::Credentials;

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

struct Case {
    method: &'static str,
    url: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    token: Option<&'static str>,
    service: &'static str,
}

fn case(method: &'static str, url: &'static str) -> Case {
    Case {
        method,
        url,
        headers: vec![("Content-Type", "application/x-protobuf")],
        body: Vec::new(),
        token: None,
        service: "xray",
    }
}

fn cases() -> Vec<Case> {
    let mut all = vec![
        case("POST", "https://xray.us-east-1.amazonaws.com/v1/traces"),
        case("GET", "https://logs.us-east-1.amazonaws.com"),
        case("PUT", "http://127.0.0.1:4566/"),
        case("POST", "https://example.com:8443/a b/c"),
        case("POST", "https://example.com:443/%20x/y/"),
        case("POST", "https://example.com/a/./b/../c//d"),
        case("POST", "https://example.com/ünï/€"),
        case("POST", "https://example.com/~user/a+b=c&d;e,f:g@h"),
        case("GET", "https://example.com/q?b=2&a=1&a=0"),
        case(
            "GET",
            "https://example.com/q?x=%2Fy&empty=&flag&k%20ey=v~alue%2A",
        ),
        case("POST", "https://EXAMPLE.com/v1/logs?"),
        case("GET", "https://example.com?b=2&a=1"),
    ];
    let mut c = case("POST", "https://firehose.eu-west-1.amazonaws.com/");
    c.body = br#"{"DeliveryStreamName":"s","Records":[{"Data":"eyJhIjoxfQo="}]}"#.to_vec();
    c.token = Some("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ==");
    c.service = "firehose";
    c.headers = vec![
        ("Content-Type", "application/x-amz-json-1.1"),
        ("X-Amz-Target", "Firehose_20150804.PutRecordBatch"),
    ];
    all.push(c);
    let mut c = case("POST", "https://logs.ap-south-1.amazonaws.com/v1/logs");
    c.body = (0..=255u8).cycle().take(5000).collect();
    c.token = Some("token with  spaces ");
    c.service = "logs";
    c.headers = vec![
        ("content-type", "application/x-protobuf"),
        ("Content-Encoding", "gzip"),
        ("x-aws-log-group", "  /my/group   name "),
        ("x-aws-log-stream", "2026/12/01/[$LATEST]abc"),
        ("X-Custom", "one"),
        ("x-custom", "two"),
        ("User-Agent", "telemetry-relay"),
        ("Connection", "keep-alive"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    ];
    all.push(c);
    let mut c = case("POST", "https://xray.us-west-2.amazonaws.com/v1/traces");
    c.headers.push(("Host", "xray.us-west-2.amazonaws.com"));
    c.body = b"\n".to_vec();
    all.push(c);
    all
}

fn sig(service: &str, token: Option<&str>) -> SigV4 {
    SigV4 {
        service: service.to_string(),
        region: "us-east-1".to_string(),
        credentials: Credentials {
            access_key_id: Secret(ACCESS_KEY.to_string()),
            secret_access_key: Secret(SECRET.to_string()),
            session_token: token.map(|t| Secret(t.to_string())),
        },
    }
}

/// 2026-12-01T13:46:05Z, and a second just before midnight (the day is in the scope).
const INSTANTS: [u64; 2] = [1_796_132_765, 1_796_169_599];

#[test]
fn signatures_are_those_botocore_computes() {
    let Some(python) = crate::testing::python("sigv4.py") else {
        return;
    };
    let mut inputs = Vec::new();
    let mut ours = Vec::new();
    for at in INSTANTS {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(at);
        for c in cases() {
            let mut signer = Signer::new(sig(c.service, c.token));
            let signed = signer.sign(c.method, c.url, &c.headers, &c.body, now);
            inputs.push(json!({
                "method": c.method,
                "url": c.url,
                "headers": c.headers,
                "body_hex": hex(&c.body),
                "access_key": ACCESS_KEY,
                "secret_key": SECRET,
                "token": c.token,
                "region": "us-east-1",
                "service": c.service,
                "timestamp": signed.date,
            }));
            ours.push(signed);
        }
    }
    let theirs: Vec<Value> = serde_json::from_str(&crate::testing::validate(
        &python,
        "sigv4.py",
        &["sign"],
        &json!(inputs),
    ))
    .unwrap();
    assert_eq!(theirs.len(), ours.len());
    for ((input, ours), theirs) in inputs.iter().zip(&ours).zip(&theirs) {
        assert_eq!(
            ours.authorization, theirs["authorization"],
            "signing {} {}",
            input["method"], input["url"]
        );
        assert_eq!(ours.date, theirs["date"]);
        assert_eq!(ours.token.as_deref(), theirs["token"].as_str());
    }
}

#[test]
fn a_signature_covers_the_body_the_date_and_the_key() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(INSTANTS[0]);
    let headers = [("content-type", "application/json")];
    let url = "https://xray.us-east-1.amazonaws.com/v1/traces";
    let base = Signer::new(sig("xray", None)).sign("POST", url, &headers, b"{}", now);
    let body = Signer::new(sig("xray", None)).sign("POST", url, &headers, b"[]", now);
    let later = Signer::new(sig("xray", None)).sign(
        "POST",
        url,
        &headers,
        b"{}",
        now + Duration::from_secs(1),
    );
    let mut other = sig("xray", None);
    other.credentials.secret_access_key = Secret("x".to_string());
    let key = Signer::new(other).sign("POST", url, &headers, b"{}", now);
    for changed in [&body, &later, &key] {
        assert_ne!(changed.authorization, base.authorization);
    }
    // The secret is in no header.
    assert!(base.headers().all(|(_, v)| !v.contains(SECRET)));
    assert!(base.authorization.starts_with(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/xray/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, Signature="
    ));
}

#[test]
fn the_day_key_is_derived_again_when_the_day_changes() {
    let mut signer = Signer::new(sig("logs", None));
    let url = "https://logs.us-east-1.amazonaws.com/";
    let day = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    let reused = signer.sign("POST", url, &[], b"", day(INSTANTS[1] + 1));
    let fresh = Signer::new(sig("logs", None)).sign("POST", url, &[], b"", day(INSTANTS[1] + 1));
    let _ = signer.sign("POST", url, &[], b"", day(INSTANTS[1]));
    let again = signer.sign("POST", url, &[], b"", day(INSTANTS[1] + 1));
    assert_eq!(reused, fresh);
    assert_eq!(again, fresh);
}

/// Where botocore and the specification part: botocore signs a query as written, the
/// specification (and the service, which canonicalizes what it received) its canonical form,
/// so `%7E` is `~` and a bare `*` is `%2A`. Only a query not written canonically differs.
#[test]
fn a_query_is_signed_in_its_canonical_form() {
    assert_eq!(canonical_query("b=%7e&a=*&a=%2a"), "a=%2A&a=%2A&b=~");
    assert_eq!(canonical_query("flag&x=%2Fy"), "flag=&x=%2Fy");
    assert_eq!(canonical_path(""), "/");
    assert_eq!(canonical_path("/a/./b/../../..//c/"), "/c/");
}

#[test]
fn host_is_what_the_client_sends() {
    assert_eq!(
        host("https://Xray.us-east-1.amazonaws.com/v1/traces"),
        "xray.us-east-1.amazonaws.com"
    );
    assert_eq!(host("https://h:443/"), "h");
    assert_eq!(host("http://h:80"), "h");
    assert_eq!(host("http://127.0.0.1:4566/x?y"), "127.0.0.1:4566");
    assert_eq!(host("https://user:pw@h:8443"), "h:8443");
}
