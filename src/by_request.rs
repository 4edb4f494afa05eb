//! A small map from request id to what is known of that invocation, bounded in entries.
//!
//! Several parts hold something per invocation until a later event completes it: the relay
//! waits for each started invocation's report, EMF holds a `runtimeDone` for its report, the
//! traces output holds open spans, the `end` flush policy remembers early `runtimeDone`s. A
//! report can be lost, and a hostile POST can carry any number of ids, so every such map is
//! bounded: when full, the oldest entry goes. Entries are kept in insertion order in one
//! `VecDeque`; the bound is small (what can be pending at once, not a history), so a linear
//! search beats a hash map here in both memory and time, and nothing is left behind when an
//! entry is taken: the memory is flat however many invocations go by. Searches start at the
//! newest entry: what is looked up is nearly always the invocation that just started, and a
//! full map searched oldest first cost a log record 256 comparisons. Each entry keeps a hash
//! of its id and a search compares those first: inserting a new id must look at every entry,
//! and 256 string comparisons (calls to musl's bytewise `memcmp`) cost more than the rest of
//! encoding the event.

use std::collections::VecDeque;

use crate::telemetry::echo::fnv1a;

/// Entries a per-invocation map holds by default: more than can be pending at once on LMI.
pub const PENDING_CAP: usize = 256;

/// Request id → `V`, at most `cap` entries, oldest evicted first.
#[derive(Debug, Clone)]
pub struct ByRequest<V> {
    entries: VecDeque<(u64, Box<str>, V)>,
    cap: usize,
}

impl<V> ByRequest<V> {
    /// An empty map that holds at most `cap` entries (at least one).
    pub fn new(cap: usize) -> ByRequest<V> {
        ByRequest {
            entries: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Inserts or replaces `id`'s value; returns the entry evicted to make room, if any.
    pub fn insert(&mut self, id: &str, value: V) -> Option<(Box<str>, V)> {
        self.insert_hashed(hash(id), id, value)
    }

    /// [`insert`](Self::insert) with `id`'s [`hash`] known.
    pub fn insert_hashed(&mut self, hash: u64, id: &str, value: V) -> Option<(Box<str>, V)> {
        if let Some(index) = self.position(hash, id) {
            if let Some(entry) = self.entries.get_mut(index) {
                entry.2 = value;
            }
            return None;
        }
        let evicted = if self.entries.len() >= self.cap {
            self.entries.pop_front().map(|(_, k, v)| (k, v))
        } else {
            None
        };
        self.entries.push_back((hash, id.into(), value));
        evicted
    }

    /// `id`'s value, made with `make` if it has none (one search, not two); and the value
    /// evicted to make room, if any. An evicted key's buffer is reused when it fits: request
    /// ids are all 36 bytes, so a full map costs no allocation per new id.
    pub fn get_or_insert_hashed(
        &mut self,
        hash: u64,
        id: &str,
        make: impl FnOnce() -> V,
    ) -> (Option<&mut V>, Option<V>) {
        let mut evicted = None;
        let index = match self.position(hash, id) {
            Some(index) => index,
            None => {
                let mut key: Option<Box<str>> = None;
                if self.entries.len() >= self.cap
                    && let Some((_, old, value)) = self.entries.pop_front()
                {
                    evicted = Some(value);
                    key = (old.len() == id.len()).then(|| {
                        let mut buffer = String::from(old);
                        buffer.clear();
                        buffer.push_str(id);
                        buffer.into_boxed_str()
                    });
                }
                let key = key.unwrap_or_else(|| id.into());
                self.entries.push_back((hash, key, make()));
                self.entries.len() - 1
            }
        };
        (self.entries.get_mut(index).map(|e| &mut e.2), evicted)
    }

    /// Takes `id`'s value out.
    pub fn remove(&mut self, id: &str) -> Option<V> {
        self.remove_hashed(hash(id), id)
    }

    pub fn remove_hashed(&mut self, hash: u64, id: &str) -> Option<V> {
        let index = self.position(hash, id)?;
        self.entries.remove(index).map(|(_, _, v)| v)
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.get_hashed(hash(id), id)
    }

    pub fn get_hashed(&self, hash: u64, id: &str) -> Option<&V> {
        let index = self.position(hash, id)?;
        self.entries.get(index).map(|(_, _, v)| v)
    }

    pub fn get_mut_hashed(&mut self, hash: u64, id: &str) -> Option<&mut V> {
        let index = self.position(hash, id)?;
        self.entries.get_mut(index).map(|(_, _, v)| v)
    }

    /// The id of the oldest entry whose value `pick` accepts.
    pub fn oldest_where(&self, mut pick: impl FnMut(&V) -> bool) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, _, v)| pick(v))
            .map(|(_, k, _)| &**k)
    }

    /// Where `id` is, searched newest first.
    fn position(&self, hash: u64, id: &str) -> Option<usize> {
        self.entries
            .iter()
            .rposition(|(h, k, _)| *h == hash && &**k == id)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.entries.retain(|(_, _, v)| keep(v));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// FNV-1a of an id: cheap, and only a filter before the string comparison. Callers that look
/// the same id up several times compute it once and use the `_hashed` methods.
pub fn hash(id: &str) -> u64 {
    fnv1a(id.bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_entry_goes_when_full() {
        let mut map = ByRequest::new(2);
        assert!(map.insert("a", 1).is_none());
        assert!(map.insert("b", 2).is_none());
        assert!(map.insert("a", 3).is_none(), "replacing does not evict");
        let evicted = map.insert("c", 4).unwrap();
        assert_eq!((&*evicted.0, evicted.1), ("a", 3));
        assert_eq!(map.len(), 2);
        assert_eq!(map.remove("b"), Some(2));
        assert_eq!(map.remove("b"), None);
        assert!(map.get("c").is_some());
    }

    #[test]
    fn get_or_insert_finds_makes_and_evicts() {
        let mut map = ByRequest::new(2);
        let (value, evicted) = map.get_or_insert_hashed(hash("a"), "a", || 1);
        assert_eq!((value.copied(), evicted), (Some(1), None));
        let (value, _) = map.get_or_insert_hashed(hash("a"), "a", || 9);
        assert_eq!(value.copied(), Some(1), "found, not made again");
        map.get_or_insert_hashed(hash("b"), "b", || 2);
        let (value, evicted) = map.get_or_insert_hashed(hash("c"), "c", || 3);
        assert_eq!(
            (value.copied(), evicted),
            (Some(3), Some(1)),
            "the oldest goes"
        );
        assert!(map.get("a").is_none() && map.get("c") == Some(&3));
        let (_, evicted) = map.get_or_insert_hashed(hash("longer"), "longer", || 4);
        assert_eq!(evicted, Some(2));
        assert_eq!(
            map.get("longer"),
            Some(&4),
            "a key of another length is made anew"
        );
    }

    #[test]
    fn memory_is_flat_across_many_invocations() {
        let mut map = ByRequest::new(8);
        for i in 0..100_000 {
            let id = i.to_string();
            map.insert(&id, i);
            assert_eq!(map.remove(&id), Some(i));
        }
        assert!(map.is_empty());
        assert!(map.entries.capacity() <= 8);
    }
}
