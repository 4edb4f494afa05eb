//! The decision for one invocation, from its outcome: kept because it is worth reading
//! (failed, timed out, crashed, slow, a cold start), kept or not by the sample, or kept because
//! it could not be decided.

use std::borrow::Cow;

use serde::Deserialize;

use crate::config::filter::{Filtering, Sample};
use crate::telemetry::batch::Event;
use crate::telemetry::echo::fnv1a;
use crate::telemetry::record::{Lenient, MetricsRecord};

/// Why an invocation's events are kept or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Failed, timed out, slow or a cold start: every level is kept.
    Interesting,
    /// Its hold overflowed before the outcome came: kept whole, counted.
    Overflowed,
    /// Its outcome never came: kept whole, counted.
    Missing,
    /// Chosen by the sample: the level floor applies.
    Sampled,
    /// Not chosen: its events reach metrics only.
    Out,
}

/// What a `platform.runtimeDone` or `platform.report` says of the outcome; the rest of the
/// record (spans above all) is skipped unread.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Outcome<'a> {
    #[serde(borrow)]
    status: Lenient<Cow<'a, str>>,
    metrics: Lenient<MetricsRecord>,
}

/// The decision for invocation `id` from its outcome event; `cold` if it was the first, `xray`
/// its trace header's `Sampled=` flag if known.
pub fn decide(
    rules: &Filtering,
    id: &str,
    outcome: &Event,
    cold: bool,
    xray: Option<bool>,
) -> Decision {
    let record: Outcome = serde_json::from_str(outcome.record).unwrap_or_default();
    if record.status.0.as_deref() != Some("success") {
        return Decision::Interesting;
    }
    let duration = record.metrics.0.as_ref().and_then(|m| m.duration_ms.0);
    if let (Some(limit), Some(ms)) = (rules.keep_slower_than_ms, duration)
        && ms > limit
    {
        return Decision::Interesting;
    }
    if cold && rules.keep_cold_starts {
        return Decision::Interesting;
    }
    let keep = match rules.sample {
        Sample::Rate(rate) => sampled_by_hash(id, rate),
        // No trace header to follow: kept (the level floor still applies).
        Sample::Xray => xray.unwrap_or(true),
    };
    if keep {
        Decision::Sampled
    } else {
        Decision::Out
    }
}

/// Whether `rate` of all ids keeps this one: the id's hash, mixed, as a fraction of 2^64.
pub fn sampled_by_hash(id: &str, rate: f64) -> bool {
    let mut h = fnv1a(id.bytes());
    // SplitMix64's finaliser: FNV-1a alone leaves the high bits of similar ids alike.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    ((h >> 11) as f64) / ((1u64 << 53) as f64) < rate
}

/// `Sampled=1` or `Sampled=0` of an X-Ray trace header.
pub fn sampled_flag(header: &str) -> Option<bool> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Sampled="))
        .and_then(|v| match v.trim() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        })
}
