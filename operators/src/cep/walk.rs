//! [`Walk`]: a partition's search walk kept alive between batches of rows,
//! so that rows appended at the end cost only the steps of the searches
//! still waiting for them.
//!
//! The walk is the sequence of searches [`MatchRecognizer::find_matches`]
//! runs: from a start row either no match (the next search starts one row
//! later) or a match (the next one starts at its `AFTER MATCH SKIP` target).
//! A search that runs out of rows before all its threads die is *open*: its
//! outcome so far (no match, or the preferred match found so far) decides
//! where the walk goes next, as at the end of a partition, but more rows may
//! change it. The walk keeps every search from the first open one on, with
//! its threads and outcome. [`MatchRecognizer::advance`] then continues the
//! walk over appended rows: it resumes the open searches in order; a
//! finished search's outcome stands (it read only rows that did not change);
//! when an outcome changes, the walk takes another path and new searches run
//! wherever the old walk had none. Searches before the first open one can
//! never change again and are dropped.
//!
//! This is exact only when appended rows are the sole change and no
//! expression reads rows after the one it classifies or outputs (`NEXT`,
//! [`MatchRecognizer::lookahead`] > 0): then every row a search examined is
//! as it was. Any other change restarts the walk where
//! [`resume`](super::resume) says ([`Walk::restart`]), which is what the
//! wrapper does after a revision, a retraction or a late row in the middle.

use std::collections::VecDeque;

use carbonflow_core::{Millis, Row};

use super::matcher::{Arena, Buffers, Search};
use super::{EvalFailure, Match, MatchRecognizer};

/// A partition's search walk. See the module documentation.
#[derive(Clone, Debug)]
pub struct Walk {
    /// The searches from the first open one on, in walk order.
    steps: VecDeque<Step>,
    /// The threads, paths and keys of the searches.
    arena: Arena,
    /// Where the walk goes after its last step: the start row and match number.
    next_start: usize,
    next_number: u64,
}

#[derive(Clone, Debug)]
struct Step {
    number: u64,
    /// `None` once the search has finished. Held inline, not boxed: a
    /// partition's open searches then lie in one block that an epoch reads
    /// in order ([`MatchRecognizer::advance`] updates the steps in place).
    search: Option<Search>,
    start: usize,
    /// The search's (provisional while it is open) match, with its measures.
    found: Option<Match>,
}

impl Default for Walk {
    fn default() -> Self {
        Walk::new(0, 1)
    }
}

impl Walk {
    /// A walk whose first search starts at row `start` with match number `number`.
    pub fn new(start: usize, number: u64) -> Walk {
        Walk {
            steps: VecDeque::new(),
            arena: Arena::default(),
            next_start: start,
            next_number: number,
        }
    }

    /// Forgets every search and continues at row `start` with match number
    /// `number`, as [`resume`](super::resume) gives them after a change.
    pub fn restart(&mut self, start: usize, number: u64) {
        *self = Walk::new(start, number);
    }

    /// The start row of the first search that may still change: matches
    /// that start before it are settled.
    pub fn first_open(&self) -> usize {
        self.steps.front().map_or(self.next_start, |step| step.start)
    }

    /// Ends the searches whose start row is older than event time `horizon`
    /// (they cannot take a row at `horizon + WITHIN` or later); their
    /// outcome so far becomes final. Needs `WITHIN`; without it nothing ends.
    pub fn expire(&mut self, horizon: Millis) {
        for step in &mut self.steps {
            let Some(search) = &mut step.search else { continue };
            search.expire(horizon);
            if !search.is_done() {
                // Later searches start no earlier in event time.
                break;
            }
            step.search = None;
        }
        self.drop_finished();
    }

    /// `cut` rows were dropped from the front of the partition; none of
    /// them was at or after [`Self::first_open`].
    pub fn shift(&mut self, cut: usize) {
        debug_assert!(cut <= self.first_open(), "the walk's rows are kept");
        for step in &mut self.steps {
            step.start -= cut;
            if let Some(search) = &mut step.search {
                search.shift(cut);
            }
            if let Some(found) = &mut step.found {
                found.start -= cut;
                found.end -= cut;
                found.next_start -= cut;
            }
        }
        self.next_start -= cut;
    }

