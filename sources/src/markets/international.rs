//! European, Australian, Japanese, gas and FX formats: ENTSO-E, Nord Pool,
//! AEMO, JEPX, EIA, ECB.

use super::MarketFormat;

/// The international, gas and FX formats.
pub static FORMATS: &[&dyn MarketFormat] = &[];
