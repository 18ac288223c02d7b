//! The canonical market tick: what every market connector normalises to.
//!
//! `market, node, node_type, ts (interval start, UTC), interval_s, price,
//! energy, congestion, loss, currency, unit, run (DA/RT/...), revision`
//! (ARCHITECTURE.md). A table over the simulator or a market file format
//! declares any subset of these columns by name; [`TickColumn::resolve`]
//! checks the declaration and [`CanonicalTick::to_row`] fills it.

use carbonflow_core::{DataType, Datum, Field, Millis, OptionError, Row, Schema, Str};

/// A column of the canonical tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickColumn {
    /// `market STRING`: the market code (`PJM`, `AESO`, `ES`, ...).
    Market,
    /// `node STRING`: the pricing node, zone, hub or bidding zone.
    Node,
    /// `node_type STRING`: `HUB`, `ZONE`, `GEN`, `LOAD`, `REGION`, ... when known.
    NodeType,
    /// `ts TIMESTAMP`: the interval start, UTC.
    Ts,
    /// `interval_s BIGINT`: the interval length in seconds.
    IntervalS,
    /// `price DOUBLE`: the total price (LMP, pool price, spot price).
    Price,
    /// `energy DOUBLE`: the energy component, when published.
    Energy,
    /// `congestion DOUBLE`: the congestion component, when published.
    Congestion,
    /// `loss DOUBLE`: the loss component, when published.
    Loss,
    /// `currency STRING`: `USD`, `CAD`, `EUR`, `AUD`, ...
    Currency,
    /// `unit STRING`: what the price is per (`MWh`, `MMBtu`, ...).
    Unit,
    /// `run STRING`: `DA`, `RT`, `ID` (intraday), `SPOT`, ...
    Run,
    /// `revision BIGINT`: 0 for the first publication.
    Revision,
}

impl TickColumn {
    /// Every column, with its name and type.
    pub const ALL: [(TickColumn, &'static str, DataType); 13] = [
        (TickColumn::Market, "market", DataType::String),
        (TickColumn::Node, "node", DataType::String),
        (TickColumn::NodeType, "node_type", DataType::String),
        (TickColumn::Ts, "ts", DataType::Timestamp),
        (TickColumn::IntervalS, "interval_s", DataType::Int),
        (TickColumn::Price, "price", DataType::Float),
        (TickColumn::Energy, "energy", DataType::Float),
        (TickColumn::Congestion, "congestion", DataType::Float),
        (TickColumn::Loss, "loss", DataType::Float),
        (TickColumn::Currency, "currency", DataType::String),
        (TickColumn::Unit, "unit", DataType::String),
        (TickColumn::Run, "run", DataType::String),
        (TickColumn::Revision, "revision", DataType::Int),
    ];

    /// The tick columns a table declares, in its order. `provider` names the
    /// connector or format in errors ("the simulator", "format 'pjm-lmp'").
    pub fn resolve(schema: &Schema, provider: &str) -> Result<Vec<TickColumn>, OptionError> {
        schema.fields.iter().map(|field| TickColumn::resolve_field(field, provider)).collect()
    }

    /// The tick column a declared field names, checked against its type.
    pub fn resolve_field(field: &Field, provider: &str) -> Result<TickColumn, OptionError> {
        let column = |message: String| OptionError::Column {
            column: field.name.clone(),
            message,
        };
        match TickColumn::ALL.iter().find(|(_, name, _)| name.eq_ignore_ascii_case(&field.name)) {
            Some((tick_column, _, data_type)) if *data_type == field.data_type => Ok(*tick_column),
            Some((_, name, data_type)) => Err(column(format!("{provider}'s {name} is {data_type}, not {}", field.data_type))),
            None => {
                let known: Vec<&str> = TickColumn::ALL.iter().map(|(_, name, _)| *name).collect();
                Err(column(format!("{provider} provides only {}", known.join(", "))))
            }
        }
    }
}

/// One normalised price observation.
#[derive(Clone, Debug, PartialEq)]
pub struct CanonicalTick {
    /// The market code.
    pub market: Str,
    /// The pricing node, zone, hub or bidding zone.
    pub node: Str,
    /// The node's kind, when the file says.
    pub node_type: Option<Str>,
    /// The interval start, UTC milliseconds.
    pub ts: Millis,
    /// The interval length in seconds.
    pub interval_s: i64,
    /// The total price; `None` where the file publishes none.
    pub price: Option<f64>,
    /// The energy component.
    pub energy: Option<f64>,
    /// The congestion component.
    pub congestion: Option<f64>,
    /// The loss component.
    pub loss: Option<f64>,
    /// The currency of the price.
    pub currency: Str,
    /// What the price is per.
    pub unit: Str,
    /// The market run.
    pub run: Str,
    /// 0 for the first publication.
    pub revision: i64,
}

impl CanonicalTick {
    /// The datum of one column.
    pub fn datum(&self, column: TickColumn) -> Datum {
        let float = |value: Option<f64>| value.map_or(Datum::Null, Datum::float);
        match column {
            TickColumn::Market => Datum::Str(self.market.clone()),
            TickColumn::Node => Datum::Str(self.node.clone()),
            TickColumn::NodeType => self.node_type.clone().map_or(Datum::Null, Datum::Str),
            TickColumn::Ts => Datum::Timestamp(self.ts),
            TickColumn::IntervalS => Datum::Int(self.interval_s),
            TickColumn::Price => float(self.price),
            TickColumn::Energy => float(self.energy),
            TickColumn::Congestion => float(self.congestion),
            TickColumn::Loss => float(self.loss),
            TickColumn::Currency => Datum::Str(self.currency.clone()),
            TickColumn::Unit => Datum::Str(self.unit.clone()),
            TickColumn::Run => Datum::Str(self.run.clone()),
            TickColumn::Revision => Datum::Int(self.revision),
        }
    }

    /// The row of a table declaring `columns`.
    pub fn to_row(&self, columns: &[TickColumn]) -> Row {
        columns.iter().map(|column| self.datum(*column)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_a_subset_in_table_order_and_rejects_the_rest() {
        let schema = Schema::new(vec![Field::new("PRICE", DataType::Float), Field::new("ts", DataType::Timestamp)]);
        assert_eq!(TickColumn::resolve(&schema, "x").unwrap(), vec![TickColumn::Price, TickColumn::Ts]);
        let wrong_type = Schema::new(vec![Field::new("price", DataType::String)]);
        assert!(
            TickColumn::resolve(&wrong_type, "format 'x'")
                .unwrap_err()
                .to_string()
                .contains("format 'x''s price is DOUBLE")
        );
        let unknown = Schema::new(vec![Field::new("volume", DataType::Float)]);
        assert!(TickColumn::resolve(&unknown, "x").is_err());
    }
}
