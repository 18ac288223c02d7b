//! The Pike VM that finds the preferred match at one start row (see "How
//! matching works" in the parent module).
//!
//! A [`Search`] holds the thread list of one start row, ordered by
//! preference. It runs until its threads die or the rows run out; in the
//! latter case it keeps its threads and [`Search::run`] resumes it when more
//! rows have been appended, so a stream of rows costs each search only the
//! rows it examines, once. A thread records its path (every row's variable)
//! as a node in a list of path nodes, so forking is copying an index; its
//! merge key is a node in a list of key nodes that holds only the rows whose
//! variables conditions read. The thread lists and both node lists are
//! shared by all searches of a walk ([`Arena`]). Everything a search holds
//! counts rows from its start row, so dropping rows in front of it only
//! moves its start ([`Search::shift`]).
//!
//! Merge keys are canonical: a key node is `(variable, row, parent key)`, and
//! every node for a row is made while the threads step over that row, so one
//! small table per step ([`Buffers`]) gives equal keys equal indices. Two
//! threads at one instruction with equal keys are then found with one stamp
//! per instruction; a set is needed only for the second key at an
//! instruction, or when the pattern has nullable loops (their iteration
//! slots join the key).

use std::ops::{ControlFlow, Range};

use carbonflow_core::{Millis, Row};
use foldhash::{HashMap, HashSet};

use super::expr::{Labels, Scope};
use super::pattern::{Inst, VarId};
use super::{EvalFailure, MatchRecognizer, Within, event_time};

/// "No node" / "not inside an iteration".
const NONE: usize = usize::MAX;

/// Interned key nodes of one step kept in a list before they spill into a map.
const SMALL_STEP_TABLE: usize = 8;

#[derive(Clone, Copy, Debug)]
struct Thread {
    pc: usize,
    /// The newest node of the thread's path in `Search::paths`.
    path: usize,
    /// The newest node of the thread's merge key in `Search::keys`.
    key: usize,
    /// Where the thread's slots start in `Search::slot_sets` (`NONE` when the
    /// pattern has no nullable loops): per nullable loop, the row (counted
    /// from the start) where its current iteration began. A set is never
    /// changed once a thread points at it, so threads copy freely.
    slots: usize,
}

#[derive(Clone, Copy, Debug)]
struct PathNode {
    var: VarId,
    parent: usize,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct KeyNode {
    var: VarId,
    /// The row, counted from the search's start row.
    offset: usize,
    parent: usize,
}

/// The search for the preferred match at one start row, resumable where the rows ran out.
/// Its threads, paths and keys live in the [`Arena`] of its walk.
#[derive(Clone, Debug)]
pub(super) struct Search {
    start: usize,
    /// `WITHIN` and the start row's event time (`None`: no row may join).
    window: Option<(Within, Option<Millis>)>,
    /// The row the threads wait for, counted from the start row.
    offset: usize,
    /// The live threads in preference order, in `Arena::threads`; only `Var`
    /// threads once `run` returns.
    threads: Range<usize>,
    /// The most preferred complete match so far: its path and length.
    best: Option<(usize, usize)>,
    /// The slot sets of the threads, `program.slots` entries each (empty
    /// when the pattern has no nullable loops).
    slot_sets: Vec<usize>,
}

impl Search {
    /// A search at `start`, before it examined any row.
    pub(super) fn new(recognizer: &MatchRecognizer, rows: &[Row], start: usize, arena: &mut Arena, buffers: &mut Buffers) -> Search {
        let window = recognizer
            .within
            .map(|within| (within, rows.get(start).and_then(|row| event_time(row, within.time_column))));
        let mut slot_sets = Vec::new();
        let slots = if recognizer.program.slots > 0 {
            slot_sets.resize(recognizer.program.slots, NONE);
            0
        } else {
            NONE
        };
        buffers.new_list();
        let initial = Thread {
            pc: 0,
            path: NONE,
            key: NONE,
            slots,
        };
        let mut list = std::mem::take(&mut buffers.list);
        list.clear();
        buffers.add(recognizer, &mut list, initial, 0, &mut slot_sets);
        let first = arena.threads.len();
        arena.threads.extend_from_slice(&list);
        buffers.list = list;
        Search {
            start,
            window,
            offset: 0,
            threads: first..arena.threads.len(),
            best: None,
            slot_sets,
        }
    }

