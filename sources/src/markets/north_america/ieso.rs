//! IESO Ontario price reports (`ieso-price`), in three layouts; the first
//! bytes tell XML from CSV, the XML record elements which report it is.
//!
//! * **Day-ahead hourly Ontario zonal price** XML,
//!   `PUB_DAHourlyOntarioZonalPrice_YYYYMMDD.xml` (schema
//!   `DAHourlyOntarioZonalPrice_r1.xsd`): `DocBody` holds `DeliveryDate` and
//!   one `HourlyPriceComponents` per hour with `PricingHour`, `ZonalPrice`,
//!   `LossPriceCapped`, `CongestionPriceCapped` and `Flag`. Run DA, 1 h.
//! * **Real-time 5-minute Ontario zonal price** XML,
//!   `PUB_RealtimeOntarioZonalPrice_YYYYMMDDHH.xml` (schema
//!   `RealtimeOntarioZonalPrice_r2.xsd`, the renewed market from 2025-05-01):
//!   `DocBody` holds `DeliveryDate`, `DeliveryHour` and up to twelve
//!   `ZonalPrice` intervals with `Interval` 1–12, `Flag`, `LmpCap`,
//!   `LossPriceCap` and `CongPriceCap`, then the hour's `AveragePrice` (an
//!   aggregate, not kept). Interval *n* of delivery hour *h* starts at
//!   `(h−1):00 + (n−1)·5 min`. Run RT, 5 min. The schema lets the prices of an
//!   interval not yet dispatched be empty: such an interval is a dead letter
//!   naming the placeholder.
//! * **Yearly HOEP report** CSV, `PUB_PriceHOEPPredispOR_YYYY.csv` (the legacy
//!   market's Hourly Ontario Energy Price, retired 2025-04-30): three preamble
//!   lines starting `\\`, then `Date, Hour, HOEP, Hour 1 Predispatch, Hour 2
//!   Predispatch, Hour 3 Predispatch, OR 10 Min Sync, OR 10 Min non-sync, OR
//!   30 Min`, `Date` written `YYYY-MM-DD`. Price `HOEP`, run RT (the HOEP
//!   averages the hour's real-time market clearing prices), 1 h. The
//!   predispatch forecasts and operating-reserve prices are not energy prices
//!   of the hour and are not kept.
//!
//! Conventions shared by the three:
//! * Time: `PricingHour`, `DeliveryHour` and `Hour` 1–24 are hour-ending in
//!   Eastern Standard Time all year (UTC−5, the IESO market clock, which has
//!   no DST), so hour 1 starts at 05:00 UTC in January and in July alike.
//! * Node `ONTARIO` (the single Ontario zone, node type `ZONE`), CAD.
//! * XML: price `ZonalPrice` / `LmpCap`, loss `LossPriceCapped` /
//!   `LossPriceCap`, congestion `CongestionPriceCapped` / `CongPriceCap`. The
//!   energy component is left empty: the published loss and congestion
//!   components are capped, so the price minus them is not a published
//!   energy price.
//! * A record that cannot be read becomes a dead letter at the line of its
//!   element (XML) or row (CSV); a document that is not well-formed XML stops
//!   at the first error, which becomes a dead letter too.

use std::ops::RangeInclusive;

use carbonflow_core::Str;
use chrono::NaiveDate;
use quick_xml::Reader;
use quick_xml::events::Event;

use super::clock::{EST_ALL_YEAR, Local, hour_ending};
use super::{CsvTable, HOUR_S, MILLIS, Output, Prices, RowError, number};
use crate::markets::{MarketFormat, Parsed};

/// The `ieso-price` format.
pub(super) struct IesoPrice;

/// The header the yearly HOEP report must have.
const HOEP_EXPECTED: &str = "'Date', 'Hour', 'HOEP'";

/// A real-time interval.
const FIVE_MINUTES_S: i64 = 300;

/// The price element of an XML report, whose children are one record.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RecordKind {
    /// `HourlyPriceComponents` of the day-ahead report.
    DayAheadHour,
    /// `ZonalPrice` of the real-time report.
    RealTimeInterval,
}

