//! The dataflow half of `carbonflow explain`: which operators a program
//! becomes, where rows are exchanged between workers, and which watermarks
//! each stateful operator waits on.

use crate::plan::{Node, OutputTarget, Plan, Program};

/// Describes the dataflow of every output, one operator per line.
pub fn dataflow(program: &Program) -> String {
    let mut out = String::from("dataflow\n");
    for (index, table) in program.tables.iter().enumerate() {
        if table.role != crate::plan::TableRole::Source {
            continue;
        }
        out.push_str(&format!("  input {} (table #{index}): one source instance per worker", table.name()));
        if table.primary_key.is_some() {
            out.push_str(" -> Upsert [exchange by primary key]");
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
        plan.watermark_tables
            .iter()
            .map(|t| program.tables[*t].name().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let how = match &plan.node {
        Node::TableScan { .. } => "collection (shared by every reader)".to_owned(),
        Node::ViewScan { .. } => "the view's collection, built once for every reader (its plan is above)".to_owned(),
        Node::Filter { .. } | Node::Project { .. } => "flat_map [pipelined, no exchange]".to_owned(),
        Node::WindowAssign { .. } => "flat_map: one copy per window [pipelined]".to_owned(),
        Node::Aggregate { window: Some(_), .. } => format!("timed operator [exchange by group key; closes windows on the watermark of: {}]", watermarks()),
        Node::Aggregate { window: None, .. } => "timed operator [exchange by group key; state per group]".to_owned(),
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
