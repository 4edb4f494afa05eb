//! SIGTERM: the first one is noted and ignored (SHUTDOWN is how Lambda asks us to stop, and the
//! final batch is still to come), a second one makes the relay flush what it has and exit.
//!
//! This is the crate's only `unsafe`: installing a handler needs libc's `signal`, and our four
//! dependencies do not offer one. The handler only increments an atomic, which is
//! async-signal-safe; the relay polls the count.

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};

static TERMS: AtomicU32 = AtomicU32::new(0);
const SIGTERM: i32 = 15;

unsafe extern "C" {
    // libc: `sighandler_t signal(int, sighandler_t)`; both glibc and musl restart interrupted
    // system calls (SA_RESTART), so a blocked `/next` read is not disturbed.
    fn signal(signum: i32, handler: usize) -> usize;
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
