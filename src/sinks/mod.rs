//! Outputs. Each sink is owned by the relay thread and never blocks the listener or `/next`.

pub mod stdout;
