//! Receiving telemetry: the listener thread, the event model, and what the relay needs to read
//! events without building JSON trees.

pub mod echo;
pub mod event;
pub mod listener;
pub mod text;
pub mod time;