impl RecordKind {
    /// The kind of record an element opens, outside a record.
    fn of(element: &str) -> Option<Self> {
        match element {
            "HourlyPriceComponents" => Some(RecordKind::DayAheadHour),
            "ZonalPrice" => Some(RecordKind::RealTimeInterval),
            _ => None,
        }
    }

    fn element(self) -> &'static str {
        match self {
            RecordKind::DayAheadHour => "HourlyPriceComponents",
            RecordKind::RealTimeInterval => "ZonalPrice",
        }
    }
}

/// One record of an XML report: the text of its child elements, in order.
struct Record {
    kind: RecordKind,
    line: u64,
    fields: Vec<(String, String)>,
}

impl Record {
    /// The text of the child `name`; `None` when absent or empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, text)| text.as_str())
            .filter(|text| !text.is_empty())
    }

    /// The record as text, for its dead letter.
    fn text(&self) -> String {
        self.fields.iter().map(|(name, text)| format!("{name}={text}")).collect::<Vec<_>>().join(" ")
    }

    /// A number that must be there.
    fn number(&self, name: &str) -> Result<f64, RowError> {
        let text = self.get(name).ok_or_else(|| RowError::Empty { column: name.to_owned() })?;
        number(text).ok_or_else(|| RowError::value(name, text, "a number"))
    }

    /// A number that may be absent or empty.
    fn optional_number(&self, name: &str) -> Result<Option<f64>, RowError> {
        self.get(name)
            .map(|text| number(text).ok_or_else(|| RowError::value(name, text, "a number")))
            .transpose()
    }

    /// A whole number in `range`.
    fn index(&self, name: &str, range: RangeInclusive<u32>, expected: &'static str) -> Result<u32, RowError> {
        whole_number(name, self.get(name).unwrap_or_default(), range, expected)
    }
}

/// The whole number `text` of `column`, which must lie in `range`.
fn whole_number(column: &str, text: &str, range: RangeInclusive<u32>, expected: &'static str) -> Result<u32, RowError> {
    text.parse::<u32>()
        .ok()
        .filter(|value| range.contains(value))
        .ok_or_else(|| RowError::value(column, text, expected))
}

/// What the document says outside its records.
#[derive(Default)]
struct DocumentFields {
    date: Option<String>,
    hour: Option<String>,
}

impl DocumentFields {
    fn day(&self) -> Result<NaiveDate, RowError> {
        let date = self.date.as_deref().unwrap_or_default();
        NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| RowError::value("DeliveryDate", date, "a date YYYY-MM-DD before the prices"))
    }
}

/// Line numbers of byte offsets, counted forwards as the reader advances.
struct Lines<'b> {
    text: &'b [u8],
    offset: usize,
    line: u64,
}

impl Lines<'_> {
    fn at(&mut self, offset: u64) -> u64 {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX).min(self.text.len());
        if offset > self.offset {
            self.line += self.text[self.offset..offset].iter().filter(|&&b| b == b'\n').count() as u64;
            self.offset = offset;
        }
        self.line
    }
}

/// The UTC start of hour-ending `hour` of `day` on the IESO clock.
fn hour_start(day: NaiveDate, hour: u32, element: &str) -> Result<i64, RowError> {
    match hour_ending(EST_ALL_YEAR, day, hour) {
        Local::One(start) => Ok(start),
        Local::Two(..) | Local::Gap => Err(RowError::value(element, &hour.to_string(), "an hour of the fixed EST clock")),
    }
}

/// The node every tick of these reports has: the single Ontario zone.
struct Ontario {
    node: Str,
    node_type: Option<Str>,
}

impl Ontario {
    fn new(out: &mut Output<'_>) -> Self {
        Ontario {
            node: out.intern("ONTARIO"),
            node_type: Some(out.intern("ZONE")),
        }
    }

    fn push(&self, out: &mut Output<'_>, ts: i64, interval_s: i64, run: &Str, prices: Prices) {
        out.push(self.node.clone(), self.node_type.clone(), ts, interval_s, run.clone(), prices, 0);
    }
}

