//! The echo guard: recognises `extension` records that are our own output coming back.
//!
//! Lambda delivers everything an extension writes, on stderr and stdout, to every subscriber
//! of the `extension` stream, us included. Relaying those lines would print them again and loop
//! forever (SPEC.md trap 8). Our stderr lines carry [`log::PREFIX`](crate::log::PREFIX); the
//! relayed lines on stdout cannot (a `function` line is printed as the function wrote it), so
//! the stdout sink remembers a fingerprint of every line it writes and an `extension` record
//! whose every line matches one is dropped. Other extensions' lines are kept, unless one prints
//! a line identical to one we printed moments before.
//!
//! Only built when both stdout and the `extension` stream are on; bounded to the newest
//! [`CAPACITY`] lines, which covers several full platform batches.

use std::collections::{HashMap, VecDeque};

use super::batch::{Event, Kind};
use super::record::LogRecord;
use super::text::{compact_into, unescape_into};
use crate::log::PREFIX;

/// How many recently written lines are remembered.
pub const CAPACITY: usize = 16 * 1024;

/// Fingerprints of the lines we wrote recently.
#[derive(Debug, Default)]
pub struct EchoGuard {
    order: VecDeque<u64>,
    counts: HashMap<u64, u32>,
    scratch: Vec<u8>,
}

impl EchoGuard {
    /// Remembers every line of `output` (lines end with `\n`).
    pub fn remember(&mut self, output: &[u8]) {
        for line in output.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            let hash = fingerprint(line);
            *self.counts.entry(hash).or_insert(0) += 1;
            self.order.push_back(hash);
            if self.order.len() > CAPACITY
                && let Some(old) = self.order.pop_front()
                && let Some(n) = self.counts.get_mut(&old)
            {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&old);
                }
            }
        }
    }

    /// Whether `event` is an `extension` record we produced.
    pub fn is_own(&mut self, event: &Event) -> bool {
        if event.kind != Kind::Extension {
            return false;
        }
        let record = event.log_record();
        if let LogRecord::Text(json) = record
            && json.get(1..).is_some_and(|s| s.starts_with(PREFIX))
        {
            return true;
        }
        if self.counts.is_empty() {
            return false;
        }
        self.scratch.clear();
        match record {
            LogRecord::Text(json) => unescape_into(json, &mut self.scratch),
            LogRecord::Json(json) => compact_into(json, &mut self.scratch),
        }
        let text = trim_line_end(&self.scratch);
        !text.is_empty()
            && text
                .split(|&b| b == b'\n')
                .all(|line| self.counts.contains_key(&fingerprint(trim_line_end(line))))
    }
}

/// Drops one trailing `\n` or `\r\n`.
pub fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// FNV-1a, 64 bit: fast, and collisions between distinct log lines are negligible here.
fn fingerprint(line: &[u8]) -> u64 {
    fnv1a(line.iter().copied())
}

/// 64-bit FNV-1a of `bytes`: the one hash we use, for line fingerprints and derived ids.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::batch::parse;

    fn extension_events(records: &[&str]) -> crate::telemetry::batch::Parsed {
        let items: Vec<String> = records
            .iter()
            .map(|r| format!(r#"{{"time":"t","type":"extension","record":{r}}}"#))
            .collect();
        parse(format!("[{}]", items.join(",")).into_bytes())
    }

    #[test]
    fn our_prefixed_lines_are_ours_even_without_memory() {
        let mut guard = EchoGuard::default();
        let parsed =
            extension_events(&[r#""[telemetry-relay] WARN x\n""#, r#""[other-ext] hi\n""#]);
        let own: Vec<bool> = parsed.batch.events().map(|e| guard.is_own(&e)).collect();
        assert_eq!(own, [true, false]);
    }

    #[test]
    fn lines_we_printed_are_recognised_as_text_or_json() {
        let mut guard = EchoGuard::default();
        guard.remember(b"hello from the function\n{\"time\":\"t\",\"type\":\"function\",\"record\":\"x\\n\"}\nsecond\n");
        let parsed = extension_events(&[
            r#""hello from the function\n""#,
            r#"{"time": "t", "type": "function", "record": "x\n"}"#,
            r#""hello from the function\nsecond\r\n""#,
            r#""hello from the function\nnot ours\n""#,
            r#""someone else\n""#,
        ]);
        let own: Vec<bool> = parsed.batch.events().map(|e| guard.is_own(&e)).collect();
        assert_eq!(own, [true, true, true, false, false]);
    }

    #[test]
    fn function_records_are_never_echoes() {
        let mut guard = EchoGuard::default();
        guard.remember(b"same\n");
        let parsed = parse(br#"[{"time":"t","type":"function","record":"same\n"}]"#.to_vec());
        assert!(!parsed.batch.events().any(|e| guard.is_own(&e)));
    }

    #[test]
    fn memory_is_bounded_to_the_newest_lines() {
        let mut guard = EchoGuard::default();
        guard.remember(b"oldest\n");
        for i in 0..CAPACITY {
            guard.remember(format!("line {i}\n").as_bytes());
        }
        assert_eq!(guard.order.len(), CAPACITY);
        let parsed = extension_events(&[r#""oldest\n""#, r#""line 5\n""#]);
        let own: Vec<bool> = parsed.batch.events().map(|e| guard.is_own(&e)).collect();
        assert_eq!(own, [false, true]);
    }
}
