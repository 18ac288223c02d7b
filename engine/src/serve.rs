//! What a run serves over WebSocket: every `CREATE VIEW` and every table
//! declared with `'connector' = 'websocket'`, each with its columns and, when
//! the plan proves one, its key (see [`crate::plan::Plan::unique_key`]).
//! The server itself lives in `carbonflow_sinks::websocket`.

use carbonflow_sinks::websocket::{self, ViewSchema};

use crate::plan::{OutputTarget, Program, Table};

/// The views and `websocket` tables of a program, as the server publishes them.
pub fn subscribable_views(program: &Program) -> Vec<ViewSchema> {
    let views = program.views.iter().map(|view| ViewSchema {
        name: view.name.clone(),
        schema: view.plan.schema.clone(),
        key: view.plan.unique_key(program),
    });
    let tables = program.outputs.iter().filter_map(|output| {
        let OutputTarget::Table(index) = output.target else {
            return None;
        };
        let table = &program.tables[index];
        is_websocket(table).then(|| ViewSchema {
            name: table.name().to_owned(),
            schema: table.connector.schema.clone(),
            key: table.primary_key.clone().or_else(|| output.plan.unique_key(program)),
        })
    });
    views.chain(tables).collect()
}

/// The name an output is published under, when it goes to the WebSocket server.
pub fn published_name(program: &Program, target: OutputTarget) -> Option<&str> {
    match target {
        OutputTarget::View(view) => Some(&program.views[view].name),
        OutputTarget::Table(index) => {
            let table = &program.tables[index];
            is_websocket(table).then(|| table.name())
        }
        OutputTarget::Print => None,
    }
}

/// Whether a sink table is served to WebSocket subscribers.
fn is_websocket(table: &Table) -> bool {
    table.connector.option("connector") == Some(websocket::CONNECTOR)
}
