//! North American ISO formats: NYISO, SPP, PJM, MISO, CAISO, ERCOT, IESO, AESO.

use super::MarketFormat;

/// The North American formats.
pub static FORMATS: &[&dyn MarketFormat] = &[];