impl MarketFormat for IesoPrice {
    fn name(&self) -> &'static str {
        "ieso-price"
    }

    fn description(&self) -> &'static str {
        "IESO Ontario prices: day-ahead hourly zonal price XML (PUB_DAHourlyOntarioZonalPrice, run DA), real-time 5-min zonal price XML (PUB_RealtimeOntarioZonalPrice, run RT), \
         yearly HOEP CSV (PUB_PriceHOEPPredispOR, run RT); hour-ending EST year-round, CAD; node ONTARIO"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = Output::new(table, file, "IESO", "CAD");
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes).trim_ascii_start();
        if body.first() == Some(&b'<') {
            read_xml(&mut out, bytes);
        } else {
            read_hoep_csv(&mut out, bytes);
        }
        out.finish()
    }
}

/// The two XML reports: every record's ticks or dead letter.
fn read_xml(out: &mut Output<'_>, bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        out.reject(1, &RowError::Encoding { column: "document".into() }, String::new());
        return;
    };
    let ontario = Ontario::new(out);
    let day_ahead = out.intern("DA");
    let real_time = out.intern("RT");
    let mut reader = Reader::from_str(text);
    let mut lines = Lines {
        text: bytes,
        offset: 0,
        line: 1,
    };
    // The innermost open element, the document's own fields, and the record being read.
    let mut element = String::new();
    let mut document = DocumentFields::default();
    let mut record: Option<Record> = None;
    loop {
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(error) => {
                let line = lines.at(reader.error_position());
                out.reject(line, &RowError::value("document", &error.to_string(), "well-formed XML"), String::new());
                return;
            }
        };
        match event {
            Event::Start(start) => {
                start.local_name().as_ref().clone_into(&mut element);
                if record.is_none()
                    && let Some(kind) = RecordKind::of(&element)
                {
                    let line = lines.at(reader.buffer_position());
                    record = Some(Record {
                        kind,
                        line,
                        fields: Vec::new(),
                    });
                }
            }
            Event::Text(content) => {
                let content = content.xml10_content().trim().to_owned();
                match (record.as_mut(), element.as_str()) {
                    (Some(record), _) if !content.is_empty() && element != record.kind.element() => record.fields.push((element.clone(), content)),
                    (None, "DeliveryDate") => document.date = Some(content),
                    (None, "DeliveryHour") => document.hour = Some(content),
                    _ => {}
                }
            }
            Event::End(end) => {
                element.clear();
                if record.as_ref().is_some_and(|record| end.local_name().as_ref() == record.kind.element())
                    && let Some(record) = record.take()
                {
                    let outcome = match record.kind {
                        RecordKind::DayAheadHour => read_day_ahead_hour(&record, &document).map(|(ts, prices)| (ts, HOUR_S, &day_ahead, prices)),
                        RecordKind::RealTimeInterval => {
                            read_real_time_interval(&record, &document).map(|(ts, prices)| (ts, FIVE_MINUTES_S, &real_time, prices))
                        }
                    };
                    match outcome {
                        Ok((ts, interval_s, run, prices)) => ontario.push(out, ts, interval_s, run, prices),
                        Err(error) => out.reject(record.line, &error, record.text()),
                    }
                }
            }
            Event::Eof => return,
            _ => {}
        }
    }
}

/// The interval start and prices of a day-ahead `HourlyPriceComponents`.
fn read_day_ahead_hour(record: &Record, document: &DocumentFields) -> Result<(i64, Prices), RowError> {
    let day = document.day()?;
    let hour = record.index("PricingHour", 1..=24, "an hour 1-24")?;
    let prices = Prices {
        price: Some(record.number("ZonalPrice")?),
        energy: None,
        congestion: record.optional_number("CongestionPriceCapped")?,
        loss: record.optional_number("LossPriceCapped")?,
    };
    Ok((hour_start(day, hour, "PricingHour")?, prices))
}

/// The interval start and prices of a real-time `ZonalPrice` interval.
fn read_real_time_interval(record: &Record, document: &DocumentFields) -> Result<(i64, Prices), RowError> {
    let day = document.day()?;
    let hour = whole_number(
        "DeliveryHour",
        document.hour.as_deref().unwrap_or_default(),
        1..=24,
        "an hour 1-24 before the intervals",
    )?;
    let interval = record.index("Interval", 1..=12, "an interval 1-12")?;
    if record.get("LmpCap").is_none() {
        return Err(RowError::Placeholder {
            column: "LmpCap".into(),
            text: String::new(),
            meaning: "the interval had no price when the report was produced",
        });
    }
    let prices = Prices {
        price: Some(record.number("LmpCap")?),
        energy: None,
        congestion: record.optional_number("CongPriceCap")?,
        loss: record.optional_number("LossPriceCap")?,
    };
    let start = hour_start(day, hour, "DeliveryHour")? + i64::from(interval - 1) * FIVE_MINUTES_S * MILLIS;
    Ok((start, prices))
}

