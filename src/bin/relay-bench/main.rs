//! relay-bench: the figures behind `make bench`. Never shipped, never a pass/fail test.
//!
//! Cold starts of (a) the std-only baseline extension and (b) telemetry-relay are run under
//! `lambda-emulator`, interleaved a, b, a, b… so machine noise hits both alike; each run is
//! a fresh process (a cold start) with a few invokes and a SHUTDOWN (`cold`). It prints medians
//! (and the 90th percentile) of init time, post-runtime time per invoke, SHUTDOWN-to-exit time,
//! time from the last batch to exit, peak RSS and CPU time, the ratio b/a; then (`scenarios`)
//! the network outputs, the listener's throughput, memory after 100 and 5,000 invocations with
//! every output on, tail sampling's CPU, and the listener under hostile local clients; then the binaries' and
//! layer zips' sizes. Everything is printed as Markdown tables.

mod bounds;
mod cold;
mod firehose;
mod sampling;
mod scenarios;

use std::process::Command;

use serde_json::Value;

pub struct Args {
    pub emulator: String,
    pub baseline: String,
    pub relay: String,
    pub relay_slim: Option<String>,
    pub fixture: String,
    pub runs: usize,
    pub files: Vec<String>,
    /// Only this section (`--only sampling`, say), for a quick look.
    pub only: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        emulator: String::new(),
        baseline: String::new(),
        relay: String::new(),
        relay_slim: None,
        fixture: String::new(),
        runs: 20,
        files: Vec::new(),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--emulator" => args.emulator = value()?,
            "--baseline" => args.baseline = value()?,
            "--relay" => args.relay = value()?,
            "--relay-slim" => args.relay_slim = Some(value()?),
            "--fixture" => args.fixture = value()?,
            "--runs" => {
                args.runs = value()?
                    .parse()
                    .map_err(|_| "--runs takes a number".to_string())?
            }
            "--size" => args.files.push(value()?),
            "--only" => args.only = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.emulator.is_empty() || args.baseline.is_empty() || args.relay.is_empty() {
        return Err("usage: relay-bench --emulator PATH --baseline PATH --relay PATH [--fixture FILE] [--runs N] [--size FILE]…".into());
    }
    Ok(args)
}

/// One emulated lifetime; the emulator's report.
pub fn emulate(emulator: &str, extension: &str, extra: &[&str]) -> Result<Value, String> {
    let report = std::env::temp_dir().join(format!("relay-bench-{}.json", std::process::id()));
    let status = Command::new(emulator)
        .args(["--quiet", "--json"])
        .arg(&report)
        .args(extra)
        .arg(extension)
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {emulator}: {e}"))?;
    if !status.success() {
        return Err(format!("{emulator} failed: {status}"));
    }
    let text = std::fs::read_to_string(&report).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// The figures of one run, in the order of [`METRICS`].
pub fn figures(report: &Value) -> [Option<f64>; 6] {
    let post: Vec<f64> = report["post_runtime_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let mean_post = (!post.is_empty()).then(|| post.iter().sum::<f64>() / post.len() as f64);
    [
        report["init_ms"].as_f64(),
        mean_post,
        report["shutdown_to_exit_ms"].as_f64(),
        report["exit_after_last_post_ms"].as_f64(),
        report["peak_rss_kb"].as_f64().map(|kb| kb / 1024.0),
        report["cpu_ms"].as_f64(),
    ]
}

pub const METRICS: [&str; 6] = [
    "init (spawn → first /next), ms",
    "post-runtime per invoke, ms",
    "SHUTDOWN → exit, ms",
    "last batch → exit, ms",
    "peak RSS, MiB",
    "CPU time, ms",
];

/// Events the extension's SHUTDOWN summary counts as dropped, over the outputs whose line
/// contains `output` (every output's with "").
pub fn dropped(report: &Value, output: &str) -> u64 {
    report["stderr"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|l| l.contains(output))
        .filter_map(|l| {
            l.split(" dropped=")
                .nth(1)?
                .split(' ')
                .next()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum()
}

pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() - 1) as f64 * p).round() as usize;
    values.get(rank).copied()
}

pub fn show(value: Option<f64>) -> String {
    value.map_or("–".to_string(), |v| format!("{v:.3}"))
}

/// One part of the figures.
type Section = fn(&Args) -> Result<(), String>;

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let sections: [(&str, Section); 8] = [
        ("cold", cold::cold_starts),
        ("outputs", scenarios::outputs),
        ("throughput", scenarios::throughput),
        ("otlp", scenarios::otlp_cost),
        ("firehose", firehose::row),
        ("sampling", sampling::row),
        ("memory", bounds::memory_over_invocations),
        ("hostile", bounds::hostile_clients),
    ];
    for (name, section) in sections {
        if args.only.as_deref().is_none_or(|only| only == name) {
            section(&args)?;
        }
    }
    sizes(&args)
}

fn sizes(args: &Args) -> Result<(), String> {
    if !args.files.is_empty() {
        println!("\n| file | bytes | MiB |\n|---|---|---|");
        for file in &args.files {
            let bytes = std::fs::metadata(file)
                .map(|m| m.len())
                .map_err(|e| format!("{file}: {e}"))?;
            println!("| {file} | {bytes} | {:.3} |", bytes as f64 / 1_048_576.0);
        }
    }
    Ok(())
}
