//! The scenarios beyond cold starts: network outputs, throughput, memory over many
//! invocations, and hostile local clients against the listener.

use serde_json::Value;

use crate::{Args, dropped, emulate, figures, percentile, show};

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
pub fn outputs(args: &Args) -> Result<(), String> {
    let otlp = [
        "--backend",
        "healthy",
        "--env",
        "OTEL_EXPORTER_OTLP_ENDPOINT={backend}",
        "--invokes",
        "5",
        // The summary lines, where drops are counted.
        "--env",
        "TELEMETRY_RELAY_LOG=info",
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
            lost += dropped(&report, "");
        }
        println!(
            "| {name} | {} | {} | {lost} |",
            show(percentile(&mut post, 0.5)),
            show(percentile(&mut rss, 0.5))
        );
    }
    Ok(())
}

/// The listener's throughput on full batches, with stdout only and with OTLP logs as well.
pub fn throughput(args: &Args) -> Result<(), String> {
    if !args.fixture.is_empty() {
        let stdout_only = blasts(args, &[])?;
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
        for protocol in ["http/protobuf", "http/json"] {
            let protocol_env = format!("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL={protocol}");
            let otlp = [
                "--backend",
                "healthy",
                "--env",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT={backend}/v1/logs",
                "--env",
                &protocol_env,
            ];
            let mut per_cpu: Vec<f64> = blasts(args, &otlp)?
                .iter()
                .filter_map(|r| {
                    let events = r["blast"]["events"].as_f64()?;
                    let cpu_s = r["cpu_ms"].as_f64().filter(|c| *c > 0.0)? / 1000.0;
                    Some(events / cpu_s)
                })
                .collect();
            println!(
                "With OTLP logs ({protocol}) on as well (parsing, stdout, encoding and sending, \
                 in the extension's CPU time): median of 3 runs **{:.0} events per CPU-second**",
                percentile(&mut per_cpu, 0.5).unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

/// OTLP's cost: bytes on the wire per event with and without gzip, and the extension's CPU
/// with all three signals against stdout only, over a short and a long run (the marginal
/// CPU per invocation is their difference over the extra invocations). Medians of
/// [`ROUNDS`] rounds, the modes interleaved in each.
pub fn otlp_cost(args: &Args) -> Result<(), String> {
    let otlp = [
        "--backend",
        "healthy",
        "--env",
        "OTEL_EXPORTER_OTLP_ENDPOINT={backend}",
    ];
    let gzip = ["--env", "OTEL_EXPORTER_OTLP_COMPRESSION=gzip"];
    let json = ["--env", "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"];
    let protobuf = ["--env", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"];
    let modes: [(&str, Vec<&str>); 5] = [
        ("stdout only", Vec::new()),
        ("OTLP JSON, none", [&otlp[..], &json[..]].concat()),
        (
            "OTLP JSON, gzip",
            [&otlp[..], &json[..], &gzip[..]].concat(),
        ),
        ("OTLP protobuf, none", [&otlp[..], &protobuf[..]].concat()),
        (
            "OTLP protobuf, gzip",
            [&otlp[..], &protobuf[..], &gzip[..]].concat(),
        ),
    ];
    println!(
        "\nOTLP cost (logs, metrics and traces), median of {ROUNDS} rounds, the modes \
         interleaved in each:\n\n| mode | bytes on the wire per event | of the uncompressed | \
         CPU, {SHORT} invocations, ms | CPU per extra invocation ({LONG} − {SHORT}), ms |\n\
         |---|---|---|---|---|"
    );
    // Samples per mode: bytes per event and ratio, from the long runs.
    let mut wire: Vec<[Vec<f64>; 2]> = modes.iter().map(|_| Default::default()).collect();
    let cpu = short_and_long(args, &modes, |i, report| {
        if i > 0
            && let Some(w) = wire.get_mut(i)
        {
            let (per_event, ratio) = wire_bytes(report);
            w[0].push(per_event);
            w[1].push(ratio);
        }
    })?;
    let mut base = (0.0, 0.0);
    for (i, (((name, _), (short, long)), [per_event, ratio])) in
        modes.iter().zip(cpu).zip(&mut wire).enumerate()
    {
        let (short_ms, marginal) = (short, marginal(short, long));
        if i == 0 {
            base = (short_ms, marginal);
        }
        let times = |x: f64, b: f64| {
            if b > 0.0 {
                format!(" ({:.2}×)", x / b)
            } else {
                String::new()
            }
        };
        println!(
            "| {name} | {} | {} | {short_ms:.2}{} | {marginal:.4}{} |",
            show(percentile(per_event, 0.5)),
            show(percentile(ratio, 0.5)),
            times(short_ms, base.0),
            times(marginal, base.1),
        );
    }
    Ok(())
}

/// Median CPU (ms) of a [`SHORT`]- and a [`LONG`]-invocation run of each mode, over
/// [`ROUNDS`] rounds with the modes interleaved in each; `long_run` sees each long run's
/// report (with the mode's index), for figures of its own.
pub fn short_and_long(
    args: &Args,
    modes: &[(&str, Vec<&str>)],
    mut long_run: impl FnMut(usize, &Value),
) -> Result<Vec<(f64, f64)>, String> {
    let mut samples: Vec<[Vec<f64>; 2]> = modes.iter().map(|_| Default::default()).collect();
    for _ in 0..ROUNDS {
        for ((i, (_, extra)), sample) in modes.iter().enumerate().zip(&mut samples) {
            for (invokes, slot) in [(SHORT, 0), (LONG, 1)] {
                let invokes = invokes.to_string();
                let run: Vec<&str> = ["--invokes", &invokes]
                    .iter()
                    .chain(extra)
                    .copied()
                    .collect();
                let report = emulate(&args.emulator, &args.relay, &run)?;
                sample[slot].extend(report["cpu_ms"].as_f64());
                if slot == 1 {
                    long_run(i, &report);
                }
            }
        }
    }
    Ok(samples
        .iter_mut()
        .map(|[short, long]| {
            (
                percentile(short, 0.5).unwrap_or(0.0),
                percentile(long, 0.5).unwrap_or(0.0),
            )
        })
        .collect())
}

/// CPU per extra invocation, ms, from the short and the long run's CPU.
pub fn marginal(short_ms: f64, long_ms: f64) -> f64 {
    (long_ms - short_ms) / (LONG - SHORT) as f64
}

/// Rounds of the CPU comparisons (OTLP's cost, tail sampling).
pub const ROUNDS: usize = 5;
/// Invocations of its short and long runs. The long one is long so that the CPU per extra
/// invocation is a difference of large numbers: over 200 − 20 it moved by a third between
/// runs of the same commit.
pub const SHORT: usize = 20;
pub const LONG: usize = 1000;

/// Bytes on the wire per event, and their ratio to the uncompressed content, of one run.
fn wire_bytes(report: &Value) -> (f64, f64) {
    let requests = report["backend"]["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let wire: f64 = requests
        .iter()
        .filter_map(|r| r["wire_bytes"].as_f64())
        .sum();
    let content: f64 = requests
        .iter()
        .filter_map(|r| match r["body_hex"].as_str() {
            Some(hex) => Some(hex.len() as f64 / 2.0),
            None => r["body"].as_str().map(|b| b.len() as f64),
        })
        .sum();
    let events: usize = report["posts"].as_array().map_or(0, |p| {
        p.iter()
            .map(|p| p["events"].as_array().map_or(0, Vec::len))
            .sum()
    });
    (wire / events.max(1) as f64, wire / content.max(1.0))
}
