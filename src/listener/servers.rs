//! The tiny_http servers on our socket, and the threads that move their requests onto one
//! channel.
//!
//! A tiny_http server whose accept thread failed (out of file descriptors) accepts nothing
//! more, but the connections it already has go on: Lambda's own keep-alive connection may be
//! one of them. So a failed server is not dropped. A new one is started beside it on our own
//! handle of the socket, and every live server has a pump thread that forwards its requests
//! to the listener, which thus reads one channel whatever the number of servers. A restarted
//! server that failed again before serving a single request is retired (its pump ends, its
//! thread pool winds down), so a lasting shortage of descriptors costs a bounded number of
//! threads, not a few more every second.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};

use tiny_http::{Request, Server};

/// What reaches the listener thread.
pub enum Incoming {
    Request(Request),
    /// A server's accept thread failed; the text says why.
    AcceptFailed(String),
    /// Look at the stop flag.
    Wake,
}

/// One server and what its pump knows of it.
struct Served {
    server: Arc<Server>,
    /// Whether it ever delivered a request (then it may hold live connections).
    served: AtomicBool,
    /// Its pump should end.
    retired: AtomicBool,
}

/// Every live server on the socket.
pub struct Servers {
    socket: TcpListener,
    incoming: Sender<Incoming>,
    live: Mutex<Vec<Arc<Served>>>,
    stopping: AtomicBool,
}

impl Servers {
    /// Keeps `socket` (a handle of its own on the listening socket) to start servers on.
    pub fn new(socket: TcpListener, incoming: Sender<Incoming>) -> Servers {
        Servers {
            socket,
            incoming,
            live: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        }
    }

    /// Starts a server and its pump; retires earlier servers that never served a request.
    pub fn start(self: &Arc<Self>) -> Result<(), String> {
        let socket = self.socket.try_clone().map_err(|e| e.to_string())?;
        let server = Server::from_listener(socket, None).map_err(|e| e.to_string())?;
        let served = Arc::new(Served {
            server: Arc::new(server),
            served: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        });
        let pumped = (self.clone(), served.clone());
        std::thread::Builder::new()
            .name("pump".to_string())
            .stack_size(64 * 1024)
            .spawn(move || pumped.0.pump(&pumped.1))
            .map_err(|e| e.to_string())?;
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|s| {
            let keep = s.served.load(Ordering::Acquire);
            if !keep {
                s.retired.store(true, Ordering::Release);
                s.server.unblock();
            }
            keep
        });
        live.push(served);
        Ok(())
    }

    /// Forwards one server's requests until it is retired or we stop.
    fn pump(&self, served: &Served) {
        loop {
            let next = served.server.recv();
            if self.stopping.load(Ordering::Acquire) || served.retired.load(Ordering::Acquire) {
                return;
            }
            let incoming = match next {
                Ok(request) => {
                    served.served.store(true, Ordering::Release);
                    Incoming::Request(request)
                }
                Err(e) => Incoming::AcceptFailed(e.to_string()),
            };
            if self.incoming.send(incoming).is_err() {
                return;
            }
        }
    }

    /// Unblocks every server and the listener thread.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        for s in self
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            s.server.unblock();
        }
        let _ = self.incoming.send(Incoming::Wake);
    }
}
