//! The Pike VM that finds the preferred match at one start row (see "How
//! matching works" in the parent module).
//!
//! Threads live in lists ordered by preference. A thread records its path
//! (every row's variable) as a node in an arena shared by all threads of the
//! search, so forking is copying an index; its merge key is a node in a second,
//! hash-consed arena that holds only the rows whose variables conditions read.

use std::ops::ControlFlow;

use carbonflow_core::{Millis, Row};
use foldhash::{HashMap, HashSet};

use super::expr::{Labels, Scope};
use super::pattern::{Inst, VarId};
use super::{EvalFailure, MatchRecognizer, Within, event_time};

/// "No node" / "not inside an iteration".
const NONE: usize = usize::MAX;

#[derive(Clone, Debug)]
struct Thread {
    pc: usize,
    /// The newest node of the thread's path in `Searcher::paths`.
    path: usize,
    /// The newest node of the thread's merge key in `Searcher::keys`.
    key: usize,
    /// Per nullable loop, the row where its current iteration began.
    slots: Vec<usize>,
}

struct PathNode {
    var: VarId,
    parent: usize,
}

struct KeyNode {
    var: VarId,
    row: usize,
    parent: usize,
}

/// Searches one partition, one start row at a time, reusing its buffers.
pub(super) struct Searcher<'a> {
    recognizer: &'a MatchRecognizer,
    rows: &'a [Row],
    /// Whether threads at one instruction can differ (merge keys or slots);
    /// if not, "first at this instruction" is a stamp per instruction.
    keyed: bool,
    paths: Vec<PathNode>,
    keys: Vec<KeyNode>,
    key_ids: HashMap<(VarId, usize, usize), usize>,
    current: Vec<Thread>,
    next: Vec<Thread>,
    stack: Vec<Thread>,
    stamps: Vec<u64>,
    generation: u64,
    seen: HashSet<(usize, usize, Vec<usize>)>,
}

impl<'a> Searcher<'a> {
    pub(super) fn new(recognizer: &'a MatchRecognizer, rows: &'a [Row]) -> Self {
        Searcher {
            recognizer,
            rows,
            keyed: recognizer.program.slots > 0 || recognizer.history.iter().any(|read| *read),
            paths: Vec::new(),
            keys: Vec::new(),
            key_ids: HashMap::default(),
            current: Vec::new(),
            next: Vec::new(),
            stack: Vec::new(),
            stamps: vec![0; recognizer.program.insts.len()],
            generation: 0,
            seen: HashSet::default(),
        }
    }

    /// The preferred match starting at `start`, as its end (exclusive) and
    /// the variable of each row; `end == start` for an empty match.
    pub(super) fn search(&mut self, start: usize, match_number: u64, failures: &mut Vec<EvalFailure>) -> Option<(usize, Vec<VarId>)> {
        let recognizer = self.recognizer;
        let insts = &recognizer.program.insts;
        self.paths.clear();
        self.keys.clear();
        self.key_ids.clear();
        let window = self.recognizer.within.map(|within| (within, event_time(&self.rows[start], within.time_column)));
        let mut current = std::mem::take(&mut self.current);
        let mut next = std::mem::take(&mut self.next);
        current.clear();
        self.new_list();
        let initial = Thread {
            pc: 0,
            path: NONE,
            key: NONE,
            slots: vec![NONE; self.recognizer.program.slots],
        };
        self.add(&mut current, initial, start);

        let mut best = None;
        let mut pos = start;
        while !current.is_empty() {
            next.clear();
            self.new_list();
            let consumable = pos < self.rows.len() && in_window(window, &self.rows[pos]);
            for thread in &current {
                match insts[thread.pc] {
                    // Everything behind an accepting thread is less preferred.
                    Inst::Accept => {
                        best = Some((thread.path, pos));
                        break;
                    }
                    Inst::Var(var) => {
                        if consumable && self.holds(var, thread, start, pos, match_number, failures) {
                            let advanced = self.advance(thread, var, pos);
                            self.add(&mut next, advanced, pos + 1);
                        }
                    }
                    _ => unreachable!("thread lists hold only Var and Accept threads"),
                }
            }
            std::mem::swap(&mut current, &mut next);
            pos += 1;
        }
        self.current = current;
        self.next = next;
        best.map(|(path, end)| (end, self.labels(path, end - start)))
    }

    fn new_list(&mut self) {
        self.generation += 1;
        self.seen.clear();
    }

    /// Whether no more preferred thread with the same future reached this
    /// instruction for the list being built.
    fn first_visit(&mut self, thread: &Thread) -> bool {
        if self.keyed {
            self.seen.insert((thread.pc, thread.key, thread.slots.clone()))
        } else {
            let stamp = &mut self.stamps[thread.pc];
            let first = *stamp != self.generation;
            *stamp = self.generation;
            first
        }
    }

