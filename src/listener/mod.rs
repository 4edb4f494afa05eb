//! The Telemetry API listener: a `tiny_http` server whose requests are answered off the thread
//! that takes them, so that no one client can stop the others. It never waits on an output.
//!
//! Anything on the machine can reach this port: the function's own code, other extensions.
//! So the shape is chosen for what a hostile local client can do with tiny_http 0.12:
//! - tiny_http reads headers and bodies up to 1 KiB on a thread per connection; a bigger body
//!   is read from the socket by whoever holds the request. The listener thread therefore
//!   answers only requests whose body is already in memory, and hands every other one to a
//!   reader thread: one kept waiting for work, and more, up to [`MAX_READERS`], while it is
//!   busy. A client that stalls mid-body holds one reader, not the listener.
//! - When tiny_http's accept thread fails (`accept` or `try_clone` out of file descriptors,
//!   which ~510 held-open connections reach under Lambda's limit of 1024), that server is
//!   dead for good. The listener keeps its own handle on the socket and starts a new server on
//!   it, backing off while descriptors are short; a panic hook tells it of the accept thread's
//!   panic, which tiny_http does not report. The soft descriptor limit is raised to the hard
//!   one first, for what headroom there is.
//! - What one request may cost is bounded in `request`. Headers are not: tiny_http reads them
//!   whole, with no limit (README, "Behaviour", has the figures).
//!
//! Parsing happens on the reader, after the answer; the relay gets `Msg::Post`, numbered in
//! answer order (readers may finish out of it), and the body's size goes on the backlog, over
//! whose limit no new request is taken until the relay catches up.

mod request;
mod servers;

use std::cell::Cell;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::Request;

use crate::msg::{BACKLOG_LIMIT, Backlog, Msg};
use crate::{info, warn};
use servers::{Incoming, Servers};

/// Reader threads at most, the waiting one included. Past this, a request that would need one
/// is answered 503 and its connection given up (see `request::cut_off`).
pub const MAX_READERS: usize = 64;
/// How often the listener looks for a dead accept thread while no request comes.
const POLL: Duration = Duration::from_secs(1);
/// Pause before starting a new server, doubling up to the cap while it fails.
const RESTART_PAUSE: Duration = Duration::from_millis(50);
const RESTART_PAUSE_CAP: Duration = Duration::from_secs(1);
/// Stack of a reader thread: parsing is iterative, serde_json's depth is capped at 128.
const READER_STACK: usize = 256 * 1024;

/// Set by the panic hook when tiny_http's accept thread panics.
static ACCEPT_PANICKED: AtomicBool = AtomicBool::new(false);

/// What the listener thread, its readers and the relay's handle share.
struct Shared {
    stop: AtomicBool,
    servers: Arc<Servers>,
    tx: Sender<Msg>,
    backlog: Backlog,
    max_body_bytes: u64,
    readers: AtomicUsize,
    max_readers: usize,
    /// The next POST's number (see `Msg::Post`).
    posts: AtomicU64,
}

/// The running listener, as the relay holds it.
pub struct Listener {
    shared: Arc<Shared>,
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
        Listener::with_readers(socket, tx, backlog, max_body_bytes, MAX_READERS)
    }

    fn with_readers(
        socket: TcpListener,
        tx: Sender<Msg>,
        backlog: Backlog,
        max_body_bytes: u64,
        max_readers: usize,
    ) -> Result<Listener, String> {
        crate::sys::raise_fd_limit();
        watch_accept_panics();
        let (incoming, requests) = mpsc::channel();
        let servers = Arc::new(Servers::new(socket, incoming));
        servers.start()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            servers,
            tx,
            backlog,
            max_body_bytes,
            readers: AtomicUsize::new(0),
            max_readers,
            posts: AtomicU64::new(0),
        });
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("listener".to_string())
            .spawn(move || serve(&serving, &requests))
            .map_err(|e| e.to_string())?;
        Ok(Listener { shared, thread })
    }

    /// Stops taking requests; the thread sends `Msg::ListenerClosed` and ends.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.servers.stop();
    }

    /// Waits for the thread if it has ended; never blocks on one that has not.
    pub fn join(self) {
        if self.thread.is_finished() {
            let _ = self.thread.join();
        }
    }
}

/// tiny_http's accept thread panics in `refined_tcp_stream.rs` (an unwrapped `try_clone`)
/// when descriptors run out, and nothing else notices. The hook notes it, then does what the
/// hook before it did. Installed once, however many listeners start (tests start many).
fn watch_accept_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(install_accept_panic_hook);
}

fn install_accept_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info
            .location()
            .is_some_and(|l| l.file().ends_with("refined_tcp_stream.rs"))
        {
            ACCEPT_PANICKED.store(true, Ordering::Release);
        }
        previous(info);
    }));
}

