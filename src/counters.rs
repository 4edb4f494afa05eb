//! Every counter the extension keeps, in one place: the relay's ([`Counters`]) and each network
//! output's ([`OutputCounters`]). Counters only grow, and they saturate instead of wrapping:
//! some are fed by numbers from outside (`platform.logsDropped`), and a counter that wraps
//! would report a loss as nothing.
//!
//! Each output's counters satisfy, once the relay has finished,
//! `received = sent + dropped + rejected`: an event an output carries is sent, refused for good
//! by its backend, or dropped (evicted from the full buffer, or still unsent at the hard stop).

/// Adds `n` to `counter`, stopping at `u64::MAX`.
pub fn add(counter: &mut u64, n: u64) {
    *counter = counter.saturating_add(n);
}

/// The relay's counters, reported in the shutdown summary and by the EMF and OTLP outputs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub invokes: u64,
    pub posts: u64,
    /// Readable events received.
    pub events: u64,
    /// Events written to stdout.
    pub relayed: u64,
    pub malformed_posts: u64,
    pub bad_events: u64,
    pub oversize_posts: u64,
    /// Requests answered without being read: wrong path or method, a stalled or failed body.
    pub refused_requests: u64,
    pub own_echoes: u64,
    /// What the platform told us it dropped (`platform.logsDropped`).
    pub platform_dropped_records: u64,
    pub write_errors: u64,
    pub reports_missing_at_shutdown: u64,
    /// Over all network outputs: events dropped from the full buffer or unsent at the end.
    pub dropped_by_buffer: u64,
    /// Over all network outputs: requests that failed.
    pub failed_sends: u64,
    /// What sampling, the level floor, the dropped types and redaction did.
    pub filter: FilterCounters,
}

/// Every decision the filter made, counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FilterCounters {
    pub invocations_sampled_out: u64,
    /// Records (lines and platform events) of sampled-out invocations, not relayed.
    pub records_sampled_out: u64,
    pub dropped_by_level: u64,
    pub dropped_by_type: u64,
    /// Records kept because their invocation's hold overflowed.
    pub kept_hold_overflow: u64,
    /// Records kept because their invocation's outcome never came.
    pub kept_outcome_missing: u64,
    /// Redactions per detector, in the order of `config::filter::Detector`.
    pub redactions: [u64; 7],
}

impl FilterCounters {
    /// `(snake_case name, CamelCase name, value)` of each counter, for the summary, OTLP and
    /// EMF; the redactions as `redactions_<detector>`.
    pub fn named(&self) -> [(&'static str, &'static str, u64); 13] {
        let r = self.redactions;
        [
            (
                "invocations_sampled_out",
                "InvocationsSampledOut",
                self.invocations_sampled_out,
            ),
            (
                "records_sampled_out",
                "RecordsSampledOut",
                self.records_sampled_out,
            ),
            (
                "records_dropped_by_level",
                "RecordsDroppedByLevel",
                self.dropped_by_level,
            ),
            (
                "records_dropped_by_type",
                "RecordsDroppedByType",
                self.dropped_by_type,
            ),
            (
                "records_kept_hold_overflow",
                "RecordsKeptHoldOverflow",
                self.kept_hold_overflow,
            ),
            (
                "records_kept_outcome_missing",
                "RecordsKeptOutcomeMissing",
                self.kept_outcome_missing,
            ),
            // In the order of `config::filter::Detector`.
            ("redactions_aws_key", "RedactionsAwsKey", r[0]),
            ("redactions_secret", "RedactionsSecret", r[1]),
            ("redactions_authorization", "RedactionsAuthorization", r[2]),
            ("redactions_jwt", "RedactionsJwt", r[3]),
            ("redactions_card", "RedactionsCard", r[4]),
            ("redactions_email", "RedactionsEmail", r[5]),
            ("redactions_pattern", "RedactionsPattern", r[6]),
        ]
    }
}

impl Counters {
    /// The shutdown summary's `key=value` list; the filter's counters only if it did anything.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "invokes={} posts={} events={} relayed={} malformed_posts={} bad_events={} \
             oversize_posts={} refused_requests={} own_echoes_dropped={} \
             platform_dropped_records={} write_errors={} reports_missing={}",
            self.invokes,
            self.posts,
            self.events,
            self.relayed,
            self.malformed_posts,
            self.bad_events,
            self.oversize_posts,
            self.refused_requests,
            self.own_echoes,
            self.platform_dropped_records,
            self.write_errors,
            self.reports_missing_at_shutdown
        );
        let filter = self.filter.named();
        if filter.iter().any(|(_, _, n)| *n > 0) {
            for (name, _, n) in filter {
                line.push_str(&format!(" {name}={n}"));
            }
        }
        line
    }
}

/// One network output's counters, in events unless the name says bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutputCounters {
    /// Events this output carries that were buffered for it.
    pub received: u64,
    /// Accepted by the backend.
    pub sent: u64,
    pub sent_bytes: u64,
    /// Requests that failed (re-queued or rejected).
    pub failed_sends: u64,
    /// Refused for good by the backend (4xx).
    pub rejected: u64,
    /// Evicted from the full buffer, or still unsent when the relay had to stop.
    pub dropped: u64,
    /// Items (log records, data points, spans) an accepted OTLP request had rejected by the
    /// backend (`partialSuccess`); not events, so outside the balance.
    pub partially_rejected: u64,
}

impl OutputCounters {
    /// The summary's `key=value` list for this output.
    pub fn summary(&self) -> String {
        format!(
            "received={} sent={} failed_sends={} rejected={} dropped={} partially_rejected={}",
            self.received,
            self.sent,
            self.failed_sends,
            self.rejected,
            self.dropped,
            self.partially_rejected
        )
    }

    /// Whether every event received is accounted for.
    pub fn balanced(&self) -> bool {
        self.received
            == self
                .sent
                .saturating_add(self.dropped)
                .saturating_add(self.rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_counters_are_named_in_detector_order() {
        let mut counters = FilterCounters::default();
        for d in crate::config::filter::BUILT_IN
            .into_iter()
            .chain([crate::config::filter::Detector::Pattern])
        {
            counters.redactions = [0; 7];
            if let Some(n) = counters.redactions.get_mut(d.index()) {
                *n = 1;
            }
            let named: Vec<&str> = counters
                .named()
                .iter()
                .filter(|(_, _, n)| *n == 1)
                .map(|(name, _, _)| *name)
                .collect();
            assert_eq!(
                named,
                [format!("redactions_{}", d.name().replace('-', "_"))]
            );
        }
    }

    #[test]
    fn adds_saturate_at_the_top() {
        let mut n = u64::MAX - 1;
        add(&mut n, 5);
        assert_eq!(n, u64::MAX);
        add(&mut n, u64::MAX);
        assert_eq!(n, u64::MAX);
    }
}