    /// Adds `thread` and every thread it reaches without consuming a row to
    /// `list`, in preference order (depth first, preferred branch first).
    fn add(&mut self, list: &mut Vec<Thread>, thread: Thread, pos: usize) {
        self.stack.push(thread);
        while let Some(mut thread) = self.stack.pop() {
            if !self.first_visit(&thread) {
                continue;
            }
            match self.recognizer.program.insts[thread.pc] {
                Inst::Var(_) | Inst::Accept => list.push(thread),
                Inst::Jump(target) => {
                    thread.pc = target as usize;
                    self.stack.push(thread);
                }
                Inst::Split(preferred, other) => {
                    let mut second = thread.clone();
                    second.pc = other as usize;
                    self.stack.push(second);
                    thread.pc = preferred as usize;
                    self.stack.push(thread);
                }
                Inst::Mark(slot) => {
                    thread.slots[usize::from(slot)] = pos;
                    thread.pc += 1;
                    self.stack.push(thread);
                }
                Inst::Check(slot) => {
                    // An iteration beyond the minimum that consumed nothing dies.
                    if thread.slots[usize::from(slot)] != pos {
                        thread.slots[usize::from(slot)] = NONE;
                        thread.pc += 1;
                        self.stack.push(thread);
                    }
                }
            }
        }
    }

    /// Whether `var`'s condition is TRUE for row `pos` after the thread's path.
    fn holds(&self, var: VarId, thread: &Thread, start: usize, pos: usize, match_number: u64, failures: &mut Vec<EvalFailure>) -> bool {
        let Some(condition) = &self.recognizer.conditions[var.index()] else {
            return true;
        };
        let scope = Scope {
            rows: self.rows,
            start,
            current: pos,
            last: pos,
            labels: KeyLabels {
                nodes: &self.keys,
                key: thread.key,
                current: pos,
                var,
            },
            match_number,
            names: &self.recognizer.names,
        };
        scope.holds(condition).unwrap_or_else(|error| {
            failures.push(EvalFailure { row: pos, message: error.0 });
            false
        })
    }

    /// The thread after mapping row `pos` to `var`.
    fn advance(&mut self, thread: &Thread, var: VarId, pos: usize) -> Thread {
        self.paths.push(PathNode { var, parent: thread.path });
        let key = if self.recognizer.history[var.index()] {
            let keys = &mut self.keys;
            *self.key_ids.entry((var, pos, thread.key)).or_insert_with(|| {
                keys.push(KeyNode {
                    var,
                    row: pos,
                    parent: thread.key,
                });
                keys.len() - 1
            })
        } else {
            thread.key
        };
        Thread {
            pc: thread.pc + 1,
            path: self.paths.len() - 1,
            key,
            slots: thread.slots.clone(),
        }
    }

    /// The variables of the `len` rows on the path ending at `path`, in row order.
    fn labels(&self, mut path: usize, len: usize) -> Vec<VarId> {
        let mut labels = Vec::with_capacity(len);
        while path != NONE {
            let node = &self.paths[path];
            labels.push(node.var);
            path = node.parent;
        }
        labels.reverse();
        debug_assert_eq!(labels.len(), len, "one variable per matched row");
        labels
    }
}

/// Whether `row` may join a match whose first row has `start_time` under `WITHIN`.
fn in_window(window: Option<(Within, Option<Millis>)>, row: &Row) -> bool {
    match window {
        None => true,
        Some((within, start_time)) => match (start_time, event_time(row, within.time_column)) {
            (Some(start_time), Some(time)) => time.saturating_sub(start_time) <= within.duration,
            _ => false,
        },
    }
}

/// What a `DEFINE` condition sees of a thread's past: the row being
/// classified, mapped to `var`, and the rows in the thread's merge key, which
/// include every row of every variable a condition reads.
struct KeyLabels<'a> {
    nodes: &'a [KeyNode],
    key: usize,
    current: usize,
    var: VarId,
}

impl Labels for KeyLabels<'_> {
    fn for_each_back(&self, var: VarId, upto: usize, mut f: impl FnMut(usize) -> ControlFlow<()>) {
        debug_assert_eq!(upto, self.current, "conditions see the match up to the row being classified");
        if var == self.var && f(self.current).is_break() {
            return;
        }
        let mut node = self.key;
        while node != NONE {
            let KeyNode { var: label, row, parent } = self.nodes[node];
            if label == var && f(row).is_break() {
                return;
            }
            node = parent;
        }
    }

    fn label(&self, row: usize) -> VarId {
        debug_assert_eq!(row, self.current, "in DEFINE only the current row's variable is known");
        self.var
    }
}
