//! The Telemetry API listener: a `tiny_http` server on its own thread that answers every POST
//! and sends what it read to the relay. It never waits on an output.
//!
//! Lambda's rules shape every answer (SPEC.md §5): a POST is answered 200 as soon as its bytes
//! are read, whatever they contain, because a non-200 causes redelivery loops or drops; only a
//! body over our cap is refused, with 413, before it is buffered. Other methods get 405 and
//! other paths 404. Parsing happens after the answer, and one bad body or element costs only
//! itself (see `event`). The first malformed POST is reported on stderr; all are counted.

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_http::{Method, Request, Response, Server};

use crate::msg::{BACKLOG_LIMIT, Backlog, Msg};
use crate::telemetry::batch;
use crate::{debug, warn};

/// The running listener: its server, for `unblock()` at shutdown, and its thread.
pub struct Listener {
    server: Arc<Server>,
    thread: JoinHandle<()>,
}

impl Listener {
    /// Serves the socket `main` bound and subscribed with, on a new thread. Building the
    /// server starts tiny_http's own threads, which is why this runs off the init path.
    pub fn start(
        socket: TcpListener,
        tx: Sender<Msg>,
        backlog: Backlog,
        max_body_bytes: u64,
    ) -> Result<Listener, String> {
        let server = Arc::new(Server::from_listener(socket, None).map_err(|e| e.to_string())?);
        let serving = server.clone();
        let thread = std::thread::Builder::new()
            .name("listener".to_string())
            .spawn(move || serve(&serving, &tx, &backlog, max_body_bytes))
            .map_err(|e| e.to_string())?;
        Ok(Listener { server, thread })
    }

    /// Stops accepting; the thread sends `Msg::ListenerClosed` and ends.
    pub fn stop(&self) {
        self.server.unblock();
    }

    /// Waits for the thread if it has ended; never blocks on one that has not.
    pub fn join(self) {
        if self.thread.is_finished() {
            let _ = self.thread.join();
        }
    }
}

fn serve(server: &Server, tx: &Sender<Msg>, backlog: &Backlog, max_body_bytes: u64) {
    let mut warned = false;
    for request in server.incoming_requests() {
        // The relay is behind (a slow stdout): leave this body in the socket until it catches up.
        while backlog.load(Ordering::Acquire) >= BACKLOG_LIMIT {
            std::thread::park_timeout(Duration::from_millis(1));
        }
        let Some(msg) = handle(request, max_body_bytes) else {
            continue;
        };
        if let Msg::Post(parsed) = &msg {
            backlog.fetch_add(parsed.batch.footprint(), Ordering::Release);
        }
        if let Msg::Post(parsed) = &msg
            && let Some(problem) = &parsed.problem
        {
            if !warned {
                warn!(
                    "malformed telemetry POST (counted; further ones are only counted): {problem}"
                );
                warned = true;
            } else {
                debug!("malformed telemetry POST: {problem}");
            }
        }
        if tx.send(msg).is_err() {
            return;
        }
    }
    let _ = tx.send(Msg::ListenerClosed);
}

/// Answers one request; returns what the relay must hear of it.
fn handle(mut request: Request, max_body_bytes: u64) -> Option<Msg> {
    if request.url() != "/" && !request.url().starts_with("/?") {
        let _ = request.respond(Response::empty(404));
        return Some(Msg::Refused);
    }
    if *request.method() != Method::Post {
        let allow = tiny_http::Header::from_bytes("Allow", "POST").ok();
        let response = Response::empty(405);
        let _ = request.respond(match allow {
            Some(h) => response.with_header(h),
            None => response,
        });
        return Some(Msg::Refused);
    }
    let declared = request.body_length().map(|n| n as u64);
    if declared.is_some_and(|n| n > max_body_bytes) {
        return Some(refuse(request, declared));
    }
    let capacity = declared.unwrap_or(0).min(max_body_bytes) as usize;
    let mut body = Vec::with_capacity(capacity);
    let read = request
        .as_reader()
        .take(max_body_bytes + 1)
        .read_to_end(&mut body);
    if body.len() as u64 > max_body_bytes {
        return Some(refuse(request, None));
    }
    if let Err(e) = read {
        // The sender hung up mid-body: nobody is waiting for an answer. Keep what came.
        debug!("telemetry POST cut short: {e}");
    }
    let _ = request.respond(Response::empty(200));
    Some(Msg::Post(batch::parse(body)))
}

fn refuse(request: Request, declared: Option<u64>) -> Msg {
    let _ = request.respond(Response::empty(413));
    Msg::Oversize { declared }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A listener on port 0, its URL, and the relay's end of the channel.
    fn listener(max_body_bytes: u64) -> (Arc<Server>, String, mpsc::Receiver<Msg>) {
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let listener = Listener::start(socket, tx, Backlog::default(), max_body_bytes).unwrap();
        (
            listener.server.clone(),
            format!("http://127.0.0.1:{port}"),
            rx,
        )
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
            let Msg::Post(parsed) = received(&rx) else {
                panic!("{path:?} was not handed to the relay");
            };
            let wrong_types = path.ends_with("wrong-types.txt");
            assert!(
                parsed.problem.is_some() || wrong_types,
                "{path:?} counted as malformed"
            );
        }
        server.unblock();
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
        assert!(matches!(received(&rx), Msg::Post(_)));
        server.unblock();
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
        server.unblock();
    }
}
