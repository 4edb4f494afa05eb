//! Amazon Data Firehose: an NDJSON request body (the events, one per line, as the HTTP output
//! sends them) turned into `PutRecordBatch` calls on the output's sender thread.
//!
//! Lines are packed whole into records of up to [`RECORD_TARGET`] bytes: Firehose bills each
//! record rounded up to 5 KB, so one record per event (a few hundred bytes) would be billed
//! ten times over, and S3 objects are the records' bytes end to end, so they are NDJSON either
//! way. With `gzip_records` each record is a gzip member, and an S3 object, members end to
//! end, is one gzip file. A call holds at most [`CALL_RECORDS`] records and [`CALL_BYTES`]
//! bytes, the API's limits; a line over the per-record limit ([`RECORD_BYTES`]) cannot be
//! sent at all, and is counted as rejected rather than failing the whole call.
//!
//! Firehose answers 200 even when it failed some records (`FailedPutCount`, and an
//! `ErrorCode` in each failed record's slot of `RequestResponses`): those records alone are
//! sent again, with backoff, inside the request's deadline. A call refused whole for
//! throttling or unavailability is retried the same way; any other refusal is final. A request
//! whose deadline passes with records still failing is handed back to be sent again whole:
//! the records that were accepted may then arrive twice (delivery is at least once, as
//! Firehose's own is), never not at all.

use std::time::Instant;

use super::aws_json;
use super::gzip;
use super::sender::{Call, Step, post, with_retries};
use super::sigv4::Signer;
use crate::msg::Outcome;
use crate::sinks::Endpoint;

/// The largest record Firehose takes, before base64 (1,000 KiB).
pub const RECORD_BYTES: usize = 1_000 * 1024;
/// Records are filled with whole lines up to this size.
pub const RECORD_TARGET: usize = 256 * 1024;
/// Most records in one call.
pub const CALL_RECORDS: usize = 500;
/// Most bytes in one call (the API's 4 MiB, with room for the JSON around the data).
pub const CALL_BYTES: usize = 4 * 1024 * 1024 - 4096;

const TARGET: &str = "Firehose_20150804.PutRecordBatch";

/// The records of an NDJSON body, and how many lines were too long for any record.
pub fn records(body: &[u8], gzip_records: bool) -> (Vec<Vec<u8>>, u64) {
    let mut records = Vec::new();
    let mut oversize = 0;
    let mut current: Vec<u8> = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.len() > RECORD_BYTES {
            oversize += 1;
            continue;
        }
        if !current.is_empty() && current.len() + line.len() > RECORD_TARGET {
            records.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(line);
    }
    if !current.is_empty() {
        records.push(current);
    }
    if gzip_records {
        for record in &mut records {
            let mut packed = Vec::new();
            gzip::compress(record, &mut packed);
            *record = packed;
        }
    }
    (records, oversize)
}

/// Bytes of `n` bytes in base64.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Appends `bytes` in standard base64, padded.
pub fn base64(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |n: u32, shift: u32| ALPHABET[((n >> shift) & 63) as usize];
    let mut chunks = bytes.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), sextet(n, 0)]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), b'=', b'=']);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[sextet(n, 18), sextet(n, 12), sextet(n, 6), b'=']);
        }
        _ => {}
    }
}

/// The body of a call with `records` (the stream's name is letters, digits and `_.-`).
pub fn call_body(stream: &str, records: &[&[u8]], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"{\"DeliveryStreamName\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(b"\",\"Records\":[");
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"Data\":\"");
        base64(record, out);
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
}

/// Which of a call's `n` records failed, from its 200 answer; all of them when the answer does
/// not say which (a count without the list cannot be mapped to records).
fn failed(answer: &[u8], n: usize) -> Vec<usize> {
    // A `Value`, as `aws_json::error` reads its answers.
    let Ok(a) = serde_json::from_slice::<serde_json::Value>(answer) else {
        return Vec::new();
    };
    if a.get("FailedPutCount")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
        == 0
    {
        return Vec::new();
    }
    let responses = a
        .get("RequestResponses")
        .and_then(serde_json::Value::as_array);
    match responses {
        Some(r) if r.len() == n => (0..n)
            .filter(|&i| {
                r.get(i)
                    .is_some_and(|r| r.get("ErrorCode").is_some_and(|c| !c.is_null()))
            })
            .collect(),
        _ => (0..n).collect(),
    }
}

/// Sends `body` (NDJSON) to the stream, as the module doc says.
pub fn send(
    agent: &ureq::Agent,
    endpoint: &Endpoint,
    (stream, gzip_records): (&str, bool),
    body: &[u8],
    deadline: Instant,
    signer: Option<&mut Signer>,
) -> Outcome {
    let mut signer = signer;
    let (records, oversize) = records(body, gzip_records);
    // The records not yet accepted, in order.
    let mut pending: Vec<usize> = (0..records.len()).collect();
    let mut call_bytes = Vec::new();
    let call = Call {
        url: &endpoint.to.url,
        content_type: aws_json::CONTENT_TYPE,
        gzip: false,
        extra: &[("x-amz-target", TARGET)],
        headers: &endpoint.to.headers,
    };
    let outcome = with_retries(deadline, endpoint.to.timeout, |timeout| {
        if pending.is_empty() {
            return Ok(Step::Done(Outcome::Sent));
        }
        // As many pending records as one call takes, at least one.
        let mut bytes = 0;
        let chunk: Vec<usize> = pending
            .iter()
            .copied()
            .enumerate()
            .take_while(|&(i, r)| {
                bytes += base64_len(records.get(r).map_or(0, Vec::len)) + 12;
                i == 0 || (i < CALL_RECORDS && bytes <= CALL_BYTES)
            })
            .map(|(_, r)| r)
            .collect();
        let data: Vec<&[u8]> = chunk
            .iter()
            .filter_map(|&r| records.get(r).map(Vec::as_slice))
            .collect();
        call_body(stream, &data, &mut call_bytes);
        let a = post(agent, &call, &call_bytes, timeout, signer.as_deref_mut())?;
        if (200..300).contains(&a.status) {
            let failed = failed(&a.body, chunk.len());
            let still: Vec<usize> = failed
                .iter()
                .filter_map(|&i| chunk.get(i).copied())
                .collect();
            pending.retain(|r| !chunk.contains(r) || still.contains(r));
            return Ok(match (pending.is_empty(), still.len()) {
                (true, _) => Step::Done(Outcome::Sent),
                // A full call went through; the next one goes at once.
                (false, 0) => Step::Again {
                    why: "more records".to_string(),
                    after: Some(std::time::Duration::ZERO),
                },
                (false, n) => Step::Again {
                    why: format!("{n} of {} records failed", chunk.len()),
                    after: None,
                },
            });
        }
        let (kind, message) = aws_json::error(&a.body);
        let why = format!("HTTP {} {kind}: {message}", a.status);
        Ok(if aws_json::retryable(a.status, &kind) {
            Step::Again {
                why,
                after: a.retry_after,
            }
        } else {
            Step::Done(Outcome::Rejected(why))
        })
    });
    match outcome {
        Outcome::Sent if oversize > 0 => Outcome::Partial {
            rejected: oversize,
            message: format!("{oversize} events over Firehose's {RECORD_BYTES}-byte record limit"),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests;
