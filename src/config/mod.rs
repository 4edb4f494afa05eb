//! Configuration: the process environment, copied into a map, parsed and validated.
//!
//! `from_env` is the only place that reads `std::env`; `Config::parse` is pure, so tests pass a
//! map. Every mistake becomes a [`ConfigError`] whose message names the variable, the rejected
//! value and what is accepted: `main` sends it verbatim through `/extension/init/error`
//! (SPEC.md §2.3), where the user reads it in the failed invoke's error.
//!
//! The buffering ranges are the Telemetry API's own (SPEC.md §4), checked here so that a typo
//! fails Init with a clear message rather than a 400 from subscribe.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use crate::log::Level;

pub mod aws;
pub mod filter;
pub mod otlp;
pub mod outputs;
pub mod tls;
pub use outputs::Outputs;

pub const RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
pub const INITIALIZATION_TYPE: &str = "AWS_LAMBDA_INITIALIZATION_TYPE";
pub const FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
pub const FUNCTION_VERSION: &str = "AWS_LAMBDA_FUNCTION_VERSION";
pub const TYPES: &str = "TELEMETRY_RELAY_TYPES";
pub const BATCH_TIMEOUT_MS: &str = "TELEMETRY_RELAY_BATCH_TIMEOUT_MS";
pub const BATCH_MAX_BYTES: &str = "TELEMETRY_RELAY_BATCH_MAX_BYTES";
pub const BATCH_MAX_ITEMS: &str = "TELEMETRY_RELAY_BATCH_MAX_ITEMS";
pub const LISTEN: &str = "TELEMETRY_RELAY_LISTEN";
pub const MAX_BODY_BYTES: &str = "TELEMETRY_RELAY_MAX_BODY_BYTES";
pub const STDOUT_FORMAT: &str = "TELEMETRY_RELAY_STDOUT_FORMAT";
pub const LOG: &str = "TELEMETRY_RELAY_LOG";

/// Room for the envelope around the platform's largest batch (SPEC.md §5: up to 2 × maxBytes).
const BODY_HEADROOM: u64 = 64 * 1024;

/// A Telemetry API stream we can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryType {
    Platform,
    Function,
    Extension,
}

impl TelemetryType {
    pub fn as_str(self) -> &'static str {
        match self {
            TelemetryType::Platform => "platform",
            TelemetryType::Function => "function",
            TelemetryType::Extension => "extension",
        }
    }
}

/// How events are written to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdoutFormat {
    /// One readable line per event; `function`/`extension` text as it was written.
    Text,
    /// One event per line, the event as received (whitespace removed).
    Json,
    /// Nothing on stdout.
    None,
}

/// The subscription's `buffering` object (SPEC.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffering {
    pub timeout_ms: u32,
    pub max_bytes: u32,
    pub max_items: u32,
}

/// Everything the extension needs to run, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `AWS_LAMBDA_RUNTIME_API` without any `http://` scheme; may carry a path prefix.
    pub runtime_api: String,
    /// Lambda Managed Instances: register for SHUTDOWN only (SPEC.md §7).
    pub managed_instances: bool,
    pub types: Vec<TelemetryType>,
    pub buffering: Buffering,
    pub listen: SocketAddr,
    pub max_body_bytes: u64,
    pub stdout_format: StdoutFormat,
    pub log_level: Level,
    /// The network outputs and the buffer in front of them.
    pub outputs: Outputs,
    /// Sampling, the level floor, dropped types and redaction.
    pub filtering: filter::Filtering,
    /// `AWS_LAMBDA_FUNCTION_NAME` and `_VERSION`, for the metrics' dimensions.
    pub function_name: String,
    pub function_version: String,
    /// Resource attributes for OTLP: `AWS_REGION`, the memory size in MB, the log stream.
    pub region: Option<String>,
    pub memory_mb: Option<i64>,
    pub log_stream: Option<String>,
}

