//! A subscribable view as the server holds it: its current contents (for
//! snapshots), a bounded history of recent versions (for resumes) and the
//! changes that turn one version into the next. No I/O and no locks here;
//! [`super::hub`] shares it between the publisher and the connections.
//!
//! A view with a key (a GROUP BY's keys, a primary key) keeps one row per key
//! and describes changes as upserts and deletes of keys: a retraction plus an
//! insertion of the same key becomes one upsert, about half the bytes. A view
//! without a key keeps a multiset of rows and describes changes as signed
//! counts.

use std::collections::VecDeque;

use foldhash::HashMap;

use carbonflow_core::{DataType, Datum, Diff, Millis, Row, Schema};

use super::protocol::{Column, FilterValues};

/// What the server knows of a view: its name, columns and key.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewSchema {
    /// The view or `websocket` table name.
    pub name: String,
    /// Its columns.
    pub schema: Schema,
    /// The key columns, when every row has a distinct key.
    pub key: Option<Vec<usize>>,
}

impl ViewSchema {
    /// The columns as a snapshot describes them.
    pub fn columns(&self) -> Vec<Column> {
        self.schema
            .fields
            .iter()
            .map(|field| Column {
                name: field.name.clone(),
                sql_type: field.data_type.sql_name().to_owned(),
            })
            .collect()
    }

    /// The key column names.
    pub fn key_names(&self) -> Option<Vec<String>> {
        self.key.as_ref().map(|key| key.iter().map(|c| self.schema.fields[*c].name.clone()).collect())
    }

    fn column(&self, name: &str) -> Option<(usize, DataType)> {
        self.schema
            .fields
            .iter()
            .position(|field| field.name.eq_ignore_ascii_case(name))
            .map(|index| (index, self.schema.fields[index].data_type))
    }
}

/// Which rows a subscription wants: per column, the values accepted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowFilter {
    /// `(column, accepted values)`; a row passes when every column holds an accepted value.
    columns: Vec<(usize, Vec<Datum>)>,
}

impl RowFilter {
    /// Checks a subscription's filter against the view. On a keyed view only
    /// key columns may be filtered, so that a key never moves in or out of
    /// a subscription.
    pub fn new(view: &ViewSchema, filter: &std::collections::BTreeMap<String, FilterValues>) -> Result<RowFilter, String> {
        let mut columns = Vec::new();
        for (name, values) in filter {
            let (index, data_type) = view.column(name).ok_or_else(|| format!("view '{}' has no column '{name}'", view.name))?;
            if let Some(key) = &view.key
                && !key.contains(&index)
            {
                let keys = view.key_names().unwrap_or_default().join(", ");
                return Err(format!("'{name}' is not a key column of view '{}' (its key is {keys})", view.name));
            }
            let datums = values
                .values()
                .iter()
                .map(|value| {
                    value
                        .to_datum(data_type)
                        .ok_or_else(|| format!("{:?} is not a {data_type} for column '{name}'", value.0))
                })
                .collect::<Result<Vec<_>, _>>()?;
            columns.push((index, datums));
        }
        Ok(RowFilter { columns })
    }

    /// Narrows this filter to the values `other` also accepts on the same columns.
    pub fn intersect(&mut self, other: &RowFilter) {
        for (column, accepted) in &other.columns {
            match self.columns.iter_mut().find(|(c, _)| c == column) {
                Some((_, mine)) => mine.retain(|value| accepted.contains(value)),
                None => self.columns.push((*column, accepted.clone())),
            }
        }
    }

    /// Whether the row passes.
    pub fn accepts(&self, row: &Row) -> bool {
        self.columns.iter().all(|(column, accepted)| accepted.contains(row.get(*column)))
    }

    /// Whether a key passes: the filter's columns are all key columns,
    /// found at their position in `key`.
    fn accepts_key(&self, key_columns: &[usize], key: &Row) -> bool {
        self.columns.iter().all(|(column, accepted)| {
            key_columns
                .iter()
                .position(|c| c == column)
                .is_some_and(|position| accepted.contains(key.get(position)))
        })
    }

    /// Whether it accepts everything.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// Changes that take a client from one version of a view to a later one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changes {
    /// A keyed view: per key, its new row, or `None` when it is gone.
    Keyed(HashMap<Row, Option<Row>>),
    /// A view without a key: per row, how many copies were added (or removed, negative).
    Counted(HashMap<Row, Diff>),
}