    /// The start row.
    pub(super) fn start(&self) -> usize {
        self.start
    }

    /// Whether the outcome is final: every thread has died.
    pub(super) fn is_done(&self) -> bool {
        self.threads.is_empty()
    }

    /// The preferred match found so far, as its path node and length; final
    /// once [`Self::is_done`]. Equal values mean the same mapping.
    pub(super) fn best(&self) -> Option<(usize, usize)> {
        self.best
    }

    /// Steps the threads over the rows from where they wait to the end of
    /// `rows`, whose earlier rows must be the ones already examined. The
    /// threads left move to the arena's lists of this pass.
    pub(super) fn run(
        &mut self,
        recognizer: &MatchRecognizer,
        rows: &[Row],
        match_number: u64,
        arena: &mut Arena,
        buffers: &mut Buffers,
        failures: &mut Vec<EvalFailure>,
    ) {
        let insts = &recognizer.program.insts;
        let mut threads = std::mem::take(&mut buffers.threads);
        threads.clear();
        threads.extend_from_slice(&arena.threads[self.threads.clone()]);
        let mut next = std::mem::take(&mut buffers.list);
        while !threads.is_empty() {
            let pos = self.start + self.offset;
            if pos >= rows.len() {
                // Out of rows: an accepting thread is decided (only more
                // preferred threads, which wait for rows, can still beat it).
                if let Some(accepting) = threads.iter().position(|thread| insts[thread.pc] == Inst::Accept) {
                    self.best = Some((threads[accepting].path, self.offset));
                    threads.truncate(accepting);
                }
                break;
            }
            next.clear();
            buffers.new_list();
            let consumable = in_window(self.window, &rows[pos]);
            for thread in &threads {
                match insts[thread.pc] {
                    // Everything behind an accepting thread is less preferred.
                    Inst::Accept => {
                        self.best = Some((thread.path, self.offset));
                        break;
                    }
                    Inst::Var(var) => {
                        if consumable && self.holds(recognizer, rows, &arena.keys, var, thread, match_number, failures) {
                            let advanced = self.advance(recognizer, arena, thread, var, buffers);
                            buffers.add(recognizer, &mut next, advanced, self.offset + 1, &mut self.slot_sets);
                        }
                    }
                    _ => unreachable!("thread lists hold only Var and Accept threads"),
                }
            }
            std::mem::swap(&mut threads, &mut next);
            self.offset += 1;
        }
        let first = arena.next_threads.len();
        arena.next_threads.extend_from_slice(&threads);
        self.threads = first..arena.next_threads.len();
        buffers.threads = threads;
        buffers.list = next;
    }

    /// Ends the search as if the partition ended here.
    pub(super) fn finish(&mut self) {
        self.threads = 0..0;
    }

    /// Ends the search if no row at or after event time `horizon + WITHIN`
    /// can join it: its start row is older than `horizon`.
    pub(super) fn expire(&mut self, horizon: Millis) {
        if let Some((_, start_time)) = self.window
            && start_time.is_none_or(|time| time < horizon)
        {
            self.finish();
        }
    }

    /// `cut` rows were dropped in front of the start row.
    pub(super) fn shift(&mut self, cut: usize) {
        self.start -= cut;
    }

    /// Whether `var`'s condition is TRUE for the row the threads wait for
    /// after the thread's path, whose key nodes are in `keys`.
    #[allow(clippy::too_many_arguments)] // the scope of one condition, spread over the search, the thread and the arena
    fn holds(
        &self,
        recognizer: &MatchRecognizer,
        rows: &[Row],
        keys: &[KeyNode],
        var: VarId,
        thread: &Thread,
        match_number: u64,
        failures: &mut Vec<EvalFailure>,
    ) -> bool {
        let Some(condition) = &recognizer.conditions[var.index()] else {
            return true;
        };
        let pos = self.start + self.offset;
        let scope = Scope {
            rows,
            start: self.start,
            current: pos,
            last: pos,
            labels: KeyLabels {
                nodes: keys,
                key: thread.key,
                start: self.start,
                current: pos,
                var,
            },
            match_number,
            names: &recognizer.names,
        };
        condition.holds(&scope).unwrap_or_else(|error| {
            failures.push(EvalFailure { row: pos, message: error.0 });
            false
        })
    }

