//! `ecb-fx`: the ECB's euro foreign exchange reference rates
//! (`eurofxref-hist.csv` and the daily `eurofxref.csv`), as a table of ticks
//! to join for currency conversion.
//!
//! Layout: a wide CSV, `Date,USD,JPY,...,ZAR,` (every line ends with a comma,
//! so the last column is empty and unnamed), one row per TARGET business day,
//! newest first; a currency without a rate that day is the literal `N/A`.
//!
//! Conventions:
//! * One tick per date and currency: `market` `ECB`, `node` the currency code,
//!   `node_type` `CURRENCY`, `price` = units of that currency per 1 EUR,
//!   `currency` = the quoted currency (the price is in it), `unit` `EUR` (the
//!   price is per euro), `run` `REF`.
//! * `ts` = the date at 00:00 UTC and `interval_s` one day: the rate is the
//!   day's reference rate, though the ECB fixes it at about 14:15 CET and
//!   publishes it around 16:00 CET, so a join that needs the rate as known
//!   at an instant must not use it before that. Weekends and TARGET holidays
//!   have no row; a join for those days takes the latest earlier rate.
//! * Every date also gets `EUR` at 1.0, so a conversion from or to euros
//!   needs no special case.
//! * Ticks come in date order, oldest first (the files are newest first), so
//!   that a watermark on `ts` works for the temporal join of a conversion:
//!   `JOIN fx FOR SYSTEM_TIME AS OF t.ts AS r ON r.node = t.currency`.
//! * Dates may be `YYYY-MM-DD` or, as in the daily file, `D Month YYYY`.
//! * `N/A`, a blank or a non-numeric cell is a dead letter at `file:line`
//!   naming the currency; the empty trailing column is not a cell.

use chrono::NaiveDate;

use super::{DAY_S, FileOutput, Series, field, parse_price, record_line, record_text};
use crate::markets::{MarketFormat, Parsed};

/// The `ecb-fx` format.
pub struct EcbFx;

