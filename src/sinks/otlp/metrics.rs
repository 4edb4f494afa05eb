//! OTLP metrics from platform reports, named by the FaaS semantic conventions: invocations,
//! errors, timeouts and cold starts as monotonic sums, invoke, init and billed durations (in
//! seconds) and memory used (bytes) as histograms.
//!
//! Reports are aggregated, as an SDK's periodic reader does, and exported on
//! `OTEL_METRIC_EXPORT_INTERVAL` (the delivery pipeline decides when: see `delivery`). Each
//! export carries the deltas since the previous one, so temporality is DELTA, from the
//! earliest to the latest report time it covers. An export that fails and is to be retried
//! stays here, unacknowledged, and the next export carries it merged with what came since, so
//! nothing is counted twice; one that is refused loses only its own window. A metric no
//! report in the window carried is not sent (LMI reports carry only a duration). Aggregates
//! are bucket counts, not values: memory stays the same whatever the interval.

use std::time::Duration;

use super::wire::{Field, State, Writer};
use super::{Common, Envelope, nanos, now_ms, time_ms};
use crate::counters::Counters;
use crate::sinks::Encoder;
use crate::telemetry::batch::{Audience, Event, Kind};

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

/// A metric of one data point over `window`: its name and unit, then `data` (`SUM` or
/// `HISTOGRAM`) holding the point, which `point` writes after the window, and the
/// temporality; `monotonic` for sums.
struct OnePoint<'a> {
    name: &'a str,
    unit: &'a str,
    data: Field,
    temporality: u32,
    monotonic: bool,
}

impl OnePoint<'_> {
    fn write(&self, w: &mut Writer, window: (i64, i64), point: impl FnOnce(&mut Writer)) {
        w.item(|w| {
            w.string(NAME, self.name);
            w.string(UNIT, self.unit);
            w.message(self.data, |w| {
                w.list(DATA_POINTS, |w| {
                    w.item(|w| {
                        w.fixed64(START_TIME, nanos(window.0));
                        w.fixed64(TIME, nanos(window.1));
                        point(w);
                    });
                });
                w.number(TEMPORALITY, self.temporality);
                if self.monotonic {
                    w.boolean(IS_MONOTONIC, true);
                }
            });
        });
    }
}

/// A monotonic sum with one data point.
fn sum(w: &mut Writer, name: &str, unit: &str, temporality: u32, window: (i64, i64), value: u64) {
    let metric = OnePoint {
        name,
        unit,
        data: SUM,
        temporality,
        monotonic: true,
    };
    metric.write(w, window, |w| {
        w.sfixed64(AS_INT, i64::try_from(value).unwrap_or(i64::MAX));
    });
}

/// A histogram's aggregate over a window.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Histogram {
    fn record(&mut self, value: f64, bounds: &[f64]) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; bounds.len() + 1];
            self.min = value;
            self.max = value;
        }
        let i = bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(bounds.len());
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        for (b, o) in self.buckets.iter_mut().zip(&other.buckets) {
            *b += o;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The histogram as a metric with one delta data point; nothing if it is empty.
    fn write(&self, w: &mut Writer, name: &str, unit: &str, bounds: &[f64], window: (i64, i64)) {
        if self.count == 0 {
            return;
        }
        let metric = OnePoint {
            name,
            unit,
            data: HISTOGRAM,
            temporality: DELTA,
            monotonic: false,
        };
        metric.write(w, window, |w| {
            w.fixed64(COUNT, self.count);
            w.double(HISTOGRAM_SUM, self.sum);
            w.fixed64s(BUCKET_COUNTS, &self.buckets);
            w.doubles(EXPLICIT_BOUNDS, bounds);
            w.double(MIN, self.min);
            w.double(MAX, self.max);
        });
    }
}

/// What the reports of one window add up to.
#[derive(Debug, Clone, Default)]
struct Window {
    /// Earliest and latest report time; `None` while empty.
    span: Option<(i64, i64)>,
    invocations: u64,
    errors: u64,
    timeouts: u64,
    coldstarts: u64,
    /// Whether any report had a status (the three counts are then meaningful).
    seen_status: bool,
    /// Whether any report could tell a cold start (only full, non-LMI reports can).
    seen_cold: bool,
    invoke: Histogram,
    billed: Histogram,
    memory: Histogram,
    init: Histogram,
}

impl Window {
    fn widen(&mut self, t: i64) {
        let (start, end) = self.span.unwrap_or((t, t));
        self.span = Some((start.min(t), end.max(t)));
    }

    fn report(&mut self, event: &Event) {
        let record = event.platform();
        if let Some(status) = record.status.0.as_deref() {
            self.seen_status = true;
            self.invocations += 1;
            self.errors += u64::from(matches!(status, "error" | "failure"));
            self.timeouts += u64::from(status == "timeout");
        }
        if let Some(m) = &record.metrics.0 {
            if let Some(d) = m.duration_ms.0 {
                self.invoke.record(d / 1000.0, &SECONDS_BOUNDS);
            }
            if let Some(b) = m.billed_duration_ms.0 {
                self.billed.record(b / 1000.0, &SECONDS_BOUNDS);
                self.seen_cold = true;
                self.coldstarts += u64::from(m.init_duration_ms.0.is_some());
            }
            if let Some(mb) = m.max_memory_used_mb.0 {
                self.memory.record(mb * 1_048_576.0, &BYTES_BOUNDS);
            }
        }
    }