    /// The thread after mapping the row the threads wait for to `var`.
    fn advance(&self, recognizer: &MatchRecognizer, arena: &mut Arena, thread: &Thread, var: VarId, buffers: &mut Buffers) -> Thread {
        arena.paths.push(PathNode { var, parent: thread.path });
        let key = if recognizer.history[var.index()] {
            let (keys, offset) = (&mut arena.keys, self.offset);
            buffers.intern(var, thread.key, || {
                keys.push(KeyNode {
                    var,
                    offset,
                    parent: thread.key,
                });
                keys.len() - 1
            })
        } else {
            thread.key
        };
        Thread {
            pc: thread.pc + 1,
            path: arena.paths.len() - 1,
            key,
            slots: thread.slots,
        }
    }
}

/// The threads, paths and merge keys of the searches of one walk, in
/// vectors they share: stepping a partition's searches then reads a few
/// contiguous blocks instead of several blocks per search, which is what
/// bounds an epoch that gives every partition a few rows.
///
/// Thread lists are rewritten by every pass over the walk
/// ([`MatchRecognizer::advance`]): a search reads its list from `threads`
/// and appends what is left to `next_threads`, and [`Arena::end_pass`]
/// swaps the two. Path and key nodes only grow; [`Arena::collect`] drops
/// the ones no live thread or best match reaches.
#[derive(Clone, Debug, Default)]
pub(super) struct Arena {
    /// The thread lists as the last pass left them, then the initial lists
    /// of the searches started in this pass; each search owns a range.
    threads: Vec<Thread>,
    /// The thread lists written in this pass.
    next_threads: Vec<Thread>,
    paths: Vec<PathNode>,
    keys: Vec<KeyNode>,
    /// Path and key nodes the last collection kept.
    kept: usize,
}

/// Nodes the arena may hold beyond twice what its last collection kept.
const COLLECTION_SLACK: usize = 64;

/// A node marked as reached, before [`renumber`] gives it its new index.
const REACHED: usize = usize::MAX - 1;

impl Arena {
    /// Ends a pass over the walk: the lists written in it become the searches' lists.
    pub(super) fn end_pass(&mut self) {
        std::mem::swap(&mut self.threads, &mut self.next_threads);
        self.next_threads.clear();
    }

    /// Forgets every node and list: no search refers to the arena any more.
    pub(super) fn clear(&mut self) {
        self.threads.clear();
        self.next_threads.clear();
        self.paths.clear();
        self.keys.clear();
        self.kept = 0;
    }

    /// Whether the nodes have grown enough since the last collection to collect them.
    pub(super) fn wants_collection(&self) -> bool {
        self.paths.len() + self.keys.len() >= 2 * self.kept + COLLECTION_SLACK
    }

    /// Keeps only the nodes that the threads and best matches of `searches`
    /// (every search whose lists are the arena's current ones) reach,
    /// renumbered in their order, so parents stay in front of children.
    pub(super) fn collect(&mut self, searches: &mut [&mut Search], buffers: &mut Buffers) {
        let marks = &mut buffers.marks;
        marks.clear();
        marks.resize(self.paths.len() + self.keys.len(), NONE);
        let (path_marks, key_marks) = marks.split_at_mut(self.paths.len());
        for search in searches.iter() {
            for thread in &self.threads[search.threads.clone()] {
                mark(&self.paths, path_marks, thread.path);
                mark(&self.keys, key_marks, thread.key);
            }
            if let Some((path, _)) = search.best {
                mark(&self.paths, path_marks, path);
            }
        }
        renumber(&mut self.paths, path_marks);
        renumber(&mut self.keys, key_marks);
        let new_index = |marks: &[usize], node: usize| if node == NONE { NONE } else { marks[node] };
        for search in searches.iter_mut() {
            for thread in &mut self.threads[search.threads.clone()] {
                thread.path = new_index(path_marks, thread.path);
                thread.key = new_index(key_marks, thread.key);
            }
            if let Some((path, _)) = &mut search.best {
                *path = new_index(path_marks, *path);
            }
        }
        self.kept = self.paths.len() + self.keys.len();
    }

