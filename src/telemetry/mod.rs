//! Receiving telemetry: the event model (`batch`, `record`), reading it without JSON trees
//! (`text`, `time`), and the guard that recognises our own output coming back (`echo`).

pub mod batch;
pub mod echo;
pub mod level;
pub mod record;
pub mod text;
pub mod time;
