//! Hostile local clients against the extension's listener: what the function's own code or
//! another extension can do to it, since both can reach its port. Each attack is raw TCP, so
//! it can say things no HTTP client would (a `Content-Length` of 2^63, half a body, a 32 MiB
//! header). Connections an attack leaves open are handed back, for the scenario to hold as
//! long as it wants (stalls until the end; `hold` until after the next invocation).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One attack, as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attack {
    /// `Content-Length: 100000000000` and one byte.
    HugeLength,
    /// `Content-Length: 9223372036854775808` and one byte.
    OverflowLength,
    /// Declares 5000 bytes, sends one, and keeps the connection open.
    StallBody,
    /// Declares 8 MB (over the cap: 413), never sends it, keeps the connection open.
    Stall413,
    /// N connections that send nothing and stay open.
    Hold(usize),
    /// One request whose header is N bytes long.
    BigHeader(usize),
    /// One POST of as many of the smallest events as fit in N bytes.
    TinyEvents(usize),
}

impl Attack {
    pub fn parse(text: &str) -> Result<Attack, String> {
        let (name, n) = match text.split_once(':') {
            Some((name, n)) => (
                name,
                Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("--attack {text}: {n:?} is not a number"))?,
                ),
            ),
            None => (text, None),
        };
        match (name, n) {
            ("huge-length", None) => Ok(Attack::HugeLength),
            ("overflow-length", None) => Ok(Attack::OverflowLength),
            ("stall-body", None) => Ok(Attack::StallBody),
            ("stall-413", None) => Ok(Attack::Stall413),
            ("hold", Some(n)) => Ok(Attack::Hold(n)),
            ("big-header", Some(n)) => Ok(Attack::BigHeader(n)),
            ("tiny-events", Some(n)) => Ok(Attack::TinyEvents(n)),
            _ => Err(format!("--attack {text}: unknown attack")),
        }
    }

    pub fn name(&self) -> String {
        match self {
            Attack::HugeLength => "huge-length".into(),
            Attack::OverflowLength => "overflow-length".into(),
            Attack::StallBody => "stall-body".into(),
            Attack::Stall413 => "stall-413".into(),
            Attack::Hold(n) => format!("hold:{n}"),
            Attack::BigHeader(n) => format!("big-header:{n}"),
            Attack::TinyEvents(n) => format!("tiny-events:{n}"),
        }
    }

    /// Whether the connections it leaves open are to be closed after the next invocation.
    pub fn releases_early(&self) -> bool {
        matches!(self, Attack::Hold(_))
    }
}

/// What an attack saw, and the connections it leaves open.
pub struct Outcome {
    /// The answer's status line, `held` for connections left waiting, or the error.
    pub seen: String,
    pub open: Vec<TcpStream>,
}

/// Runs `attack` against the listener on 127.0.0.1:`port`.
pub fn run(attack: &Attack, port: u16) -> Outcome {
    let result = match attack {
        Attack::HugeLength => answered(port, "Content-Length: 100000000000\r\n", b"["),
        Attack::OverflowLength => answered(port, "Content-Length: 9223372036854775808\r\n", b"["),
        Attack::StallBody => held(port, "Content-Length: 5000\r\n", b"["),
        Attack::Stall413 => held(port, "Content-Length: 8000000\r\n", b""),
        Attack::Hold(n) => hold(port, *n),
        Attack::BigHeader(n) => {
            let header = format!("X-Big: {}\r\nContent-Length: 2\r\n", "a".repeat(*n));
            answered(port, &header, b"[]")
        }
        Attack::TinyEvents(n) => {
            let body = tiny_events(*n);
            answered(port, &format!("Content-Length: {}\r\n", body.len()), &body)
        }
    };
    result.unwrap_or_else(|e| Outcome {
        seen: format!("error: {e}"),
        open: Vec::new(),
    })
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

fn send(port: u16, headers: &str, body: &[u8]) -> std::io::Result<TcpStream> {
    let mut stream = connect(port)?;
    stream.write_all(format!("POST / HTTP/1.1\r\nHost: attack\r\n{headers}\r\n").as_bytes())?;
    stream.write_all(body)?;
    Ok(stream)
}

/// Sends, reads the status line, closes.
fn answered(port: u16, headers: &str, body: &[u8]) -> std::io::Result<Outcome> {
    let mut stream = send(port, headers, body)?;
    let mut status = [0u8; 12];
    stream.read_exact(&mut status)?;
    Ok(Outcome {
        seen: String::from_utf8_lossy(&status).into_owned(),
        open: Vec::new(),
    })
}

/// Sends and leaves the connection open, without waiting for an answer.
fn held(port: u16, headers: &str, body: &[u8]) -> std::io::Result<Outcome> {
    let stream = send(port, headers, body)?;
    Ok(Outcome {
        seen: "held".to_string(),
        open: vec![stream],
    })
}

/// `n` idle connections; stops early when the extension stops accepting them.
fn hold(port: u16, n: usize) -> std::io::Result<Outcome> {
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        match connect(port) {
            Ok(stream) => open.push(stream),
            Err(_) => break,
        }
    }
    Ok(Outcome {
        seen: format!("held {} connections", open.len()),
        open,
    })
}

/// A JSON array of the smallest readable events, `bytes` long at most.
fn tiny_events(bytes: usize) -> Vec<u8> {
    const EVENT: &[u8] = br#"{"time":"t","type":"x","record":1}"#;
    let count = (bytes.saturating_sub(2) / (EVENT.len() + 1)).max(1);
    let mut body = Vec::with_capacity(bytes);
    body.push(b'[');
    for i in 0..count {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(EVENT);
    }
    body.push(b']');
    body
}