impl MarketFormat for EcbFx {
    fn name(&self) -> &'static str {
        "ecb-fx"
    }

    fn description(&self) -> &'static str {
        "ECB euro reference rates CSV (wide, N/A placeholders): node = currency, price = currency units per 1 EUR, \
         currency = that currency, unit EUR, ts = date 00:00 UTC (fixed ~14:15 CET), one day"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = FileOutput::new(table, file);
        let records = super::csv_records(&mut out, bytes);
        let Some((header, rows)) = records.split_first() else { return out.finish() };
        if !field(header, 0).eq_ignore_ascii_case("Date") {
            out.dead_letter(out.at_line(record_line(header)), "the header does not start with Date", record_text(header));
            return out.finish();
        }
        // Column index and interned code of every named currency column.
        let currencies: Vec<(usize, carbonflow_core::Str, Series)> = (1..header.len())
            .filter(|&i| !field(header, i).is_empty())
            .map(|i| {
                let code = field(header, i).to_owned();
                let series = Series::new(&mut out, "ECB", "CURRENCY", &code, "EUR", "REF");
                (i, out.intern(&code), series)
            })
            .collect();
        let euro = (out.intern("EUR"), Series::new(&mut out, "ECB", "CURRENCY", "EUR", "EUR", "REF"));
        for row in rows {
            let date_text = field(row, 0);
            let Some(date) = parse_date(date_text) else {
                out.dead_letter(out.at_line(record_line(row)), format!("'{date_text}' is not a date"), record_text(row));
                continue;
            };
            let ts = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or_default();
            out.push(euro.1.tick(euro.0.clone(), ts, DAY_S, 1.0));
            for (index, code, series) in &currencies {
                let cell = field(row, *index);
                match parse_price(cell).filter(|rate| *rate > 0.0) {
                    Some(rate) => out.push(series.tick(code.clone(), ts, DAY_S, rate)),
                    None => {
                        let detail = if cell == "N/A" {
                            format!("{code}: N/A, no reference rate on {date_text}")
                        } else {
                            format!("{code}: '{cell}' is not a positive rate")
                        };
                        out.dead_letter(out.at_line(record_line(row)), detail, format!("{date_text},{code},{cell}"));
                    }
                }
            }
        }
        let mut parsed = out.finish();
        parsed.ticks.sort_by_key(|tick| tick.ts);
        parsed
    }
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%d %B %Y"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, market_data, tick};

    fn sample() -> Option<Parsed> {
        let path = market_data()?.join("../fx/eurofxref-hist.csv");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Some(EcbFx.parse("fx", "eurofxref-hist.csv", &bytes))
    }

    #[test]
    fn history_sample() {
        let Some(parsed) = sample() else { return };
        // 7,126 dates x 41 currencies = 292,166 cells: 221,702 rates and 70,464 N/A;
        // plus EUR at 1.0 on each of the 7,126 dates.
        assert_eq!(parsed.ticks.len(), 221_702 + 7_126);
        assert!(parsed.ticks.windows(2).all(|pair| pair[0].ts <= pair[1].ts), "oldest first");
        assert_price(&parsed.ticks, "EUR", "2026-10-30 00:00:00", 1.0);
        assert_eq!(parsed.dead_letters.len(), 70_464);
        assert!(parsed.dead_letters.iter().all(|d| d.detail.contains("N/A")));
        // Line 2: 2026-10-30, USD 1.1172, JPY 175.68, GBP 0.8338; BGN is N/A.
        assert_price(&parsed.ticks, "USD", "2026-10-30 00:00:00", 1.1172);
        assert_price(&parsed.ticks, "JPY", "2026-10-30 00:00:00", 175.68);
        assert_price(&parsed.ticks, "GBP", "2026-10-30 00:00:00", 0.8338);
        let bgn = parsed
            .dead_letters
            .iter()
            .find(|d| d.position == "eurofxref-hist.csv:2")
            .expect("line 2 has N/A cells");
        assert_eq!(bgn.record, "2026-10-30,BGN,N/A");
        // Last line: 1999-01-04, USD 1.1789, CYP 0.58231 (a currency since replaced by the euro).
        assert_price(&parsed.ticks, "USD", "1999-01-04 00:00:00", 1.1789);
        assert_price(&parsed.ticks, "CYP", "1999-01-04 00:00:00", 0.58231);
        let usd = tick(&parsed.ticks, "USD", "1999-01-04 00:00:00");
        assert_eq!((&*usd.currency, &*usd.unit, usd.interval_s, &*usd.market), ("USD", "EUR", 86_400, "ECB"));
    }

    #[test]
    fn placeholders_and_the_daily_file() {
        let text = b"Date,USD,JPY,\n2024-01-02,1.0956,N/A,\n2024-01-01,,abc,\nsoon,1,2,\n";
        let parsed = EcbFx.parse("fx", "h.csv", text);
        assert_eq!(parsed.ticks.len(), 1 + 2, "one rate, and EUR on both dates");
        let letters: Vec<(&str, &str)> = parsed.dead_letters.iter().map(|d| (d.position.as_str(), d.detail.as_str())).collect();
        assert_eq!(
            letters,
            vec![
                ("h.csv:2", "JPY: N/A, no reference rate on 2024-01-02"),
                ("h.csv:3", "USD: '' is not a positive rate"),
                ("h.csv:3", "JPY: 'abc' is not a positive rate"),
                ("h.csv:4", "'soon' is not a date"),
            ]
        );
        // The daily eurofxref.csv spells the date out and pads with spaces.
        let daily = EcbFx.parse("fx", "d.csv", b"Date, USD, JPY, \n30 October 2026, 1.1172, 175.68, \n");
        assert_eq!(daily.ticks.len(), 3, "USD, JPY and EUR");
        assert_eq!(daily.ticks[1].ts, crate::markets::testkit::utc("2026-10-30 00:00:00"));
    }
}
