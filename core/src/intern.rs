//! String interning for sources: a node id seen a million times is allocated once.

use std::collections::HashSet;
use std::sync::Arc;

use crate::datum::Str;

/// A per-source set of strings already seen. `intern("PJM")` returns the same
/// `Arc` every time, so rows share one allocation per distinct string.
///
/// The set is bounded: past `capacity` distinct strings it stops remembering
/// new ones (they are still returned, just not shared), so a column of unique
/// ids cannot grow memory without bound.
#[derive(Debug)]
pub struct Interner {
    seen: HashSet<Str>,
    capacity: usize,
}

impl Default for Interner {
    fn default() -> Self {
        Interner::with_capacity(1 << 20)
    }
}

impl Interner {
    /// An interner that remembers at most `capacity` distinct strings.
    pub fn with_capacity(capacity: usize) -> Self {
        Interner {
            seen: HashSet::new(),
            capacity,
        }
    }

    /// The shared copy of `text`.
    pub fn intern(&mut self, text: &str) -> Str {
        if let Some(existing) = self.seen.get(text) {
            return existing.clone();
        }
        let fresh: Str = Arc::from(text);
        if self.seen.len() < self.capacity {
            self.seen.insert(fresh.clone());
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_strings_share_one_allocation() {
        let mut interner = Interner::default();
        let a = interner.intern("PJM-WH");
        let b = interner.intern("PJM-WH");
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn capacity_bounds_memory_but_not_correctness() {
        let mut interner = Interner::with_capacity(1);
        let _ = interner.intern("a");
        let b1 = interner.intern("b");
        let b2 = interner.intern("b");
        assert_eq!(b1, b2);
        assert!(!Arc::ptr_eq(&b1, &b2));
    }
}
