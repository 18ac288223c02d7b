//! A multiset of ordered keys with signed multiplicities: the state behind
//! MIN, MAX, FIRST_VALUE and LAST_VALUE, which must survive retracting the
//! current extreme.
//!
//! A window group usually holds a few dozen values, so small sets are a
//! sorted vector (one allocation, binary search, contiguous scans); past
//! [`SPILL`] distinct keys the set becomes a B-tree so that an unbounded
//! GROUP BY stays logarithmic per update.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use carbonflow_core::Diff;
use serde::{Deserialize, Serialize};

/// Distinct keys beyond which the sorted vector becomes a B-tree.
pub const SPILL: usize = 64;

/// Keys with non-zero multiplicities, in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Multiset<K: Ord> {
    /// Few keys: sorted by key.
    Sorted(Vec<(K, Diff)>),
    /// Many keys.
    Tree(BTreeMap<K, Diff>),
}

impl<K: Ord> Default for Multiset<K> {
    fn default() -> Self {
        Multiset::Sorted(Vec::new())
    }
}

impl<K: Ord> Multiset<K> {
    /// Adds `diff` to the multiplicity of `key`; keys reaching zero are removed.
    pub fn add(&mut self, key: K, diff: Diff) {
        match self {
            Multiset::Sorted(entries) => match entries.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(index) => {
                    entries[index].1 += diff;
                    if entries[index].1 == 0 {
                        entries.remove(index);
                    }
                }
                Err(index) => {
                    entries.insert(index, (key, diff));
                    if entries.len() > SPILL {
                        *self = Multiset::Tree(std::mem::take(entries).into_iter().collect());
                    }
                }
            },
            Multiset::Tree(map) => match map.entry(key) {
                Entry::Vacant(entry) => {
                    entry.insert(diff);
                }
                Entry::Occupied(mut entry) => {
                    *entry.get_mut() += diff;
                    if *entry.get() == 0 {
                        entry.remove();
                    }
                }
            },
        }
    }

    /// The smallest key with a positive multiplicity. A negative one exists
    /// only while a retraction has overtaken its insertion, and is skipped.
    pub fn first(&self) -> Option<&K> {
        match self {
            Multiset::Sorted(entries) => entries.iter().find(|(_, n)| *n > 0).map(|(k, _)| k),
            Multiset::Tree(map) => map.iter().find(|(_, n)| **n > 0).map(|(k, _)| k),
        }
    }

    /// The largest key with a positive multiplicity.
    pub fn last(&self) -> Option<&K> {
        match self {
            Multiset::Sorted(entries) => entries.iter().rev().find(|(_, n)| *n > 0).map(|(k, _)| k),
            Multiset::Tree(map) => map.iter().rev().find(|(_, n)| **n > 0).map(|(k, _)| k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Both representations agree with a plain count map, across the spill.
        #[test]
        fn matches_a_naive_count_map(updates in prop::collection::vec((0u16..200, prop::sample::select(vec![-1i64, 1, 2])), 0..400)) {
            let mut set = Multiset::default();
            let mut naive: BTreeMap<u16, Diff> = BTreeMap::new();
            for (key, diff) in updates {
                set.add(key, diff);
                *naive.entry(key).or_default() += diff;
                naive.retain(|_, n| *n != 0);
                prop_assert_eq!(set.first(), naive.iter().find(|(_, n)| **n > 0).map(|(k, _)| k));
                prop_assert_eq!(set.last(), naive.iter().rev().find(|(_, n)| **n > 0).map(|(k, _)| k));
            }
        }
    }

    #[test]
    fn spills_into_a_tree_past_the_threshold() {
        let mut set = Multiset::default();
        for key in 0..=SPILL {
            set.add(key, 1);
        }
        assert!(matches!(set, Multiset::Tree(_)));
        assert_eq!((set.first(), set.last()), (Some(&0), Some(&SPILL)));
    }
}
