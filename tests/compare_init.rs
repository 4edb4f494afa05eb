//! `make compare-init`'s tool (`src/compare-init/compare_init.py`) against a stand-in of the
//! Lambda API (`tests/standin/lambda_api.py`): interleaved variants, a forced cold start each,
//! updates that become active after a delay and refuse a second update meanwhile, throttled
//! invokes, the configuration restored at the end (after a failure mid-run and after Ctrl-C as
//! well), the layer published from a zip, the confirmation, the CSV and the SVG. The parsing
//! and the statistics are unit-tested against hand-worked values in
//! `tests/standin/test_compare_init.py`, run here too.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's python, or `None` (loudly; a failure under `CI=true`).
fn python() -> Option<PathBuf> {
    support::venv_python("compare-init")
}

fn scratch(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "telemetry-relay-compare-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running stand-in; its state file says what it was asked to do.
struct StandIn {
    child: Child,
    stdout: BufReader<ChildStdout>,
    port: u16,
    state: PathBuf,
}

impl StandIn {
    fn start(python: &Path, dir: &Path, extra: &[&str]) -> StandIn {
        let state = dir.join("state.json");
        let mut child = Command::new(python)
            .arg(root().join("tests/standin/lambda_api.py"))
            .arg(&state)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("stand-in said {line:?}"));
        StandIn {
            child,
            stdout,
            port,
            state,
        }
    }

    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.state).unwrap()).unwrap()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool(python: &Path, standin: &StandIn, out: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(python);
    command
        .arg(root().join("src/compare-init/compare_init.py"))
        .args(["--function", "checkout-api", "--region", "us-east-1"])
        .args(["--poll", "0.01", "--out"])
        .arg(out)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        // botocore's own retries of a failing stand-in, kept short.
        .env("AWS_RETRY_MODE", "standard")
        .env("AWS_MAX_ATTEMPTS", "2")
        .env_remove("AWS_PROFILE")
        .env(
            "AWS_ENDPOINT_URL_LAMBDA",
            format!("http://127.0.0.1:{}", standin.port),
        );
    command
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const LAYER: &str = "arn:aws:lambda:us-east-1:123456789012:layer:telemetry-relay:7";

#[test]
fn rounds_interleave_force_cold_starts_and_restore_the_function() {
    let Some(python) = python() else {
        return;
    };
    let dir = scratch("rounds");
    let standin = StandIn::start(
        &python,
        &dir,
        &[
            "--throttle-every",
            "3",
            "--update-polls",
            "2",
            "--timeout-invoke",
            "4",
            "--layers",
            "arn:aws:lambda:us-east-1:123456789012:layer:other:1",
        ],
    );
    let output = tool(
        &python,
        &standin,
        &dir,
        &["--layer-arn", LAYER, "--rounds", "5", "--yes"],
    )
    .output()
    .unwrap();
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    let state = standin.state();
    assert_eq!(state["config"], state["initial"], "restored: {printed}");
    let invokes = state["invokes"].as_array().unwrap();
    assert_eq!(invokes.len(), 10, "{state}");
    for (i, invoke) in invokes.iter().enumerate() {
        let layers: Vec<&str> = invoke["layers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        // Without, with, without, ...; the function's own layer stays in both.
        assert_eq!(
            layers.contains(&LAYER),
            i % 2 == 1,
            "invoke {i}: {layers:?}"
        );
        assert!(layers.contains(&"arn:aws:lambda:us-east-1:123456789012:layer:other:1"));
        assert_eq!(invoke["cold"], true, "invoke {i} was a forced cold start");
    }
    let nonces: std::collections::HashSet<&str> =
        invokes.iter().filter_map(|i| i["nonce"].as_str()).collect();
    assert_eq!(nonces.len(), 10, "a new nonce for every cold start");
    assert!(
        state["throttled"].as_u64().unwrap() > 0,
        "throttling was met"
    );
    assert!(
        state["conflicts"].as_u64().unwrap() == 0,
        "never updated during an update"
    );
    assert!(
        printed.contains("| Init Duration, ms | with | 5 |"),
        "{printed}"
    );
    assert!(printed.contains("difference of medians"), "{printed}");
    let csv = std::fs::read_to_string(dir.join("samples.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11, "{csv}");
    assert!(csv.starts_with("round,variant,init_ms,"));
    // The timed-out invoke is kept, marked as such.
    assert_eq!(csv.matches(",timeout,").count(), 1, "{csv}");
    let svg = std::fs::read_to_string(dir.join("init-duration.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), 10);
    let valid = Command::new(&python)
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
        ])
        .arg(dir.join("init-duration.svg"))
        .status()
        .unwrap();
    assert!(valid.success(), "the SVG parses as XML");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failure_mid_run_still_restores_the_configuration() {
    let Some(python) = python() else {
        return;
    };
    let dir = scratch("failure");
    let standin = StandIn::start(&python, &dir, &["--fail-invoke", "4"]);
    let output = tool(
        &python,
        &standin,
        &dir,
        &["--layer-arn", LAYER, "--rounds", "5", "--yes"],
    )
    .output()
    .unwrap();
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(printed.contains("compare-init failed"), "{printed}");
    assert!(printed.contains("configuration restored"), "{printed}");
    let state = standin.state();
    assert_eq!(state["config"], state["initial"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_mid_run_restores_the_configuration() {
    let Some(python) = python() else {
        return;
    };
    let dir = scratch("interrupt");
    let mut standin = StandIn::start(&python, &dir, &["--hang-invoke", "3"]);
    let child = tool(
        &python,
        &standin,
        &dir,
        &["--layer-arn", LAYER, "--rounds", "5", "--yes"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The stand-in says when it holds the third invoke: the tool is inside a round then.
    let mut line = String::new();
    standin.stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "hanging 3");
    let _ = Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    let printed = text(&output);
    assert_eq!(output.status.code(), Some(130), "{printed}");
    let state = standin.state();
    assert_eq!(state["config"], state["initial"], "{printed}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_zip_is_published_and_nothing_changes_without_confirmation() {
    let Some(python) = python() else {
        return;
    };
    let dir = scratch("zip");
    std::fs::write(
        dir.join("telemetry-relay-x86_64.zip"),
        b"PK\x05\x06 not really",
    )
    .unwrap();
    let standin = StandIn::start(&python, &dir, &["--snapstart"]);
    let mut refused = tool(
        &python,
        &standin,
        &dir,
        &["--layer-dir", dir.to_str().unwrap()],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    refused.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let output = refused.wait_with_output().unwrap();
    assert!(text(&output).contains("nothing changed"));
    assert!(
        text(&output).contains("30 rounds, 60 cold-start invocations"),
        "{}",
        text(&output)
    );
    assert_eq!(standin.state()["updates"], 0);
    let output = tool(
        &python,
        &standin,
        &dir,
        &[
            "--layer-dir",
            dir.to_str().unwrap(),
            "--rounds",
            "2",
            "--yes",
        ],
    )
    .output()
    .unwrap();
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    let state = standin.state();
    let published = state["published"][0].as_str().unwrap().to_string();
    assert!(published.contains(":layer:telemetry-relay-compare-init:1"));
    assert!(state["invokes"][1]["layers"][0] == published.as_str());
    // SnapStart reports carry Restore Duration, not Init Duration.
    assert!(
        printed.contains("| Restore Duration, ms | with | 2 |"),
        "{printed}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parsing_and_statistics_match_the_hand_worked_examples() {
    let Some(python) = python() else {
        return;
    };
    let output = Command::new(python)
        .arg(root().join("tests/standin/test_compare_init.py"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}
