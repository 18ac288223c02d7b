//! How much of each source table a restarted run must read again: the
//! [`Retention`] its source instances are opened with.
//!
//! A restart resumes from the read positions the sources committed, with
//! every operator's state empty. Whatever state the operators had built from
//! rows before those positions must come back by reading those rows again,
//! and results delivered before the crash must come out the same (so that
//! sinks recognise and drop them) or not at all. Per operator, reading the
//! plan from the outputs down to the table scans:
//!
//! | operator | the tables below it need |
//! | --- | --- |
//! | filter, project, window assignment, `UNION ALL` | nothing |
//! | `TUMBLE` / `HOP` / `CUMULATE` aggregation | the window's extent (size, or `CUMULATE`'s largest size) plus the allowed lateness |
//! | primary-key upsert (a table with a watermark) | `upsert.retention` |
//! | plain `GROUP BY`, `SESSION`, `MATCH_RECOGNIZE`, OVER, `FORECAST`, joins | everything |
//!
//! A span is restored together with the table's event-time progress (see
//! [`Retention::Span`]): windows the watermark had closed reject their
//! re-read rows as late, open ones are rebuilt whole, and nothing decided
//! before the crash is decided again from part of its rows. That holds for
//! state that is dropped only once the watermark passes it: window groups
//! and upsert keys. It does not hold for an operator that keeps rows behind
//! the watermark as history (`MATCH_RECOGNIZE` partitions, OVER frames,
//! `FORECAST` series, temporal join versions): a restored watermark would
//! reject that history as late, and without one the first matches or
//! frames of the replay would be computed from part of their rows and
//! differ from the ones delivered. Neither does it hold for a window over
//! another stateful operator (the inner one does not emit again what it
//! closed before), for a window over several tables (their watermarks are
//! restored separately, not as the minimum the window waited on), or for
//! state kept forever. Those tables need everything: a restart reads them
//! again from where the first run started.
//!
//! Spans add the table's watermark delay, because a source measures them
//! from its event-time progress, which is the watermark plus the delay.

use carbonflow_core::Millis;
use carbonflow_operators::windows::WindowSpec;
use carbonflow_sources::Retention;

use super::{Node, Plan, Program, TableRole};
use crate::dataflow::upsert_retention;

/// What a table's source instances are opened with when `peers` workers
/// read it: a span only with one. Each instance sizes its replay from its
/// own partitions' event-time progress, while the operators wait on the
/// minimum over all instances, so with several a lagging instance can leave
/// windows open that the others' span no longer covers; reading everything
/// again is exact for any number of workers.
pub fn for_workers(retention: Retention, peers: usize) -> Retention {
    match retention {
        Retention::Span(_) if peers > 1 => Retention::Everything,
        other => other,
    }
}

/// The retention of every table of `program`, by table index: what its
/// outputs and views need; [`Retention::Nothing`] for tables no query reads.
pub fn retention(program: &Program) -> Vec<Retention> {
    let mut needs = vec![Retention::Nothing; program.tables.len()];
    for (need, table) in needs.iter_mut().zip(&program.tables) {
        if table.role == TableRole::Source && table.primary_key.is_some() {
            // Without a watermark, upsert keys are kept forever.
            *need = Retention::Span(upsert_retention(&table.connector));
        }
    }
    let plans = program
        .views
        .iter()
        .map(|view| &view.plan)
        .chain(program.outputs.iter().map(|output| &output.plan));
    for plan in plans {
        visit(program, plan, &mut needs);
    }
    for (need, table) in needs.iter_mut().zip(&program.tables) {
        if let Retention::Span(span) = *need {
            *need = match table.watermark {
                Some(watermark) => Retention::Span(span.saturating_add(watermark.delay)),
                // No watermark ever closes anything: the state is kept forever.
                None => Retention::Everything,
            };
        }
    }
    needs
}

