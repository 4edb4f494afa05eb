//! The extension's own messages: one line each on stderr, always starting with [`PREFIX`].
//!
//! Lambda hands everything an extension prints back to every `extension` subscriber, us
//! included (SPEC.md trap 8). The fixed prefix is how `telemetry::echo` recognises our own
//! lines and drops them, so every message must be a single line written with a single call.
//! The level is global and set once at start from `TELEMETRY_RELAY_LOG`.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

/// Every line this process writes to stderr starts with this.
pub const PREFIX: &str = "[telemetry-relay]";

/// Severity of one of our own messages, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

/// Sets the most verbose level that is printed.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether a message at `level` would be printed; check it before formatting anything costly.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line. Embedded line breaks become spaces so the echo guard sees one prefixed line.
pub fn write(level: Level, args: fmt::Arguments) {
    let mut line = format!("{PREFIX} {} {args}", level.name());
    if line.contains(['\n', '\r']) {
        line = line.replace(['\n', '\r'], " ");
    }
    line.push('\n');
    // Nothing sensible can be done if stderr is gone; the relay carries on without it.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log_at($crate::log::Level::Error, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::log_at($crate::log::Level::Warn, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log_at($crate::log::Level::Info, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::log_at($crate::log::Level::Debug, format_args!($($arg)*)) };
}

/// Macro target: formats only when the level is enabled (`format_args!` itself is lazy).
pub fn log_at(level: Level, args: fmt::Arguments) {
    if enabled(level) {
        write(level, args);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_from_most_severe() {
        assert!(
            Level::Error < Level::Warn && Level::Warn < Level::Info && Level::Info < Level::Debug
        );
    }
}
