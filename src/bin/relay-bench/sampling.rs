//! Tail sampling's cost and saving (issue #11): the extension's CPU per invocation with
//! `TELEMETRY_RELAY_SAMPLE_RATE=0.1` against no sampling, stdout only and with OTLP (protobuf,
//! gzip) as well, each invocation logging five lines and one in twenty failing. As for OTLP's
//! cost, the CPU per invocation is the difference between a long and a short run over the
//! extra invocations (`scenarios::short_and_long`).

use crate::scenarios::{LONG, ROUNDS, SHORT, marginal, short_and_long};
use crate::{Args, percentile};

pub fn row(args: &Args) -> Result<(), String> {
    let common = ["--lines", "5", "--outcomes", "error:20"];
    let otlp = [
        "--backend",
        "healthy",
        "--env",
        "OTEL_EXPORTER_OTLP_ENDPOINT={backend}",
        "--env",
        "OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
    ];
    let sampled = ["--env", "TELEMETRY_RELAY_SAMPLE_RATE=0.1"];
    let modes: [(&str, Vec<&str>); 4] = [
        ("stdout, no sampling", common.to_vec()),
        ("stdout, sampling 0.1", [&common[..], &sampled[..]].concat()),
        (
            "stdout + OTLP, no sampling",
            [&common[..], &otlp[..]].concat(),
        ),
        (
            "stdout + OTLP, sampling 0.1",
            [&common[..], &otlp[..], &sampled[..]].concat(),
        ),
    ];
    println!(
        "\nTail sampling, {SHORT} and {LONG} invocations of 5 lines, 1 in 20 failing; median of \
         {ROUNDS} rounds, the modes interleaved:\n\n| mode | CPU per extra invocation \
         ({LONG} − {SHORT}), ms | stdout lines per invocation | peak RSS, MiB |\n|---|---|---|---|"
    );
    let mut extra: Vec<[Vec<f64>; 2]> = modes.iter().map(|_| Default::default()).collect();
    let cpu = short_and_long(args, &modes, |i, report| {
        if let Some([lines, rss]) = extra.get_mut(i) {
            let n = report["stdout"].as_array().map_or(0, Vec::len);
            lines.push(n as f64 / LONG as f64);
            rss.extend(report["peak_rss_kb"].as_f64().map(|kb| kb / 1024.0));
        }
    })?;
    let mut base = 0.0;
    for (i, (((name, _), (short, long)), [lines, rss])) in
        modes.iter().zip(cpu).zip(&mut extra).enumerate()
    {
        let marginal = marginal(short, long);
        // Each mode against the one without sampling before it.
        let ratio = if i % 2 == 1 && base > 0.0 {
            format!(" ({:.2}×)", marginal / base)
        } else {
            base = marginal;
            String::new()
        };
        println!(
            "| {name} | {marginal:.4}{ratio} | {:.2} | {:.3} |",
            percentile(lines, 0.5).unwrap_or(0.0),
            percentile(rss, 0.5).unwrap_or(0.0)
        );
    }
    Ok(())
}
