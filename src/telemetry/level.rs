//! The level of a `function`/`extension` log line, and the request id it names, read from the
//! formats Lambda's managed runtimes write and from structured (JSON) records.
//!
//! Text formats (the runtimes' defaults when the function's log format is Text), as the raw JSON
//! string the Telemetry API carries them in, where a tab is the two characters `\t`:
//! - Python: `[LEVEL]\t<time>\t<request id>\t<message>` (`WARNING`, `CRITICAL` too);
//! - Node.js: `<time>\t<request id>\t<LEVEL>\t<message>`;
//! - .NET: the same, with Microsoft's console labels (`trce dbug info warn fail crit`);
//! - Java: `LambdaLogger` writes `[LEVEL] <message>`; the Log4j2 pattern AWS documents writes
//!   `<date> <time> <request id> <LEVEL> <logger> - <message>`.
//!
//! JSON records (the JSON log format, Powertools, pino and friends): the first of `level`,
//! `Level`, `severity`, `levelname`, `log.level` that is a level name or a pino number, and
//! `requestId` (or Powertools' `function_request_id`, `AWSRequestId`). What cannot be read is
//! `None`: callers keep such lines.

use std::borrow::Cow;

use serde::Deserialize;

use serde_json::value::RawValue;

use super::record::{Lenient, LogRecord};

/// A log level, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// A level from its name in any of the spellings above, case-insensitively.
    pub fn named(name: &str) -> Option<Level> {
        const NAMES: [(&str, Level); 20] = [
            ("trace", Level::Trace),
            ("trce", Level::Trace),
            ("verbose", Level::Trace),
            ("debug", Level::Debug),
            ("dbug", Level::Debug),
            ("info", Level::Info),
            ("information", Level::Info),
            ("notice", Level::Info),
            ("warn", Level::Warn),
            ("warning", Level::Warn),
            ("error", Level::Error),
            ("err", Level::Error),
            ("fail", Level::Error),
            ("fatal", Level::Fatal),
            ("critical", Level::Fatal),
            ("crit", Level::Fatal),
            ("alert", Level::Fatal),
            ("emergency", Level::Fatal),
            ("emerg", Level::Fatal),
            ("panic", Level::Fatal),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, level)| level)
    }

    /// pino's numbers: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal.
    fn numbered(n: f64) -> Option<Level> {
        let levels = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
            Level::Fatal,
        ];
        if n.fract() != 0.0 || !(10.0..=60.0).contains(&n) || n % 10.0 != 0.0 {
            return None;
        }
        levels.get((n / 10.0) as usize - 1).copied()
    }

    /// The OTLP severity number of the level's first step (SPEC.md §6.3).
    pub fn severity_number(self) -> u8 {
        match self {
            Level::Trace => 1,
            Level::Debug => 5,
            Level::Info => 9,
            Level::Warn => 13,
            Level::Error => 17,
            Level::Fatal => 21,
        }
    }
}

/// What a log line says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineFacts<'a> {
    pub level: Option<Level>,
    pub request_id: Option<Cow<'a, str>>,
}

/// Reads the level and request id of a log record.
pub fn facts<'a>(record: LogRecord<'a>) -> LineFacts<'a> {
    match record {
        LogRecord::Text(json) => text_facts(json),
        LogRecord::Json(json) => json_facts(json),
    }
}

/// A text line, as its raw JSON string.
fn text_facts(json: &str) -> LineFacts<'_> {
    let line = json.strip_prefix('"').unwrap_or(json);
    let mut fields = line.splitn(4, r"\t");
    let first = fields.next().unwrap_or_default();
    let second = fields.next();
    let third = fields.next();
    // Python: `[LEVEL]\t<time>\t<id>\t…`, Java: `[LEVEL] …`.
    if let Some(rest) = first.strip_prefix('[') {
        let name = rest.split(']').next().unwrap_or_default();
        if let Some(level) = Level::named(name) {
            return match second {
                Some(_) => fact(Some(level), third),
                None => fact(Some(level), None),
            };
        }
        return LineFacts::default();
    }
    // Node.js and .NET: `<time>\t<id>\t<LEVEL>\t…`.
    if first.starts_with(|c: char| c.is_ascii_digit())
        && let (Some(id), Some(level)) = (second, third)
    {
        let level = level.strip_suffix('"').unwrap_or(level);
        let level = Level::named(level.strip_suffix(r"\n").unwrap_or(level));
        return fact(level, Some(id));
    }
    // Log4j2: `<date> <time> <id> <LEVEL> …`.
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    if let (Some(date), Some(_time), Some(id), Some(level)) =
        (words.next(), words.next(), words.next(), words.next())
        && date.starts_with(|c: char| c.is_ascii_digit())
        && looks_like_request_id(id)
        && let Some(level) = Level::named(level)
    {
        return fact(Some(level), Some(id));
    }
    LineFacts::default()
}

fn fact<'a>(level: Option<Level>, id: Option<&'a str>) -> LineFacts<'a> {
    let id = id.filter(|id| looks_like_request_id(id));
    LineFacts {
        level,
        request_id: id.map(Cow::Borrowed),
    }
}

/// A Lambda request id is a UUID; extensions' and emulators' ids are at least word-like.
fn looks_like_request_id(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The fields a level or request id can be in, read in one pass; a level is kept as raw text
/// (read by [`level_of`]) so that no deserializer is instantiated for it alone.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Structured<'a> {
    #[serde(borrow)]
    level: Option<&'a RawValue>,
    #[serde(rename = "Level", borrow)]
    level_capitalised: Option<&'a RawValue>,
    #[serde(borrow)]
    severity: Option<&'a RawValue>,
    #[serde(borrow)]
    levelname: Option<&'a RawValue>,
    #[serde(rename = "log.level", borrow)]
    log_level: Option<&'a RawValue>,
    #[serde(
        rename = "requestId",
        alias = "function_request_id",
        alias = "AWSRequestId",
        borrow
    )]
    request_id: Lenient<Cow<'a, str>>,
}

/// A level field's raw JSON: a name or a pino number.
fn level_of(raw: &RawValue) -> Option<Level> {
    let raw = raw.get();
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(name) => Level::named(name),
        None => raw.parse().ok().and_then(Level::numbered),
    }
}

/// A JSON record: only an object has fields.
fn json_facts(json: &str) -> LineFacts<'_> {
    if !json.starts_with('{') {
        return LineFacts::default();
    }
    let Ok(s) = serde_json::from_str::<Structured>(json) else {
        return LineFacts::default();
    };
    let level = [
        s.level,
        s.level_capitalised,
        s.severity,
        s.levelname,
        s.log_level,
    ]
    .into_iter()
    .flatten()
    .find_map(level_of);
    LineFacts {
        level,
        request_id: s.request_id.0,
    }
}

#[cfg(test)]
mod tests;