    fn merge(&mut self, other: &Window) {
        if let Some((start, end)) = other.span {
            self.widen(start);
            self.widen(end);
        }
        self.invocations += other.invocations;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.coldstarts += other.coldstarts;
        self.seen_status |= other.seen_status;
        self.seen_cold |= other.seen_cold;
        self.invoke.merge(&other.invoke);
        self.billed.merge(&other.billed);
        self.memory.merge(&other.memory);
        self.init.merge(&other.init);
    }

    fn write(&self, w: &mut Writer, span: (i64, i64)) {
        if self.seen_status {
            sum(
                w,
                "faas.invocations",
                "{invocation}",
                DELTA,
                span,
                self.invocations,
            );
            sum(w, "faas.errors", "{error}", DELTA, span, self.errors);
            sum(w, "faas.timeouts", "{timeout}", DELTA, span, self.timeouts);
        }
        if self.seen_cold {
            sum(
                w,
                "faas.coldstarts",
                "{coldstart}",
                DELTA,
                span,
                self.coldstarts,
            );
        }
        let seconds = &SECONDS_BOUNDS;
        self.invoke
            .write(w, "faas.invoke_duration", "s", seconds, span);
        self.init.write(w, "faas.init_duration", "s", seconds, span);
        self.billed
            .write(w, "aws.lambda.billed_duration", "s", seconds, span);
        self.memory
            .write(w, "faas.mem_usage", "By", &BYTES_BOUNDS, span);
    }
}

/// The metrics signal's encoder: aggregates reports into a window and exports it when the
/// delivery pipeline asks.
pub struct Metrics {
    common: Common,
    interval: Duration,
    current: Window,
    /// Exported, and not yet accepted or refused.
    unacked: Option<Window>,
    /// The relay's own counters, cumulative since it started.
    counters: Counters,
    started_ms: i64,
}

impl Metrics {
    pub fn new(common: Common, interval: Duration) -> Metrics {
        Metrics {
            common,
            interval,
            current: Window::default(),
            unacked: None,
            counters: Counters::default(),
            started_ms: now_ms(),
        }
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
        for (name, _, value) in c.filter.named() {
            let unit = if name.starts_with("invocations") {
                "{invocation}"
            } else if name.starts_with("redactions") {
                "{redaction}"
            } else {
                "{record}"
            };
            let name = format!("telemetry_relay.filter.{name}");
            sum(w, &name, unit, CUMULATIVE, window, value);
        }
    }
}

impl Encoder for Metrics {
    fn content_type(&self) -> &'static str {
        self.common.encoding.content_type()
    }

    fn audience(&self) -> Audience {
        Audience::METRICS
    }

    fn carries(&self, event: &Event) -> bool {
        matches!(event.kind, Kind::Report | Kind::InitReport)
    }

    fn counters(&mut self, counters: &Counters) {
        self.counters = *counters;
    }

    fn interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn event(&mut self, event: &Event, _out: &mut Vec<u8>) -> bool {
        match event.kind {
            Kind::Report => self.current.report(event),
            Kind::InitReport => match event.platform().metrics.0.and_then(|m| m.duration_ms.0) {
                Some(d) => self.current.init.record(d / 1000.0, &SECONDS_BOUNDS),
                None => return false,
            },
            _ => return false,
        }
        // A report without a readable time still counts: it is stamped when it is read.
        self.current
            .widen(time_ms(event.time_text()).unwrap_or_else(now_ms));
        true
    }

    fn export(&mut self, out: &mut Vec<u8>) -> bool {
        let mut window = self.unacked.take().unwrap_or_default();
        window.merge(&std::mem::take(&mut self.current));
        let Some(span) = window.span else {
            return false;
        };
        let mut request = State::new(self.common.encoding);
        let w = &mut request.on(out);
        self.common.open(&ENVELOPE, w);
        window.write(w, span);
        self.relay_counters(w, span.1.max(now_ms()));
        w.end();
        self.unacked = Some(window);
        true
    }

    fn settled(&mut self) {
        self.unacked = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::otlp::tests_support::{common, encode, encode_body};
    use serde_json::Value;

    fn metrics(fixture: &str) -> Vec<Value> {
        let body = encode(&mut Metrics::new(common(), Duration::ZERO), fixture);
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
        let mut encoder = Metrics::new(common(), Duration::ZERO);
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
    fn an_unsettled_export_goes_again_merged_with_what_came_since() {
        let invocations = |body: &[u8]| -> u64 {
            let request: Value = serde_json::from_slice(body).unwrap();
            let m = request["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
                .as_array()
                .unwrap()
                .clone();
            let point = &find(&m, "faas.invocations").unwrap()["sum"]["dataPoints"][0];
            point["asInt"].as_str().unwrap().parse().unwrap()
        };
        let mut encoder = Metrics::new(common(), Duration::ZERO);
        let first = encode(&mut encoder, "ondemand-warm-invokes.json");
        let n = invocations(&first);
        assert!(n > 0);
        // Not settled (a retry): the next export carries both windows.
        let second = encode(&mut encoder, "ondemand-warm-invokes.json");
        assert_eq!(invocations(&second), 2 * n);
        encoder.settled();
        let third = encode(&mut encoder, "ondemand-warm-invokes.json");
        assert_eq!(invocations(&third), n);
        encoder.settled();
        let mut out = Vec::new();
        assert!(
            !encoder.export(&mut out) && out.is_empty(),
            "nothing held, nothing sent"
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
        let mut encoder = Metrics::new(common(), Duration::ZERO);
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
