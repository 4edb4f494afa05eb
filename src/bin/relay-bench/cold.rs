//! Cold starts, interleaved: the baseline, telemetry-relay and (if given) its slim build.

use crate::{Args, METRICS, emulate, figures, percentile, show};

/// Runs `args.runs` cold starts of each extension and prints the table.
pub fn cold_starts(args: &Args) -> Result<(), String> {
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
    Ok(())
}
