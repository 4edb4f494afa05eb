//! Firehose against moto (`make bench` installs it in `target/py` with the test tools): the
//! listener's full batches relayed to a Firehose stream with moto's request authentication on,
//! as events per CPU-second of the extension, and what it lost.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Args, dropped, emulate, percentile};

/// Kills moto when the row is done, however it ends.
struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// The Firehose row; skipped, saying why, without the venv or a fixture.
pub fn row(args: &Args) -> Result<(), String> {
    let (server, python) = ("target/py/bin/moto_server", "target/py/bin/python");
    if args.fixture.is_empty() || !std::path::Path::new(server).exists() {
        println!("\nFirehose against moto: skipped ({server} missing; `make pydeps` installs it)");
        return Ok(());
    }
    let port = free_port()?.to_string();
    let moto = Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("moto_server: {e}"))?;
    let _moto = Moto(moto);
    let ready = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap_or(0))).is_err() {
        if Instant::now() > ready {
            return Err("moto_server never listened".to_string());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let keys_file = std::env::temp_dir().join(format!("relay-bench-moto-{port}.json"));
    let keys_path = keys_file.to_string_lossy().to_string();
    let setup = Command::new(python)
        .args([
            "tests/validate/moto_firehose.py",
            "setup",
            &port,
            &keys_path,
        ])
        .status()
        .map_err(|e| format!("moto setup: {e}"))?;
    if !setup.success() {
        return Err("moto setup failed".to_string());
    }
    let keys: Value = std::fs::read_to_string(&keys_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let _ = std::fs::remove_file(&keys_file);
    let env = [
        format!(
            "TELEMETRY_RELAY_FIREHOSE_STREAM={}",
            keys["stream"].as_str().unwrap_or("")
        ),
        format!("AWS_ENDPOINT_URL_FIREHOSE=http://127.0.0.1:{port}"),
        format!("AWS_ACCESS_KEY_ID={}", keys["key"].as_str().unwrap_or("")),
        format!(
            "AWS_SECRET_ACCESS_KEY={}",
            keys["secret"].as_str().unwrap_or("")
        ),
        "AWS_SESSION_TOKEN=".to_string(),
        // The blast counts what reaches stdout.
        "TELEMETRY_RELAY_STDOUT_FORMAT=json".to_string(),
        "TELEMETRY_RELAY_LOG=info".to_string(),
    ];
    let mut run = vec!["--invokes", "1", "--blast", &args.fixture];
    for e in &env {
        run.extend(["--env", e.as_str()]);
    }
    let (mut per_cpu, mut lost) = (Vec::new(), 0u64);
    for _ in 0..3 {
        let report = emulate(&args.emulator, &args.relay, &run)?;
        let events = report["blast"]["events"].as_f64().unwrap_or(0.0);
        if let Some(cpu) = report["cpu_ms"].as_f64().filter(|c| *c > 0.0) {
            per_cpu.push(events / (cpu / 1000.0));
        }
        lost += dropped(&report, "output firehose:");
    }
    println!(
        "\nFirehose against moto (request authentication on), 50 POSTs of a full 1000-event \
         batch, stdout on: median of 3 runs **{:.0} events per CPU-second** (parsing, NDJSON, \
         records, base64, SigV4 and sending, in the extension's CPU time); events lost: {lost}",
        percentile(&mut per_cpu, 0.5).unwrap_or(0.0)
    );
    Ok(())
}