/// A configuration mistake, worded for the person who set the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `AWS_LAMBDA_RUNTIME_API` is not set: we are not running inside Lambda or an emulator.
    NotInLambda,
    /// A variable of ours holds bytes that are not UTF-8.
    NotUtf8 { var: String },
    /// An AWS destination is set in the slim build, which cannot sign (no `ring`).
    NeedsTls { var: &'static str },
    /// A variable that an output which is on cannot do without.
    Missing {
        var: &'static str,
        needed_by: &'static str,
    },
    /// A variable holds a value we do not accept.
    Invalid {
        var: &'static str,
        value: String,
        allowed: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotInLambda => write!(
                f,
                "{RUNTIME_API} is not set: telemetry-relay is a Lambda extension and must be \
                 started by Lambda or a Lambda emulator"
            ),
            ConfigError::NotUtf8 { var } => write!(
                f,
                "{var} is not valid: its value is not UTF-8 text; set it to plain text or unset it"
            ),
            ConfigError::NeedsTls { var } => write!(
                f,
                "{var} sends to AWS, which this build cannot do: it is the slim build (http:// \
                 only, no SigV4 signing); use the default build's layer"
            ),
            ConfigError::Missing { var, needed_by } if var.starts_with("AWS_") => write!(
                f,
                "{needed_by} needs {var}, which is not set: AWS destinations sign their \
                 requests with the function's credentials and region, which Lambda sets for \
                 every process (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, \
                 AWS_REGION); set it, or turn that output off"
            ),
            ConfigError::Missing { var, needed_by } => write!(
                f,
                "{needed_by} needs {var}, which is not set: set it, or turn that output off"
            ),
            ConfigError::Invalid {
                var,
                value,
                allowed,
            } => {
                let shown: String = value.chars().take(ECHO_CHARS).collect();
                if shown.len() < value.len() {
                    let n = value.len();
                    write!(f, "{var}={shown:?}… ({n} bytes) is not valid: {allowed}")
                } else {
                    write!(f, "{var}={value:?} is not valid: {allowed}")
                }
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The process environment, copied for [`Config::parse`]: the variables, and the names of those
/// whose value is not UTF-8 (kept apart so that a pure parse can still report them).
#[derive(Debug, Default)]
pub struct Env {
    pub vars: HashMap<String, String>,
    pub not_utf8: Vec<String>,
}

/// Copies the process environment.
pub fn from_env() -> Env {
    let mut env = Env::default();
    for (name, value) in std::env::vars_os() {
        let Ok(name) = name.into_string() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => {
                env.vars.insert(name, value);
            }
            Err(_) => env.not_utf8.push(name),
        }
    }
    env
}

/// Whether `name` is a variable we read, so that a value we cannot read is a mistake to report.
fn is_ours(name: &str) -> bool {
    ["TELEMETRY_RELAY_", "OTEL_", "AWS_LAMBDA_"]
        .iter()
        .any(|p| name.starts_with(p))
        || aws::is_aws_var(name)
}

/// Longest value echoed back in an error message; longer ones are cut, saying so.
const ECHO_CHARS: usize = 120;

impl Config {
    /// Parses and validates the process environment: a variable of ours whose value is not
    /// UTF-8 is a mistake too.
    pub fn from(env: &Env) -> Result<Config, ConfigError> {
        if let Some(name) = env.not_utf8.iter().find(|n| is_ours(n)) {
            return Err(ConfigError::NotUtf8 { var: name.clone() });
        }
        Config::parse(&env.vars)
    }

    /// Parses and validates; reports the first mistake found.
    pub fn parse(env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| value_of(env, name);
        let runtime_api = runtime_api(env)?;
        let managed_instances = managed_instances(env);
        let buffering = Buffering {
            timeout_ms: parse_range(get(BATCH_TIMEOUT_MS), BATCH_TIMEOUT_MS, 25, 25, 30_000)?,
            max_bytes: parse_range(
                get(BATCH_MAX_BYTES),
                BATCH_MAX_BYTES,
                262_144,
                262_144,
                1_048_576,
            )?,
            max_items: parse_range(get(BATCH_MAX_ITEMS), BATCH_MAX_ITEMS, 1000, 1000, 10_000)?,
        };
        let min_body = 2 * u64::from(buffering.max_bytes) + BODY_HEADROOM;
        let max_body_bytes = parse_range(
            get(MAX_BODY_BYTES),
            MAX_BODY_BYTES,
            4 * 1024 * 1024,
            min_body,
            256 * 1024 * 1024,
        )?;
        let types = parse_types(get(TYPES))?;
        let outputs = Outputs::parse(env)?;
        if outputs.emf.is_some() && !types.contains(&TelemetryType::Platform) {
            return Err(invalid(
                outputs::EMF,
                get(outputs::EMF).unwrap_or_default(),
                "EMF metrics come from platform events, so TELEMETRY_RELAY_TYPES must include platform",
            ));
        }
        if outputs.flush == outputs::FlushPolicy::End && !types.contains(&TelemetryType::Platform) {
            return Err(invalid(
                outputs::FLUSH,
                get(outputs::FLUSH).unwrap_or_default(),
                "end waits for each invocation's platform.runtimeDone, so TELEMETRY_RELAY_TYPES \
                 must include platform; use background or periodic,<ms> without it",
            ));
        }
        Ok(Config {
            runtime_api,
            managed_instances,
            types,
            buffering,
            listen: parse_listen(get(LISTEN))?,
            max_body_bytes,
            stdout_format: parse_stdout_format(get(STDOUT_FORMAT))?,
            log_level: parse_log_level(get(LOG))?,
            outputs,
            filtering: filter::Filtering::parse(env)?,
            function_name: get(FUNCTION_NAME).unwrap_or("unknown").to_string(),
            function_version: get(FUNCTION_VERSION).unwrap_or("$LATEST").to_string(),
            region: get("AWS_REGION")
                .or(get("AWS_DEFAULT_REGION"))
                .map(str::to_string),
            // Lambda's range is 128 to 10240; anything else is not a memory size.
            memory_mb: get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .and_then(|m| m.parse().ok())
                .filter(|mb| (1..=1_048_576).contains(mb)),
            log_stream: get("AWS_LAMBDA_LOG_STREAM_NAME").map(str::to_string),
        })
    }

    /// Whether events of this type will reach us.
    pub fn subscribes(&self, kind: TelemetryType) -> bool {
        self.types.contains(&kind)
    }
}

/// A variable's value; empty counts as unset.
pub(crate) fn value_of<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `AWS_LAMBDA_RUNTIME_API` without scheme or trailing slash. Read on its own by `main`: even
/// with the rest of the config invalid we must register, to report the mistake.
pub fn runtime_api(env: &HashMap<String, String>) -> Result<String, ConfigError> {
    let value = value_of(env, RUNTIME_API).ok_or(ConfigError::NotInLambda)?;
    let value = value.strip_prefix("http://").unwrap_or(value);
    Ok(value.trim_end_matches('/').to_string())
}

/// Whether we run on Lambda Managed Instances, where only SHUTDOWN may be registered.
pub fn managed_instances(env: &HashMap<String, String>) -> bool {
    value_of(env, INITIALIZATION_TYPE)
        .is_some_and(|v| v.eq_ignore_ascii_case("lambda-managed-instances"))
}

pub(crate) fn invalid(var: &'static str, value: &str, allowed: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

pub(crate) fn parse_range<T>(
    value: Option<&str>,
    var: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(value) = value else {
        return Ok(default);
    };
    let allowed = || format!("expected a whole number from {min} to {max} (default {default})");
    let n: T = value.parse().map_err(|_| invalid(var, value, allowed()))?;
    if n < min || n > max {
        return Err(invalid(var, value, allowed()));
    }
    Ok(n)
}

fn parse_types(value: Option<&str>) -> Result<Vec<TelemetryType>, ConfigError> {
    let Some(value) = value else {
        return Ok(vec![TelemetryType::Platform, TelemetryType::Function]);
    };
    let allowed = "expected a comma-separated list of platform, function, extension \
                   (default platform,function)";
    let mut types = Vec::new();
    for name in value.split(',').map(str::trim) {
        let kind = match name.to_ascii_lowercase().as_str() {
            "platform" => TelemetryType::Platform,
            "function" => TelemetryType::Function,
            "extension" => TelemetryType::Extension,
            _ => {
                let what = if name.is_empty() {
                    "an empty name"
                } else {
                    name
                };
                return Err(invalid(
                    TYPES,
                    value,
                    format!("{what:?} is unknown; {allowed}"),
                ));
            }
        };
        if !types.contains(&kind) {
            types.push(kind);
        }
    }
    Ok(types)
}

fn parse_listen(value: Option<&str>) -> Result<SocketAddr, ConfigError> {
    let value = value.unwrap_or("0.0.0.0:0");
    value.parse().map_err(|_| {
        invalid(
            LISTEN,
            value,
            "expected IP:PORT such as 0.0.0.0:0 (default; port 0 lets the OS choose) or 127.0.0.1:4243",
        )
    })
}

fn parse_stdout_format(value: Option<&str>) -> Result<StdoutFormat, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("text") => Ok(StdoutFormat::Text),
        Some("json") => Ok(StdoutFormat::Json),
        Some("none") => Ok(StdoutFormat::None),
        Some(_) => Err(invalid(
            STDOUT_FORMAT,
            value.unwrap_or_default(),
            "expected text (default), json or none",
        )),
    }
}

fn parse_log_level(value: Option<&str>) -> Result<Level, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        Some("error") => Ok(Level::Error),
        None | Some("warn") => Ok(Level::Warn),
        Some("info") => Ok(Level::Info),
        Some("debug") => Ok(Level::Debug),
        Some(_) => Err(invalid(
            LOG,
            value.unwrap_or_default(),
            "expected error, warn (default), info or debug",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut map = crate::testing::env(pairs);
        map.entry(RUNTIME_API.to_string())
            .or_insert_with(|| "127.0.0.1:9001".to_string());
        map
    }

    fn error_of(pairs: &[(&str, &str)]) -> String {
        match Config::parse(&env(pairs)) {
            Ok(cfg) => panic!("expected an error, got {cfg:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_match_the_issue() {
        let cfg = Config::parse(&env(&[])).unwrap();
        assert_eq!(cfg.runtime_api, "127.0.0.1:9001");
        assert!(!cfg.managed_instances);
        assert_eq!(
            cfg.types,
            vec![TelemetryType::Platform, TelemetryType::Function]
        );
        assert_eq!(
            cfg.buffering,
            Buffering {
                timeout_ms: 25,
                max_bytes: 262_144,
                max_items: 1000
            }
        );
        assert_eq!(cfg.listen, "0.0.0.0:0".parse::<SocketAddr>().unwrap());
        assert_eq!(cfg.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(cfg.stdout_format, StdoutFormat::Text);
        assert_eq!(cfg.log_level, Level::Warn);
    }

    #[test]
    fn runtime_api_keeps_path_prefix_and_drops_scheme() {
        let cfg = Config::parse(&env(&[(RUNTIME_API, "http://127.0.0.1:9000/.rt/")])).unwrap();
        assert_eq!(cfg.runtime_api, "127.0.0.1:9000/.rt");
    }

    #[test]
    fn missing_runtime_api_is_not_in_lambda() {
        assert_eq!(
            Config::parse(&HashMap::new()),
            Err(ConfigError::NotInLambda)
        );
    }

    #[test]
    fn managed_instances_detected_case_insensitively() {
        let cfg =
            Config::parse(&env(&[(INITIALIZATION_TYPE, "Lambda-Managed-Instances")])).unwrap();
        assert!(cfg.managed_instances);
        let cfg = Config::parse(&env(&[(INITIALIZATION_TYPE, "snap-start")])).unwrap();
        assert!(!cfg.managed_instances);
    }

    #[test]
    fn accepted_values_parse() {
        let cfg = Config::parse(&env(&[
            (TYPES, " Platform , extension,platform"),
            (BATCH_TIMEOUT_MS, "30000"),
            (BATCH_MAX_BYTES, "1048576"),
            (BATCH_MAX_ITEMS, "10000"),
            (LISTEN, "127.0.0.1:4243"),
            (MAX_BODY_BYTES, "2162688"),
            (STDOUT_FORMAT, "JSON"),
            (LOG, "debug"),
        ]))
        .unwrap();
        assert_eq!(
            cfg.types,
            vec![TelemetryType::Platform, TelemetryType::Extension]
        );
        assert_eq!(cfg.buffering.timeout_ms, 30_000);
        assert_eq!(cfg.buffering.max_bytes, 1_048_576);
        assert_eq!(cfg.buffering.max_items, 10_000);
        assert_eq!(cfg.listen.port(), 4243);
        assert_eq!(cfg.max_body_bytes, 2_162_688);
        assert_eq!(cfg.stdout_format, StdoutFormat::Json);
        assert_eq!(cfg.log_level, Level::Debug);
        let cfg = Config::parse(&env(&[(STDOUT_FORMAT, "none"), (LOG, "")])).unwrap();
        assert_eq!(cfg.stdout_format, StdoutFormat::None);
        assert_eq!(cfg.log_level, Level::Warn);
    }

    #[test]
    fn every_error_names_variable_value_and_what_is_allowed() {
        let cases: &[(&str, &str, &str)] = &[
            (
                TYPES,
                "platfrom",
                "\"platfrom\" is unknown; expected a comma-separated list of platform, function, extension",
            ),
            (TYPES, "platform,,function", "an empty name"),
            (
                BATCH_TIMEOUT_MS,
                "10",
                "expected a whole number from 25 to 30000 (default 25)",
            ),
            (
                BATCH_TIMEOUT_MS,
                "fast",
                "expected a whole number from 25 to 30000",
            ),
            (
                BATCH_MAX_BYTES,
                "1048577",
                "expected a whole number from 262144 to 1048576 (default 262144)",
            ),
            (
                BATCH_MAX_ITEMS,
                "999",
                "expected a whole number from 1000 to 10000 (default 1000)",
            ),
            (BATCH_MAX_ITEMS, "-5", "from 1000 to 10000"),
            (LISTEN, "localhost:80", "expected IP:PORT such as 0.0.0.0:0"),
            (
                MAX_BODY_BYTES,
                "1000",
                "expected a whole number from 589824 to 268435456 (default 4194304)",
            ),
            (
                STDOUT_FORMAT,
                "yaml",
                "expected text (default), json or none",
            ),
            (
                LOG,
                "verbose",
                "expected error, warn (default), info or debug",
            ),
        ];
        for (var, value, allowed) in cases {
            let message = error_of(&[(var, value)]);
            let head = format!("{var}={value:?} is not valid: ");
            assert!(message.starts_with(&head), "{message}");
            assert!(message.contains(allowed), "{message} lacks {allowed}");
        }
    }

    #[test]
    fn flushing_at_the_end_needs_platform_events() {
        let message = error_of(&[(TYPES, "function"), (outputs::FLUSH, "end")]);
        assert!(
            message.starts_with("TELEMETRY_RELAY_FLUSH=\"end\" is not valid: end waits for"),
            "{message}"
        );
        assert!(Config::parse(&env(&[(outputs::FLUSH, "end")])).is_ok());
    }

    #[test]
    fn body_cap_must_hold_the_largest_batch_the_subscription_allows() {
        let message = error_of(&[(BATCH_MAX_BYTES, "1048576"), (MAX_BODY_BYTES, "1048576")]);
        assert!(message.contains("from 2162688 to"), "{message}");
    }

    #[test]
    fn not_in_lambda_message_names_the_variable() {
        assert!(ConfigError::NotInLambda.to_string().contains(RUNTIME_API));
    }

    #[test]
    fn a_value_that_is_not_utf8_is_a_mistake_named_by_its_variable() {
        let ours = Env {
            vars: env(&[]),
            not_utf8: vec![STDOUT_FORMAT.to_string(), "SOMEONE_ELSES".to_string()],
        };
        let message = Config::from(&ours).unwrap_err().to_string();
        assert!(message.starts_with(STDOUT_FORMAT), "{message}");
        assert!(message.contains("not UTF-8"), "{message}");
        let theirs = Env {
            vars: env(&[]),
            not_utf8: vec!["SOMEONE_ELSES".to_string()],
        };
        assert!(Config::from(&theirs).is_ok(), "not ours: ignored");
    }

    #[test]
    fn a_long_value_is_cut_in_the_message() {
        let long = "x".repeat(128 * 1024);
        let message = error_of(&[(STDOUT_FORMAT, &long)]);
        assert!(message.len() < 400, "{} bytes", message.len());
        assert!(message.contains("(131072 bytes)"), "{message}");
        assert!(
            message.contains("expected text (default), json or none"),
            "{message}"
        );
    }

    #[test]
    fn an_absurd_memory_size_is_not_used() {
        let cfg = Config::parse(&env(&[(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "9223372036854775807",
        )]));
        assert_eq!(cfg.unwrap().memory_mb, None);
        let cfg = Config::parse(&env(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")]));
        assert_eq!(cfg.unwrap().memory_mb, Some(256));
    }
}