    /// The variables of the `len` rows on the path ending at `path`, in row order.
    pub(super) fn labels(&self, mut path: usize, len: usize) -> Vec<VarId> {
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

/// A path or key node: a link to the node before it.
trait Linked: Copy {
    fn parent(&self) -> usize;
    fn set_parent(&mut self, parent: usize);
}

impl Linked for PathNode {
    fn parent(&self) -> usize {
        self.parent
    }

    fn set_parent(&mut self, parent: usize) {
        self.parent = parent;
    }
}

impl Linked for KeyNode {
    fn parent(&self) -> usize {
        self.parent
    }

    fn set_parent(&mut self, parent: usize) {
        self.parent = parent;
    }
}

/// Marks `node` and the nodes before it as reached.
fn mark<N: Linked>(nodes: &[N], marks: &mut [usize], mut node: usize) {
    while node != NONE && marks[node] == NONE {
        marks[node] = REACHED;
        node = nodes[node].parent();
    }
}

/// Moves the reached nodes to the front, in order, and turns their marks into their new indices.
fn renumber<N: Linked>(nodes: &mut Vec<N>, marks: &mut [usize]) {
    let mut kept = 0;
    for old in 0..nodes.len() {
        if marks[old] == NONE {
            continue;
        }
        let mut node = nodes[old];
        if node.parent() != NONE {
            // A parent is made before its children, so it has its new index already.
            node.set_parent(marks[node.parent()]);
        }
        nodes[kept] = node;
        marks[old] = kept;
        kept += 1;
    }
    nodes.truncate(kept);
}

/// Buffers every search of a recognizer reuses while it builds thread lists.
#[derive(Debug, Default)]
pub struct Buffers {
    stack: Vec<Thread>,
    /// The thread list of the search being run.
    threads: Vec<Thread>,
    /// The spare thread list a step builds into.
    list: Vec<Thread>,
    /// Marks of [`Arena::collect`].
    marks: Vec<usize>,
    /// Per instruction: the list being built when a thread last reached it, and that thread's key.
    stamps: Vec<(u64, usize)>,
    generation: u64,
    /// Threads beyond the first at an instruction in the list being built
    /// (every thread when the pattern has nullable loops).
    seen: HashSet<(usize, usize, Vec<usize>)>,
    /// Key nodes made in this step, by variable and parent key.
    step_keys: Vec<(VarId, usize, usize)>,
    step_keys_spilled: HashMap<(VarId, usize), usize>,
}

impl Buffers {
    /// Starts building a thread list for the next row.
    fn new_list(&mut self) {
        self.generation += 1;
        if !self.seen.is_empty() {
            self.seen.clear();
        }
        self.step_keys.clear();
        if !self.step_keys_spilled.is_empty() {
            self.step_keys_spilled.clear();
        }
    }

    /// The key node `(var, this step's row, parent)`, made by `make` the first time.
    fn intern(&mut self, var: VarId, parent: usize, make: impl FnOnce() -> usize) -> usize {
        if let Some(&(_, _, node)) = self.step_keys.iter().find(|(v, p, _)| *v == var && *p == parent) {
            return node;
        }
        if self.step_keys.len() < SMALL_STEP_TABLE {
            let node = make();
            self.step_keys.push((var, parent, node));
            node
        } else {
            *self.step_keys_spilled.entry((var, parent)).or_insert_with(make)
        }
    }

    /// Whether no more preferred thread with the same future reached this
    /// instruction for the list being built.
    fn first_visit(&mut self, thread: &Thread, slot_sets: &[usize], width: usize) -> bool {
        if thread.slots != NONE {
            return self
                .seen
                .insert((thread.pc, thread.key, slot_sets[thread.slots..thread.slots + width].to_vec()));
        }
        self.first_visit_without_slots(thread)
    }

    /// [`Self::first_visit`] for a pattern without nullable loops: one
    /// stamp per instruction decides, except for a second key there.
    #[inline]
    fn first_visit_without_slots(&mut self, thread: &Thread) -> bool {
        let stamp = &mut self.stamps[thread.pc];
        if stamp.0 != self.generation {
            *stamp = (self.generation, thread.key);
            true
        } else if stamp.1 == thread.key {
            false
        } else {
            self.seen.insert((thread.pc, thread.key, Vec::new()))
        }
    }

    /// Adds `thread` and every thread it reaches without consuming a row to
    /// `list`, in preference order (depth first, preferred branch first).
    /// `offset` is the row the list waits for, counted from the start row;
    /// `slot_sets` holds the search's slot sets.
    #[inline]
    fn add(&mut self, recognizer: &MatchRecognizer, list: &mut Vec<Thread>, thread: Thread, offset: usize, slot_sets: &mut Vec<usize>) {
        let insts = &recognizer.program.insts;
        if self.stamps.len() < insts.len() {
            self.stamps.resize(insts.len(), (0, NONE));
        }
        // Without slots, what a thread reaches is fixed by its instruction;
        // marking only those leaves skips the same threads as marking every
        // instruction on the way would (a thread with the same key passed there
        // before and marked every leaf below).
        match &recognizer.program.closures {
            Some(closures) => {
                for &leaf in &closures[thread.pc] {
                    let reached = Thread { pc: leaf as usize, ..thread };
                    if self.first_visit_without_slots(&reached) {
                        list.push(reached);
                    }
                }
            }
            None => self.add_by_walking(recognizer, list, thread, offset, slot_sets),
        }
    }

    /// [`Self::add`] for programs without a closure table: walks the
    /// instructions from `thread`, updating slots on the way.
    fn add_by_walking(&mut self, recognizer: &MatchRecognizer, list: &mut Vec<Thread>, thread: Thread, offset: usize, slot_sets: &mut Vec<usize>) {
        let (insts, width) = (&recognizer.program.insts, recognizer.program.slots);
        self.stack.push(thread);
        while let Some(mut thread) = self.stack.pop() {
            if !self.first_visit(&thread, slot_sets, width) {
                continue;
            }
            match insts[thread.pc] {
                Inst::Var(_) | Inst::Accept => list.push(thread),
                Inst::Jump(target) => {
                    thread.pc = target as usize;
                    self.stack.push(thread);
                }
                Inst::Split(preferred, other) => {
                    self.stack.push(Thread { pc: other as usize, ..thread });
                    thread.pc = preferred as usize;
                    self.stack.push(thread);
                }
                Inst::Mark(slot) => {
                    thread.slots = with_slot(slot_sets, thread.slots, width, slot, offset);
                    thread.pc += 1;
                    self.stack.push(thread);
                }
                Inst::Check(slot) => {
                    // An iteration beyond the minimum that consumed nothing dies.
                    if slot_sets[thread.slots + usize::from(slot)] != offset {
                        thread.slots = with_slot(slot_sets, thread.slots, width, slot, NONE);
                        thread.pc += 1;
                        self.stack.push(thread);
                    }
                }
            }
        }
    }
}

/// A copy of the slot set at `set` with `slot` changed to `value`, appended
/// to `slot_sets`; returns where it starts.
fn with_slot(slot_sets: &mut Vec<usize>, set: usize, width: usize, slot: u16, value: usize) -> usize {
    let copy = slot_sets.len();
    slot_sets.extend_from_within(set..set + width);
    slot_sets[copy + usize::from(slot)] = value;
    copy
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
pub(super) struct KeyLabels<'a> {
    nodes: &'a [KeyNode],
    key: usize,
    start: usize,
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
            let KeyNode { var: label, offset, parent } = self.nodes[node];
            if label == var && f(self.start + offset).is_break() {
                return;
            }
            node = parent;
        }
    }

    fn label(&self, row: usize) -> VarId {
        debug_assert_eq!(row, self.current, "in DEFINE only the current row's variable is known");
        self.var
    }

    fn latest(&self, var: VarId, upto: usize) -> Option<usize> {
        debug_assert_eq!(upto, self.current, "conditions see the match up to the row being classified");
        if var == self.var {
            return Some(self.current);
        }
        let mut node = self.key;
        while node != NONE {
            let KeyNode { var: label, offset, parent } = self.nodes[node];
            if label == var {
                return Some(self.start + offset);
            }
            node = parent;
        }
        None
    }
}
