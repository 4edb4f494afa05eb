//! The listener against real sockets on port 0: answers, refusals, and hostile clients.

use super::*;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::mpsc;

/// A listener on port 0, its URL, and the relay's end of the channel.
fn listener(max_body_bytes: u64) -> (Listener, String, mpsc::Receiver<Msg>) {
    with_readers(max_body_bytes, MAX_READERS)
}

fn with_readers(max_body_bytes: u64, readers: usize) -> (Listener, String, mpsc::Receiver<Msg>) {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let backlog = Backlog::default();
    let listener = Listener::with_readers(socket, tx, backlog, max_body_bytes, readers).unwrap();
    (listener, format!("http://127.0.0.1:{port}"), rx)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn post(url: &str, body: &[u8]) -> u16 {
    agent()
        .post(url)
        .send(body)
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn received(rx: &mpsc::Receiver<Msg>) -> Msg {
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

#[test]
fn every_malformed_fixture_is_answered_200_and_handed_on() {
    let (server, url, rx) = listener(4 * 1024 * 1024);
    let dir = format!("{}/tests/fixtures/malformed", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        assert_eq!(post(&format!("{url}/"), &body), 200, "{path:?}");
        let Msg::Post { parsed, .. } = received(&rx) else {
            panic!("{path:?} was not handed to the relay");
        };
        let wrong_types = path.ends_with("wrong-types.txt");
        assert!(
            parsed.problem.is_some() || wrong_types,
            "{path:?} counted as malformed"
        );
    }
    server.stop();
}

#[test]
fn posts_are_numbered_in_the_order_they_are_answered() {
    let (server, url, rx) = listener(4 * 1024 * 1024);
    // One read by the listener itself, the others by readers: one number line for all.
    let big = format!(
        "[{}]",
        vec![r#"{"time":"t","type":"function","record":"x"}"#; 2000].join(",")
    );
    for (n, body) in [b"[]".as_slice(), big.as_bytes(), b"[]", big.as_bytes()]
        .iter()
        .enumerate()
    {
        assert_eq!(post(&format!("{url}/"), body), 200);
        let Msg::Post { seq, .. } = received(&rx) else {
            panic!("POST {n} was not handed on");
        };
        assert_eq!(seq, n as u64);
    }
    server.stop();
}

#[test]
fn oversized_bodies_get_413_and_are_not_buffered() {
    let (server, url, rx) = listener(1024);
    assert_eq!(post(&format!("{url}/"), &[b' '; 2048]), 413);
    assert!(matches!(
        received(&rx),
        Msg::Oversize {
            declared: Some(2048)
        }
    ));
    assert_eq!(post(&format!("{url}/"), b"[]"), 200);
    assert!(matches!(received(&rx), Msg::Post { .. }));
    server.stop();
}

#[test]
fn other_methods_and_paths_are_refused() {
    let (server, url, rx) = listener(1024);
    let get = agent().get(&format!("{url}/")).call().unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(post(&format!("{url}/elsewhere"), b"[]"), 404);
    assert!(
        matches!(received(&rx), Msg::Refused),
        "counted, not relayed"
    );
    assert!(
        matches!(received(&rx), Msg::Refused),
        "counted, not relayed"
    );
    server.stop();
}

/// Opens a raw connection and sends `head` (a request line and headers, without the blank
/// line) and then `body`.
fn raw(url: &str, head: &str, body: &[u8]) -> TcpStream {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(format!("{head}\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    stream.write_all(body).unwrap();
    stream
}

/// The status line of the answer on `stream`.
fn status_of(stream: &mut TcpStream) -> String {
    let mut answer = [0u8; 12];
    let _ = stream.read_exact(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// After whatever came before, a well-formed batch still gets through.
fn still_serving(url: &str, rx: &mpsc::Receiver<Msg>) {
    let body = br#"[{"time":"t","type":"function","record":"after"}]"#;
    assert_eq!(post(&format!("{url}/"), body), 200);
    loop {
        match received(rx) {
            Msg::Post { parsed, .. } if parsed.batch.len() == 1 => return,
            _ => {}
        }
    }
}

#[test]
fn a_content_length_past_memory_or_usize_is_refused_and_survived() {
    let (server, url, rx) = listener(4 << 20);
    for declared in [
        "100000000000",
        "9223372036854775808",
        "18446744073709551615",
    ] {
        let mut stream = raw(
            &url,
            &format!("POST / HTTP/1.1\r\nContent-Length: {declared}"),
            b"[",
        );
        assert_eq!(status_of(&mut stream), "HTTP/1.1 413", "{declared}");
        assert!(matches!(received(&rx), Msg::Oversize { .. }), "{declared}");
        drop(stream);
        still_serving(&url, &rx);
    }
    server.stop();
}

#[test]
fn a_stalled_body_does_not_hold_up_the_next_post() {
    let (server, url, rx) = listener(4 << 20);
    // Declares 5000 bytes, sends one, and keeps the connection open.
    let _stalled = raw(&url, "POST / HTTP/1.1\r\nContent-Length: 5000", b"[");
    // Refused for its size, and never followed by the body.
    let mut refused = raw(&url, "POST / HTTP/1.1\r\nContent-Length: 8000000", b"");
    assert_eq!(status_of(&mut refused), "HTTP/1.1 413");
    // Chunked, and stalled after its first chunk.
    let _chunked = raw(
        &url,
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked",
        b"5\r\n[1,2,",
    );
    still_serving(&url, &rx);
    server.stop();
}

#[test]
fn more_stalled_bodies_than_readers_still_leave_small_posts_served() {
    // Two readers, three stalled bodies: the third is cut off with 503 and counted. (Few
    // connections: tiny_http's thread pool can leave a connection unserved in a burst of
    // them while others stall its threads; see the README's behaviour section.)
    let (server, url, rx) = with_readers(4 << 20, 2);
    let mut stalled: Vec<TcpStream> = (0..3)
        .map(|_| raw(&url, "POST / HTTP/1.1\r\nContent-Length: 5000", b"["))
        .collect();
    while !matches!(received(&rx), Msg::Refused) {}
    let answers: Vec<String> = stalled
        .iter_mut()
        .filter_map(|s| {
            s.set_nonblocking(true).ok()?;
            let mut head = [0u8; 12];
            let n = s.read(&mut head).ok()?;
            Some(String::from_utf8_lossy(&head[..n]).into_owned())
        })
        .collect();
    // One, or two if the waiting reader was not yet waiting when the first came.
    assert!(
        (1..=2).contains(&answers.len()) && answers.iter().all(|a| a == "HTTP/1.1 503"),
        "only those past the readers were cut off: {answers:?}"
    );
    // A batch of up to 1 KiB is read by tiny_http itself and answered by the listener.
    still_serving(&url, &rx);
    drop(stalled);
    server.stop();
}

#[test]
fn stopping_ends_the_thread_with_listener_closed() {
    let (server, _url, rx) = listener(1024);
    server.stop();
    loop {
        if matches!(received(&rx), Msg::ListenerClosed) {
            break;
        }
    }
}