/// Adds what the stateful operators of `plan` need from the tables below them.
fn visit(program: &Program, plan: &Plan, needs: &mut [Retention]) {
    match &plan.node {
        Node::TableScan { .. } | Node::ViewScan { .. } | Node::Filter { .. } | Node::Project { .. } | Node::WindowAssign { .. } | Node::Union { .. } => {}
        Node::Aggregate { input, window: Some(_), .. } => {
            let need = match window_extent(program, input) {
                Some(extent) if plan.watermark_tables.len() == 1 => Retention::Span(extent.saturating_add(program.allowed_lateness)),
                _ => Retention::Everything,
            };
            require(program, input, need, needs);
        }
        Node::Aggregate { window: None, .. }
        | Node::SessionAggregate { .. }
        | Node::MatchRecognize { .. }
        | Node::Over { .. }
        | Node::Forecast { .. }
        | Node::TemporalJoin { .. }
        | Node::Join { .. } => {
            for input in plan.inputs() {
                require(program, input, Retention::Everything, needs);
            }
        }
    }
    for input in plan.inputs() {
        visit(program, input, needs);
    }
}

/// The longest window assigned in `plan`, when `plan` holds no state of its
/// own between the window assignment and the tables (upserts aside, which
/// keep their own span); `None` otherwise.
fn window_extent(program: &Program, plan: &Plan) -> Option<Millis> {
    let own = match &plan.node {
        Node::WindowAssign { window, .. } => Some(match *window {
            WindowSpec::Tumble { size, .. } | WindowSpec::Hop { size, .. } => size,
            WindowSpec::Cumulate { max_size, .. } => max_size,
        }),
        Node::TableScan { .. } | Node::Filter { .. } | Node::Project { .. } | Node::Union { .. } => None,
        Node::ViewScan { view } => return window_extent(program, &program.views[*view].plan),
        _ => return None,
    };
    let mut extent = own;
    for input in plan.inputs() {
        if !is_stateless(program, input) && window_extent(program, input).is_none() {
            return None;
        }
        extent = extent.max(window_extent(program, input));
    }
    extent
}

/// Whether `plan` holds no state of its own between its output and the tables.
fn is_stateless(program: &Program, plan: &Plan) -> bool {
    match &plan.node {
        Node::TableScan { .. } => true,
        Node::ViewScan { view } => is_stateless(program, &program.views[*view].plan),
        Node::Filter { .. } | Node::Project { .. } | Node::WindowAssign { .. } | Node::Union { .. } => {
            plan.inputs().into_iter().all(|input| is_stateless(program, input))
        }
        _ => false,
    }
}

