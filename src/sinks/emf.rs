//! CloudWatch metrics in the Embedded Metric Format: JSON documents on stdout that CloudWatch
//! Logs turns into metrics, with no API call and no extra client.
//!
//! One document per invocation, written when its `platform.report` arrives: duration, billed
//! duration, memory, restore duration, cold start, status counts, plus what the invocation's
//! `platform.runtimeDone` carried (produced bytes, response latency and duration, runtime
//! overhead), which arrives before the report and is held by request id until then. One
//! document per `platform.initReport` carries `InitDuration`, so every kind of init (on-demand,
//! provisioned concurrency, SnapStart, LMI) counts once. The relay's own counters go out in a
//! last document at SHUTDOWN. A metric the event does not carry is left out, never zero: LMI's
//! sparse reports give only what they have (SPEC.md §7).
//!
//! The format's rules: root `_aws` with `Timestamp` (epoch ms) and `CloudWatchMetrics`; each
//! metric named in a directive is a number at the root; at most 100 metrics per directive and
//! 30 dimensions per set. Our documents stay far inside those limits.

use serde_json::{Map, Value, json};

use crate::by_request::{ByRequest, PENDING_CAP};
use crate::config::outputs::EmfOutput;
use crate::counters::Counters;
use crate::telemetry::batch::{Event, Kind};
use crate::telemetry::record::PlatformRecord;
use crate::telemetry::time::{event_ms, now_ms};

/// A unit from the EMF/CloudWatch list.
#[derive(Debug, Clone, Copy)]
enum Unit {
    Milliseconds,
    Megabytes,
    Bytes,
    Count,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Megabytes => "Megabytes",
            Unit::Bytes => "Bytes",
            Unit::Count => "Count",
        }
    }
}

/// Metrics of one document, in order, with their root-level values.
#[derive(Default)]
struct Doc {
    metrics: Vec<(&'static str, Unit, f64)>,
    properties: Map<String, Value>,
}

impl Doc {
    fn metric(&mut self, name: &'static str, unit: Unit, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.metrics.push((name, unit, v));
        }
    }

    fn property(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.properties.insert(name.to_string(), json!(v));
        }
    }
}

/// What a runtimeDone said about an invocation.
#[derive(Default)]
struct RuntimeDone {
    produced_bytes: Option<f64>,
    response_latency_ms: Option<f64>,
    response_duration_ms: Option<f64>,
    runtime_overhead_ms: Option<f64>,
}

/// The EMF output's state.
pub struct Emf {
    config: EmfOutput,
    dimensions: Vec<(&'static str, String)>,
    /// runtimeDone records held for their report (a report can be lost).
    held: ByRequest<RuntimeDone>,
}

impl Emf {
    pub fn new(config: EmfOutput, function_name: &str, function_version: &str) -> Emf {
        let mut dimensions = Vec::new();
        for dimension in config.dimension_sets.iter().flatten() {
            let name = dimension.as_str();
            if dimensions.iter().all(|(n, _)| *n != name) {
                let value = match dimension {
                    crate::config::outputs::EmfDimension::FunctionName => function_name,
                    crate::config::outputs::EmfDimension::FunctionVersion => function_version,
                };
                dimensions.push((name, value.to_string()));
            }
        }
        Emf {
            config,
            dimensions,
            held: ByRequest::new(PENDING_CAP),
        }
    }

    /// Appends the documents `event` completes, one line each, to `out`.
    pub fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        let doc = match event.kind {
            Kind::RuntimeDone => {
                self.hold(event);
                return;
            }
            Kind::Report => self.report(event),
            Kind::InitReport => init_report(&event.platform()),
            _ => return,
        };
        let time = event.time_text().and_then(event_ms);
        self.write(doc, time, out);
    }

    /// The relay's own counters, as a last document.
    pub fn counters(&self, c: &Counters, out: &mut Vec<u8>) {
        let mut doc = Doc::default();
        let named = [
            ("EventsReceived", c.events),
            ("EventsRelayed", c.relayed),
            ("EventsDroppedByPlatform", c.platform_dropped_records),
            ("EventsDroppedByBuffer", c.dropped_by_buffer),
            ("FailedSends", c.failed_sends),
            (
                "MalformedPosts",
                c.malformed_posts.saturating_add(c.oversize_posts),
            ),
        ];
        for (name, value) in named {
            doc.metric(name, Unit::Count, Some(value as f64));
        }
        for (_, name, value) in c.filter.named() {
            doc.metric(name, Unit::Count, Some(value as f64));
        }
        self.write(doc, None, out);
    }

