//! OTLP metrics from platform reports, named by the FaaS semantic conventions: invocations,
//! errors, timeouts and cold starts as monotonic sums, invoke, init and billed durations (in
//! seconds) and memory used (bytes) as histograms.
//!
//! Each request carries the deltas of the reports in it, so temporality is DELTA, from the
//! earliest to the latest event time in the request. A request that is retried re-encodes the
//! same reports, so nothing is counted twice; one that is dropped loses only its own window.
//! A metric no report in the window carried is not sent (LMI reports carry only a duration).

use super::wire::{Field, State, Writer};
use super::{Common, Envelope, nanos, now_ms, time_ms};
use crate::counters::Counters;
use crate::sinks::Encoder;
use crate::telemetry::batch::{Event, Kind};

const DELTA: u32 = 1;
const CUMULATIVE: u32 = 2;
const SECONDS_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const BYTES_BOUNDS: [f64; 7] = [
    67_108_864.0,
    134_217_728.0,
    268_435_456.0,
    536_870_912.0,
    1_073_741_824.0,
    2_147_483_648.0,
    4_294_967_296.0,
];

const ENVELOPE: Envelope = Envelope {
    resources: Field("resourceMetrics", 1),
    scopes: Field("scopeMetrics", 2),
    items: Field("metrics", 2),
};
const NAME: Field = Field("name", 1);
const UNIT: Field = Field("unit", 3);
const SUM: Field = Field("sum", 7);
const HISTOGRAM: Field = Field("histogram", 9);
/// `Sum.dataPoints` and `Histogram.dataPoints`.
const DATA_POINTS: Field = Field("dataPoints", 1);
const TEMPORALITY: Field = Field("aggregationTemporality", 2);
const IS_MONOTONIC: Field = Field("isMonotonic", 3);
const START_TIME: Field = Field("startTimeUnixNano", 2);
const TIME: Field = Field("timeUnixNano", 3);
const AS_INT: Field = Field("asInt", 6);
const COUNT: Field = Field("count", 4);
const HISTOGRAM_SUM: Field = Field("sum", 5);
const BUCKET_COUNTS: Field = Field("bucketCounts", 6);
const EXPLICIT_BOUNDS: Field = Field("explicitBounds", 7);
const MIN: Field = Field("min", 11);
const MAX: Field = Field("max", 12);

/// A monotonic sum with one data point.
fn sum(w: &mut Writer, name: &str, unit: &str, temporality: u32, window: (i64, i64), value: u64) {
    w.item(|w| {
        w.string(NAME, name);
        w.string(UNIT, unit);
        w.message(SUM, |w| {
            w.list(DATA_POINTS, |w| {
                w.item(|w| {
                    w.fixed64(START_TIME, nanos(window.0));
                    w.fixed64(TIME, nanos(window.1));
                    w.sfixed64(AS_INT, i64::try_from(value).unwrap_or(i64::MAX));
                });
            });
            w.number(TEMPORALITY, temporality);
            w.boolean(IS_MONOTONIC, true);
        });
    });
}

#[derive(Default)]
struct Histogram {
    values: Vec<f64>,
}

impl Histogram {
    /// The histogram as a metric with one delta data point; nothing if it has no values.
    fn write(&self, w: &mut Writer, name: &str, unit: &str, bounds: &[f64], window: (i64, i64)) {
        if self.values.is_empty() {
            return;
        }
        let mut buckets = vec![0u64; bounds.len() + 1];
        for v in &self.values {
            let i = bounds.iter().position(|b| v <= b).unwrap_or(bounds.len());
            if let Some(b) = buckets.get_mut(i) {
                *b += 1;
            }
        }
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        w.item(|w| {
            w.string(NAME, name);
            w.string(UNIT, unit);
            w.message(HISTOGRAM, |w| {
                w.list(DATA_POINTS, |w| {
                    w.item(|w| {
                        w.fixed64(START_TIME, nanos(window.0));
                        w.fixed64(TIME, nanos(window.1));
                        w.fixed64(COUNT, self.values.len() as u64);
                        w.double(HISTOGRAM_SUM, self.values.iter().sum::<f64>());
                        w.fixed64s(BUCKET_COUNTS, &buckets);
                        w.doubles(EXPLICIT_BOUNDS, bounds);
                        w.double(MIN, min);
                        w.double(MAX, max);
                    });
                });
                w.number(TEMPORALITY, DELTA);
            });
        });
    }
}

