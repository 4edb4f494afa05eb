//! POSTs back in the order they were answered. Readers parse in parallel, so a short batch
//! answered after a long one can reach the relay first; relayed as they come, lines would go
//! out of order and a line would be taken for the wrong invocation's. Every numbered POST
//! reaches the relay (parsed, or `Msg::Lost` if its reader panicked), and parsing cannot
//! block, so waiting for a missing number never waits on a client; what waits is counted in
//! the backlog like any parsed POST.

use crate::telemetry::batch::Parsed;

#[derive(Default)]
pub struct InOrder {
    next: u64,
    /// Arrived before their turn: `None` for a lost one. A few at most (one per reader).
    early: Vec<(u64, Option<Parsed>)>,
}

impl InOrder {
    /// POST `seq` arrived (`None`: lost); appends to `ready` those whose turn it now is.
    pub fn arrive(&mut self, seq: u64, post: Option<Parsed>, ready: &mut Vec<Parsed>) {
        if seq < self.next {
            // Numbered twice cannot happen; relayed rather than lost if it did.
            ready.extend(post);
            return;
        }
        self.early.push((seq, post));
        while let Some(at) = self.early.iter().position(|(s, _)| *s == self.next) {
            let (_, post) = self.early.swap_remove(at);
            ready.extend(post);
            self.next += 1;
        }
    }

    /// At the end: whatever still waits, in order (a missing number will not come now).
    pub fn rest(&mut self, ready: &mut Vec<Parsed>) {
        self.early.sort_unstable_by_key(|(s, _)| *s);
        ready.extend(self.early.drain(..).filter_map(|(_, post)| post));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::batch::parse;

    fn post(n: usize) -> Option<Parsed> {
        let events = vec![r#"{"time":"t","type":"function","record":"x"}"#; n].join(",");
        Some(parse(format!("[{events}]").into_bytes()))
    }

    fn sizes(ready: &[Parsed]) -> Vec<usize> {
        ready.iter().map(|p| p.batch.len()).collect()
    }

    #[test]
    fn posts_come_out_in_answer_order() {
        let mut order = InOrder::default();
        let mut ready = Vec::new();
        order.arrive(1, post(2), &mut ready);
        order.arrive(3, post(4), &mut ready);
        assert!(ready.is_empty(), "waits for 0");
        order.arrive(0, post(1), &mut ready);
        assert_eq!(sizes(&ready), [1, 2]);
        order.arrive(2, None, &mut ready);
        assert_eq!(sizes(&ready), [1, 2, 4], "a lost one frees its place");
        order.arrive(5, post(6), &mut ready);
        order.rest(&mut ready);
        assert_eq!(sizes(&ready), [1, 2, 4, 6], "the end takes what waits");
        assert!(order.early.is_empty());
    }
}
