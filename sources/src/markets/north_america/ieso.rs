//! IESO day-ahead Ontario zonal price report (`ieso-price`):
//! `PUB_DAHourlyOntarioZonalPrice_YYYYMMDD.xml` (schema
//! `DAHourlyOntarioZonalPrice_r1.xsd`).
//!
//! `DocBody` holds `DeliveryDate` and one `HourlyPriceComponents` per hour
//! with `PricingHour`, `ZonalPrice`, `LossPriceCapped`,
//! `CongestionPriceCapped` and `Flag`.
//!
//! * Time: `PricingHour` 1–24 is hour-ending in Eastern Standard Time all year
//!   (UTC−5, the IESO market clock), so hour 1 starts at 05:00 UTC.
//! * Node `ONTARIO` (the single Ontario zone, node type `ZONE`), run DA, CAD.
//! * Price `ZonalPrice`, loss `LossPriceCapped`, congestion
//!   `CongestionPriceCapped`. The energy component is left empty: the
//!   published loss and congestion components are capped, so the zonal price
//!   minus them is not a published energy price.
//! * An hour that cannot be read becomes a dead letter at the line of its
//!   `HourlyPriceComponents` element; a document that is not well-formed XML
//!   stops at the first error, which becomes a dead letter too.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::clock::{EST_ALL_YEAR, Local, hour_ending};
use super::{HOUR_S, Output, Prices, RowError, number};
use crate::markets::{MarketFormat, Parsed};

/// The `ieso-price` format.
pub(super) struct IesoPrice;

/// The fields of one `HourlyPriceComponents` element.
#[derive(Default)]
struct Hour {
    line: u64,
    hour: Option<String>,
    price: Option<String>,
    loss: Option<String>,
    congestion: Option<String>,
}

impl Hour {
    fn record(&self) -> String {
        let field = |value: &Option<String>| value.clone().unwrap_or_default();
        format!(
            "PricingHour={} ZonalPrice={} LossPriceCapped={} CongestionPriceCapped={}",
            field(&self.hour),
            field(&self.price),
            field(&self.loss),
            field(&self.congestion)
        )
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

fn value(element: &str, text: &Option<String>, expected: &'static str) -> RowError {
    RowError::value(element, text.as_deref().unwrap_or_default(), expected)
}

impl MarketFormat for IesoPrice {
    fn name(&self) -> &'static str {
        "ieso-price"
    }

    fn description(&self) -> &'static str {
        "IESO day-ahead hourly Ontario zonal price XML (PUB_DAHourlyOntarioZonalPrice), PricingHour 1-24 hour-ending EST year-round, CAD; zonal price, capped loss and congestion"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = Output::new(table, file, "IESO", "CAD");
        let Ok(text) = std::str::from_utf8(bytes) else {
            out.reject(1, &RowError::Encoding { column: "document".into() }, String::new());
            return out.finish();
        };
        let node = out.intern("ONTARIO");
        let node_type = Some(out.intern("ZONE"));
        let run = out.intern("DA");
        let mut reader = Reader::from_str(text);
        let mut lines = Lines {
            text: bytes,
            offset: 0,
            line: 1,
        };
        // The innermost open element, the delivery date, and the hour being read.
        let mut element = String::new();
        let mut date: Option<String> = None;
        let mut hour: Option<Hour> = None;
        loop {
            let event = match reader.read_event() {
                Ok(event) => event,
                Err(error) => {
                    let line = lines.at(reader.error_position());
                    out.reject(line, &RowError::value("document", &error.to_string(), "well-formed XML"), String::new());
                    break;
                }
            };
            match event {
                Event::Start(start) => {
                    start.local_name().as_ref().clone_into(&mut element);
                    if element == "HourlyPriceComponents" {
                        let line = lines.at(reader.buffer_position());
                        hour = Some(Hour { line, ..Hour::default() });
                    }
                }
                Event::Text(content) => {
                    let content = content.xml10_content().trim().to_owned();
                    match (element.as_str(), hour.as_mut()) {
                        ("DeliveryDate", _) => date = Some(content),
                        ("PricingHour", Some(hour)) => hour.hour = Some(content),
                        ("ZonalPrice", Some(hour)) => hour.price = Some(content),
                        ("LossPriceCapped", Some(hour)) => hour.loss = Some(content),
                        ("CongestionPriceCapped", Some(hour)) => hour.congestion = Some(content),
                        _ => {}
                    }
                }
                Event::End(end) => {
                    element.clear();
                    if end.local_name().as_ref() == "HourlyPriceComponents"
                        && let Some(hour) = hour.take()
                    {
                        match read_hour(&hour, date.as_deref()) {
                            Ok((ts, prices)) => out.push(node.clone(), node_type.clone(), ts, HOUR_S, run.clone(), prices, 0),
                            Err(error) => out.reject(hour.line, &error, hour.record()),
                        }
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        out.finish()
    }
}

/// The interval start and prices of one hour.
fn read_hour(hour: &Hour, date: Option<&str>) -> Result<(i64, Prices), RowError> {
    let day = date
        .and_then(|date| chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok())
        .ok_or_else(|| RowError::value("DeliveryDate", date.unwrap_or_default(), "a date YYYY-MM-DD before the hours"))?;
    let pricing_hour = hour
        .hour
        .as_deref()
        .and_then(|text| text.parse::<u32>().ok())
        .filter(|h| (1..=24).contains(h))
        .ok_or_else(|| value("PricingHour", &hour.hour, "an hour 1-24"))?;
    let component = |text: &Option<String>, element: &str| match text.as_deref() {
        None | Some("") => Ok(None),
        Some(number_text) => number(number_text).map(Some).ok_or_else(|| value(element, text, "a number")),
    };
    let price = component(&hour.price, "ZonalPrice")?.ok_or_else(|| value("ZonalPrice", &hour.price, "a number"))?;
    let prices = Prices {
        price: Some(price),
        energy: None,
        congestion: component(&hour.congestion, "CongestionPriceCapped")?,
        loss: component(&hour.loss, "LossPriceCapped")?,
    };
    match hour_ending(EST_ALL_YEAR, day, pricing_hour) {
        Local::One(start) => Ok((start, prices)),
        Local::Two(..) | Local::Gap => Err(value("PricingHour", &hour.hour, "an hour of the fixed EST clock")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::markets::testkit::{assert_price, parse_sample, tick, utc};

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
}
