//! The OTLP output against a real collector nobody here wrote: rotel (`rotel-agent`, from the
//! `rotel` package on PyPI, which `make test` installs in `target/py`). It takes OTLP/HTTP in
//! both encodings, plain or gzipped, and with `--exporter blackhole --debug-log …` prints what
//! it received. Every signal, both protocols and both compressions go through it, and the test
//! checks what it printed: every function line, every invocation's span and its children, and
//! every metric name.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use support::{Daemon, Run, free_port, missing, without_own_echoes};

/// The collector's binary inside the venv, if installed.
fn rotel_agent() -> Option<PathBuf> {
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py/lib");
    let agent = std::fs::read_dir(lib).ok().and_then(|dirs| {
        dirs.flatten()
            .map(|dir| dir.path().join("site-packages/rotel/rotel-agent"))
            .find(|path| path.exists())
    });
    if agent.is_none() {
        missing(
            "rotel collector",
            "rotel-agent missing from target/py; `make test` installs it",
        );
    }
    agent
}

/// A running collector, printing what it received to `out`, read when it stops.
struct Collector {
    daemon: Daemon,
    out: PathBuf,
}

impl Collector {
    fn start(agent: &PathBuf) -> Collector {
        let (port, grpc) = (free_port(), free_port());
        let out = std::env::temp_dir().join(format!("telemetry-relay-rotel-{port}.out"));
        let mut command = Command::new(agent);
        command
            .arg("start")
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{port}")])
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
            .args(["--exporter", "blackhole"])
            .args(["--debug-log", "logs", "--debug-log", "metrics"])
            .args(["--debug-log", "traces", "--debug-log-verbosity", "detailed"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null());
        let daemon = Daemon::start(command, port, "rotel-agent");
        Collector { daemon, out }
    }

    /// Stops it with SIGTERM (it exports what it holds on the way out) and returns its output.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.daemon.child.id().to_string()])
            .status();
        let _ = self.daemon.child.wait();
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let _ = std::fs::remove_file(&self.out);
        text
    }
}

fn through_rotel(protocol: &str, compression: &str) {
    let Some(agent) = rotel_agent() else {
        return;
    };
    let collector = Collector::start(&agent);
    let endpoint = format!(
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:{}",
        collector.daemon.port
    );
    let run = Run::new(&[
        "--invokes",
        "3",
        "--error-invoke",
        "2",
        "--env",
        &endpoint,
        "--env",
        &format!("OTEL_EXPORTER_OTLP_PROTOCOL={protocol}"),
        "--env",
        &format!("OTEL_EXPORTER_OTLP_COMPRESSION={compression}"),
        "--env",
        "TELEMETRY_RELAY_TYPES=platform,function,extension",
        "--env",
        "TELEMETRY_RELAY_LOG=info",
    ]);
    run.assert_clean_exit();
    let printed = collector.stop();
    let what = format!("{protocol} {compression}");
    for output in ["otlp-logs", "otlp-metrics", "otlp-traces"] {
        let line = run.output_line(output);
        run.check(
            line.contains(" dropped=0") && line.contains(" rejected=0") && line.contains(" sent="),
            &format!("{what}: rotel took everything of {output}: {line}"),
        );
    }
    let delivered = without_own_echoes(&run.delivered());
    let lines: Vec<&str> = delivered
        .iter()
        .filter(|e| e["type"] == "function")
        .filter_map(|e| e["record"].as_str())
        .collect();
    run.check(
        lines.len() >= 3,
        &format!("{what}: function lines were produced"),
    );
    for line in &lines {
        let text = line.trim_end_matches('\n');
        run.check(
            printed.contains(&format!("Body: Str({text})")),
            &format!("{what}: rotel printed the function line {text:?}"),
        );
    }
    let spans = printed
        .matches("Name           : emulated-function")
        .count();
    run.check(
        spans == 3,
        &format!("{what}: 3 invocation spans, got {spans}"),
    );
    for child in [
        "init",
        "responseLatency",
        "responseDuration",
        "extensionOverhead",
    ] {
        run.check(
            printed.contains(&format!("Name           : {child}\n")),
            &format!("{what}: a {child} span"),
        );
    }
    for metric in [
        "faas.invocations",
        "faas.errors",
        "faas.timeouts",
        "faas.coldstarts",
        "faas.invoke_duration",
        "faas.init_duration",
        "aws.lambda.billed_duration",
        "faas.mem_usage",
        "telemetry_relay.events.received",
        "telemetry_relay.posts.malformed",
    ] {
        run.check(
            printed.contains(&format!("-> Name: {metric}\n")),
            &format!("{what}: the metric {metric}"),
        );
    }
}

#[test]
fn rotel_takes_protobuf() {
    through_rotel("http/protobuf", "none");
}

#[test]
fn rotel_takes_gzipped_protobuf() {
    through_rotel("http/protobuf", "gzip");
}

#[test]
fn rotel_takes_json() {
    through_rotel("http/json", "none");
}

#[test]
fn rotel_takes_gzipped_json() {
    through_rotel("http/json", "gzip");
}