fn serve(shared: &Arc<Shared>, requests: &Receiver<Incoming>) {
    let (reader, work) = mpsc::sync_channel(0);
    let mut waiting = start_reader(shared, work).then_some(reader);
    let mut restarts = Restarts::default();
    while !shared.stop.load(Ordering::Acquire) {
        let wait = restarts.due.map_or(POLL, |at| {
            at.saturating_duration_since(Instant::now()).min(POLL)
        });
        let request = match requests.recv_timeout(wait) {
            Ok(Incoming::Request(request)) => {
                restarts.served();
                request
            }
            Ok(Incoming::AcceptFailed(why)) => {
                restarts.failed(&why);
                continue;
            }
            Ok(Incoming::Wake) | Err(RecvTimeoutError::Timeout) => {
                if ACCEPT_PANICKED.swap(false, Ordering::AcqRel) {
                    restarts.failed("its accept thread panicked");
                }
                restarts.run_if_due(&shared.servers);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // The relay is behind (a slow stdout): leave bodies in their sockets until it catches up.
        while shared.backlog.load(Ordering::Acquire) >= BACKLOG_LIMIT
            && !shared.stop.load(Ordering::Acquire)
        {
            std::thread::park_timeout(Duration::from_millis(1));
        }
        if request::is_buffered(&request) {
            answer(shared, request);
            continue;
        }
        let request = match &waiting {
            None => request,
            Some(reader) => match reader.try_send(request) {
                Ok(()) => continue,
                Err(TrySendError::Full(request)) => request,
                Err(TrySendError::Disconnected(request)) => {
                    waiting = None;
                    request
                }
            },
        };
        // The waiting reader is busy (a slow or stalled body): one more, if allowed.
        if shared.readers.load(Ordering::Acquire) < shared.max_readers {
            let (once, work) = mpsc::sync_channel(1);
            if once.send(request).is_ok() {
                let _ = start_reader(shared, work);
            }
        } else {
            warn_busy();
            request::cut_off(request);
            let _ = shared.tx.send(Msg::Refused);
        }
        if waiting.is_none() {
            let (again, work) = mpsc::sync_channel(0);
            waiting = start_reader(shared, work).then_some(again);
        }
    }
    drop(waiting);
    let _ = shared.tx.send(Msg::ListenerClosed);
}

/// Starts a reader thread for the requests `work` will carry; whether it started.
fn start_reader(shared: &Arc<Shared>, work: Receiver<Request>) -> bool {
    let shared_for_thread = shared.clone();
    shared.readers.fetch_add(1, Ordering::AcqRel);
    let started = std::thread::Builder::new()
        .name("reader".to_string())
        .stack_size(READER_STACK)
        .spawn(move || {
            for request in work {
                answer(&shared_for_thread, request);
            }
            shared_for_thread.readers.fetch_sub(1, Ordering::AcqRel);
        });
    if started.is_err() {
        shared.readers.fetch_sub(1, Ordering::AcqRel);
    }
    started.is_ok()
}

/// Answers one request and tells the relay. A panic (a bug, or tiny_http's) costs only this
/// request: it is counted as refused and the thread goes on.
fn answer(shared: &Shared, request: Request) {
    let told = AtomicBool::new(false);
    let tell = |msg: Msg| {
        told.store(true, Ordering::Relaxed);
        if let Msg::Post { parsed, .. } = &msg {
            shared
                .backlog
                .fetch_add(parsed.batch.footprint(), Ordering::Release);
        }
        let _ = shared.tx.send(msg);
    };
    let numbered = Cell::new(None);
    let number = || {
        let seq = shared.posts.fetch_add(1, Ordering::AcqRel);
        numbered.set(Some(seq));
        seq
    };
    let max = shared.max_body_bytes;
    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        request::handle(request, max, &number, &tell)
    }));
    if handled.is_err() && !told.load(Ordering::Relaxed) {
        let _ = shared.tx.send(match numbered.get() {
            Some(seq) => Msg::Lost { seq },
            None => Msg::Refused,
        });
    }
}

fn warn_busy() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        warn!(
            "{MAX_READERS} telemetry requests are being read at once; further ones are refused \
             with 503 (counted as refused_requests)"
        );
    }
}

/// When to start a new server after an accept thread failed: soon after the first failure,
/// then with a pause that doubles while they keep failing, so that a lasting shortage of
/// descriptors is not a busy loop. The listener never sleeps for it: it waits on its channel
/// until the restart is due, serving the servers still alive meanwhile.
#[derive(Default)]
struct Restarts {
    due: Option<Instant>,
    pause: Option<Duration>,
}

impl Restarts {
    fn failed(&mut self, why: &str) {
        if self.due.is_none() {
            warn!("the telemetry listener stopped accepting ({why}); starting it again");
            let pause = self.pause.unwrap_or(RESTART_PAUSE);
            self.due = Some(Instant::now() + pause);
        }
    }

    /// A request came through: once no restart is pending, the next failure is a new one.
    fn served(&mut self) {
        if self.due.is_none() {
            self.pause = None;
        }
    }

    fn run_if_due(&mut self, servers: &Arc<Servers>) {
        let Some(due) = self.due else {
            return;
        };
        if Instant::now() < due {
            return;
        }
        let pause = self
            .pause
            .map_or(RESTART_PAUSE, |p| (p * 2).min(RESTART_PAUSE_CAP));
        self.pause = Some(pause);
        match servers.start() {
            Ok(()) => {
                info!("the telemetry listener is accepting again");
                self.due = None;
            }
            Err(_) => self.due = Some(Instant::now() + pause),
        }
    }
}

#[cfg(test)]
mod tests;