    fn hold(&mut self, event: &Event) {
        let record = event.platform();
        let Some(id) = record.request_id.0.as_deref() else {
            return;
        };
        let span = |name: &str| {
            record
                .spans
                .0
                .iter()
                .flatten()
                .find(|s| s.name.0.as_deref() == Some(name))
                .and_then(|s| s.duration_ms.0)
        };
        let done = RuntimeDone {
            produced_bytes: record.metrics.0.as_ref().and_then(|m| m.produced_bytes.0),
            response_latency_ms: span("responseLatency"),
            response_duration_ms: span("responseDuration"),
            runtime_overhead_ms: span("runtimeOverhead"),
        };
        self.held.insert(id, done);
    }

    fn report(&mut self, event: &Event) -> Doc {
        let record = event.platform();
        let mut doc = Doc::default();
        let status = record.status.0.as_deref();
        if let Some(m) = &record.metrics.0 {
            doc.metric("Duration", Unit::Milliseconds, m.duration_ms.0);
            doc.metric("BilledDuration", Unit::Milliseconds, m.billed_duration_ms.0);
            doc.metric("MemorySize", Unit::Megabytes, m.memory_size_mb.0);
            doc.metric("MaxMemoryUsed", Unit::Megabytes, m.max_memory_used_mb.0);
            doc.metric(
                "RestoreDuration",
                Unit::Milliseconds,
                m.restore_duration_ms.0,
            );
            if m.billed_duration_ms.0.is_some() {
                // Only a full (non-LMI) report tells a cold start from a warm one.
                doc.metric(
                    "ColdStart",
                    Unit::Count,
                    Some(f64::from(u8::from(m.init_duration_ms.0.is_some()))),
                );
            }
        }
        if let Some(status) = status {
            doc.metric("Invocations", Unit::Count, Some(1.0));
            let failed = matches!(status, "error" | "failure");
            doc.metric("Errors", Unit::Count, Some(f64::from(u8::from(failed))));
            doc.metric(
                "Timeouts",
                Unit::Count,
                Some(f64::from(u8::from(status == "timeout"))),
            );
        }
        let overhead = record
            .spans
            .0
            .iter()
            .flatten()
            .find(|s| s.name.0.as_deref() == Some("extensionOverhead"));
        doc.metric(
            "ExtensionOverhead",
            Unit::Milliseconds,
            overhead.and_then(|s| s.duration_ms.0),
        );
        if let Some(id) = record.request_id.0.as_deref()
            && let Some(done) = self.held.remove(id)
        {
            doc.metric("ProducedBytes", Unit::Bytes, done.produced_bytes);
            doc.metric(
                "ResponseLatency",
                Unit::Milliseconds,
                done.response_latency_ms,
            );
            doc.metric(
                "ResponseDuration",
                Unit::Milliseconds,
                done.response_duration_ms,
            );
            doc.metric(
                "RuntimeOverhead",
                Unit::Milliseconds,
                done.runtime_overhead_ms,
            );
        }
        doc.property("RequestId", record.request_id.0.as_deref());
        doc.property("Status", status);
        doc.property("ErrorType", record.error_type.0.as_deref());
        doc
    }

    /// One EMF document as one line; nothing if there is no metric.
    fn write(&self, doc: Doc, time_ms: Option<i64>, out: &mut Vec<u8>) {
        if doc.metrics.is_empty() {
            return;
        }
        let timestamp = time_ms.unwrap_or_else(now_ms);
        let mut root = doc.properties;
        for (name, value) in &self.dimensions {
            root.insert((*name).to_string(), json!(value));
        }
        let mut definitions = Vec::new();
        for (name, unit, value) in &doc.metrics {
            root.insert((*name).to_string(), json!(value));
            definitions.push(json!({"Name": name, "Unit": unit.as_str()}));
        }
        let sets: Vec<Vec<&str>> = self
            .config
            .dimension_sets
            .iter()
            .map(|set| set.iter().map(|d| d.as_str()).collect())
            .collect();
        root.insert(
            "_aws".to_string(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.config.namespace,
                    "Dimensions": sets,
                    "Metrics": definitions,
                }],
            }),
        );
        if serde_json::to_writer(&mut *out, &Value::Object(root)).is_ok() {
            out.push(b'\n');
        }
    }
}

