//! baseline-extension: the least an external extension can do (register, then `/next` until
//! SHUTDOWN), with the standard library only. `make bench` runs it beside telemetry-relay under
//! the same emulator so our figures are read against what any extension costs. Never shipped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

/// One HTTP/1.1 exchange on a fresh connection; returns the head and the body.
fn exchange(host: &str, request: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(host)?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((head.to_string(), body.to_string()))
}

fn main() -> ExitCode {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        eprintln!("baseline-extension: AWS_LAMBDA_RUNTIME_API is not set");
        return ExitCode::FAILURE;
    };
    let (host, prefix) = api
        .split_once('/')
        .map_or((api.as_str(), String::new()), |(h, p)| (h, format!("/{p}")));
    let body = r#"{"events":["INVOKE","SHUTDOWN"]}"#;
    let register = format!(
        "POST {prefix}/2020-01-01/extension/register HTTP/1.1\r\nHost: {host}\r\nLambda-Extension-Name: baseline-extension\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let id = match exchange(host, &register) {
        Ok((head, _)) => head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("Lambda-Extension-Identifier"))
            })
            .map(|(_, v)| v.trim().to_string()),
        Err(_) => None,
    };
    let Some(id) = id else {
        eprintln!("baseline-extension: register failed");
        return ExitCode::FAILURE;
    };
    let next = format!(
        "GET {prefix}/2020-01-01/extension/event/next HTTP/1.1\r\nHost: {host}\r\n\
         Lambda-Extension-Identifier: {id}\r\nConnection: close\r\n\r\n"
    );
    loop {
        match exchange(host, &next) {
            Ok((_, body)) if body.contains("SHUTDOWN") => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(e) => {
                eprintln!("baseline-extension: /next failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}
