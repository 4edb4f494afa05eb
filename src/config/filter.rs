//! What the user asked to leave out or blank out: invocation sampling, the level floor, event
//! types not relayed as records, and redaction (`filter` applies them).

use std::collections::HashMap;

use regex_lite::Regex;

use super::{ConfigError, invalid, value_of};
use crate::telemetry::level::Level;

pub const SAMPLE_RATE: &str = "TELEMETRY_RELAY_SAMPLE_RATE";
pub const KEEP_SLOWER_THAN_MS: &str = "TELEMETRY_RELAY_KEEP_SLOWER_THAN_MS";
pub const KEEP_COLD_STARTS: &str = "TELEMETRY_RELAY_KEEP_COLD_STARTS";
pub const MIN_LEVEL: &str = "TELEMETRY_RELAY_MIN_LEVEL";
pub const DROP_TYPES: &str = "TELEMETRY_RELAY_DROP_TYPES";
pub const REDACT: &str = "TELEMETRY_RELAY_REDACT";
pub const REDACT_PATTERNS: &str = "TELEMETRY_RELAY_REDACT_PATTERNS";

/// Which successful invocations are kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    /// This fraction of them, chosen by request id (1: all, the default).
    Rate(f64),
    /// Those whose X-Ray trace header says `Sampled=1`.
    Xray,
}

/// A built-in redaction detector, or the user's pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    AwsKey,
    Secret,
    Authorization,
    Jwt,
    Card,
    Email,
    Pattern,
}

/// The built-in detectors, in the order their counters are reported.
pub const BUILT_IN: [Detector; 6] = [
    Detector::AwsKey,
    Detector::Secret,
    Detector::Authorization,
    Detector::Jwt,
    Detector::Card,
    Detector::Email,
];

impl Detector {
    /// Its name in `TELEMETRY_RELAY_REDACT`, in replacements and in counters.
    pub fn name(self) -> &'static str {
        match self {
            Detector::AwsKey => "aws-key",
            Detector::Secret => "secret",
            Detector::Authorization => "authorization",
            Detector::Jwt => "jwt",
            Detector::Card => "card",
            Detector::Email => "email",
            Detector::Pattern => "pattern",
        }
    }

    /// Its place among the counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What to redact.
#[derive(Debug, Clone, Default)]
pub struct Redaction {
    pub detectors: Vec<Detector>,
    pub pattern: Option<Regex>,
}

impl PartialEq for Redaction {
    fn eq(&self, other: &Self) -> bool {
        self.detectors == other.detectors
            && self.pattern.as_ref().map(Regex::as_str) == other.pattern.as_ref().map(Regex::as_str)
    }
}

impl Redaction {
    pub fn is_on(&self) -> bool {
        !self.detectors.is_empty() || self.pattern.is_some()
    }
}

/// Every filtering choice; the default changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Filtering {
    pub sample: Sample,
    /// Successful invocations slower than this are kept whole.
    pub keep_slower_than_ms: Option<f64>,
    pub keep_cold_starts: bool,
    /// Provisioned concurrency: Init ran ahead of any invocation, so none is a cold start.
    pub provisioned: bool,
    /// Records of sampled-in invocations below this level are dropped.
    pub min_level: Option<Level>,
    /// Event types (`platform.start`, `function`…) not relayed as records.
    pub drop_types: Vec<String>,
    pub redaction: Redaction,
}

impl Default for Filtering {
    fn default() -> Self {
        Filtering {
            sample: Sample::Rate(1.0),
            keep_slower_than_ms: None,
            keep_cold_starts: true,
            provisioned: false,
            min_level: None,
            drop_types: Vec::new(),
            redaction: Redaction::default(),
        }
    }
}

impl Filtering {
    /// Whether records must wait for their invocation's outcome.
    pub fn decides_per_invocation(&self) -> bool {
        self.sample != Sample::Rate(1.0) || self.min_level.is_some()
    }

    pub fn parse(env: &HashMap<String, String>) -> Result<Filtering, ConfigError> {
        let get = |name: &str| value_of(env, name);
        let mut f = Filtering::default();
        if let Some(v) = get(SAMPLE_RATE) {
            f.sample = if v.eq_ignore_ascii_case("xray") {
                Sample::Xray
            } else {
                let rate = v.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r));
                Sample::Rate(rate.ok_or_else(|| {
                    invalid(
                        SAMPLE_RATE,
                        v,
                        "expected a fraction from 0 to 1 of successful invocations to keep \
                         (default 1), or xray to follow each invocation's X-Ray Sampled flag",
                    )
                })?)
            };
        }
        if let Some(v) = get(KEEP_SLOWER_THAN_MS) {
            let ms = v
                .parse::<f64>()
                .ok()
                .filter(|ms| ms.is_finite() && *ms >= 0.0);
            f.keep_slower_than_ms = Some(ms.ok_or_else(|| {
                invalid(
                    KEEP_SLOWER_THAN_MS,
                    v,
                    "expected a duration in milliseconds, such as 1500",
                )
            })?);
        }
        if let Some(v) = get(KEEP_COLD_STARTS) {
            f.keep_cold_starts = match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(invalid(
                        KEEP_COLD_STARTS,
                        v,
                        "expected true (the default: a cold start is always kept) or false",
                    ));
                }
            };
        }
        f.provisioned = get(super::INITIALIZATION_TYPE)
            .is_some_and(|v| v.eq_ignore_ascii_case("provisioned-concurrency"));
        if let Some(v) = get(MIN_LEVEL) {
            let level = Level::named(v).filter(|_| {
                ["trace", "debug", "info", "warn", "error", "fatal"]
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(v))
            });
            f.min_level = Some(level.ok_or_else(|| {
                invalid(
                    MIN_LEVEL,
                    v,
                    "expected one of trace, debug, info, warn, error, fatal",
                )
            })?);
        }
        if let Some(v) = get(DROP_TYPES) {
            f.drop_types = parse_drop_types(v)?;
        }
        f.redaction = parse_redaction(get(REDACT), get(REDACT_PATTERNS))?;
        Ok(f)
    }
}

