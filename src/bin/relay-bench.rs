//! relay-bench: the figures behind `make bench`. Never shipped, never a pass/fail test.
//!
//! Cold starts of (a) the std-only baseline extension and (b) telemetry-relay are run under
//! `lambda-emulator`, interleaved a, b, a, b… so machine noise hits both alike; each run is
//! a fresh process (a cold start) with a few invokes and a SHUTDOWN. It prints medians (and the
//! 90th percentile) of init time, post-runtime time per invoke, SHUTDOWN-to-exit time, time from
//! the last batch to exit, peak RSS and CPU time, the ratio b/a, the binaries' and layer zips'
//! sizes, and the listener+stdout throughput on full 1000-event batches, as a Markdown table.

use std::process::Command;

use serde_json::Value;

struct Args {
    emulator: String,
    baseline: String,
    relay: String,
    relay_slim: Option<String>,
    fixture: String,
    runs: usize,
    files: Vec<String>,
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
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.emulator.is_empty() || args.baseline.is_empty() || args.relay.is_empty() {
        return Err("usage: relay-bench --emulator PATH --baseline PATH --relay PATH [--fixture FILE] [--runs N] [--size FILE]…".into());
    }
    Ok(args)
}

/// One emulated lifetime; the emulator's report.
fn emulate(emulator: &str, extension: &str, extra: &[&str]) -> Result<Value, String> {
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
fn figures(report: &Value) -> [Option<f64>; 6] {
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

const METRICS: [&str; 6] = [
    "init (spawn → first /next), ms",
    "post-runtime per invoke, ms",
    "SHUTDOWN → exit, ms",
    "last batch → exit, ms",
    "peak RSS, MiB",
    "CPU time, ms",
];

fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() - 1) as f64 * p).round() as usize;
    values.get(rank).copied()
}

fn show(value: Option<f64>) -> String {
    value.map_or("–".to_string(), |v| format!("{v:.3}"))
}

/// Three runs of 50 back-to-back full batches (`--blast`), stdout in JSON, plus `extra`.
fn blasts(args: &Args, extra: &[&str]) -> Result<Vec<Value>, String> {
    let base = [
        "--invokes",
        "1",
        "--blast",
        &args.fixture,
        "--env",
        "TELEMETRY_RELAY_STDOUT_FORMAT=json",
    ];
    let run: Vec<&str> = base.iter().chain(extra).copied().collect();
    (0..3)
        .map(|_| emulate(&args.emulator, &args.relay, &run))
        .collect()
}

