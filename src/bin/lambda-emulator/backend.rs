//! A local test backend for the extension's network outputs, on 127.0.0.1, written on raw
//! TCP so it can misbehave exactly: answer 200 (`healthy`), always answer a status
//! (`status:503`), fail the first K requests and then recover (`fail:503:2`), read a request
//! and never answer (`hang`), close every connection after one answer so a pooled connection
//! is dead on reuse, as after a freeze (`reset`), or not exist at all (`down`). It can throttle
//! the first K requests with 429 and `Retry-After: S` (`retry-after:S:K`), or accept every
//! request while saying it rejected N items of it (`partial:N`, OTLP's partial success).
//! Every request it reads is recorded for the report, with when it came (`at_ms`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

/// How the backend behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Healthy,
    Status(u16),
    Fail { status: u16, times: usize },
    Hang,
    Reset,
    Down,
    RetryAfter { seconds: u64, times: usize },
    Partial(u64),
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let status = |s: &str| {
            s.parse::<u16>()
                .map_err(|_| format!("--backend {text}: {s:?} is not a status"))
        };
        match parts.as_slice() {
            ["healthy"] => Ok(Mode::Healthy),
            ["hang"] => Ok(Mode::Hang),
            ["reset"] => Ok(Mode::Reset),
            ["down"] => Ok(Mode::Down),
            ["status", s] => Ok(Mode::Status(status(s)?)),
            ["retry-after", s, n] => Ok(Mode::RetryAfter {
                seconds: s
                    .parse()
                    .map_err(|_| format!("--backend {text}: {s:?} is not seconds"))?,
                times: n
                    .parse()
                    .map_err(|_| format!("--backend {text}: {n:?} is not a count"))?,
            }),
            ["partial", n] => {
                Ok(Mode::Partial(n.parse().map_err(|_| {
                    format!("--backend {text}: {n:?} is not a count")
                })?))
            }
            ["fail", s, n] => Ok(Mode::Fail {
                status: status(s)?,
                times: n
                    .parse()
                    .map_err(|_| format!("--backend {text}: {n:?} is not a count"))?,
            }),
            _ => Err(format!(
                "--backend {text:?}: expected healthy, status:N, fail:N:K, retry-after:S:K, \
                 partial:N, hang, reset or down"
            )),
        }
    }
}

/// A running backend.
pub struct Backend {
    pub url: String,
    mode: Mode,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Backend {
    pub fn start(mode: Mode) -> std::io::Result<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        if mode == Mode::Down {
            // The port was free a moment ago and nothing listens on it now: connection refused.
            drop(listener);
        } else {
            let (mode, requests) = (mode.clone(), requests.clone());
            let count = Arc::new(AtomicUsize::new(0));
            let started = Instant::now();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let (mode, requests, count) = (mode.clone(), requests.clone(), count.clone());
                    std::thread::spawn(move || serve(stream, &mode, &requests, &count, started));
                }
            });
        }
        Ok(Backend {
            url,
            mode,
            requests,
        })
    }

    /// Whether a request the backend answered 200 contained `text`.
    pub fn accepted(&self, text: &str) -> bool {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        requests
            .iter()
            .any(|r| r["status"] == 200 && r["body"].as_str().is_some_and(|b| b.contains(text)))
    }

    pub fn report(&self) -> Value {
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        json!({"mode": format!("{:?}", self.mode), "url": self.url, "requests": requests})
    }
}

fn serve(
    stream: TcpStream,
    mode: &Mode,
    requests: &Mutex<Vec<Value>>,
    count: &AtomicUsize,
    started: Instant,
) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let n = count.fetch_add(1, Ordering::SeqCst);
        let status = match mode {
            Mode::Healthy | Mode::Reset => 200,
            Mode::Status(s) => *s,
            Mode::Fail { status, times } if n < *times => *status,
            Mode::Fail { .. } => 200,
            Mode::RetryAfter { times, .. } if n < *times => 429,
            Mode::RetryAfter { .. } | Mode::Partial(_) => 200,
            Mode::Hang | Mode::Down => 0,
        };
        let mut record = request;
        let protobuf = record["headers"]["content-type"] == "application/x-protobuf";
        let json = record["headers"]["content-type"] == "application/json";
        record["status"] = json!(status);
        record["at_ms"] = json!(started.elapsed().as_secs_f64() * 1000.0);
        requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        if *mode == Mode::Hang {
            // Hold the connection open, unanswered, until the emulator exits.
            loop {
                std::thread::park();
            }
        }
        let (extra, body) = match mode {
            Mode::RetryAfter { seconds, .. } if status == 429 => {
                (format!("Retry-After: {seconds}\r\n"), b"ok".to_vec())
            }
            // In the request's encoding, as the OTLP specification asks.
            Mode::Partial(n) if protobuf => {
                let message = b"over quota";
                let mut partial = vec![0x08];
                partial.extend(varint(*n));
                partial.push(0x12);
                partial.push(message.len() as u8);
                partial.extend_from_slice(message);
                let mut response = vec![0x0a, partial.len() as u8];
                response.extend(partial);
                (
                    "Content-Type: application/x-protobuf\r\n".to_string(),
                    response,
                )
            }
            Mode::Partial(n) => (
                "Content-Type: application/json\r\n".to_string(),
                format!(
                    r#"{{"partialSuccess":{{"rejectedLogRecords":"{n}","errorMessage":"over quota"}}}}"#
                )
                .into_bytes(),
            ),
            // What collectors answer: an empty Export*ServiceResponse in the request's
            // encoding; NDJSON gets a plain "ok".
            _ if protobuf => (
                "Content-Type: application/x-protobuf\r\n".to_string(),
                Vec::new(),
            ),
            _ if json => {
                ("Content-Type: application/json\r\n".to_string(), b"{}".to_vec())
            }
            _ => ("Content-Type: text/plain\r\n".to_string(), b"ok".to_vec()),
        };
        let mut answer = format!(
            "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend(body);
        if writer.write_all(&answer).is_err() || *mode == Mode::Reset {
            return;
        }
    }
}

/// One HTTP/1.1 request with a Content-Length body, as `{path, headers, body}`.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Value> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut headers = serde_json::Map::new();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok().filter(|n| *n > 0)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if name == "content-length" {
                length = value.trim().parse().unwrap_or(0);
            }
            headers.insert(name, json!(value.trim()));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut record = json!({"path": path, "headers": headers, "wire_bytes": length});
    if record["headers"]["content-encoding"] == "gzip" {
        // Decoded for the tests (miniz_oxide's inflate); the raw bytes go into the report too,
        // for tests/validate/gzip.py to check with Python's own gzip.
        record["raw_hex"] = json!(hex(&body));
        body = gunzip(&body).unwrap_or_default();
    }
    if record["headers"]["content-type"] == "application/x-protobuf" {
        // For tests/validate/otlp.py; "body" below still shows the strings it carries.
        record["body_hex"] = json!(hex(&body));
    }
    record["body"] = json!(String::from_utf8_lossy(&body));
    Some(record)
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    while n >= 0x80 {
        bytes.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    bytes.push(n as u8);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The payload of a gzip stream without optional header fields (what the extension writes).
fn gunzip(stream: &[u8]) -> Option<Vec<u8>> {
    let flags = *stream.get(3)?;
    let deflated = stream.get(10..stream.len().checked_sub(8)?)?;
    (stream.get(..3)? == [0x1f, 0x8b, 8] && flags == 0)
        .then(|| miniz_oxide::inflate::decompress_to_vec(deflated).ok())
        .flatten()
}