/// Event type names: `platform.*`, `function`, `extension`, or any other name the platform
/// may send (unknown types are relayed raw, so they can be dropped too).
fn parse_drop_types(value: &str) -> Result<Vec<String>, ConfigError> {
    let mut types = Vec::new();
    for name in value.split(',').map(str::trim) {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if !valid {
            return Err(invalid(
                DROP_TYPES,
                value,
                "expected a comma-separated list of event types, such as \
                 platform.start,platform.runtimeDone,extension",
            ));
        }
        if !types.iter().any(|t| t == name) {
            types.push(name.to_string());
        }
    }
    Ok(types)
}

fn parse_redaction(names: Option<&str>, pattern: Option<&str>) -> Result<Redaction, ConfigError> {
    let mut r = Redaction::default();
    for name in names.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
        if name.eq_ignore_ascii_case("all") {
            r.detectors = BUILT_IN.to_vec();
            continue;
        }
        let detector = BUILT_IN
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name));
        let Some(detector) = detector else {
            let known: Vec<&str> = BUILT_IN.iter().map(|d| d.name()).collect();
            return Err(invalid(
                REDACT,
                names.unwrap_or_default(),
                format!(
                    "{name:?} is not a detector; expected all or a comma-separated list of {}",
                    known.join(", ")
                ),
            ));
        };
        if !r.detectors.contains(&detector) {
            r.detectors.push(detector);
        }
    }
    if let Some(pattern) = pattern {
        let compiled = Regex::new(pattern).map_err(|e| {
            invalid(
                REDACT_PATTERNS,
                pattern,
                format!("it is not a regular expression this build can compile: {e}"),
            )
        })?;
        r.pattern = Some(compiled);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::env;

    fn parse(pairs: &[(&str, &str)]) -> Result<Filtering, ConfigError> {
        Filtering::parse(&env(pairs))
    }

    #[test]
    fn the_default_changes_nothing() {
        let f = parse(&[]).unwrap();
        assert_eq!(f, Filtering::default());
        assert!(!f.decides_per_invocation());
        assert!(!f.redaction.is_on());
    }

    #[test]
    fn every_setting_is_read() {
        let f = parse(&[
            (SAMPLE_RATE, "0.1"),
            (KEEP_SLOWER_THAN_MS, "1500"),
            (KEEP_COLD_STARTS, "false"),
            (MIN_LEVEL, "WARN"),
            (
                DROP_TYPES,
                "platform.start, platform.runtimeDone,platform.start",
            ),
            (REDACT, "email,jwt"),
            (REDACT_PATTERNS, r"cust-\d+|x"),
        ])
        .unwrap();
        assert_eq!(f.sample, Sample::Rate(0.1));
        assert_eq!(f.keep_slower_than_ms, Some(1500.0));
        assert!(!f.keep_cold_starts);
        assert_eq!(f.min_level, Some(Level::Warn));
        assert_eq!(f.drop_types, ["platform.start", "platform.runtimeDone"]);
        assert_eq!(f.redaction.detectors, [Detector::Email, Detector::Jwt]);
        assert!(f.decides_per_invocation());
        assert_eq!(
            parse(&[(SAMPLE_RATE, "XRay")]).unwrap().sample,
            Sample::Xray
        );
        assert_eq!(
            parse(&[(REDACT, "all")]).unwrap().redaction.detectors,
            BUILT_IN
        );
    }

    #[test]
    fn mistakes_name_the_variable_and_what_is_allowed() {
        for (var, value, says) in [
            (SAMPLE_RATE, "1.5", "fraction from 0 to 1"),
            (SAMPLE_RATE, "ten", "xray"),
            (KEEP_SLOWER_THAN_MS, "-3", "milliseconds"),
            (KEEP_COLD_STARTS, "maybe", "true"),
            (MIN_LEVEL, "warning", "trace, debug"),
            (DROP_TYPES, "platform.start,,", "comma-separated"),
            (REDACT, "email,ssn", "\"ssn\" is not a detector"),
            (REDACT_PATTERNS, "cust-(\\d+", "regular expression"),
        ] {
            let e = parse(&[(var, value)]).unwrap_err().to_string();
            assert!(e.starts_with(var) && e.contains(says), "{e}");
        }
    }
}
