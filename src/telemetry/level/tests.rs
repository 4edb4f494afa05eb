use super::*;

fn text(line: &str) -> LineFacts<'static> {
    let json = serde_json::to_string(line).unwrap();
    facts(LogRecord::Text(Box::leak(json.into_boxed_str())))
}

const ID: &str = "8f507cfc-7ab6-4ad3-b7a4-0d6e2c0e8d3a";

#[test]
fn python_text_lines() {
    for (name, level) in [
        ("DEBUG", Level::Debug),
        ("INFO", Level::Info),
        ("WARNING", Level::Warn),
        ("ERROR", Level::Error),
        ("CRITICAL", Level::Fatal),
    ] {
        let f = text(&format!(
            "[{name}]\t2024-05-01T10:00:00.123Z\t{ID}\tsomething\n"
        ));
        assert_eq!(f.level, Some(level), "{name}");
        assert_eq!(f.request_id.as_deref(), Some(ID), "{name}");
    }
    // An init-time error has no request id.
    let f = text("[ERROR] Runtime.ImportModuleError: Unable to import module 'app'\n");
    assert_eq!((f.level, f.request_id), (Some(Level::Error), None));
}

#[test]
fn node_and_dotnet_text_lines() {
    for (name, level) in [
        ("TRACE", Level::Trace),
        ("DEBUG", Level::Debug),
        ("INFO", Level::Info),
        ("WARN", Level::Warn),
        ("ERROR", Level::Error),
        ("FATAL", Level::Fatal),
        ("trce", Level::Trace),
        ("dbug", Level::Debug),
        ("info", Level::Info),
        ("warn", Level::Warn),
        ("fail", Level::Error),
        ("crit", Level::Fatal),
    ] {
        let f = text(&format!("2024-05-01T10:00:00.123Z\t{ID}\t{name}\thello\n"));
        assert_eq!(f.level, Some(level), "{name}");
        assert_eq!(f.request_id.as_deref(), Some(ID), "{name}");
    }
}

#[test]
fn java_text_lines() {
    let f = text("[WARN] disk almost full\n");
    assert_eq!((f.level, f.request_id), (Some(Level::Warn), None));
    let f = text(&format!(
        "2024-05-01 10:00:00 {ID} ERROR Handler - it broke\n"
    ));
    assert_eq!(f.level, Some(Level::Error));
    assert_eq!(f.request_id.as_deref(), Some(ID));
    let f = text(&format!(
        "2024-05-01 10:00:00 {ID} DEBUG Handler - detail\n"
    ));
    assert_eq!(f.level, Some(Level::Debug));
}

#[test]
fn lines_without_a_known_level_have_none() {
    for line in [
        "hello world\n",
        "[not a level] x\n",
        "",
        "2024-05-01T10:00:00Z\tonly two",
        "2024-05-01 10:00:00 short",
        "START RequestId: abc Version: $LATEST",
    ] {
        assert_eq!(text(line).level, None, "{line:?}");
    }
}

#[test]
fn structured_records() {
    let cases = [
        (
            r#"{"timestamp":"t","level":"INFO","message":"m","requestId":"abc-12345678"}"#,
            Some(Level::Info),
            Some("abc-12345678"),
        ),
        (
            r#"{"level":"WARNING","function_request_id":"abc-12345678"}"#,
            Some(Level::Warn),
            Some("abc-12345678"),
        ),
        (
            r#"{"Level":"Information","message":"m"}"#,
            Some(Level::Info),
            None,
        ),
        (r#"{"level":30,"msg":"pino"}"#, Some(Level::Info), None),
        (r#"{"level":50}"#, Some(Level::Error), None),
        (r#"{"level":35}"#, None, None),
        (r#"{"severity":"debug"}"#, Some(Level::Debug), None),
        (
            r#"{"level":"loud","severity":"error"}"#,
            Some(Level::Error),
            None,
        ),
        (
            r#"{"message":"no level","nested":{"level":"ERROR"}}"#,
            None,
            None,
        ),
        (r#"[1,2]"#, None, None),
        (r#"{"level":"ERROR""#, None, None),
    ];
    for (json, level, id) in cases {
        let f = facts(LogRecord::Json(json));
        assert_eq!(f.level, level, "{json}");
        assert_eq!(f.request_id.as_deref(), id, "{json}");
    }
}

#[test]
fn levels_order_and_map_to_severity() {
    assert!(Level::Trace < Level::Debug && Level::Error < Level::Fatal);
    assert_eq!(
        Level::named("WARNING").map(Level::severity_number),
        Some(13)
    );
    assert_eq!(
        Level::named("critical").map(Level::severity_number),
        Some(21)
    );
}