    /// Collects the arena's nodes once they have grown enough (see [`Arena::collect`]).
    fn collect(&mut self, buffers: &mut Buffers) {
        if self.arena.wants_collection() {
            let mut searches: Vec<&mut Search> = self.steps.iter_mut().filter_map(|step| step.search.as_mut()).collect();
            self.arena.collect(&mut searches, buffers);
        }
    }

    fn drop_finished(&mut self) {
        while self.steps.front().is_some_and(|step| step.search.is_none()) {
            self.steps.pop_front();
        }
    }
}

impl MatchRecognizer {
    /// Continues `walk` to the end of `rows` and returns the matches of its
    /// searches from [`Walk::first_open`] (as it was before the call) on,
    /// in order. `rows` must be the rows of the previous call with rows
    /// appended, unless the walk was restarted since (see the module
    /// documentation).
    pub fn advance(&self, walk: &mut Walk, rows: &[Row], buffers: &mut Buffers, failures: &mut Vec<EvalFailure>) -> Vec<Match> {
        // The steps are updated in place: in the common case every old step
        // is taken up again in order, and none moves.
        let mut at = 0;
        let (mut start, mut number) = walk.steps.front().map_or((walk.next_start, walk.next_number), |step| (step.start, step.number));
        let mut tail = Vec::new();
        while start < rows.len() {
            // Old searches the new walk skipped over are gone.
            while walk.steps.get(at).is_some_and(|step| step.start < start) {
                walk.steps.remove(at);
            }
            // A search reads its match number only through MATCH_NUMBER() in DEFINE.
            let reusable = |step: &Step| step.start == start && (step.number == number || !self.define_uses_match_number);
            if !walk.steps.get(at).is_some_and(reusable) {
                let search = Search::new(self, rows, start, &mut walk.arena, buffers);
                let step = Step {
                    number,
                    search: Some(search),
                    start,
                    found: None,
                };
                walk.steps.insert(at, step);
            }
            let step = &mut walk.steps[at];
            if let Some(search) = &mut step.search {
                let before = search.best();
                search.run(self, rows, number, &mut walk.arena, buffers, failures);
                if search.best() != before {
                    step.found = search
                        .best()
                        .filter(|(_, len)| *len > 0)
                        .map(|(path, len)| self.found(rows, search.start(), walk.arena.labels(path, len), number, failures));
                }
            }
            if step.search.as_ref().is_some_and(|search| search.is_done()) {
                step.search = None;
            }
            if step.number != number {
                step.number = number;
                if let Some(found) = &mut step.found {
                    found.number = number;
                    found.measures = self.measures(rows, found.start, &found.labels, number, failures);
                }
            }
            let (next_start, next_number) = match &step.found {
                Some(found) => (found.next_start, number + 1),
                None => (start + 1, number),
            };
            tail.extend(step.found.clone());
            at += 1;
            (start, number) = (next_start, next_number);
        }
        walk.steps.truncate(at);
        walk.next_start = start;
        walk.next_number = number;
        walk.arena.end_pass();
        walk.drop_finished();
        walk.collect(buffers);
        tail
    }

    /// Finds the matches of `rows` from row `from` on, as a walk that ends
    /// with the partition: the one-shot form of [`Self::advance`].
    pub(super) fn scan_to_end(&self, rows: &[Row], from: usize, first_number: u64, failures: &mut Vec<EvalFailure>) -> Vec<Match> {
        let (mut buffers, mut arena) = (Buffers::default(), Arena::default());
        let mut matches = Vec::new();
        let (mut start, mut number) = (from, first_number);
        while start < rows.len() {
            let mut search = Search::new(self, rows, start, &mut arena, &mut buffers);
            search.run(self, rows, number, &mut arena, &mut buffers, failures);
            search.finish();
            match search.best().filter(|(_, len)| *len > 0) {
                Some((path, len)) => {
                    let found = self.found(rows, start, arena.labels(path, len), number, failures);
                    start = found.next_start;
                    number += 1;
                    matches.push(found);
                }
                None => start += 1,
            }
            arena.clear();
        }
        matches
    }
}