impl Changes {
    /// No changes, of the kind the view needs.
    pub fn empty(view: &ViewSchema) -> Changes {
        if view.key.is_some() {
            Changes::Keyed(HashMap::default())
        } else {
            Changes::Counted(HashMap::default())
        }
    }

    /// How many keys or rows change.
    pub fn len(&self) -> usize {
        match self {
            Changes::Keyed(changes) => changes.len(),
            Changes::Counted(changes) => changes.len(),
        }
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies `later` on top of these changes (conflation): a key keeps its
    /// latest row, counts add up and vanish at zero. Only what `filter` accepts is taken.
    pub fn merge(&mut self, later: &Changes, view: &ViewSchema, filter: &RowFilter) {
        match (self, later) {
            (Changes::Keyed(mine), Changes::Keyed(later)) => {
                let key_columns = view.key.as_deref().unwrap_or_default();
                for (key, row) in later {
                    if filter.is_empty() || filter.accepts_key(key_columns, key) {
                        mine.insert(key.clone(), row.clone());
                    }
                }
            }
            (Changes::Counted(mine), Changes::Counted(later)) => {
                for (row, diff) in later {
                    if filter.accepts(row) {
                        let count = mine.entry(row.clone()).or_default();
                        *count += diff;
                        if *count == 0 {
                            mine.remove(row);
                        }
                    }
                }
            }
            _ => unreachable!("a view's changes are all of one kind"),
        }
    }

    /// The changes as message parts: `(upserts or inserts, deletes)`.
    pub fn into_parts(self) -> (Vec<Row>, Vec<Row>) {
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        match self {
            Changes::Keyed(changes) => {
                for (key, row) in changes {
                    match row {
                        Some(row) => added.push(row),
                        None => removed.push(key),
                    }
                }
            }
            Changes::Counted(changes) => {
                for (row, diff) in changes {
                    let copies = usize::try_from(diff.unsigned_abs()).unwrap_or(usize::MAX);
                    let target = if diff > 0 { &mut added } else { &mut removed };
                    target.extend(std::iter::repeat_n(row, copies));
                }
            }
        }
        (added, removed)
    }
}

/// The rows of a view.
#[derive(Debug)]
enum Contents {
    Keyed(HashMap<Row, Row>),
    Counted(HashMap<Row, Diff>),
}

/// A view's contents, version, frontier and recent history.
#[derive(Debug)]
pub struct ViewState {
    schema: ViewSchema,
    contents: Contents,
    version: u64,
    frontier: Option<Millis>,
    /// `(version, the changes from version - 1 to version)`, oldest first.
    history: VecDeque<(u64, Changes)>,
    /// Keys or rows in `history`, bounded by `history_limit`.
    history_len: usize,
    history_limit: usize,
}

impl ViewState {
    /// An empty view at version `first_version`, keeping up to `history_limit`
    /// changed keys or rows of recent versions for resumes.
    pub fn new(schema: ViewSchema, first_version: u64, history_limit: usize) -> Self {
        let contents = if schema.key.is_some() {
            Contents::Keyed(HashMap::default())
        } else {
            Contents::Counted(HashMap::default())
        };
        ViewState {
            schema,
            contents,
            version: first_version,
            frontier: None,
            history: VecDeque::new(),
            history_len: 0,
            history_limit,
        }
    }