/// The metrics signal's encoder: accumulates a request's reports, writes them at its end.
pub struct Metrics {
    common: Common,
    window: Option<(i64, i64)>,
    counts: [(&'static str, &'static str, u64); 4],
    seen_status: bool,
    seen_cold: bool,
    invoke: Histogram,
    billed: Histogram,
    memory: Histogram,
    init: Histogram,
    /// The relay's own counters, cumulative since it started.
    counters: Counters,
    started_ms: i64,
}

impl Metrics {
    pub fn new(common: Common) -> Metrics {
        Metrics {
            common,
            window: None,
            counts: [
                ("faas.invocations", "{invocation}", 0),
                ("faas.errors", "{error}", 0),
                ("faas.timeouts", "{timeout}", 0),
                ("faas.coldstarts", "{coldstart}", 0),
            ],
            seen_status: false,
            seen_cold: false,
            invoke: Histogram::default(),
            billed: Histogram::default(),
            memory: Histogram::default(),
            init: Histogram::default(),
            counters: Counters::default(),
            started_ms: now_ms(),
        }
    }

    fn widen(&mut self, time: Option<i64>) {
        if let Some(t) = time {
            let (start, end) = self.window.unwrap_or((t, t));
            self.window = Some((start.min(t), end.max(t)));
        }
    }

    fn report(&mut self, event: &Event) {
        let record = event.platform();
        if let Some(status) = record.status.0.as_deref() {
            self.seen_status = true;
            self.counts[0].2 += 1;
            self.counts[1].2 += u64::from(matches!(status, "error" | "failure"));
            self.counts[2].2 += u64::from(status == "timeout");
        }
        if let Some(m) = &record.metrics.0 {
            if let Some(d) = m.duration_ms.0 {
                self.invoke.values.push(d / 1000.0);
            }
            if let Some(b) = m.billed_duration_ms.0 {
                self.billed.values.push(b / 1000.0);
                // Only a full (non-LMI) report tells a cold start from a warm one.
                self.seen_cold = true;
                self.counts[3].2 += u64::from(m.init_duration_ms.0.is_some());
            }
            if let Some(mb) = m.max_memory_used_mb.0 {
                self.memory.values.push(mb * 1_048_576.0);
            }
        }
    }

    fn reset(&mut self) {
        let (counters, started_ms) = (self.counters, self.started_ms);
        *self = Metrics::new(self.common.clone());
        self.counters = counters;
        self.started_ms = started_ms;
    }

    /// The relay's counters as cumulative monotonic sums.
    fn relay_counters(&self, w: &mut Writer, end_ms: i64) {
        let c = &self.counters;
        let named = [
            ("telemetry_relay.events.received", "{event}", c.events),
            ("telemetry_relay.events.relayed", "{event}", c.relayed),
            (
                "telemetry_relay.events.dropped_by_platform",
                "{event}",
                c.platform_dropped_records,
            ),
            (
                "telemetry_relay.events.dropped_by_buffer",
                "{event}",
                c.dropped_by_buffer,
            ),
            ("telemetry_relay.sends.failed", "{request}", c.failed_sends),
            (
                "telemetry_relay.posts.malformed",
                "{request}",
                c.malformed_posts.saturating_add(c.oversize_posts),
            ),
        ];
        let window = (self.started_ms, end_ms.max(self.started_ms));
        for (name, unit, value) in named {
            sum(w, name, unit, CUMULATIVE, window, value);
        }
    }
}

