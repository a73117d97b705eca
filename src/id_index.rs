//! The registry's index from connection id to monitor, with the ids kept in
//! the table's own slots (`ShortText`): a lookup reads one slot and, for
//! ids of up to 22 bytes, no string elsewhere in memory.
//!
//! The live loop looks up every event's id. With thousands of monitors the
//! table is not in the CPU's near caches, and each lookup waited for two
//! memory reads in a row: the slot, then the `String` key it points to.

use crate::short_text::ShortText;
use std::hash::{Hash, Hasher};

/// Connection ids to monitor ids.
#[derive(Debug, Clone, Default)]
pub struct IdIndex {
    table: hashbrown::HashMap<Key, u32, rustc_hash::FxBuildHasher>,
}

impl IdIndex {
    pub fn get(&self, id: &str) -> Option<u32> {
        self.table.get(&Query(id)).copied()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Maps `id` to `monitor`, replacing what it mapped to.
    pub fn insert(&mut self, id: &str, monitor: u32) {
        self.table.insert(Key(ShortText::new(id)), monitor);
    }

    /// Room for `n` more ids, taken at once instead of in doublings.
    pub fn reserve(&mut self, n: usize) {
        self.table.reserve(n);
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// A stored id, hashed as `Query` hashes the same text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key(ShortText);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes());
    }
}

/// An id looked up.
struct Query<'a>(&'a str);

impl Hash for Query<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0.as_bytes());
    }
}

impl hashbrown::Equivalent<Key> for Query<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        key.0.is(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_ids_map_to_their_monitors_and_no_other() {
        let ids: Vec<String> = (0..40).map(|n| "x".repeat(n)).collect();
        let mut index = IdIndex::default();
        for (n, id) in ids.iter().enumerate() {
            index.insert(id, n as u32);
        }
        assert_eq!(index.len(), ids.len());
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(index.get(id), Some(n as u32), "{id:?}");
            assert!(index.contains(id));
        }
        assert_eq!(index.get("y"), None);
        assert_eq!(index.get(&"x".repeat(40)), None);
        // Same length as a stored id, one byte different, at either end.
        assert_eq!(index.get("xxxxxxxxxxy"), None);
        assert_eq!(index.get(&format!("y{}", "x".repeat(29))), None);
    }

    #[test]
    fn inserting_a_known_id_again_replaces_its_monitor() {
        let mut index = IdIndex::default();
        index.insert("GA_00000001", 1);
        index.insert(&"L".repeat(30), 2);
        index.insert("GA_00000001", 7);
        index.insert(&"L".repeat(30), 8);
        assert_eq!(index.len(), 2);
        assert_eq!(index.get("GA_00000001"), Some(7));
        assert_eq!(index.get(&"L".repeat(30)), Some(8));
    }
}
