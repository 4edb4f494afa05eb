//! The telemetry the emulated platform and function produce, shaped like SPEC.md §6 and the
//! captures in `tests/fixtures/`: RFC 3339 millisecond times, camelCase records, and function
//! lines that each carry a unique marker so a test can find every one in the relay's output.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// Which Telemetry API stream an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Platform,
    Function,
    Extension,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Platform => "platform",
            Stream::Function => "function",
            Stream::Extension => "extension",
        }
    }
}

/// One event, serialized once, exactly as it will be POSTed.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub stream: Stream,
    pub json: String,
}

/// `time` as the platform writes it: UTC, milliseconds, `Z`.
pub fn rfc3339(at: SystemTime) -> String {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil-from-days (H. Hinnant's algorithm), valid for any date after 1970.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

pub fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// An event in the key order Lambda writes: `time`, `type`, `record`, and a record's
/// `requestId` first, as in every capture in `tests/fixtures` (the extension reads it there
/// without parsing the rest).
fn event(stream: Stream, kind: &str, record: Value) -> Emitted {
    let time = Value::String(rfc3339(SystemTime::now()));
    let record = match record {
        Value::Object(mut fields) => match fields.remove("requestId") {
            Some(id) if !fields.is_empty() => {
                let rest = Value::Object(fields).to_string();
                format!(
                    "{{\"requestId\":{id},{}",
                    rest.strip_prefix('{').unwrap_or(&rest)
                )
            }
            Some(id) => format!("{{\"requestId\":{id}}}"),
            None => Value::Object(fields).to_string(),
        },
        other => other.to_string(),
    };
    Emitted {
        stream,
        json: format!(
            r#"{{"time":{time},"type":{},"record":{record}}}"#,
            json!(kind)
        ),
    }
}

pub fn platform(kind: &str, record: Value) -> Emitted {
    event(Stream::Platform, kind, record)
}

/// A log record; `raw` is the record's JSON text (a string literal or an object).
pub fn log_record(stream: Stream, raw: &str) -> Emitted {
    let time = serde_json::to_string(&rfc3339(SystemTime::now())).unwrap_or_default();
    let kind = stream.name();
    Emitted {
        stream,
        json: format!(r#"{{"time":{time},"type":"{kind}","record":{raw}}}"#),
    }
}

/// A function line in the configured log format. `marker` must appear in what is relayed.
pub fn function_line(json_format: bool, request_id: &str, message: &str) -> Emitted {
    let now = rfc3339(SystemTime::now());
    let raw = if json_format {
        json!({ "timestamp": now, "level": "INFO", "message": message, "requestId": request_id })
            .to_string()
    } else {
        Value::String(format!("[INFO]\t{now}\t{request_id}\t{message}\n")).to_string()
    };
    log_record(Stream::Function, &raw)
}

/// Levels the styled lines cycle through; `None` is a line whose level cannot be read.
pub const LEVELS: [Option<&str>; 5] = [
    Some("debug"),
    Some("info"),
    Some("warn"),
    Some("error"),
    None,
];

/// A function line as managed runtime `style` writes it at `level`.
pub fn styled_line(style: &str, level: Option<&str>, request_id: &str, message: &str) -> Emitted {
    let now = rfc3339(SystemTime::now());
    let spelled = |names: [&'static str; 4]| {
        level.map(|l| {
            let i = ["debug", "info", "warn", "error"]
                .iter()
                .position(|n| *n == l);
            names.get(i.unwrap_or(1)).copied().unwrap_or("INFO")
        })
    };
    let upper = spelled(["DEBUG", "INFO", "WARN", "ERROR"]);
    let text = |line: String| Value::String(line).to_string();
    let raw = match (style, level) {
        ("json", Some(_)) => {
            json!({"timestamp": now, "level": upper, "message": message, "requestId": request_id})
                .to_string()
        }
        ("json", None) => {
            json!({"timestamp": now, "message": message, "requestId": request_id}).to_string()
        }
        ("powertools", Some(_)) => {
            json!({"level": upper, "location": "handler:12", "message": message,
            "timestamp": now, "service": "orders", "function_request_id": request_id})
            .to_string()
        }
        ("powertools", None) => {
            json!({"message": message, "function_request_id": request_id}).to_string()
        }
        (_, None) => text(format!("{message}\n")),
        ("python", _) => {
            let name = spelled(["DEBUG", "INFO", "WARNING", "ERROR"]).unwrap_or("INFO");
            text(format!("[{name}]\t{now}\t{request_id}\t{message}\n"))
        }
        ("node", _) => text(format!(
            "{now}\t{request_id}\t{}\t{message}\n",
            upper.unwrap_or("INFO")
        )),
        ("dotnet", _) => {
            let name = spelled(["dbug", "info", "warn", "fail"]).unwrap_or("info");
            text(format!("{now}\t{request_id}\t{name}\t{message}"))
        }
        ("java", _) => text(format!("[{}] {message}\n", upper.unwrap_or("INFO"))),
        (_, _) => {
            let day = now.get(..10).unwrap_or_default();
            let time = now.get(11..19).unwrap_or_default();
            text(format!(
                "{day} {time} {request_id} {:<5} Handler - {message}\n",
                upper.unwrap_or("INFO")
            ))
        }
    };
    log_record(Stream::Function, &raw)
}

/// Secrets of every kind the extension can redact, for a line to carry.
pub const SECRETS: &str = "key AKIAIOSFODNN7EXAMPLE password=hunter2 \
    Authorization: Bearer abcdef0123456789 \
    jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U \
    card 4111 1111 1111 1111 mail jane.doe@example.com";

/// Milliseconds as the platform writes them: three decimals.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// A random-looking request id, unique within a run.
pub fn request_id(nonce: u64, n: u64) -> String {
    let a = nonce ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let b = a.rotate_left(29).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a as u16) & 0xfff,
        (b >> 48) as u16 & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(1_773_480_067_124)), "2026-03-14T09:21:07.124Z");
        assert_eq!(rfc3339(at(951_782_400_000)), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn request_ids_are_distinct_uuids() {
        let a = request_id(7, 1);
        assert_eq!(a.len(), 36);
        assert_ne!(a, request_id(7, 2));
    }
}