impl Encoder for Metrics {
    fn content_type(&self) -> &'static str {
        self.common.encoding.content_type()
    }

    fn carries(&self, event: &Event) -> bool {
        matches!(event.kind, Kind::Report | Kind::InitReport)
    }

    fn counters(&mut self, counters: &Counters) {
        self.counters = *counters;
    }

    fn event(&mut self, event: &Event, _first: bool, _out: &mut Vec<u8>) -> bool {
        match event.kind {
            Kind::Report => self.report(event),
            Kind::InitReport => match event.platform().metrics.0.and_then(|m| m.duration_ms.0) {
                Some(d) => self.init.values.push(d / 1000.0),
                None => return false,
            },
            _ => return false,
        }
        // A report without a readable time still counts: it is stamped when it is read.
        self.widen(Some(time_ms(event.time_text()).unwrap_or_else(now_ms)));
        true
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let Some(window) = self.window else {
            self.reset();
            return;
        };
        let mut request = State::new(self.common.encoding);
        let w = &mut request.on(out);
        self.common.open(&ENVELOPE, w);
        for (i, (name, unit, value)) in self.counts.iter().enumerate() {
            let carried = if i == 3 {
                self.seen_cold
            } else {
                self.seen_status
            };
            if carried {
                sum(w, name, unit, DELTA, window, *value);
            }
        }
        let seconds = &SECONDS_BOUNDS;
        self.invoke
            .write(w, "faas.invoke_duration", "s", seconds, window);
        self.init
            .write(w, "faas.init_duration", "s", seconds, window);
        self.billed
            .write(w, "aws.lambda.billed_duration", "s", seconds, window);
        self.memory
            .write(w, "faas.mem_usage", "By", &BYTES_BOUNDS, window);
        self.relay_counters(w, window.1.max(now_ms()));
        w.end();
        self.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::otlp::tests_support::{common, encode, encode_body};
    use serde_json::Value;

    fn metrics(fixture: &str) -> Vec<Value> {
        let body = encode(&mut Metrics::new(common()), fixture);
        let request: Value = serde_json::from_slice(&body).unwrap();
        request["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn find<'a>(metrics: &'a [Value], name: &str) -> Option<&'a Value> {
        metrics.iter().find(|m| m["name"] == name)
    }

    #[test]
    fn warm_invokes_count_and_measure() {
        let m = metrics("ondemand-warm-invokes.json");
        let count = |name: &str| {
            find(&m, name).unwrap()["sum"]["dataPoints"][0]["asInt"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(count("faas.errors"), "1");
        assert_eq!(count("faas.timeouts"), "1");
        let duration = find(&m, "faas.invoke_duration").unwrap();
        let point = &duration["histogram"]["dataPoints"][0];
        let buckets: u64 = point["bucketCounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(buckets.to_string(), point["count"].as_str().unwrap());
        assert_eq!(duration["histogram"]["aggregationTemporality"], DELTA);
    }

    #[test]
    fn lmi_windows_carry_only_what_lmi_reports_have() {
        let m = metrics("lmi.json");
        assert!(
            find(&m, "faas.invocations").is_some() && find(&m, "faas.invoke_duration").is_some()
        );
        for absent in [
            "faas.coldstarts",
            "aws.lambda.billed_duration",
            "faas.mem_usage",
        ] {
            assert!(find(&m, absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn the_relay_counters_are_cumulative_sums() {
        let mut encoder = Metrics::new(common());
        encoder.counters(&Counters {
            events: 12,
            malformed_posts: 1,
            ..Counters::default()
        });
        let body = encode(&mut encoder, "ondemand-cold-start.json");
        let request: Value = serde_json::from_slice(&body).unwrap();
        let m = request["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
            .as_array()
            .unwrap()
            .clone();
        let received = find(&m, "telemetry_relay.events.received").unwrap();
        assert_eq!(received["sum"]["aggregationTemporality"], CUMULATIVE);
        assert_eq!(received["sum"]["dataPoints"][0]["asInt"], "12");
        assert_eq!(
            find(&m, "telemetry_relay.posts.malformed").unwrap()["sum"]["dataPoints"][0]["asInt"],
            "1"
        );
    }

    #[test]
    fn cold_start_and_init_duration() {
        let m = metrics("ondemand-cold-start.json");
        assert_eq!(
            find(&m, "faas.coldstarts").unwrap()["sum"]["dataPoints"][0]["asInt"],
            "1"
        );
        assert!(find(&m, "faas.init_duration").is_some());
    }

    #[test]
    fn a_report_without_a_readable_time_still_makes_a_request() {
        // Found by the fuzzer: the request said it carried the report, and its body was empty.
        let mut encoder = Metrics::new(common());
        let body = encode_body(
            &mut encoder,
            br#"[{"time":[],"type":"platform.report","record":{"requestId":"r","metrics":{"durationMs":5}}}]"#
                .to_vec(),
        );
        let request: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            find(
                request["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
                    .as_array()
                    .unwrap(),
                "faas.invoke_duration"
            )
            .is_some()
        );
    }
}
