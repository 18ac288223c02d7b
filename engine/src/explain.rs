//! The dataflow half of `carbonflow explain`: which operators a program
//! becomes, where rows are exchanged between workers, which watermarks each
//! stateful operator waits on, and how much of each input a restart reads
//! again ([`crate::plan::retention`]).

use carbonflow_sources::Retention;

use crate::plan::{AggregateStrategy, Node, OutputTarget, Plan, Program, duration};

/// Describes the dataflow of every output, one operator per line.
pub fn dataflow(program: &Program) -> String {
    let mut out = String::from("dataflow\n");
    let retention = crate::plan::retention::retention(program);
    for (index, table) in program.tables.iter().enumerate() {
        if table.role != crate::plan::TableRole::Source {
            continue;
        }
        out.push_str(&format!("  input {} (table #{index}): one source instance per worker", table.name()));
        if table.primary_key.is_some() {
            out.push_str(" -> Upsert [exchange by primary key]");
        }
        match retention[index] {
            Retention::Nothing => {}
            Retention::Span(span) => out.push_str(&format!(" [a restart reads the last {} again]", duration(span))),
            Retention::Everything => out.push_str(" [a restart reads all of it again]"),
        }
        out.push('\n');
    }
    for output in &program.outputs {
        let name = match output.target {
            OutputTarget::Table(table) => program.tables[table].name().to_owned(),
            OutputTarget::Print => "select (stdout)".to_owned(),
            OutputTarget::View(view) => format!("view {} (WebSocket)", program.views[view].name),
        };
        out.push_str(&format!("  Sink[{name}] [gathered on worker 0, consolidated per epoch]\n"));
        describe(program, &output.plan, 2, &mut out);
    }
    out
}

fn describe(program: &Program, plan: &Plan, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    let watermarks = || {
        let tables = plan
            .watermark_tables
            .iter()
            .map(|t| program.tables[*t].name().to_owned())
            .collect::<Vec<_>>()
            .join(", ");
        // Above a SESSION aggregation's window_time, the watermark trails the tables' by its gap.
        match plan.inputs().iter().map(|input| input.watermark_lag(program)).max().unwrap_or(0) {
            0 => tables,
            lag => format!("{tables} less {lag} ms"),
        }
    };
    let how = match &plan.node {
        Node::TableScan { .. } => "collection (shared by every reader)".to_owned(),
        Node::ViewScan { .. } => "the view's collection, built once for every reader (its plan is above)".to_owned(),
        Node::Filter { .. } | Node::Project { .. } => "flat_map [pipelined, no exchange]".to_owned(),
        Node::WindowAssign { .. } => "flat_map: one copy per window [pipelined]".to_owned(),
        Node::Aggregate { window, .. } => {
            let exchange = match plan.aggregate_strategy(program) {
                Some(AggregateStrategy::Combined) => {
                    "append-only input: each worker pre-aggregates an epoch's rows per group, partial states exchanged by group key and merged"
                }
                _ => "exchange by group key; retractable state",
            };
            match window {
                Some(_) => format!("timed operator [{exchange}; closes windows on the watermark of: {}]", watermarks()),
                None => format!("timed operator [{exchange}; state per group]"),
            }
        }
        Node::SessionAggregate { .. } => format!("timed operator [exchange by partition key; watermark of: {}]", watermarks()),
        Node::Join { .. } => "join_map [both sides arranged by key]".to_owned(),
        Node::Union { .. } => "concat [pipelined, no exchange]".to_owned(),
        Node::TemporalJoin { right, .. } => format!(
            "timed operator [exchange by join key; every version kept; probe rows held until the watermark of: {}]",
            right
                .watermark_tables
                .iter()
                .map(|t| program.tables[*t].name().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Node::Over { .. } => format!(
            "timed operator [exchange by partition; each row emitted once the watermark of {} passes it, revisions recompute what they reach]",
            watermarks()
        ),
        Node::MatchRecognize { .. } => format!(
            "timed operator [exchange by partition; rows released in event-time order on the watermark of: {}]",
            watermarks()
        ),
        Node::Forecast { .. } => format!(
            "timed operator [exchange by partition; one model batch per epoch over the keys the watermark of {} moved]",
            watermarks()
        ),
    };
    let name = match &plan.node {
        Node::TableScan { table } => format!("TableScan[{}]", program.tables[*table].name()),
        Node::ViewScan { view } => format!("ViewScan[{}]", program.views[*view].name),
        _ => plan.operator_name().to_owned(),
    };
    // The dataflow builder fuses a window TVF into the aggregation right above it.
    if let Node::Aggregate { input, .. } = &plan.node
        && let Node::WindowAssign { input: windowed, .. } = &input.node
    {
        out.push_str(&format!(
            "{indent}{name} + {}: {how}; windows assigned in the same pass\n",
            input.operator_name()
        ));
        describe(program, windowed, depth + 1, out);
        return;
    }
    out.push_str(&format!("{indent}{name}: {how}\n"));
    for input in plan.inputs() {
        describe(program, input, depth + 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_input_says_how_much_a_restart_reads_again() {
        let text = "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
                      WITH ('connector' = 'filesystem', 'path' = 'ticks.csv', 'format' = 'csv');
                    CREATE TABLE plain (node STRING) WITH ('connector' = 'filesystem', 'path' = 'plain.csv', 'format' = 'csv');
                    SELECT node FROM plain;
                    SELECT node, window_start, AVG(price) FROM TABLE(TUMBLE(TABLE ticks, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
                    GROUP BY node, window_start, window_end;";
        let program = crate::cli::check_text(text).unwrap_or_else(|error| panic!("{}", error.render("test.sql", text)));
        let described = dataflow(&program);
        assert!(
            described.contains("input ticks (table #0): one source instance per worker [a restart reads the last 65 s again]\n"),
            "{described}"
        );
        assert!(described.contains("input plain (table #1): one source instance per worker\n"), "{described}");
    }

    #[test]
    fn an_aggregation_over_an_append_only_input_is_combined_before_the_exchange() {
        let query = |primary_key: &str, call: &str| {
            format!(
                "CREATE TABLE ticks (node STRING, ts TIMESTAMP(3), price DOUBLE, {primary_key} WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
                   WITH ('connector' = 'filesystem', 'path' = 'ticks.csv', 'format' = 'csv');
                 CREATE VIEW cheap AS SELECT node, ts, price FROM ticks WHERE price < 100;
                 SELECT node, window_start, {call} FROM TABLE(TUMBLE(TABLE cheap, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
                 GROUP BY node, window_start, window_end;"
            )
        };
        let describe = |text: String| {
            let program = crate::cli::check_text(&text).unwrap_or_else(|error| panic!("{}", error.render("test.sql", &text)));
            dataflow(&program)
        };
        let combined = "each worker pre-aggregates an epoch's rows per group";
        let described = describe(query("", "COUNT(*), MIN(price), MAX(price), AVG(price), LAST_VALUE(price)"));
        assert!(
            described.contains(&format!("WindowAggregate + Tumble: timed operator [append-only input: {combined}")),
            "{described}"
        );
        // A primary key makes later rows revisions: retractions reach the aggregation.
        let described = describe(query("PRIMARY KEY (node, ts) NOT ENFORCED,", "MIN(price)"));
        assert!(
            described.contains("[exchange by group key; retractable state;") && !described.contains(combined),
            "{described}"
        );
        // DISTINCT sums need every distinct value: no partial state stands for them.
        let described = describe(query("", "SUM(DISTINCT price)"));
        assert!(!described.contains(combined), "{described}");
    }
}