/// Raises the need of every table `plan` reads to at least `need`.
fn require(program: &Program, plan: &Plan, need: Retention, needs: &mut [Retention]) {
    match &plan.node {
        Node::TableScan { table } => needs[*table] = needs[*table].max(need),
        Node::ViewScan { view } => require(program, &program.views[*view].plan, need, needs),
        _ => {
            for input in plan.inputs() {
                require(program, input, need, needs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::check_text;

    #[test]
    fn several_workers_read_everything_where_one_reads_a_span() {
        assert_eq!(for_workers(Retention::Span(60_000), 1), Retention::Span(60_000));
        assert_eq!(for_workers(Retention::Span(60_000), 2), Retention::Everything);
        assert_eq!(for_workers(Retention::Nothing, 4), Retention::Nothing);
        assert_eq!(for_workers(Retention::Everything, 1), Retention::Everything);
    }

    const MINUTE: Millis = 60_000;
    const SECOND: Millis = 1_000;

    /// Two tick tables (`ticks` with a 5 s watermark delay, `more` with 10 s),
    /// an exchange-rate table and a sink, then `body`.
    fn retentions(body: &str) -> Vec<Retention> {
        let text = format!(
            "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
               WITH ('connector' = 'filesystem', 'path' = 'ticks.csv', 'format' = 'csv');
             CREATE TABLE more (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '10' SECOND)
               WITH ('connector' = 'filesystem', 'path' = 'more.csv', 'format' = 'csv');
             CREATE TABLE fx (node STRING, ts TIMESTAMP(3), rate DOUBLE, PRIMARY KEY (node) NOT ENFORCED,
                 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
               WITH ('connector' = 'filesystem', 'path' = 'fx.csv', 'format' = 'csv');
             CREATE TABLE out (a STRING) WITH ('connector' = 'blackhole');
             {body}"
        );
        let program = check_text(&text).unwrap_or_else(|error| panic!("{}", error.render("test.sql", &text)));
        retention(&program)
    }

    /// The retention of `ticks` for a query file ending in `body`.
    fn ticks(body: &str) -> Retention {
        retentions(body)[0]
    }

    const TUMBLE: &str = "SELECT node, window_start, AVG(price) FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
                          GROUP BY node, window_start, window_end";

    #[test]
    fn stateless_queries_need_nothing() {
        assert_eq!(ticks("SELECT node, price * 2 FROM ticks WHERE price > 100;"), Retention::Nothing);
        assert_eq!(
            ticks("SELECT * FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE));"),
            Retention::Nothing,
            "assigning windows keeps nothing"
        );
        assert_eq!(
            retentions("SELECT node FROM ticks;"),
            [Retention::Nothing; 4],
            "unread tables and sinks need nothing"
        );
    }

    #[test]
    fn a_window_aggregation_needs_its_extent_and_the_watermark_delay() {
        assert_eq!(ticks(&format!("{TUMBLE};")), Retention::Span(MINUTE + 5 * SECOND));
        let hop = "SELECT node, window_start, MAX(price) FROM TABLE(HOP(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '10' MINUTE))
                   GROUP BY node, window_start, window_end;";
        assert_eq!(ticks(hop), Retention::Span(10 * MINUTE + 5 * SECOND), "a hop needs its size, not its slide");
        let cumulate = "SELECT node, window_start, window_end, SUM(price)
                        FROM TABLE(CUMULATE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '5' MINUTE, INTERVAL '1' HOUR))
                        GROUP BY node, window_start, window_end;";
        assert_eq!(ticks(cumulate), Retention::Span(60 * MINUTE + 5 * SECOND), "the largest cumulating window");
        assert_eq!(
            ticks(&format!("{TUMBLE} EMIT FINAL;")),
            Retention::Span(MINUTE + 5 * SECOND),
            "final or not, the open window is state"
        );
    }

    #[test]
    fn allowed_lateness_keeps_windows_open_longer() {
        let body = format!("SET 'table.exec.emit.allowed-lateness' = '2 min'; {TUMBLE};");
        assert_eq!(ticks(&body), Retention::Span(3 * MINUTE + 5 * SECOND));
    }

    #[test]
    fn the_table_needs_the_most_any_of_its_readers_needs() {
        let hop = "SELECT node, window_start, MAX(price) FROM TABLE(HOP(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '10' MINUTE))
                   GROUP BY node, window_start, window_end";
        let body = format!("CREATE VIEW stateless AS SELECT node FROM ticks; {TUMBLE}; {hop};");
        assert_eq!(ticks(&body), Retention::Span(10 * MINUTE + 5 * SECOND));
        let with_match = format!(
            "{TUMBLE}; SELECT * FROM ticks MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts MEASURES A.price AS p
               PATTERN (A B) WITHIN INTERVAL '1' MINUTE DEFINE B AS B.price > A.price);"
        );
        assert_eq!(ticks(&with_match), Retention::Everything);
    }

    #[test]
    fn a_window_through_a_view_and_a_filter_keeps_its_span() {
        let body = "CREATE VIEW windowed AS SELECT * FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '2' MINUTE)) WHERE price > 0;
                    SELECT node, window_start, COUNT(*) FROM windowed GROUP BY node, window_start, window_end;";
        assert_eq!(ticks(body), Retention::Span(2 * MINUTE + 5 * SECOND));
    }

    #[test]
    fn unbounded_or_history_keeping_state_needs_everything() {
        for body in [
            "SELECT node, COUNT(*) FROM ticks GROUP BY node;",
            "SELECT node, window_start, COUNT(*) FROM TABLE(SESSION(TABLE ticks PARTITION BY node, DESCRIPTOR(ts), INTERVAL '30' SECONDS))
             GROUP BY node, window_start, window_end;",
            "SELECT * FROM ticks MATCH_RECOGNIZE (PARTITION BY node ORDER BY ts MEASURES A.price AS p
               PATTERN (A B) WITHIN INTERVAL '1' MINUTE DEFINE B AS B.price > A.price);",
            "SELECT node, ts, AVG(price) OVER (PARTITION BY node ORDER BY ts RANGE BETWEEN INTERVAL '30' SECOND PRECEDING AND CURRENT ROW) FROM ticks;",
            "SELECT node, ts, AVG(price) OVER (PARTITION BY node ORDER BY ts ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM ticks;",
            "SELECT t.node, m.price FROM ticks AS t JOIN more AS m ON t.node = m.node;",
        ] {
            assert_eq!(ticks(body), Retention::Everything, "{body}");
        }
    }

    #[test]
    fn a_temporal_join_needs_every_version_and_every_probe() {
        let needs = retentions("SELECT t.node, t.price * r.rate FROM ticks AS t JOIN fx FOR SYSTEM_TIME AS OF t.ts AS r ON r.node = t.node;");
        assert_eq!((needs[0], needs[2]), (Retention::Everything, Retention::Everything));
    }

    #[test]
    fn an_upsert_needs_its_retention_and_a_window_over_it_the_larger_span() {
        let needs = retentions("SELECT node, rate FROM fx;");
        assert_eq!(needs[2], Retention::Span(24 * 60 * MINUTE + SECOND), "the default retention, one day");
        let text = |retention: &str| {
            format!(
                "CREATE TABLE prices (node STRING, ts TIMESTAMP(3), price DOUBLE, PRIMARY KEY (node, ts) NOT ENFORCED,
                     WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
                   WITH ('connector' = 'filesystem', 'path' = 'p.csv', 'format' = 'csv', 'upsert.retention' = '{retention}');
                 SELECT node, window_start, AVG(price) FROM TABLE(TUMBLE(TABLE prices, DESCRIPTOR(ts), INTERVAL '1' HOUR))
                 GROUP BY node, window_start, window_end;"
            )
        };
        let span = |retention: &str| retention_of_first(&text(retention));
        assert_eq!(span("10 min"), Retention::Span(60 * MINUTE + 5 * SECOND), "the window is longer");
        assert_eq!(span("3 h"), Retention::Span(180 * MINUTE + 5 * SECOND), "the upsert remembers longer");
        let without_watermark = "CREATE TABLE prices (node STRING, price DOUBLE, PRIMARY KEY (node) NOT ENFORCED)
                                   WITH ('connector' = 'filesystem', 'path' = 'p.csv', 'format' = 'csv');
                                 SELECT node, price FROM prices;";
        assert_eq!(retention_of_first(without_watermark), Retention::Everything, "keys are kept forever");
    }

    fn retention_of_first(text: &str) -> Retention {
        retention(&check_text(text).unwrap_or_else(|error| panic!("{}", error.render("test.sql", text))))[0]
    }

    #[test]
    fn a_window_over_state_or_over_several_tables_needs_everything() {
        let over_then_window = "CREATE VIEW scored AS SELECT node, ts, price - AVG(price) OVER (PARTITION BY node ORDER BY ts
                                    RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW) AS excess FROM ticks;
                                SELECT node, window_start, MAX(excess) FROM TABLE(TUMBLE(TABLE scored, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
                                GROUP BY node, window_start, window_end;";
        assert_eq!(ticks(over_then_window), Retention::Everything);
        let union = "SELECT node, window_start, COUNT(*) FROM TABLE(TUMBLE(TABLE both_tables, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
                     GROUP BY node, window_start, window_end;";
        let body = format!("CREATE VIEW both_tables AS SELECT * FROM ticks UNION ALL SELECT * FROM more; {union}");
        let needs = retentions(&body);
        assert_eq!((needs[0], needs[1]), (Retention::Everything, Retention::Everything));
    }
}
