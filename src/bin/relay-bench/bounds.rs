//! What the extension costs at the edges: memory after many invocations with every output on
//! (it must stay flat), and threads and memory under hostile local clients.

use serde_json::Value;

use crate::{Args, emulate, percentile};

/// Every output on, against a healthy local backend.
const EVERY_OUTPUT: [&str; 8] = [
    "--backend",
    "healthy",
    "--env",
    "TELEMETRY_RELAY_EMF=on",
    "--env",
    "TELEMETRY_RELAY_HTTP_URL={backend}/ingest",
    "--env",
    "OTEL_EXPORTER_OTLP_ENDPOINT={backend}",
];

/// Peak RSS after 100 and after 5,000 invocations, three runs each, interleaved.
pub fn memory_over_invocations(args: &Args) -> Result<(), String> {
    let counts = ["100", "5000"];
    let mut peaks: [Vec<f64>; 2] = Default::default();
    for _ in 0..3 {
        for (i, n) in counts.iter().enumerate() {
            let run: Vec<&str> = ["--invokes", n]
                .iter()
                .chain(&EVERY_OUTPUT)
                .copied()
                .collect();
            let report = emulate(&args.emulator, &args.relay, &run)?;
            peaks[i].extend(report["peak_rss_kb"].as_f64());
        }
    }
    let [few, many] = peaks.each_mut().map(|p| percentile(p, 0.5).unwrap_or(0.0));
    println!(
        "\nEvery output on (stdout, EMF, HTTP, OTLP logs, metrics, traces), healthy local \
         backend, median of 3 runs:\n\n| invocations | peak RSS, KiB |\n|---|---|\n\
         | 100 | {few:.0} |\n| 5,000 | {many:.0} |\n| difference | {:.0} |",
        many - few
    );
    Ok(())
}

/// One hostile client at a time (see `lambda-emulator --attack`), then two more invocations.
pub fn hostile_clients(args: &Args) -> Result<(), String> {
    let attacks: [(&str, &[&str]); 7] = [
        ("huge-length", &[]),
        ("overflow-length", &[]),
        ("stall-body", &[]),
        ("stall-413", &[]),
        ("hold:600", &["--nofile", "1024"]),
        ("big-header:33554432", &[]),
        ("tiny-events:4194304", &[]),
    ];
    let idle = emulate(&args.emulator, &args.relay, &["--invokes", "3"])?;
    let idle_kb = idle["peak_rss_kb"].as_f64().unwrap_or(0.0);
    println!(
        "\nHostile local clients, one per run, after invocation 1 of 3 (idle run: peak RSS \
         {idle_kb:.0} KiB):\n\n| attack | answer | threads after | peak RSS, KiB | \
         invocations relayed | exit |\n|---|---|---|---|---|---|"
    );
    for (attack, extra) in attacks {
        let run: Vec<&str> = ["--invokes", "3", "--attack", attack]
            .iter()
            .chain(extra)
            .copied()
            .collect();
        let report = emulate(&args.emulator, &args.relay, &run)?;
        let relayed = (1..=3)
            .filter(|i| {
                let marker = format!("invoke {i} line 1 marker");
                strings(&report["stdout"]).any(|l| l.contains(&marker))
            })
            .count();
        let peak = report["peak_rss_kb"].as_f64().unwrap_or(0.0);
        println!(
            "| {attack} | {} | {} | {peak:.0} | {relayed}/3 | {}{} |",
            report["attacks"]["results"][0]["outcome"]
                .as_str()
                .unwrap_or("?"),
            report["attacks"]["threads"],
            report["exit_code"],
            if report["killed"] == true {
                ", killed"
            } else {
                ""
            }
        );
        if attack.starts_with("tiny-events") {
            let body_kb = 4096.0;
            println!(
                "|  | the worst single POST the default cap admits costs {:.2}× its body over \
                 the idle run | | | | |",
                (peak - idle_kb) / body_kb
            );
        }
    }
    Ok(())
}

fn strings(value: &Value) -> impl Iterator<Item = &str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}
