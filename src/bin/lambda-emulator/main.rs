//! lambda-emulator: a scriptable stand-in for the Lambda service, written from SPEC.md (not
//! from the extension's code, which it cannot import), for `make run`, the tests in `tests/`
//! and `make bench`.
//!
//! It starts one extension as Lambda would, serves it the Extensions and Telemetry APIs, plays
//! the runtime and the function (each invoke logs lines with unique markers), freezes the
//! process between invokes if asked, holds the final batch until after SHUTDOWN as a frozen
//! environment does, and SIGKILLs at the SHUTDOWN deadline. At the end it prints what it
//! observed (and with `--json PATH` writes it): init time, post-runtime time per invoke,
//! SHUTDOWN-to-exit time, peak RSS, and every event it produced and delivered.

// A test double: an impossible state may panic here, unlike in the extension.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod attack;
mod backend;
mod delivery;
mod events;
mod options;
mod process;
mod report;
mod scenario;

use std::process::ExitCode;

/// The emulated function's name.
pub const FUNCTION_NAME: &str = "emulated-function";

fn main() -> ExitCode {
    let options = match options::Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(message) if message == "help" => {
            println!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("lambda-emulator: {message}\n\n{}", options::USAGE);
            return ExitCode::from(2);
        }
    };
    let report = match scenario::run(&options) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("lambda-emulator: {message}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("{}", report::summary(&report));
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    if let Some(path) = &options.json
        && let Err(e) = std::fs::write(path, json)
    {
        eprintln!("lambda-emulator: cannot write {path}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
