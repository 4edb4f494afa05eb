use super::*;
use crate::config::filter::BUILT_IN;
use regex_lite::Regex;

fn all() -> Redactor {
    Redactor::new(Redaction {
        detectors: BUILT_IN.to_vec(),
        pattern: None,
    })
}

fn text(r: &mut Redactor, s: &str) -> String {
    r.text(s).into_owned()
}

#[test]
fn each_detector_in_text() {
    let mut r = all();
    let cases = [
        (
            "key AKIAIOSFODNN7EXAMPLE used",
            "key [REDACTED:aws-key] used",
        ),
        ("ASIAY34FZKBOKMUTVV7A,", "[REDACTED:aws-key],"),
        (
            "not AKIAIOSFODNN7EXAMPLEX nor xAKIAIOSFODNN7EXAMPLE",
            "not AKIAIOSFODNN7EXAMPLEX nor xAKIAIOSFODNN7EXAMPLE",
        ),
        (
            "password=hunter2 user=bob",
            "password=[REDACTED:secret] user=bob",
        ),
        (
            "db_password: 's3cr3t pass' ok",
            "db_password: '[REDACTED:secret]' ok",
        ),
        (
            "{\"client_secret\": \"abc\"}",
            "{\"client_secret\": \"[REDACTED:secret]\"}",
        ),
        ("API_KEY=xyz&next=1", "API_KEY=[REDACTED:secret]&next=1"),
        (
            "Authorization: Bearer abc.def-ghi_jkl",
            "Authorization: [REDACTED:authorization]",
        ),
        (
            "sent bearer 0123456789abcdef to it",
            "sent bearer [REDACTED:authorization] to it",
        ),
        ("basic dXNlcjpwYXNz", "basic [REDACTED:authorization]"),
        (
            "Authorization: AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=ab then",
            "Authorization: [REDACTED:authorization] then",
        ),
        ("bearer short", "bearer short"),
        (
            "tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U end",
            "tok [REDACTED:jwt] end",
        ),
        ("card 4111 1111 1111 1111.", "card [REDACTED:card]."),
        (
            "card 5500-0000-0000-0004 and 4111111111111112",
            "card [REDACTED:card] and 4111111111111112",
        ),
        ("amex 378282246310005", "amex [REDACTED:card]"),
        (
            "epoch 1714557600123 is no card",
            "epoch 1714557600123 is no card",
        ),
        ("mail jane.doe+x@example.co.uk.", "mail [REDACTED:email]."),
        ("not@mail and a@b.c1", "not@mail and a@b.c1"),
        ("nothing to see", "nothing to see"),
    ];
    for (input, expected) in cases {
        assert_eq!(text(&mut r, input), expected, "{input}");
    }
    let [aws, secret, auth, jwt, card, email, pattern] = r.counts;
    assert_eq!(
        (aws, secret, auth, jwt, card, email, pattern),
        (2, 4, 4, 1, 3, 1, 0)
    );
}

#[test]
fn only_the_named_detectors_run() {
    let mut r = Redactor::new(Redaction {
        detectors: vec![Detector::Email],
        pattern: None,
    });
    assert_eq!(
        text(&mut r, "password=x a@example.com AKIAIOSFODNN7EXAMPLE"),
        "password=x [REDACTED:email] AKIAIOSFODNN7EXAMPLE"
    );
}

#[test]
fn a_users_pattern() {
    let mut r = Redactor::new(Redaction {
        detectors: vec![],
        pattern: Some(Regex::new(r"cust-\d{4}|order#\w+").unwrap()),
    });
    assert_eq!(
        text(&mut r, "cust-1234 placed order#A1 x*"),
        "[REDACTED:pattern] placed [REDACTED:pattern] x*"
    );
    assert_eq!(r.counts[Detector::Pattern.index()], 2);
}

#[test]
fn text_records_stay_json_strings() {
    let mut r = all();
    let record = serde_json::to_string("[INFO]\tpassword=\"a\\b\"\tto jane@example.com\n").unwrap();
    let out = r.record(&record).unwrap();
    let back: String = serde_json::from_str(&out).unwrap();
    assert_eq!(
        back,
        "[INFO]\tpassword=\"[REDACTED:secret]\"\tto [REDACTED:email]\n"
    );
    assert_eq!(r.record("\"clean line\\n\""), None);
}

#[test]
fn json_records_keep_their_structure() {
    let mut r = all();
    let record = r#"{"level":"INFO","message":"login by jane@example.com",
        "user":{"password":"hunter2","pin":1234,"token":99,"tags":["4111111111111111",{"Authorization":"AWS4-HMAC-SHA256 Credential=x, Signature=y"}]},
        "card":4111111111111111,"n":-1.5e3,"ok":true,"none":null}"#;
    let out = r.record(record).unwrap();
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["message"], "login by [REDACTED:email]");
    assert_eq!(value["user"]["password"], "[REDACTED:secret]");
    assert_eq!(value["user"]["pin"], 1234);
    assert_eq!(value["user"]["token"], "[REDACTED:secret]");
    assert_eq!(value["user"]["tags"][0], "[REDACTED:card]");
    assert_eq!(
        value["user"]["tags"][1]["Authorization"],
        "[REDACTED:authorization]"
    );
    assert_eq!(value["card"], "[REDACTED:card]");
    assert_eq!(value["n"], -1500.0);
    assert_eq!(value["ok"], true);
    assert_eq!(value["level"], "INFO");
    assert_eq!(r.record(r#"{"a":"b","c":[1,2]}"#), None);
}

#[test]
fn hostile_text_neither_panics_nor_loses_the_rest() {
    let mut r = all();
    for s in [
        "@",
        "=",
        ":",
        "eyJ",
        "eyJaaaaaaaaaaaa.",
        "4",
        "bearer ",
        "a@.",
        "ü@ü.üü",
        "AKIA",
        "password=",
        "\"",
        "{\"password\":",
        "[\"x",
        "{\"a\":-",
    ] {
        let _ = r.text(s);
        let _ = r.record(s);
    }
    let long = "x@y.zz ".repeat(10_000);
    assert_eq!(r.text(&long).matches("[REDACTED:email]").count(), 10_000);
}
