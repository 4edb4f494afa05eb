//! Outputs. Each is owned by the relay thread and never blocks the listener or `/next`:
//! stdout is written directly, network outputs go through `delivery`.

pub mod emf;
pub mod http;
pub mod otlp;
pub mod stdout;