/// The yearly HOEP report: one tick per row.
fn read_hoep_csv(out: &mut Output<'_>, bytes: &[u8]) {
    let is_header = |names: &[String]| names.first().is_some_and(|n| n.eq_ignore_ascii_case("Date")) && names.iter().any(|n| n.eq_ignore_ascii_case("HOEP"));
    let Some(csv) = CsvTable::open(bytes, out, HOEP_EXPECTED, is_header, |_, _| {}) else {
        return;
    };
    let columns = (|| Ok::<_, RowError>((csv.header.require(&["Date"])?, csv.header.require(&["Hour"])?, csv.header.require(&["HOEP"])?)))();
    let (date_column, hour_column, price_column) = match columns {
        Ok(columns) => columns,
        Err(error) => {
            csv.reject_header(out, &error);
            return;
        }
    };
    let ontario = Ontario::new(out);
    let run = out.intern("RT");
    csv.for_each_row(out, |out, row| {
        let price = row.number(price_column)?;
        let date = row.required(date_column)?;
        let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| RowError::value(row.column(date_column), date, "a date YYYY-MM-DD"))?;
        let hour = whole_number(row.column(hour_column), row.required(hour_column)?, 1..=24, "an hour 1-24")?;
        let prices = Prices {
            price: Some(price),
            ..Prices::default()
        };
        ontario.push(out, hour_start(day, hour, "Hour")?, HOUR_S, &run, prices);
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, close, parse_sample, tick, utc};

    /// Written from the IESO report layouts (see `tests/fixtures/markets/north_america/README.md`).
    const HOEP_2024: &[u8] = include_bytes!("../../../tests/fixtures/markets/north_america/PUB_PriceHOEPPredispOR_2024.csv");
    const REAL_TIME_HOUR: &[u8] = include_bytes!("../../../tests/fixtures/markets/north_america/PUB_RealtimeOntarioZonalPrice_2025110202.xml");

    fn positions(parsed: &Parsed) -> Vec<&str> {
        parsed.dead_letters.iter().map(|l| l.position.as_str()).collect()
    }

    fn starts(parsed: &Parsed) -> Vec<i64> {
        parsed.ticks.iter().map(|t| t.ts).collect()
    }

    /// A real-time report of one delivery hour with the given (interval, LmpCap) intervals.
    fn real_time(date: &str, hour: u32, intervals: &[(u32, &str)]) -> String {
        let intervals: String = intervals
            .iter()
            .map(|(interval, price)| format!("<ZonalPrice><Interval>{interval}</Interval><Flag>DSO-RD</Flag><LmpCap>{price}</LmpCap><LossPriceCap>0.5</LossPriceCap><CongPriceCap>0</CongPriceCap></ZonalPrice>\n"))
            .collect();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document docID=\"RealtimeOntarioZonalPrice\" xmlns=\"http://www.ieso.ca/schema\">\n<DocBody>\n<DeliveryDate>{date}</DeliveryDate>\n<DeliveryHour>{hour}</DeliveryHour>\n{intervals}</DocBody>\n</Document>\n"
        )
    }

    fn document(hours: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"http://www.ieso.ca/schema\">\n<DocBody>\n<DeliveryDate>2026-05-28</DeliveryDate>\n{hours}</DocBody>\n</Document>\n"
        )
    }

    fn hour(h: &str, price: &str) -> String {
        format!(
            "<HourlyPriceComponents>\n<PricingHour>{h}</PricingHour>\n<ZonalPrice>{price}</ZonalPrice>\n<LossPriceCapped>0.1</LossPriceCapped>\n<CongestionPriceCapped>-0.2</CongestionPriceCapped>\n<Flag>DSO-RD</Flag>\n</HourlyPriceComponents>\n"
        )
    }

    #[test]
    fn sample_day_ahead_zonal() {
        let Some(parsed) = parse_sample(&IesoPrice, "ieso/PUB_DAHourlyOntarioZonalPrice_20260528.xml") else {
            return;
        };
        assert_eq!(parsed.ticks.len(), 24);
        assert_eq!(parsed.dead_letters.len(), 0);
        // Lines 15-21: PricingHour 1, ZonalPrice 17.76, LossPriceCapped 0.02, CongestionPriceCapped -0.26.
        let first = tick(&parsed.ticks, "ONTARIO", "2026-05-28 05:00:00");
        assert_eq!(
            (first.price, first.loss, first.congestion, first.energy),
            (Some(17.76), Some(0.02), Some(-0.26), None)
        );
        assert_eq!(
            (&*first.market, &*first.currency, &*first.unit, &*first.run, first.node_type.as_deref()),
            ("IESO", "CAD", "MWh", "DA", Some("ZONE"))
        );
        // PricingHour 8: ZonalPrice 45.
        assert_price(&parsed.ticks, "ONTARIO", "2026-05-28 12:00:00", 45.0);
        // PricingHour 24: ZonalPrice 26.01, ends 24:00 EST = 05:00 UTC the next day.
        assert_price(&parsed.ticks, "ONTARIO", "2026-05-29 04:00:00", 26.01);
    }

    #[test]
    fn hours_are_est_all_year() {
        // 2026-01-15 and 2026-07-15 both start hour 1 at 05:00 UTC.
        for date in ["2026-01-15", "2026-07-15"] {
            let parsed = IesoPrice.parse("t", "x.xml", document(&hour("1", "10")).replace("2026-05-28", date).as_bytes());
            assert_eq!(parsed.ticks[0].ts, utc(&format!("{date} 05:00:00")));
        }
    }

    #[test]
    fn bad_hours_are_dead_letters_at_their_element() {
        let text = document(&format!("{}{}{}", hour("1", "10"), hour("25", "11"), hour("3", "n/a")));
        let parsed = IesoPrice.parse("t", "x.xml", text.as_bytes());
        assert_eq!(parsed.ticks.len(), 1);
        let positions: Vec<&str> = parsed.dead_letters.iter().map(|l| l.position.as_str()).collect();
        // The document starts the hours on line 5, seven lines each.
        assert_eq!(positions, vec!["x.xml:12", "x.xml:19"]);
        assert!(parsed.dead_letters[1].detail.contains("ZonalPrice"));
        let broken = IesoPrice.parse("t", "x.xml", b"<Document><DocBody></Document>");
        assert_eq!(broken.dead_letters.len(), 1);
    }

    #[test]
    fn fixture_yearly_hoep_report_is_est_at_both_dst_changes() {
        let parsed = IesoPrice.parse("t", "PUB_PriceHOEPPredispOR_2024.csv", HOEP_2024);
        // 12 data rows: hour 25 and an empty HOEP are dead letters.
        assert_eq!(parsed.ticks.len(), 10);
        assert_eq!(
            positions(&parsed),
            vec!["PUB_PriceHOEPPredispOR_2024.csv:15", "PUB_PriceHOEPPredispOR_2024.csv:16"]
        );
        assert!(parsed.dead_letters[1].detail.contains("'HOEP' is empty"), "{}", parsed.dead_letters[1].detail);
        // Line 5: 2024-01-01 hour 1, HOEP 12.56: 00:00-01:00 EST = 05:00 UTC.
        let first = tick(&parsed.ticks, "ONTARIO", "2024-01-01 05:00:00");
        assert_eq!((first.price, first.energy, first.loss, first.congestion), (Some(12.56), None, None, None));
        assert_eq!(
            (&*first.market, first.node_type.as_deref(), first.interval_s, &*first.run, &*first.currency),
            ("IESO", Some("ZONE"), 3600, "RT", "CAD")
        );
        // Spring 2024-03-10: hours 3 and 4 (line 8, 15.31; line 9, 14.87) are 02:00 and 03:00 EST, no skipped hour.
        assert_price(&parsed.ticks, "ONTARIO", "2024-03-10 07:00:00", 15.31);
        assert_price(&parsed.ticks, "ONTARIO", "2024-03-10 08:00:00", 14.87);
        // Summer (line 10): hour 1 still starts 05:00 UTC, not 04:00 as in daylight time.
        assert_price(&parsed.ticks, "ONTARIO", "2024-07-15 05:00:00", 21.48);
        // Autumn 2024-11-03 (lines 11-13): hours 1-3 follow each other, no repeated hour.
        assert_eq!(
            starts(&parsed)[6..9],
            ["05:00", "06:00", "07:00"].map(|time| utc(&format!("2024-11-03 {time}:00")))
        );
        assert_price(&parsed.ticks, "ONTARIO", "2024-11-03 06:00:00", 8.95);
        // Line 14: hour 24 of 2024-12-31 ends 2025-01-01 05:00 UTC.
        assert_price(&parsed.ticks, "ONTARIO", "2025-01-01 04:00:00", 31.05);
    }

    #[test]
    fn fixture_real_time_hour_with_placeholders_on_the_autumn_dst_day() {
        let parsed = IesoPrice.parse("t", "rt.xml", REAL_TIME_HOUR);
        // Twelve intervals: 7 has a malformed loss, 11 and 12 had no price yet; the AveragePrice is no interval.
        assert_eq!(parsed.ticks.len(), 9);
        assert_eq!(positions(&parsed), vec!["rt.xml:57", "rt.xml:85", "rt.xml:92"]);
        assert!(parsed.dead_letters[0].detail.contains("LossPriceCap"), "{}", parsed.dead_letters[0].detail);
        assert!(parsed.dead_letters[1].detail.contains("placeholder"), "{}", parsed.dead_letters[1].detail);
        assert!(parsed.dead_letters[2].detail.contains("placeholder"), "{}", parsed.dead_letters[2].detail);
        // Lines 15-21: delivery hour 2, interval 1 is 01:00-01:05 EST = 06:00 UTC (01:00 repeats on Toronto clocks, not in EST).
        let first = tick(&parsed.ticks, "ONTARIO", "2025-11-02 06:00:00");
        assert_eq!(
            (first.price, first.loss, first.congestion, first.energy),
            (Some(41.27), Some(0.83), Some(0.0), None)
        );
        assert_eq!((first.interval_s, &*first.run, &*first.currency), (300, "RT", "CAD"));
        // Lines 29-35: interval 3 at 06:10 UTC, congestion -0.15.
        let third = tick(&parsed.ticks, "ONTARIO", "2025-11-02 06:10:00");
        assert!(close(third.congestion, -0.15) && third.price == Some(39.60));
        // Interval 10 (lines 78-84) starts 06:45 UTC; interval 7 (06:30) is missing.
        assert_price(&parsed.ticks, "ONTARIO", "2025-11-02 06:45:00", 35.02);
        let expected = ["06:00", "06:05", "06:10", "06:15", "06:20", "06:25", "06:35", "06:40", "06:45"].map(|time| utc(&format!("2025-11-02 {time}:00")));
        assert_eq!(starts(&parsed), expected);
    }

    #[test]
    fn real_time_hours_are_est_on_the_spring_dst_day() {
        // 2026-03-08: Toronto clocks skip 02:00-03:00; delivery hour 3 is 02:00-03:00 EST = 07:00 UTC.
        let parsed = IesoPrice.parse("t", "rt.xml", real_time("2026-03-08", 3, &[(1, "20"), (12, "21")]).as_bytes());
        assert_eq!(parsed.dead_letters.len(), 0);
        assert_eq!(starts(&parsed), vec![utc("2026-03-08 07:00:00"), utc("2026-03-08 07:55:00")]);
    }

    #[test]
    fn real_time_intervals_need_an_hour_and_an_interval_in_range() {
        let parsed = IesoPrice.parse("t", "rt.xml", real_time("2026-03-08", 25, &[(1, "20")]).as_bytes());
        assert!(parsed.ticks.is_empty());
        assert!(parsed.dead_letters[0].detail.contains("DeliveryHour"), "{}", parsed.dead_letters[0].detail);
        let parsed = IesoPrice.parse("t", "rt.xml", real_time("2026-03-08", 3, &[(13, "20"), (0, "20")]).as_bytes());
        assert!(parsed.ticks.is_empty());
        assert_eq!(positions(&parsed), vec!["rt.xml:6", "rt.xml:7"]);
    }
}