    /// The view's name, columns and key.
    pub fn schema(&self) -> &ViewSchema {
        &self.schema
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Event time up to which the view is complete.
    pub fn frontier(&self) -> Option<Millis> {
        self.frontier
    }

    /// Records that the view is complete up to `frontier`.
    pub fn advance_frontier(&mut self, frontier: Millis) {
        self.frontier = Some(self.frontier.map_or(frontier, |current| current.max(frontier)));
    }

    /// Applies one consolidated batch of `(row, diff)` updates as the next
    /// version (its changes are then [`ViewState::latest_changes`]). A keyed
    /// view turns a retraction plus an insertion of one key into an upsert; a
    /// retraction alone into a delete.
    pub fn apply(&mut self, updates: &[(Row, Diff)]) {
        let changes = match (&mut self.contents, &self.schema.key) {
            (Contents::Keyed(rows), Some(key)) => {
                let mut changes = HashMap::default();
                for (row, _) in updates.iter().filter(|(_, diff)| *diff < 0) {
                    let key = row.project(key);
                    rows.remove(&key);
                    changes.insert(key, None);
                }
                for (row, _) in updates.iter().filter(|(_, diff)| *diff > 0) {
                    let key = row.project(key);
                    rows.insert(key.clone(), row.clone());
                    changes.insert(key, Some(row.clone()));
                }
                Changes::Keyed(changes)
            }
            (Contents::Counted(rows), _) => {
                let mut changes = HashMap::default();
                for (row, diff) in updates {
                    let count = rows.entry(row.clone()).or_default();
                    *count += diff;
                    if *count == 0 {
                        rows.remove(row);
                    }
                    *changes.entry(row.clone()).or_default() += diff;
                }
                changes.retain(|_, diff| *diff != 0);
                Changes::Counted(changes)
            }
            (Contents::Keyed(_), None) => unreachable!("keyed contents belong to a keyed view"),
        };
        self.version += 1;
        self.history_len += changes.len();
        self.history.push_back((self.version, changes));
        while self.history_len > self.history_limit && self.history.len() > 1 {
            let (_, dropped) = self.history.pop_front().expect("non-empty history");
            self.history_len -= dropped.len();
        }
    }

    /// The changes of the current version (none before the first).
    pub fn latest_changes(&self) -> Option<&Changes> {
        self.history.back().map(|(_, changes)| changes)
    }

    /// The rows that pass `filter`.
    pub fn snapshot(&self, filter: &RowFilter) -> Vec<Row> {
        match &self.contents {
            Contents::Keyed(rows) => rows.values().filter(|row| filter.accepts(row)).cloned().collect(),
            Contents::Counted(rows) => rows
                .iter()
                .filter(|(row, _)| filter.accepts(row))
                .flat_map(|(row, count)| std::iter::repeat_n(row.clone(), usize::try_from(*count).unwrap_or(0)))
                .collect(),
        }
    }

    /// The changes (passing `filter`) from `version` to the current version,
    /// or `None` when `version` is not one this view went through or its
    /// history no longer reaches back that far.
    pub fn changes_since(&self, version: u64, filter: &RowFilter) -> Option<Changes> {
        let mut changes = Changes::empty(&self.schema);
        if version == self.version {
            return Some(changes);
        }
        let oldest = self.history.front()?.0;
        if version < oldest - 1 || version > self.version {
            return None;
        }
        for (_, later) in self.history.iter().filter(|(v, _)| *v > version) {
            changes.merge(later, &self.schema, filter);
        }
        Some(changes)
    }

    /// Keys or rows held in the history.
    pub fn history_len(&self) -> usize {
        self.history_len
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use carbonflow_core::Field;
    use proptest::prelude::*;

    use super::super::protocol::WireDatum;
    use super::*;

    fn schema(key: Option<Vec<usize>>) -> ViewSchema {
        ViewSchema {
            name: "v".into(),
            schema: Schema::new(vec![Field::new("node", DataType::String), Field::new("price", DataType::Float)]),
            key,
        }
    }

    fn row(node: &str, price: f64) -> Row {
        Row::new(vec![Datum::string(node), Datum::float(price)])
    }

    /// Applies changes to a client-side copy, as a subscriber does.
    fn apply_to(client: &mut Vec<Row>, view: &ViewSchema, changes: Changes) {
        let (added, removed) = changes.into_parts();
        match &view.key {
            Some(key) => {
                client.retain(|row| {
                    let k = row.project(key);
                    !removed.contains(&k) && !added.iter().any(|a| a.project(key) == k)
                });
                client.extend(added);
            }
            None => {
                for row in removed {
                    let at = client.iter().position(|r| *r == row).expect("removed row present");
                    client.swap_remove(at);
                }
                client.extend(added);
            }
        }
        client.sort();
    }

    #[test]
    fn a_keyed_view_turns_retraction_and_insertion_into_one_upsert() {
        let view = schema(Some(vec![0]));
        let mut state = ViewState::new(view, 100, 1000);
        state.apply(&[(row("A", 1.0), 1), (row("B", 2.0), 1)]);
        state.apply(&[(row("A", 1.0), -1), (row("A", 3.0), 1), (row("B", 2.0), -1)]);
        let changes = state.latest_changes().unwrap().clone();
        assert_eq!(state.version(), 102);
        let Changes::Keyed(map) = &changes else { panic!() };
        assert_eq!(map[&Row::new(vec![Datum::string("A")])], Some(row("A", 3.0)));
        assert_eq!(map[&Row::new(vec![Datum::string("B")])], None);
        assert_eq!(state.snapshot(&RowFilter::default()), vec![row("A", 3.0)]);
    }

    #[test]
    fn filters_only_take_key_columns_on_keyed_views_and_check_types() {
        let keyed = schema(Some(vec![0]));
        let filter = |column: &str, value: Datum| BTreeMap::from([(column.to_owned(), FilterValues::One(WireDatum(value)))]);
        assert!(RowFilter::new(&keyed, &filter("NODE", Datum::string("A"))).is_ok());
        assert!(
            RowFilter::new(&keyed, &filter("price", Datum::float(1.0)))
                .unwrap_err()
                .contains("not a key column")
        );
        assert!(RowFilter::new(&keyed, &filter("node", Datum::Int(1))).unwrap_err().contains("not a STRING"));
        assert!(RowFilter::new(&keyed, &filter("zone", Datum::Int(1))).unwrap_err().contains("no column"));
        assert!(RowFilter::new(&schema(None), &filter("price", Datum::Int(1))).is_ok());
    }

    #[test]
    fn resume_needs_the_whole_span_in_history() {
        let mut state = ViewState::new(schema(Some(vec![0])), 0, 3);
        for price in 0..5 {
            state.apply(&[(row("A", f64::from(price)), 1), (row(&format!("N{price}"), 0.0), 1)]);
            if price > 0 {
                state.apply(&[(row("A", f64::from(price)), -1)]);
            }
        }
        assert!(state.history_len() <= 3 || state.history.len() == 1);
        assert!(state.changes_since(0, &RowFilter::default()).is_none(), "history no longer reaches version 0");
        assert!(
            state.changes_since(state.version() + 1, &RowFilter::default()).is_none(),
            "a version from the future"
        );
        assert!(state.changes_since(state.version(), &RowFilter::default()).unwrap().is_empty());
        assert!(state.changes_since(state.version() - 1, &RowFilter::default()).is_some());
    }

    /// Batches of updates that keep a keyed view consistent: each batch
    /// retracts the current row of some keys and inserts new ones.
    fn keyed_batches() -> impl Strategy<Value = Vec<Vec<(u8, Option<u8>)>>> {
        prop::collection::vec(prop::collection::vec((0u8..6, prop::option::of(0u8..4)), 0..5), 1..30)
    }

    proptest! {
        /// Snapshot at any version + the changes since, filtered, equals the
        /// filtered contents now; for keyed and unkeyed views.
        #[test]
        fn snapshot_plus_changes_since_equals_the_current_contents(
            batches in keyed_batches(),
            keyed in any::<bool>(),
            split in 0usize..30,
            filtered in any::<bool>(),
        ) {
            let view = schema(keyed.then(|| vec![0]));
            let mut state = ViewState::new(view.clone(), 0, usize::MAX);
            let filter = if filtered {
                RowFilter::new(&view, &BTreeMap::from([("node".to_owned(), FilterValues::Any(vec![WireDatum(Datum::string("n1")), WireDatum(Datum::string("n3"))]))])).unwrap()
            } else {
                RowFilter::default()
            };
            let mut current: BTreeMap<u8, u8> = BTreeMap::new();
            let mut client = None;
            for (index, batch) in batches.iter().enumerate() {
                if index == split.min(batches.len() - 1) {
                    let mut rows = state.snapshot(&filter);
                    rows.sort();
                    client = Some((state.version(), rows));
                }
                let mut updates = Vec::new();
                let mut touched = std::collections::BTreeSet::new();
                for (node, price) in batch {
                    if !touched.insert(*node) { continue; }
                    if let Some(old) = current.remove(node) {
                        updates.push((row(&format!("n{node}"), f64::from(old)), -1));
                    }
                    if let Some(price) = price {
                        current.insert(*node, *price);
                        updates.push((row(&format!("n{node}"), f64::from(*price)), 1));
                    }
                }
                differential_like_consolidate(&mut updates);
                state.apply(&updates);
            }
            let (version, mut rows) = client.expect("a snapshot was taken");
            apply_to(&mut rows, &view, state.changes_since(version, &filter).expect("full history"));
            let mut expected: Vec<Row> = current.iter().map(|(n, p)| row(&format!("n{n}"), f64::from(*p))).filter(|r| filter.accepts(r)).collect();
            expected.sort();
            prop_assert_eq!(rows, expected);
        }
    }

    /// Sums equal rows and drops zeros, as the engine hands batches to sinks.
    fn differential_like_consolidate(updates: &mut Vec<(Row, Diff)>) {
        let mut sums: BTreeMap<Row, Diff> = BTreeMap::new();
        for (row, diff) in updates.drain(..) {
            *sums.entry(row).or_default() += diff;
        }
        updates.extend(sums.into_iter().filter(|(_, d)| *d != 0));
    }
}
