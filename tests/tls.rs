//! `https://` end to end, against an HTTPS server made of parts nobody here wrote
//! (`tests/validate/tls_server.py`: certificates from `trustme`, TLS from Python's OpenSSL):
//! a private CA trusted through `OTEL_EXPORTER_OTLP_CERTIFICATE` (and the NDJSON output's
//! `TELEMETRY_RELAY_HTTP_CERTIFICATE`), a server that requires a client certificate (mTLS),
//! and a CA that did not sign the server's certificate: that handshake failure is counted and
//! warned once, with the reason, and nothing else is harmed.

// Tests may unwrap and panic: a failed expectation is what should stop them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use support::{Run, venv_python};

/// A running HTTPS server and the directory with its certificates and request log.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    /// `None` when the venv is missing (a failure under `CI=true`).
    fn start(require_client_cert: bool) -> Option<Server> {
        Server::start_with(require_client_cert, false)
    }

    fn start_with(require_client_cert: bool, tls12: bool) -> Option<Server> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = venv_python("TLS server")?;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "telemetry-relay-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new(python);
        command
            .arg(root.join("tests/validate/tls_server.py"))
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if require_client_cert {
            command.arg("--require-client-cert");
        }
        if tls12 {
            command.arg("--tls12");
        }
        let mut child = command.spawn().expect("start tls_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("tls_server.py said {line:?}"));
        Some(Server { child, port, dir })
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// What it accepted, in order.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(server: &Server, extra: &[&str]) -> Run {
    let mut args = vec![
        "--invokes".to_string(),
        "2".to_string(),
        "--env".to_string(),
        format!(
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=https://localhost:{}/v1/logs",
            server.port
        ),
        "--env".to_string(),
        "TELEMETRY_RELAY_LOG=info".to_string(),
    ];
    for e in extra {
        args.push("--env".to_string());
        args.push(e.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Run::new(&args)
}

#[test]
fn a_private_ca_is_trusted_for_otlp_and_ndjson() {
    let Some(server) = Server::start(false) else {
        return;
    };
    let ca = server.file("ca.pem");
    let run = run(
        &server,
        &[
            &format!("OTEL_EXPORTER_OTLP_CERTIFICATE={ca}"),
            &format!(
                "TELEMETRY_RELAY_HTTP_URL=https://127.0.0.1:{}/ndjson",
                server.port
            ),
            &format!("TELEMETRY_RELAY_HTTP_CERTIFICATE={ca}"),
        ],
    );
    run.assert_clean_exit();
    for output in ["otlp-logs", "http"] {
        let line = run.output_line(output);
        run.check(
            line.contains(" rejected=0 ")
                && line.contains(" dropped=0")
                && !line.contains(" sent=0 "),
            &format!("{output} sent everything over https: {line}"),
        );
    }
    let paths: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r["path"].as_str().map(str::to_string))
        .collect();
    run.check(
        paths.iter().any(|p| p == "/v1/logs") && paths.iter().any(|p| p == "/ndjson"),
        &format!("the server took both outputs' requests: {paths:?}"),
    );
}

#[test]
fn a_client_certificate_is_presented_when_the_server_requires_one() {
    let Some(server) = Server::start(true) else {
        return;
    };
    let run = run(
        &server,
        &[
            &format!("OTEL_EXPORTER_OTLP_CERTIFICATE={}", server.file("ca.pem")),
            &format!(
                "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE={}",
                server.file("client.pem")
            ),
            &format!(
                "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY={}",
                server.file("client-key.pem")
            ),
        ],
    );
    run.assert_clean_exit();
    let line = run.output_line("otlp-logs");
    run.check(
        line.contains(" rejected=0 ") && !line.contains(" sent=0 "),
        &format!("accepted over mTLS: {line}"),
    );
    let requests = server.requests();
    run.check(
        !requests.is_empty()
            && requests
                .iter()
                .all(|r| r["client"] == "telemetry-relay-test"),
        &format!("every request presented the client certificate: {requests:?}"),
    );
}

/// A server that requires a client certificate we do not have refuses us with an alert and
/// closes at once, while our side of the handshake may still be arriving: the kernel then
/// resets the connection, and the alert is lost with it. So the refusal reaches us either as
/// the alert (final: counted as rejected, warned once) or as a reset (retried like any lost
/// connection until the deadline, then counted as dropped). Either way nothing is sent, every
/// event is counted, and nothing else is harmed. TLS 1.3 makes the reset the usual case (the
/// server checks the certificate after the client has finished), so this runs TLS 1.2.
#[test]
fn without_the_client_certificate_the_refusal_is_counted_and_nothing_else_harmed() {
    let Some(server) = Server::start_with(true, true) else {
        return;
    };
    let run = run(
        &server,
        &[&format!(
            "OTEL_EXPORTER_OTLP_CERTIFICATE={}",
            server.file("ca.pem")
        )],
    );
    run.assert_clean_exit();
    let line = run.output_line("otlp-logs");
    let counted = |name: &str| run.output_counter("otlp-logs", name);
    run.check(
        counted("sent") == 0
            && counted("received") > 0
            && counted("rejected") + counted("dropped") == counted("received"),
        &format!("nothing sent, every event counted: {line}"),
    );
    let warnings = warnings(&run);
    run.check(
        !warnings.is_empty()
            && warnings
                .iter()
                .all(|w| w.contains("TLS") || w.contains("Broken pipe") || w.contains("reset")),
        &format!("warned with the reason: {warnings:#?}"),
    );
    run.check(server.requests().is_empty(), "the server took nothing");
    check_stdout_whole(&run);
}

#[test]
fn a_wrong_ca_is_a_counted_handshake_failure_and_nothing_else_is_harmed() {
    let Some(server) = Server::start(false) else {
        return;
    };
    let run = run(
        &server,
        &[&format!(
            "OTEL_EXPORTER_OTLP_CERTIFICATE={}",
            server.file("other-ca.pem")
        )],
    );
    check_refused(&run, &server);
    let warning = run
        .stderr()
        .into_iter()
        .find(|l| l.contains("otlp-logs") && l.contains("TLS"))
        .unwrap_or_default();
    run.check(
        warning.to_ascii_lowercase().contains("certificate"),
        &format!("the warning gives the reason: {warning}"),
    );
}

/// Every log event counted as rejected, warned once, no request taken, stdout whole, and a
/// clean exit.
fn check_refused(run: &Run, server: &Server) {
    run.assert_clean_exit();
    let line = run.output_line("otlp-logs");
    run.check(
        line.contains(" sent=0 ") && !line.contains(" rejected=0 ") && line.contains(" dropped=0"),
        &format!("every event counted as rejected: {line}"),
    );
    let warnings = warnings(run);
    run.check(
        warnings.len() == 1 && warnings[0].contains("TLS"),
        &format!("warned once, with the reason: {warnings:#?}"),
    );
    run.check(server.requests().is_empty(), "the server took nothing");
    check_stdout_whole(run);
}

/// The warnings about the OTLP logs output.
fn warnings(run: &Run) -> Vec<String> {
    run.stderr()
        .into_iter()
        .filter(|l| l.contains("WARN") && l.contains("otlp-logs"))
        .collect()
}

fn check_stdout_whole(run: &Run) {
    let lines = run
        .stdout()
        .iter()
        .filter(|l| l.contains("marker fn-"))
        .count();
    run.check(lines >= 2, "stdout still has the function's lines");
}

/// A file that is there at Init but holds no certificate: read at the first request, on the
/// output's thread, and every request of that output refused with the reason.
#[test]
fn a_certificate_file_that_is_not_pem_refuses_that_output_only() {
    let Some(server) = Server::start(false) else {
        return;
    };
    let run = run(
        &server,
        &["OTEL_EXPORTER_OTLP_CERTIFICATE=/proc/self/status"],
    );
    check_refused(&run, &server);
    run.check(
        run.stderr()
            .iter()
            .any(|l| l.contains("TLS setup: /proc/self/status holds no PEM certificate")),
        "the warning names the file and what is wrong with it",
    );
}
