//! Answering one request to the listener, and reading its body within a stated cost.
//!
//! Lambda's rules shape every answer (SPEC.md §5): a POST is answered 200 as soon as its bytes
//! are read, whatever they contain, because a non-200 causes redelivery loops or drops; only a
//! body over our cap is refused, with 413, before it is buffered. Other methods get 405 and
//! other paths 404. Parsing happens after the answer, and one bad body or element costs only
//! itself (see `telemetry::batch`).
//!
//! What one request may cost: the body grows with what arrives (never with what the client
//! declares) and stops at the cap, so a POST costs at most the cap in body bytes plus 36 bytes
//! per event parsed from it. tiny_http 0.12 drains an unread body when its request is dropped,
//! by allocating the whole declared remainder first (tiny-http#252, fixed by PR #290 but not
//! released): a `Content-Length` near `u64::MAX` panics, one beyond the machine's memory aborts
//! the process. A request that declares more than [`DRAIN_LIMIT`] is therefore answered 413
//! and never dropped: its connection is given up, at the cost of one tiny_http thread and two
//! file descriptors until the process ends. Anything less is drained as tiny_http does.

use std::io::Read;

use tiny_http::{Header, Method, Request, Response};

use crate::msg::Msg;
use crate::telemetry::batch;
use crate::{debug, warn};

/// Declared bodies above this are never drained (see the module doc).
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;
/// The first read's buffer, and the smallest growth after it.
const FIRST_READ: usize = 16 * 1024;
/// Most bytes one read call is offered.
const READ_WINDOW: usize = 64 * 1024;

/// Whether tiny_http has read this request's whole body already, so that answering (and
/// dropping) it cannot block: bodies of at most 1 KiB without `Expect: 100-continue`, or no
/// body at all. Anything else reads from the client's socket.
pub fn is_buffered(request: &Request) -> bool {
    let has = |name: &'static str| request.headers().iter().any(|h| h.field.equiv(name));
    match request.body_length() {
        Some(n) => n <= 1024 && !has("Expect"),
        None => !has("Transfer-Encoding"),
    }
}

/// Answers one request and tells the relay what it must hear of it, before any answer that
/// drains an unread body (which can block for as long as the client likes).
/// `number` gives the POST its place in the order, just before it is answered 200.
pub fn handle(
    mut request: Request,
    max_body_bytes: u64,
    number: &dyn Fn() -> u64,
    tell: &dyn Fn(Msg),
) {
    if request.url() != "/" && !request.url().starts_with("/?") {
        tell(Msg::Refused);
        let _ = request.respond(Response::empty(404));
        return;
    }
    if *request.method() != Method::Post {
        tell(Msg::Refused);
        let response = Response::empty(405);
        let _ = request.respond(match Header::from_bytes("Allow", "POST") {
            Ok(h) => response.with_header(h),
            Err(()) => response,
        });
        return;
    }
    let declared = request.body_length().map(|n| n as u64);
    if declared.is_some_and(|n| n > max_body_bytes) {
        return refuse(request, declared, tell);
    }
    let limit = declared.unwrap_or(max_body_bytes);
    let (body, read) = read_body(request.as_reader(), limit, max_body_bytes);
    if body.len() as u64 > max_body_bytes {
        return refuse(request, None, tell);
    }
    if let Err(e) = read {
        // The sender hung up mid-body: nobody is waiting for an answer. Keep what came.
        debug!("telemetry POST cut short: {e}");
    }
    let seq = number();
    let _ = request.respond(Response::empty(200));
    let parsed = batch::parse(body);
    if let Some(problem) = &parsed.problem {
        warn_once(problem);
    }
    tell(Msg::Post { seq, parsed });
}

