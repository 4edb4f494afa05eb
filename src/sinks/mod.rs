//! Outputs, as formats: each sink turns events into bytes and knows nothing of channels,
//! threads or the network. stdout and EMF are printed by the relay; the network sinks are
//! [`Encoder`]s whose request bodies the delivery buffer hands to a sender thread, with the
//! [`Endpoint`] that says where they go. [`build`] makes every sink the config asks for.

pub mod emf;
pub mod http;
pub mod otlp;
pub mod stdout;

use std::time::Duration;

use crate::config::Config;
use crate::config::otlp::{Protocol, Signal};
use crate::config::outputs::Destination;
use crate::counters::Counters;
use crate::telemetry::batch::{Audience, Event};
use otlp::wire::Encoding;

/// Turns events into one network output's request bodies.
pub trait Encoder: Send {
    fn content_type(&self) -> &'static str;
    /// Whether this output carries `event` at all (its counters count only those). Must not
    /// depend on the encoder's state: it is also asked of events that were never encoded.
    fn carries(&self, _event: &Event) -> bool {
        true
    }
    /// Which events it is for: records (the default), spans or metrics. An event outside its
    /// audience is not carried; it is shown to [`skipped`](Self::skipped) instead.
    fn audience(&self) -> Audience {
        Audience::RECORDS
    }
    /// An event outside this output's audience went by (a sampled-out invocation's start, say).
    fn skipped(&mut self, _event: &Event) {}
    /// Appends what `event` completes; returns whether anything was written.
    fn event(&mut self, event: &Event, out: &mut Vec<u8>) -> bool;
    /// INVOKE `request_id` arrived, with its X-Ray trace header if traced.
    fn invoked(&mut self, _request_id: &str, _xray: Option<&str>) {}
    /// The relay's counters as they are now, before a request is encoded.
    fn counters(&mut self, _counters: &Counters) {}
    /// Opens and closes a request body around the events.
    fn start(&mut self, _out: &mut Vec<u8>) {}
    fn finish(&mut self, _out: &mut Vec<u8>) {}
    /// An output that aggregates (metrics) exports on this interval: its [`event`](Self::event)
    /// only folds events in, writing nothing, and [`export`](Self::export) writes what was
    /// folded and not yet settled.
    fn interval(&self) -> Option<Duration> {
        None
    }
    /// Writes an export of everything folded and not yet settled; false if there is none.
    fn export(&mut self, _out: &mut Vec<u8>) -> bool {
        false
    }
    /// The last export was accepted or refused for good: it is not to be sent again.
    fn settled(&mut self) {}
}

/// Where and how one network output sends (its certificate files are read by the sender at
/// its first request), and the content type of its bodies.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub to: Destination,
    pub content_type: &'static str,
}

/// A network output: its name in logs and the summary, its format and its destination.
pub struct NetworkSink {
    pub name: &'static str,
    pub encoder: Box<dyn Encoder>,
    pub endpoint: Endpoint,
}

/// Every sink the config asks for.
pub struct Sinks {
    pub stdout: Option<stdout::StdoutSink>,
    pub emf: Option<emf::Emf>,
    pub network: Vec<NetworkSink>,
}

/// Builds the sinks; cheap (no client, no I/O), so it may run at start.
pub fn build(config: &Config) -> Sinks {
    let mut network = Vec::new();
    let mut add = |name, encoder: Box<dyn Encoder>, to: &Destination| {
        let endpoint = Endpoint {
            to: to.clone(),
            content_type: encoder.content_type(),
        };
        network.push(NetworkSink {
            name,
            encoder,
            endpoint,
        });
    };
    if let Some(to) = &config.outputs.http {
        add("http", Box::new(http::Ndjson), to);
    }
    // Firehose takes the same lines; its sender makes them into `PutRecordBatch` records.
    if let Some(to) = &config.outputs.firehose {
        add("firehose", Box::new(http::Ndjson), to);
    }
    if let Some(o) = &config.outputs.otlp {
        let common = |s: &Signal| {
            let encoding = match s.protocol {
                Protocol::Protobuf => Encoding::Protobuf,
                Protocol::Json => Encoding::Json,
            };
            otlp::Common::new(config, encoding)
        };
        if let Some(s) = &o.logs {
            let logs = otlp::logs::Logs::new(common(s), config.managed_instances);
            add("otlp-logs", Box::new(logs), &s.to);
        }
        if let Some(s) = &o.metrics {
            let metrics = otlp::metrics::Metrics::new(common(s), o.metric_export_interval);
            add("otlp-metrics", Box::new(metrics), &s.to);
        }
        if let Some(s) = &o.traces {
            let traces = otlp::traces::Traces::new(common(s));
            add("otlp-traces", Box::new(traces), &s.to);
        }
    }
    Sinks {
        stdout: stdout::StdoutSink::new(config.stdout_format),
        emf: config
            .outputs
            .emf
            .clone()
            .map(|emf| emf::Emf::new(emf, &config.function_name, &config.function_version)),
        network,
    }
}
