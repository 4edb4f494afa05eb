//! The extension's own messages: one line each on stderr, always starting with [`PREFIX`].
//!
//! Lambda hands everything an extension prints back to every `extension` subscriber, us
//! included (SPEC.md trap 8). The fixed prefix is how `telemetry::echo` recognises our own
//! lines and drops them, so every message must be a single line written with a single call.
//! The level is global and set once at start from `TELEMETRY_RELAY_LOG`.
//!
//! No thread but the writer ever blocks on stderr: a stalled log pipe must not hold the relay
//! or the SHUTDOWN path until Lambda's SIGKILL. Lines go through a bounded queue to one writer
//! thread, started with the first line; when the queue is full a line is dropped and counted.
//! `main` gives the queue a bounded time to drain before it exits ([`flush`]).

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Instant;

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

/// Lines waiting for the writer thread, at most.
const QUEUE_LINES: usize = 256;

enum Line {
    Text(String),
    /// Answered once every line queued before it is written.
    Flush(mpsc::Sender<()>),
}

static QUEUE: OnceLock<Option<SyncSender<Line>>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The writer thread's queue; `None` if the thread could not be started.
fn queue() -> Option<&'static SyncSender<Line>> {
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::sync_channel::<Line>(QUEUE_LINES);
            let writer = move || {
                for line in rx {
                    match line {
                        // Nothing sensible can be done if stderr is gone.
                        Line::Text(text) => {
                            let _ = std::io::stderr().lock().write_all(text.as_bytes());
                        }
                        Line::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            };
            let thread = std::thread::Builder::new()
                .name("log".to_string())
                .spawn(writer);
            thread.ok().map(|_| tx)
        })
        .as_ref()
}

/// Queues one line. Embedded line breaks become spaces so the echo guard sees one prefixed
/// line. Never blocks: a full queue drops the line (counted in [`dropped`]).
pub fn write(level: Level, args: fmt::Arguments) {
    let mut line = format!("{PREFIX} {} {args}", level.name());
    if line.contains(['\n', '\r']) {
        line = line.replace(['\n', '\r'], " ");
    }
    line.push('\n');
    let Some(queue) = queue() else {
        return;
    };
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
        queue.try_send(Line::Text(line))
    {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// A panic (always a bug) is reported as one of our lines, not by the default hook, which
/// writes unprefixed lines (they would come back to us as `extension` records) and blocks.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        write(Level::Error, format_args!("bug: {info}"));
    }));
}

/// Lines dropped because stderr did not keep up.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Waits until the lines queued so far are written, or `until`, whichever is first.
pub fn flush(until: Instant) {
    let Some(queue) = QUEUE.get().and_then(Option::as_ref) else {
        return;
    };
    let (done, written) = mpsc::channel();
    if queue.try_send(Line::Flush(done)).is_ok() {
        let _ = written.recv_timeout(until.saturating_duration_since(Instant::now()));
    }
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