/// Reads up to `max + 1` bytes (one more shows the body is over the cap). The buffer grows
/// with what arrives, at most doubling, and never past `expected` (the declared length, if
/// any) while the client keeps to it, so an honest body is read into exactly its size.
fn read_body(reader: &mut dyn Read, expected: u64, max: u64) -> (Vec<u8>, std::io::Result<()>) {
    let stop = usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX);
    let expected = usize::try_from(expected).unwrap_or(usize::MAX).min(stop);
    let mut body: Vec<u8> = Vec::new();
    loop {
        if body.len() >= stop {
            return (body, Ok(()));
        }
        if body.len() == body.capacity() && body.len() >= expected {
            // All that was declared is in: see whether there is more before growing.
            let mut probe = [0u8; 1];
            match reader.read(&mut probe) {
                Ok(0) => return (body, Ok(())),
                Ok(_) => {
                    body.extend_from_slice(&probe);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return (body, Err(e)),
            }
        }
        if body.len() == body.capacity() {
            let target = if body.len() < expected {
                expected.min(body.len().saturating_mul(2).max(FIRST_READ))
            } else {
                // Past what was declared (or nothing was): a small step to see the end.
                body.len().saturating_add(FIRST_READ)
            };
            body.reserve_exact(target.min(stop) - body.len());
        }
        let start = body.len();
        // Zero only what one read can fill, not the whole reserve.
        body.resize(body.capacity().min(start + READ_WINDOW), 0);
        let read = reader.read(body.get_mut(start..).unwrap_or_default());
        match read {
            Ok(0) => {
                body.truncate(start);
                return (body, Ok(()));
            }
            Ok(n) => body.truncate(start + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => body.truncate(start),
            Err(e) => {
                body.truncate(start);
                return (body, Err(e));
            }
        }
    }
}

/// 413, and tell the relay. A body declared too large to drain safely is not dropped.
fn refuse(request: Request, declared: Option<u64>, tell: &dyn Fn(Msg)) {
    tell(Msg::Oversize { declared });
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        give_up(request, 413);
    } else {
        let _ = request.respond(Response::empty(413));
    }
}

/// 503 without reading the body, for a request no reader is left for.
pub fn cut_off(request: Request) {
    give_up(request, 503);
}

/// Answers `status` and gives the connection up without dropping the request: `upgrade`
/// writes the answer and hands back the connection undrained, and forgetting it keeps
/// tiny_http from ever draining it (see the module doc). The cost stays with the connection
/// (a tiny_http thread and two descriptors) until the process ends.
fn give_up(request: Request, status: u16) {
    let connection = request.upgrade("close", Response::empty(status));
    std::mem::forget(connection);
}

fn warn_once(problem: &batch::BodyProblem) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARNED: AtomicBool = AtomicBool::new(false);
    if WARNED.swap(true, Ordering::Relaxed) {
        debug!("malformed telemetry POST: {problem}");
    } else {
        warn!("malformed telemetry POST (counted; further ones are only counted): {problem}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `chunk` bytes a read, `total` in all.
    struct Trickle {
        total: usize,
        chunk: usize,
    }
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.total.min(self.chunk).min(buf.len());
            self.total -= n;
            buf.iter_mut().take(n).for_each(|b| *b = b'x');
            Ok(n)
        }
    }

    #[test]
    fn an_honest_body_is_read_into_exactly_its_size() {
        let (body, read) = read_body(
            &mut Trickle {
                total: 300_000,
                chunk: 7_000,
            },
            300_000,
            1 << 22,
        );
        assert!(read.is_ok());
        assert_eq!(body.len(), 300_000);
        assert_eq!(body.capacity(), 300_000);
    }

    #[test]
    fn a_lie_about_the_length_costs_only_what_arrives() {
        // Declares 4 MiB, sends 10 bytes.
        let (body, _) = read_body(
            &mut Trickle {
                total: 10,
                chunk: 10,
            },
            4 << 20,
            4 << 20,
        );
        assert_eq!(body.len(), 10);
        assert!(body.capacity() <= FIRST_READ, "{}", body.capacity());
        // Declares nothing, sends more than the cap: stops one byte past it.
        let (body, _) = read_body(
            &mut Trickle {
                total: 1 << 20,
                chunk: 4096,
            },
            1000,
            1000,
        );
        assert_eq!(body.len(), 1001);
    }
}
