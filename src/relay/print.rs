//! What the relay prints on stdout: the relayed events (`sinks::stdout`) and the EMF documents
//! (`sinks::emf`), and the echo guard that learns every line so that it can recognise them
//! when Lambda hands them back as `extension` records (SPEC.md trap 8). One write call per
//! batch and output; a failed write is counted, and warned about once.

use crate::counters::{Counters, add};
use crate::sinks::emf::Emf;
use crate::sinks::stdout::{StdoutSink, write_lines};
use crate::telemetry::batch::{Audience, Batch, Event, Pick};
use crate::telemetry::echo::EchoGuard;
use crate::warn;

/// stdout, EMF and the echo guard, owned by the relay.
pub struct Printer {
    stdout: Option<StdoutSink>,
    emf: Option<Emf>,
    guard: Option<EchoGuard>,
    emf_buffer: Vec<u8>,
}

impl Printer {
    /// `echoes`: whether what we print comes back to us (the `extension` stream is on).
    pub fn new(stdout: Option<StdoutSink>, emf: Option<Emf>, echoes: bool) -> Printer {
        Printer {
            stdout,
            emf,
            guard: echoes.then(EchoGuard::default),
            emf_buffer: Vec::new(),
        }
    }

    /// Whether `event` is our own output coming back.
    pub fn is_own(&mut self, event: &Event) -> bool {
        self.guard.as_mut().is_some_and(|g| g.is_own(event))
    }

    /// Prints the `kept` events of `batch` that are records, and the EMF documents they
    /// complete (from every kept event: sampling does not change a metric).
    pub fn print(&mut self, batch: &Batch, kept: &[Pick], counters: &mut Counters) {
        let events = |audience: Audience| {
            kept.iter()
                .filter(move |p| p.audience().reaches(audience))
                .filter_map(|p| batch.get(p.index()))
        };
        if let Some(stdout) = &mut self.stdout {
            match stdout.write(events(Audience::RECORDS), self.guard.as_mut()) {
                Ok(n) => add(&mut counters.relayed, n as u64),
                Err(e) => write_failed(counters, "events", &e),
            }
        }
        if let Some(emf) = &mut self.emf {
            self.emf_buffer.clear();
            for event in events(Audience::METRICS) {
                emf.event(&event, &mut self.emf_buffer);
            }
            self.flush_emf(counters);
        }
    }

    /// The relay's counters as a last EMF document; `snapshot` is what it reports.
    pub fn counters(&mut self, snapshot: &Counters, counters: &mut Counters) {
        if let Some(emf) = &self.emf {
            self.emf_buffer.clear();
            emf.counters(snapshot, &mut self.emf_buffer);
            self.flush_emf(counters);
        }
    }

    fn flush_emf(&mut self, counters: &mut Counters) {
        if self.emf_buffer.is_empty() {
            return;
        }
        if let Err(e) = write_lines(&self.emf_buffer, self.guard.as_mut()) {
            write_failed(counters, "EMF", &e);
        }
        self.emf_buffer.clear();
        // Do not keep a huge batch's buffer for the rest of the process's life.
        if self.emf_buffer.capacity() > 256 * 1024 {
            self.emf_buffer = Vec::new();
        }
    }
}

fn write_failed(counters: &mut Counters, what: &str, e: &std::io::Error) {
    add(&mut counters.write_errors, 1);
    if counters.write_errors == 1 {
        warn!("writing {what} to stdout failed (counted; further failures are only counted): {e}");
    }
}
