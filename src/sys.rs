//! The two things we need from libc that our four dependencies do not offer, and the crate's
//! only `unsafe`:
//! - SIGTERM: the first one is noted and ignored (SHUTDOWN is how Lambda asks us to stop, and
//!   the final batch is still to come), a second one makes the relay flush what it has and
//!   stop. The handler only increments an atomic, which is async-signal-safe; the relay polls
//!   the count.
//! - The open-file limit: the soft limit is raised to the hard one, so that held-open
//!   connections to the listener take longer to exhaust it (each costs tiny_http two).

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};

static TERMS: AtomicU32 = AtomicU32::new(0);
const SIGTERM: i32 = 15;

/// `RLIMIT_NOFILE` on every Linux architecture we build for (x86_64, aarch64).
const RLIMIT_NOFILE: i32 = 7;

/// libc's `struct rlimit` on 64-bit Linux.
#[repr(C)]
struct Rlimit {
    current: u64,
    max: u64,
}

unsafe extern "C" {
    // libc: `sighandler_t signal(int, sighandler_t)`; both glibc and musl restart interrupted
    // system calls (SA_RESTART), so a blocked `/next` read is not disturbed.
    fn signal(signum: i32, handler: usize) -> usize;
    fn getrlimit(resource: i32, limit: *mut Rlimit) -> i32;
    fn setrlimit(resource: i32, limit: *const Rlimit) -> i32;
}

extern "C" fn on_term(_signum: i32) {
    TERMS.fetch_add(1, Ordering::SeqCst);
}

/// Installs the SIGTERM handler.
pub fn install() {
    let handler: extern "C" fn(i32) = on_term;
    // SAFETY: `on_term` is a valid `extern "C" fn(c_int)` that only touches an atomic.
    unsafe {
        signal(SIGTERM, handler as usize);
    }
}

/// How many SIGTERMs have arrived.
pub fn terms() -> u32 {
    TERMS.load(Ordering::SeqCst)
}

/// Raises the soft open-file limit to the hard one; returns the limit now in force, if known.
pub fn raise_fd_limit() -> Option<u64> {
    let mut limit = Rlimit { current: 0, max: 0 };
    // SAFETY: `limit` is a valid, writable `struct rlimit` for the call's duration.
    if unsafe { getrlimit(RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.current < limit.max {
        let raised = Rlimit {
            current: limit.max,
            max: limit.max,
        };
        // SAFETY: `raised` is a valid `struct rlimit`; raising soft to hard needs no privilege.
        if unsafe { setrlimit(RLIMIT_NOFILE, &raised) } == 0 {
            return Some(raised.current);
        }
    }
    Some(limit.current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fd_limit_is_read_and_never_lowered() {
        let before = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let limit = raise_fd_limit().unwrap();
        assert!(limit > 0);
        assert_eq!(
            raise_fd_limit(),
            Some(limit),
            "raising twice changes nothing"
        );
        assert!(before.contains("Max open files"));
    }
}
