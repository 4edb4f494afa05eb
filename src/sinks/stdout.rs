//! Events on stdout, which Lambda sends to CloudWatch Logs.
//!
//! A whole POST is rendered into one reused buffer and written with one call, not a syscall per
//! event. `text` prints a readable line per event and `function`/`extension` text as it was
//! written; `json` prints each event as received, whitespace removed so it fits on one line.
//! Every line written is remembered by the echo guard, because it will come back to us as an
//! `extension` record (SPEC.md trap 8).

use std::io::{self, Write};

use crate::config::StdoutFormat;
use crate::telemetry::batch::Event;
use crate::telemetry::echo::{EchoGuard, trim_line_end};
use crate::telemetry::record::LogRecord;
use crate::telemetry::text::{compact_into, unescape_into};

/// The stdout output.
pub struct StdoutSink {
    format: StdoutFormat,
    buffer: Vec<u8>,
}

impl StdoutSink {
    /// `None` when stdout output is off.
    pub fn new(format: StdoutFormat) -> Option<StdoutSink> {
        (format != StdoutFormat::None).then(|| StdoutSink {
            format,
            buffer: Vec::new(),
        })
    }

    /// Writes `events` with one `write` call; `guard` learns every line written.
    pub fn write<'a>(
        &mut self,
        events: impl Iterator<Item = Event<'a>>,
        guard: Option<&mut EchoGuard>,
    ) -> io::Result<usize> {
        self.buffer.clear();
        let mut written = 0;
        for event in events {
            render(self.format, &event, &mut self.buffer);
            written += 1;
        }
        if written == 0 {
            return Ok(0);
        }
        write_lines(&self.buffer, guard)?;
        // Do not keep a huge batch's buffer around for the rest of the process's life.
        if self.buffer.capacity() > 256 * 1024 {
            self.buffer = Vec::new();
        }
        Ok(written)
    }
}

/// Writes complete lines to stdout with one call; `guard` learns every line first.
pub fn write_lines(lines: &[u8], guard: Option<&mut EchoGuard>) -> io::Result<()> {
    if let Some(guard) = guard {
        guard.remember(lines);
    }
    let mut out = io::stdout().lock();
    out.write_all(lines)?;
    out.flush()
}

/// One event as one line of `format`, with its `\n`.
pub fn render(format: StdoutFormat, event: &Event, out: &mut Vec<u8>) {
    match format {
        StdoutFormat::Json => compact_into(event.raw, out),
        _ => render_text(event, out),
    }
    out.push(b'\n');
}

/// One event as a readable line (without its final `\n`).
fn render_text(event: &Event, out: &mut Vec<u8>) {
    if event.kind.is_log() {
        match event.log_record() {
            LogRecord::Text(json) => {
                let start = out.len();
                unescape_into(json, out);
                let kept = trim_line_end(out.get(start..).unwrap_or_default()).len();
                out.truncate(start + kept);
            }
            LogRecord::Json(json) => compact_into(json, out),
        }
        return;
    }
    out.extend_from_slice(event.time_text().unwrap_or("-").as_bytes());
    out.push(b' ');
    out.extend_from_slice(event.type_name().as_bytes());
    out.push(b' ');
    if let Some(id) = event.request_id() {
        out.extend_from_slice(id.as_bytes());
        out.push(b' ');
    }
    compact_into(event.record, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::batch::parse;

    fn rendered(body: &str) -> Vec<String> {
        let parsed = parse(body.as_bytes().to_vec());
        parsed
            .batch
            .events()
            .map(|e| {
                let mut out = Vec::new();
                render_text(&e, &mut out);
                String::from_utf8(out).unwrap()
            })
            .collect()
    }

    #[test]
    fn text_lines_show_time_type_request_id_and_compact_record() {
        let lines = rendered(
            r#"[{"time":"2026-03-14T09:21:07.124Z","type":"platform.start",
                "record":{"requestId":"r-1", "version": "$LATEST"}},
               {"time":"2026-03-14T09:21:06.912Z","type":"platform.initStart","record":{"phase":"init"}},
               {"type":"platform.fault","record":"RequestId: r-1 Process exited"}]"#,
        );
        assert_eq!(
            lines,
            [
                r#"2026-03-14T09:21:07.124Z platform.start r-1 {"requestId":"r-1","version":"$LATEST"}"#,
                r#"2026-03-14T09:21:06.912Z platform.initStart {"phase":"init"}"#,
                r#"- platform.fault "RequestId: r-1 Process exited""#,
            ]
        );
    }

    #[test]
    fn function_lines_are_printed_as_written() {
        let lines = rendered(
            r#"[{"time":"t","type":"function","record":"[INFO]\tid\tpriced 3 items\n"},
               {"time":"t","type":"function","record":"two\nlines\r\n"},
               {"time":"t","type":"function","record":{"level":"INFO", "message":"hi"}},
               {"time":"t","type":"extension","record":"[other] ready"}]"#,
        );
        assert_eq!(
            lines,
            [
                "[INFO]\tid\tpriced 3 items",
                "two\nlines",
                r#"{"level":"INFO","message":"hi"}"#,
                "[other] ready",
            ]
        );
    }
}
