//! Traffic beyond the platform's own: hostile POSTs (`--inject*`), hostile clients
//! (`--attack`) and full batches back to back (`--blast`), all straight to the extension's
//! listener.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{INVOKE_LIMIT, Run, say};
use crate::delivery;

impl Run<'_> {
    /// Hostile POSTs straight to the extension's listener.
    pub(super) fn inject(&mut self) {
        let o = self.options;
        let Some(sub) = self.telemetry.subscription() else {
            return;
        };
        let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
        for path in &o.inject {
            let name = Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            bodies.push((name, std::fs::read(path).unwrap_or_default()));
        }
        if let Some(n) = o.inject_bytes {
            let mut body = vec![b' '; n.max(2)];
            body[0] = b'[';
            body[n.max(2) - 1] = b']';
            bodies.push((format!("bytes-{n}"), body));
        }
        if let Some(n) = o.inject_deep {
            bodies.push((format!("deep-{n}"), "[".repeat(n).into_bytes()));
        }
        let agent = delivery::http_agent(Duration::from_secs(10));
        let url = format!("http://127.0.0.1:{}/", sub.port);
        let mut results = Vec::new();
        for (name, body) in bodies {
            let outcome = match agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(&body[..])
            {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) => format!("error: {e}"),
            };
            say(o, &format!("injected {name}: {outcome}"));
            results.push(json!({"name": name, "outcome": outcome}));
        }
        self.report["injections"] = json!(results);
    }

    /// Hostile local clients (see `attack`); what each saw, and the extension's threads and
    /// RSS once they are all under way.
    pub(super) fn attack(&mut self) {
        let o = self.options;
        let Some(sub) = self.telemetry.subscription() else {
            return;
        };
        let mut results = Vec::new();
        for attack in &o.attacks {
            let outcome = crate::attack::run(attack, sub.port);
            say(o, &format!("attack {}: {}", attack.name(), outcome.seen));
            results.push(json!({"name": attack.name(), "outcome": outcome.seen}));
            self.held.push((attack.releases_early(), outcome.open));
        }
        if !o.attacks.is_empty() {
            self.ext.sample();
            let (threads, rss_kb) = self.ext.threads_and_rss();
            self.report["attacks"] =
                json!({"results": results, "threads": threads, "rss_kb": rss_kb});
        }
    }

    /// Throughput of the extension's listener and stdout: full batches, back to back.
    pub(super) fn blast(&mut self) {
        let (Some(path), Some(sub)) = (&self.options.blast, self.telemetry.subscription()) else {
            return;
        };
        let fixture: Vec<Box<serde_json::value::RawValue>> = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        if fixture.is_empty() {
            say(
                self.options,
                &format!("--blast {path}: not a JSON array of events"),
            );
            return;
        }
        let items: Vec<&str> = fixture.iter().map(|e| e.get()).cycle().take(1000).collect();
        let body = format!("[{}]", items.join(","));
        let agent = delivery::http_agent(Duration::from_secs(30));
        let url = format!("http://127.0.0.1:{}/", sub.port);
        self.telemetry.wait_idle(INVOKE_LIMIT);
        let before = self.output.stdout_len();
        let expected = before + items.len() * self.options.blast_posts;
        let started = Instant::now();
        for _ in 0..self.options.blast_posts {
            let _ = agent.post(&url).send(body.as_bytes());
        }
        let until = started + Duration::from_secs(60);
        self.output
            .wait_stdout(until, |lines| lines.len() >= expected);
        let seconds = started.elapsed().as_secs_f64();
        let events = self.output.stdout_len().saturating_sub(before);
        self.report["blast"] = json!({"events": events, "expected": expected - before, "bytes_per_post": body.len(),
            "seconds": seconds, "events_per_s": events as f64 / seconds});
    }
}