/// The network outputs' figures: post-runtime time under `background` and `end` with a healthy
/// local OTLP backend, and peak RSS with every output on.
fn outputs_figures(args: &Args) -> Result<(), String> {
    let otlp = [
        "--backend",
        "healthy",
        "--env",
        "OTEL_EXPORTER_OTLP_ENDPOINT={backend}",
        "--invokes",
        "5",
    ];
    let everything = [
        "--env",
        "TELEMETRY_RELAY_EMF=on",
        "--env",
        "TELEMETRY_RELAY_HTTP_URL={backend}/ingest",
        "--env",
        "TELEMETRY_RELAY_TYPES=platform,function,extension",
    ];
    let scenarios: [(&str, Vec<&str>); 3] = [
        (
            "OTLP, flush background",
            [&otlp[..], &["--env", "TELEMETRY_RELAY_FLUSH=background"]].concat(),
        ),
        (
            "OTLP, flush end",
            [&otlp[..], &["--env", "TELEMETRY_RELAY_FLUSH=end"]].concat(),
        ),
        (
            "stdout + EMF + HTTP + OTLP (3 signals)",
            [&otlp[..], &everything[..]].concat(),
        ),
    ];
    let runs = (args.runs / 2).max(5);
    println!("\n{runs} cold starts each with a healthy local backend:\n");
    println!(
        "| scenario | post-runtime per invoke, ms (median) | peak RSS, MiB (median) | events lost |"
    );
    println!("|---|---|---|---|");
    for (name, extra) in scenarios {
        let (mut post, mut rss, mut lost) = (Vec::new(), Vec::new(), 0u64);
        for _ in 0..runs {
            let report = emulate(&args.emulator, &args.relay, &extra)?;
            let [_, mean_post, _, _, peak, _] = figures(&report);
            post.extend(mean_post);
            rss.extend(peak);
            lost += report["stderr"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|l| {
                    l.split(" dropped=")
                        .nth(1)
                        .and_then(|n| n.trim().parse::<u64>().ok())
                })
                .sum::<u64>();
        }
        println!(
            "| {name} | {} | {} | {lost} |",
            show(percentile(&mut post, 0.5)),
            show(percentile(&mut rss, 0.5))
        );
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let cold = ["--invokes", "5"];
    let mut extensions = vec![&args.baseline, &args.relay];
    extensions.extend(args.relay_slim.as_ref());
    let mut samples: Vec<[Vec<f64>; 6]> = extensions.iter().map(|_| Default::default()).collect();
    let mut lost = 0u64;
    for _ in 0..args.runs {
        for (which, extension) in extensions.iter().enumerate() {
            let report = emulate(&args.emulator, extension, &cold)?;
            if report["exit_code"] != 0 || report["killed"] != false {
                return Err(format!(
                    "{extension} did not exit cleanly: {}",
                    report["exit_code"]
                ));
            }
            if which > 0 {
                // Every event POSTed must be on stdout (text format: one line per event here).
                let delivered: usize = report["posts"].as_array().map_or(0, |p| {
                    p.iter()
                        .map(|p| p["events"].as_array().map_or(0, Vec::len))
                        .sum()
                });
                let printed = report["stdout"].as_array().map_or(0, Vec::len);
                lost += delivered.saturating_sub(printed) as u64;
            }
            for (i, value) in figures(&report).into_iter().enumerate() {
                if let (Some(v), Some(list)) =
                    (value, samples.get_mut(which).and_then(|s| s.get_mut(i)))
                {
                    list.push(v);
                }
            }
        }
    }
    println!(
        "{} cold starts each, interleaved; 5 invokes and a SHUTDOWN per start; stdout only.\n",
        args.runs
    );
    let slim = args.relay_slim.is_some();
    let (slim_head, slim_rule) = if slim {
        (" (c) slim build median | c/a |", "---|---|")
    } else {
        ("", "")
    };
    println!(
        "| metric | (a) baseline median | (b) telemetry-relay median | (b) p90 | b/a |{slim_head}"
    );
    println!("|---|---|---|---|---|{slim_rule}");
    for (i, name) in METRICS.iter().enumerate() {
        let mut median = |which: usize, p: f64| {
            samples
                .get_mut(which)
                .and_then(|s| s.get_mut(i))
                .and_then(|v| percentile(v, p))
        };
        let (a, b, b90, c) = (
            median(0, 0.5),
            median(1, 0.5),
            median(1, 0.9),
            median(2, 0.5),
        );
        let ratio = |x: Option<f64>| match (a, x) {
            (Some(a), Some(x)) if a > 0.0 => format!("{:.2}", x / a),
            _ => "–".to_string(),
        };
        let slim_cells = if slim {
            format!(" {} | {} |", show(c), ratio(c))
        } else {
            String::new()
        };
        println!(
            "| {name} | {} | {} | {} | {} |{slim_cells}",
            show(a),
            show(b),
            show(b90),
            ratio(b)
        );
    }
    println!("| events lost by (b) | | {lost} | | |");
    outputs_figures(&args)?;
    if !args.fixture.is_empty() {
        let stdout_only = blasts(&args, &[])?;
        let rates: Vec<f64> = stdout_only
            .iter()
            .filter_map(|r| r["blast"]["events_per_s"].as_f64())
            .collect();
        println!(
            "\nListener + stdout throughput, 50 POSTs of a full 1000-event batch built from {}: \
             median of 3 runs **{:.0} events/s**",
            args.fixture,
            percentile(&mut rates.clone(), 0.5).unwrap_or(0.0)
        );
        let otlp = [
            "--backend",
            "healthy",
            "--env",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT={backend}/v1/logs",
        ];
        let mut per_cpu: Vec<f64> = blasts(&args, &otlp)?
            .iter()
            .filter_map(|r| {
                let events = r["blast"]["events"].as_f64()?;
                let cpu_s = r["cpu_ms"].as_f64().filter(|c| *c > 0.0)? / 1000.0;
                Some(events / cpu_s)
            })
            .collect();
        println!(
            "With OTLP logs on as well (parsing, stdout, OTLP JSON encoding and sending, in the \
             extension's CPU time): median of 3 runs **{:.0} events per CPU-second**",
            percentile(&mut per_cpu, 0.5).unwrap_or(0.0)
        );
    }
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