fn init_report(record: &PlatformRecord) -> Doc {
    let mut doc = Doc::default();
    doc.metric(
        "InitDuration",
        Unit::Milliseconds,
        record.metrics.0.as_ref().and_then(|m| m.duration_ms.0),
    );
    doc.property(
        "InitializationType",
        record.initialization_type.0.as_deref(),
    );
    doc.property("Phase", record.phase.0.as_deref());
    doc.property("Status", record.status.0.as_deref());
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::outputs::EmfDimension;
    use crate::telemetry::batch::parse;

    fn emf() -> Emf {
        let config = EmfOutput {
            namespace: "TelemetryRelay".to_string(),
            dimension_sets: vec![
                vec![EmfDimension::FunctionName],
                vec![EmfDimension::FunctionName, EmfDimension::FunctionVersion],
            ],
        };
        Emf::new(config, "checkout-api", "$LATEST")
    }

    fn documents(fixture: &str) -> Vec<Value> {
        let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let parsed = parse(std::fs::read(path).unwrap());
        let mut emf = emf();
        let mut out = Vec::new();
        for event in parsed.batch.events() {
            emf.event(&event, &mut out);
        }
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn names(doc: &Value) -> Vec<String> {
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The format's own rules, checked on every document (the JSON schema check is in tests/).
    fn assert_valid(doc: &Value) {
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_i64(), "{doc}");
        let directive = &aws["CloudWatchMetrics"][0];
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        for m in metrics {
            assert!(doc[m["Name"].as_str().unwrap()].is_number(), "{doc}");
        }
        for set in directive["Dimensions"].as_array().unwrap() {
            let set = set.as_array().unwrap();
            assert!(set.len() <= 30);
            for d in set {
                assert!(doc[d.as_str().unwrap()].is_string(), "{doc}");
            }
        }
    }

    #[test]
    fn cold_start_gives_an_init_document_and_a_full_invocation_document() {
        let docs = documents("ondemand-cold-start.json");
        assert_eq!(docs.len(), 2);
        docs.iter().for_each(assert_valid);
        assert_eq!(names(&docs[0]), ["InitDuration"]);
        assert_eq!(docs[0]["InitializationType"], "on-demand");
        let invoke = &docs[1];
        for name in [
            "Duration",
            "BilledDuration",
            "MemorySize",
            "MaxMemoryUsed",
            "ColdStart",
            "Invocations",
            "Errors",
            "Timeouts",
            "ExtensionOverhead",
            "ProducedBytes",
            "ResponseLatency",
            "ResponseDuration",
        ] {
            assert!(
                names(invoke).contains(&name.to_string()),
                "{name} missing: {invoke}"
            );
        }
        assert_eq!(invoke["ColdStart"], 1.0);
        assert_eq!(invoke["FunctionName"], "checkout-api");
        assert_eq!(invoke["FunctionVersion"], "$LATEST");
        // The metric's time is the report's own time, not when we wrote it.
        let fixture: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/ondemand-cold-start.json"
        ))
        .unwrap();
        let report = fixture
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "platform.report")
            .unwrap();
        assert_eq!(
            invoke["_aws"]["Timestamp"].as_i64(),
            event_ms(report["time"].as_str().unwrap())
        );
    }

    #[test]
    fn statuses_count_errors_and_timeouts() {
        let docs = documents("ondemand-warm-invokes.json");
        docs.iter().for_each(assert_valid);
        let invokes: Vec<&Value> = docs
            .iter()
            .filter(|d| d.get("Invocations").is_some())
            .collect();
        assert!(
            invokes
                .iter()
                .any(|d| d["Errors"] == 1.0 && d["Status"] == "error")
        );
        assert!(
            invokes
                .iter()
                .any(|d| d["Timeouts"] == 1.0 && d["ErrorType"] == "Sandbox.Timedout")
        );
        assert!(
            invokes
                .iter()
                .all(|d| d["ColdStart"] == 0.0 || d["ColdStart"] == 1.0)
        );
    }

    #[test]
    fn lmi_sparse_reports_carry_only_what_they_have() {
        let docs = documents("lmi.json");
        docs.iter().for_each(assert_valid);
        let invocations: Vec<&Value> = docs
            .iter()
            .filter(|d| d.get("Invocations").is_some())
            .collect();
        let fixture = parse(include_bytes!("../../tests/fixtures/lmi.json").to_vec());
        let reports = fixture
            .batch
            .events()
            .filter(|e| e.kind == Kind::Report)
            .count();
        assert!(reports >= 2);
        assert_eq!(invocations.len(), reports, "one document per report");
        for doc in invocations {
            let names = names(doc);
            for absent in ["BilledDuration", "MemorySize", "MaxMemoryUsed", "ColdStart"] {
                assert!(!names.contains(&absent.to_string()), "{absent} in {doc}");
            }
            assert!(names.contains(&"Duration".to_string()));
        }
    }

    #[test]
    fn snapstart_restore_duration_is_reported() {
        let docs = documents("snapstart-restore.json");
        docs.iter().for_each(assert_valid);
        assert!(docs.iter().any(|d| d["RestoreDuration"].is_number()));
    }

    #[test]
    fn counters_document() {
        let mut out = Vec::new();
        let counters = Counters {
            events: 7,
            ..Counters::default()
        };
        emf().counters(&counters, &mut out);
        let doc: Value = serde_json::from_slice(&out).unwrap();
        assert_valid(&doc);
        assert_eq!(doc["EventsReceived"], 7.0);
    }
}
