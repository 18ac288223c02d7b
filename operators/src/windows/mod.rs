//! Event-time windows, as Flink SQL's window table-valued functions define them.
//!
//! * [`assign`]: TUMBLE, HOP and CUMULATE. A row's windows depend on its event
//!   time alone, so assignment is a pure function ([`WindowSpec::assign`]) and
//!   the aggregate per `(key, window)` is an ordinary
//!   [`GroupAccumulator`](crate::aggregate::GroupAccumulator).
//! * [`session`]: SESSION. A row's window depends on its neighbours, so
//!   [`SessionWindows`] keeps the rows of each partition, merges and splits
//!   sessions as rows arrive and are retracted, and reports the net change of
//!   its output.
//!
//! Every window is `[start, end)`: start inclusive, end exclusive, in UTC
//! milliseconds. Flink's `window_time` is `end - 1`.

pub mod assign;
pub mod session;

pub use assign::WindowSpec;
pub use session::{SessionChange, SessionWindows};
