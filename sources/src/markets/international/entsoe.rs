//! `entsoe-a44`: ENTSO-E Transparency Platform price documents (document type
//! A44, IEC 62325-451-3 `Publication_MarketDocument` XML).
//!
//! Layout: `TimeSeries` (bidding zone, contract type, currency, unit, curve
//! type) → `Period` (`timeInterval` start/end in UTC, `resolution` PT60M,
//! PT15M, ...) → `Point` (`position`, `price.amount`). Point *n* covers
//! `[start + (n-1)·resolution, start + n·resolution)`, so every instant is UTC
//! already and DST never enters: a 25-hour local day is simply a period of 25
//! (or 100) positions.
//!
//! Conventions:
//! * **Omitted positions.** With `curveType` A03 (variable-sized blocks) a
//!   position is left out when its price equals the previous position's; each
//!   omitted position becomes its own tick carrying the previous price, so
//!   every interval of the period has a tick. With A01 (fixed blocks) every
//!   position must be present and a missing one is a dead letter. A position
//!   with no earlier price to repeat (position 1 absent, or following a
//!   malformed point) is a dead letter too.
//! * **Market and node.** `market` is the bidding zone's short code from the
//!   `in_Domain.mRID` EIC (`10YES-REE------0` → `ES`, see [`zone_code`];
//!   `ENTSOE` for a code not in the table) and `node` keeps the EIC itself,
//!   `node_type` `ZONE`.
//! * **Run.** `contract_MarketAgreement.type` A01 → `DA`, A07 → `ID`, other
//!   codes as published. Intraday documents carry several series for the same
//!   zone and interval (the intraday auctions IDA1, IDA2, IDA3, numbered by
//!   `classificationSequence_AttributeInstanceComponent.position`); they are
//!   different prices, not revisions of one another, so their node is
//!   `<EIC>/IDA<n>` (`10YES-REE------0/IDA2`). A day-ahead series with a
//!   sequence number gets `<EIC>/SEQ<n>`; one without keeps the bare EIC.
//! * **Currency and unit** as published (`EUR`); `MWH` is written `MWh`.
//! * Dead letters are positioned `file:line TimeSeries[i]/Period[j]/Point[position]`.
//!   A document that is not XML stops at the error with one dead letter (the
//!   periods read before it keep their ticks); an `Acknowledgement_MarketDocument`
//!   (the API's "no data" answer) is one dead letter carrying its reason.

use carbonflow_core::Millis;

use super::{FileOutput, MILLIS, Series};
use crate::markets::{MarketFormat, Parsed};

/// The `entsoe-a44` format.
pub struct EntsoeA44;

impl MarketFormat for EntsoeA44 {
    fn name(&self) -> &'static str {
        "entsoe-a44"
    }

    fn description(&self) -> &'static str {
        "ENTSO-E Transparency A44 price XML: UTC periods (PT60M/PT15M), A03 omitted positions repeat the previous price; \
         market = bidding zone (ES, ...), node = EIC (intraday: EIC/IDAn), run DA/ID"
    }

    fn parse(&self, table: &str, file: &str, bytes: &[u8]) -> Parsed {
        let mut out = FileOutput::new(table, file);
        match std::str::from_utf8(bytes) {
            Ok(text) => Document::new(&mut out, text).read(),
            Err(error) => out.dead_letter(out.at_line(1), format!("not UTF-8 XML: {error}"), String::new()),
        }
        out.finish()
    }
}

/// The bidding-zone code of an EIC area code, for the zones whose A44
/// documents the Transparency Platform publishes (names as in the ENTSO-E
/// API guide's area list).
pub fn zone_code(eic: &str) -> Option<&'static str> {
    Some(match eic {
        "10YES-REE------0" => "ES",
        "10YPT-REN------W" => "PT",
        "10YFR-RTE------C" => "FR",
        "10Y1001A1001A82H" => "DE-LU",
        "10Y1001A1001A63L" => "DE-AT-LU",
        "10YNL----------L" => "NL",
        "10YBE----------2" => "BE",
        "10YAT-APG------L" => "AT",
        "10YCH-SWISSGRIDZ" => "CH",
        "10YPL-AREA-----S" => "PL",
        "10YCZ-CEPS-----N" => "CZ",
        "10YSK-SEPS-----K" => "SK",
        "10YHU-MAVIR----U" => "HU",
        "10YSI-ELES-----O" => "SI",
        "10YHR-HEP------M" => "HR",
        "10YRO-TEL------P" => "RO",
        "10YCA-BULGARIA-R" => "BG",
        "10YGR-HTSO-----Y" => "GR",
        "10YCS-SERBIATSOV" => "RS",
        "10YDK-1--------W" => "DK1",
        "10YDK-2--------M" => "DK2",
        "10YFI-1--------U" => "FI",
        "10Y1001A1001A39I" => "EE",
        "10YLV-1001A00074" => "LV",
        "10YLT-1001A0008Q" => "LT",
        "10YNO-1--------2" => "NO1",
        "10YNO-2--------T" => "NO2",
        "10YNO-3--------J" => "NO3",
        "10YNO-4--------9" => "NO4",
        "10Y1001A1001A48H" => "NO5",
        "10Y1001A1001A44P" => "SE1",
        "10Y1001A1001A45N" => "SE2",
        "10Y1001A1001A46L" => "SE3",
        "10Y1001A1001A47J" => "SE4",
        "10Y1001A1001A59C" => "IE-SEM",
        "10Y1001A1001A73I" => "IT-NORTH",
        "10Y1001A1001A70O" => "IT-CNORTH",
        "10Y1001A1001A71M" => "IT-CSOUTH",
        "10Y1001A1001A788" => "IT-SOUTH",
        "10Y1001A1001A74G" => "IT-SARD",
        "10Y1001A1001A75E" => "IT-SICI",
        "10Y1001C--00096J" => "IT-CALA",
        _ => return None,
    })
}

/// The market code of zones missing from [`zone_code`].
const UNKNOWN_ZONE: &str = "ENTSOE";

/// The header fields of one `TimeSeries`, read before its periods.
#[derive(Default)]
struct SeriesHead {
    domain: String,
    contract: String,
    currency: String,
    unit: String,
    curve: String,
    sequence: String,
}

/// One `Period` being read.
#[derive(Default)]
struct Period {
    line: u64,
    start: String,
    end: String,
    resolution: String,
    points: Vec<Point>,
}

/// One `Point` being read.
#[derive(Default)]
struct Point {
    line: u64,
    position: String,
    price: String,
}

/// A streaming reader of one document: element names on a stack, text of the
/// innermost element accumulated until its end tag.
struct Document<'o, 'a, 't> {
    out: &'o mut FileOutput<'a>,
    text: &'t str,
    path: Vec<String>,
    content: String,
    line: u64,
    scanned: usize,
    series_index: usize,
    period_index: usize,
    series: SeriesHead,
    period: Period,
    point: Point,
    acknowledgement: Option<String>,
}

impl<'o, 'a, 't> Document<'o, 'a, 't> {
    fn new(out: &'o mut FileOutput<'a>, text: &'t str) -> Self {
        Document {
            out,
            text,
            path: Vec::new(),
            content: String::new(),
            line: 1,
            scanned: 0,
            series_index: 0,
            period_index: 0,
            series: SeriesHead::default(),
            period: Period::default(),
            point: Point::default(),
            acknowledgement: None,
        }
    }

    /// The line of byte `offset`, counting newlines incrementally (offsets only grow).
    fn line_at(&mut self, offset: u64) -> u64 {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX).min(self.text.len());
        if offset > self.scanned {
            self.line += self.text.as_bytes()[self.scanned..offset].iter().filter(|&&b| b == b'\n').count() as u64;
            self.scanned = offset;
        }
        self.line
    }

    fn read(mut self) {
        use quick_xml::events::Event;

        let mut reader = quick_xml::Reader::from_str(self.text);
        loop {
            let event = reader.read_event();
            let line = self.line_at(reader.buffer_position());
            match event {
                Ok(Event::Start(tag)) => self.start(tag.local_name().as_ref().to_owned(), line),
                Ok(Event::Empty(tag)) => {
                    self.start(tag.local_name().as_ref().to_owned(), line);
                    self.end();
                }
                Ok(Event::End(_)) => self.end(),
                Ok(Event::Text(text)) => self.content.push_str(&text.xml10_content()),
                Ok(Event::CData(data)) => self.content.push_str(&data.xml10_content()),
                Ok(Event::GeneralRef(reference)) => {
                    let resolved = match reference.resolve_char_ref() {
                        Ok(Some(c)) => Some(c),
                        _ => match reference.as_ref() {
                            "amp" => Some('&'),
                            "lt" => Some('<'),
                            "gt" => Some('>'),
                            "quot" => Some('"'),
                            "apos" => Some('\''),
                            _ => None,
                        },
                    };
                    self.content.extend(resolved);
                }
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(error) => {
                    let line = self.line_at(reader.error_position());
                    let position = self.out.at_line(line);
                    self.out
                        .dead_letter(position, format!("malformed XML, the rest of the document is lost: {error}"), String::new());
                    return;
                }
            }
        }
        if let Some(reason) = self.acknowledgement.take() {
            let position = self.out.at_line(1);
            self.out
                .dead_letter(position, format!("acknowledgement document, no prices: {reason}"), String::new());
        }
    }

    fn start(&mut self, name: String, line: u64) {
        self.content.clear();
        match name.as_str() {
            "Acknowledgement_MarketDocument" if self.path.is_empty() => self.acknowledgement = Some(String::new()),
            "TimeSeries" => {
                self.series_index += 1;
                self.period_index = 0;
                self.series = SeriesHead::default();
            }
            "Period" => {
                self.period_index += 1;
                self.period = Period { line, ..Period::default() };
            }
            "Point" => self.point = Point { line, ..Point::default() },
            _ => {}
        }
        self.path.push(name);
    }

    fn end(&mut self) {
        let Some(name) = self.path.pop() else { return };
        let value = std::mem::take(&mut self.content).trim().to_owned();
        let parent = self.path.last().map_or("", String::as_str);
        let grandparent = self.path.len().checked_sub(2).and_then(|i| self.path.get(i)).map_or("", String::as_str);
        match (grandparent, parent, name.as_str()) {
            (_, "TimeSeries", "in_Domain.mRID") => self.series.domain = value,
            (_, "TimeSeries", "contract_MarketAgreement.type") => self.series.contract = value,
            (_, "TimeSeries", "currency_Unit.name") => self.series.currency = value,
            (_, "TimeSeries", "price_Measure_Unit.name") => self.series.unit = value,
            (_, "TimeSeries", "curveType") => self.series.curve = value,
            (_, "TimeSeries", "classificationSequence_AttributeInstanceComponent.position") => self.series.sequence = value,
            ("Period", "timeInterval", "start") => self.period.start = value,
            ("Period", "timeInterval", "end") => self.period.end = value,
            (_, "Period", "resolution") => self.period.resolution = value,
            (_, "Point", "position") => self.point.position = value,
            (_, "Point", "price.amount") => self.point.price = value,
            (_, "Period", "Point") => self.period.points.push(std::mem::take(&mut self.point)),
            (_, "TimeSeries", "Period") => {
                let period = std::mem::take(&mut self.period);
                self.emit(period);
            }
            (_, "Reason", "text") => {
                if let Some(reason) = &mut self.acknowledgement {
                    reason.push_str(&value);
                }
            }
            _ => {}
        }
    }

    /// `file:line TimeSeries[i]/Period[j]`, plus `/Point[position]` when given.
    fn position(&self, line: u64, point: Option<&str>) -> String {
        let mut position = format!("{} TimeSeries[{}]/Period[{}]", self.out.at_line(line), self.series_index, self.period_index);
        if let Some(point) = point {
            position.push_str(&format!("/Point[{point}]"));
        }
        position
    }

    /// Expands a finished period into one tick per interval.
    fn emit(&mut self, period: Period) {
        let head = &self.series;
        let interval = match check_period(&period) {
            Ok(interval) => interval,
            Err(detail) => {
                let position = self.position(period.line, None);
                let record = format!("{}..{} {}", period.start, period.end, period.resolution);
                self.out.dead_letter(position, detail, record);
                return;
            }
        };
        if head.domain.is_empty() {
            let position = self.position(period.line, None);
            self.out.dead_letter(position, "TimeSeries has no in_Domain.mRID", String::new());
            return;
        }
        let run = match head.contract.as_str() {
            "A01" => "DA",
            "A07" => "ID",
            other => other,
        };
        let node = match (head.sequence.as_str(), run) {
            ("", _) => head.domain.clone(),
            (sequence, "ID") => format!("{}/IDA{sequence}", head.domain),
            (sequence, _) => format!("{}/SEQ{sequence}", head.domain),
        };
        let unit = if head.unit.eq_ignore_ascii_case("MWH") { "MWh" } else { head.unit.as_str() };
        let market = zone_code(&head.domain).unwrap_or(UNKNOWN_ZONE);
        let series = Series::new(self.out, market, "ZONE", &head.currency, unit, run);
        let node = self.out.intern(&node);
        let repeats = head.curve == "A03";

        // Per position: `None` if no point gives it, `Some(None)` if its point is malformed.
        let mut prices: Vec<Option<Option<f64>>> = vec![None; interval.count];
        for point in &period.points {
            let price = super::parse_price(&point.price);
            let slot = point.position.parse::<usize>().ok().filter(|p| (1..=interval.count).contains(p));
            let problem = match (slot, price) {
                (None, _) => Some(format!("position '{}' is not in 1..={}", point.position, interval.count)),
                (Some(p), _) if prices[p - 1].is_some() => Some(format!("position {p} appears twice")),
                (Some(_), None) => Some(format!("price.amount '{}' is not a number", point.price)),
                (Some(_), Some(_)) => None,
            };
            if let Some(p) = slot.filter(|p| prices[p - 1].is_none()) {
                prices[p - 1] = Some(price);
            }
            if let Some(detail) = problem {
                let position = self.position(point.line, Some(&point.position));
                self.out
                    .dead_letter(position, detail, format!("position={} price.amount={}", point.position, point.price));
            }
        }

        let mut previous: Option<f64> = None;
        for (index, price) in prices.into_iter().enumerate() {
            let current = match price {
                Some(given) => given,
                None if repeats => previous,
                None => None,
            };
            let position = index + 1;
            match (current, price) {
                (Some(value), _) => {
                    let ts = interval.start + index as Millis * interval.seconds * MILLIS;
                    self.out.push(series.tick(node.clone(), ts, interval.seconds, value));
                }
                // A malformed point was dead-lettered where it stands.
                (None, Some(None)) => {}
                (None, _) => {
                    let detail = if repeats {
                        format!("position {position} is omitted and no earlier price is known to repeat")
                    } else {
                        format!("position {position} is missing from a curveType {} series", head.curve)
                    };
                    let at = self.position(period.line, Some(&position.to_string()));
                    self.out.dead_letter(at, detail, String::new());
                }
            }
            previous = current;
        }
    }
}

/// A year of 15-minute positions is 35,136; a period claiming far more is
/// corrupt, and expanding it would only exhaust memory.
const MAX_POSITIONS: usize = 1_000_000;

/// The intervals of a period: UTC start, length and how many.
#[derive(Debug, PartialEq)]
struct Intervals {
    start: Millis,
    seconds: i64,
    count: usize,
}

fn check_period(period: &Period) -> Result<Intervals, String> {
    let start = parse_utc(&period.start).ok_or_else(|| format!("timeInterval start '{}' is not a UTC instant", period.start))?;
    let end = parse_utc(&period.end).ok_or_else(|| format!("timeInterval end '{}' is not a UTC instant", period.end))?;
    let seconds = resolution_seconds(&period.resolution).ok_or_else(|| format!("resolution '{}' is not PTnM, PTnH or PnD", period.resolution))?;
    let span = end - start;
    if span <= 0 || span % (seconds * MILLIS) != 0 {
        return Err(format!(
            "timeInterval {}..{} is not a whole number of {}",
            period.start, period.end, period.resolution
        ));
    }
    let count = usize::try_from(span / (seconds * MILLIS)).unwrap_or(usize::MAX);
    if count > MAX_POSITIONS {
        return Err(format!(
            "timeInterval {}..{} holds more than {MAX_POSITIONS} positions",
            period.start, period.end
        ));
    }
    Ok(Intervals { start, seconds, count })
}

/// `2025-09-28T22:00Z` (the API's form, no seconds) or any RFC 3339 instant.
fn parse_utc(text: &str) -> Option<Millis> {
    match text.strip_suffix('Z') {
        Some(naive) => ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .find_map(|format| chrono::NaiveDateTime::parse_from_str(naive, format).ok())
            .map(|time| time.and_utc().timestamp_millis()),
        None => chrono::DateTime::parse_from_rfc3339(text).ok().map(|time| time.timestamp_millis()),
    }
}

/// The seconds of an ISO 8601 duration of minutes, hours or days (`PT15M`, `PT1H`, `P1D`).
fn resolution_seconds(text: &str) -> Option<i64> {
    let (number, scale) = if let Some(time) = text.strip_prefix("PT") {
        match time.as_bytes().last()? {
            b'M' => (&time[..time.len() - 1], 60),
            b'H' => (&time[..time.len() - 1], 3_600),
            b'S' => (&time[..time.len() - 1], 1),
            _ => return None,
        }
    } else {
        (text.strip_prefix('P')?.strip_suffix('D')?, super::DAY_S)
    };
    number.parse::<i64>().ok().filter(|n| *n > 0).map(|n| n * scale)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::markets::testkit::{assert_price, distinct, parse_sample, utc};

    fn parse(xml: &str) -> Parsed {
        EntsoeA44.parse("t", "doc.xml", xml.as_bytes())
    }

    /// A test period: `start`, `end`, `resolution` and its `(position, price.amount)` points.
    type TestPeriod<'a> = (&'a str, &'a str, &'a str, &'a [(u32, &'a str)]);

    /// A one-series A44 document with these periods.
    fn document(curve: &str, contract: &str, periods: &[TestPeriod<'_>]) -> String {
        let mut xml = String::from(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Publication_MarketDocument xmlns=\"urn:iec62325.351:tc57wg16:451-3:publicationdocument:7:3\">\n<TimeSeries>\n",
        );
        xml.push_str(&format!(
            "<in_Domain.mRID codingScheme=\"A01\">10YES-REE------0</in_Domain.mRID>\n<contract_MarketAgreement.type>{contract}</contract_MarketAgreement.type>\n\
             <currency_Unit.name>EUR</currency_Unit.name>\n<price_Measure_Unit.name>MWH</price_Measure_Unit.name>\n<curveType>{curve}</curveType>\n"
        ));
        for (start, end, resolution, points) in periods {
            xml.push_str(&format!(
                "<Period>\n<timeInterval><start>{start}</start><end>{end}</end></timeInterval>\n<resolution>{resolution}</resolution>\n"
            ));
            for (position, price) in *points {
                xml.push_str(&format!(
                    "<Point>\n<position>{position}</position>\n<price.amount>{price}</price.amount>\n</Point>\n"
                ));
            }
            xml.push_str("</Period>\n");
        }
        xml.push_str("</TimeSeries>\n</Publication_MarketDocument>\n");
        xml
    }

    #[test]
    fn a03_omitted_positions_repeat_the_previous_price() {
        // Positions 2, 3 and 6 are omitted: 2 and 3 repeat position 1, 6 repeats 5.
        let xml = document(
            "A03",
            "A01",
            &[("2025-10-01T22:00Z", "2025-10-01T23:30Z", "PT15M", &[(1, "10"), (4, "12.5"), (5, "-1")])],
        );
        let parsed = parse(&xml);
        assert!(parsed.dead_letters.is_empty(), "{:?}", parsed.dead_letters);
        let got: Vec<(i64, f64)> = parsed.ticks.iter().map(|t| (t.ts, t.price.unwrap())).collect();
        let quarter = 15 * 60 * 1000;
        let t0 = utc("2025-10-01 22:00:00");
        let want: Vec<(i64, f64)> = [10.0, 10.0, 10.0, 12.5, -1.0, -1.0]
            .iter()
            .enumerate()
            .map(|(i, p)| (t0 + i as i64 * quarter, *p))
            .collect();
        assert_eq!(got, want);
        assert!(
            parsed
                .ticks
                .iter()
                .all(|t| t.interval_s == 900 && &*t.market == "ES" && &*t.run == "DA" && &*t.unit == "MWh")
        );
    }

    #[test]
    fn a01_missing_positions_and_unrepeatable_gaps_are_dead_letters() {
        let fixed = parse(&document(
            "A01",
            "A01",
            &[("2025-10-01T22:00Z", "2025-10-02T01:00Z", "PT60M", &[(1, "5"), (3, "7")])],
        ));
        assert_eq!(fixed.ticks.len(), 2);
        assert_eq!(fixed.dead_letters.len(), 1);
        assert!(fixed.dead_letters[0].detail.contains("position 2 is missing"), "{}", fixed.dead_letters[0]);
        assert!(fixed.dead_letters[0].position.starts_with("doc.xml:"), "{}", fixed.dead_letters[0].position);

        // Position 1 absent: nothing to repeat. Position 3 malformed: position 4 cannot repeat it.
        let gaps = parse(&document(
            "A03",
            "A01",
            &[("2025-10-01T22:00Z", "2025-10-02T03:00Z", "PT60M", &[(2, "5"), (3, "n/a"), (5, "9")])],
        ));
        let prices: Vec<f64> = gaps.ticks.iter().map(|t| t.price.unwrap()).collect();
        assert_eq!(prices, vec![5.0, 9.0]);
        let details: Vec<&str> = gaps.dead_letters.iter().map(|d| d.detail.as_str()).collect();
        assert_eq!(details.len(), 3, "{details:?}");
        assert!(details[0].contains("'n/a' is not a number"));
        assert!(details[1].contains("position 1 is omitted"));
        assert!(details[2].contains("position 4 is omitted"));
        let point_line = xml_line(
            &document(
                "A03",
                "A01",
                &[("2025-10-01T22:00Z", "2025-10-02T03:00Z", "PT60M", &[(2, "5"), (3, "n/a"), (5, "9")])],
            ),
            "n/a",
        );
        assert!(
            gaps.dead_letters[0]
                .position
                .starts_with(&format!("doc.xml:{} TimeSeries[1]/Period[1]/Point[3]", point_line - 2))
        );
    }

    /// The 1-based line holding `needle`.
    fn xml_line(xml: &str, needle: &str) -> usize {
        xml.lines().position(|line| line.contains(needle)).expect("needle") + 1
    }

    #[test]
    fn dst_end_does_not_shift_utc_positions() {
        // The Madrid delivery day 2025-10-26 has 25 hours (CEST → CET at 03:00
        // local): its period runs 2025-10-25T22:00Z..2025-10-26T23:00Z and
        // holds 25 hourly positions, each one hour after the previous in UTC.
        let madrid = chrono_tz::Europe::Madrid;
        let day_start = madrid.with_ymd_and_hms(2025, 10, 26, 0, 0, 0).unwrap().timestamp_millis();
        let day_end = madrid.with_ymd_and_hms(2025, 10, 27, 0, 0, 0).unwrap().timestamp_millis();
        assert_eq!(day_start, utc("2025-10-25 22:00:00"));
        assert_eq!((day_end - day_start) / 3_600_000, 25);
        let points: Vec<(u32, String)> = (1..=25).map(|p| (p, format!("{}", 40 + p))).collect();
        let points: Vec<(u32, &str)> = points.iter().map(|(p, s)| (*p, s.as_str())).collect();
        let parsed = parse(&document("A03", "A01", &[("2025-10-25T22:00Z", "2025-10-26T23:00Z", "PT60M", &points)]));
        assert!(parsed.dead_letters.is_empty());
        assert_eq!(parsed.ticks.len(), 25);
        for (i, tick) in parsed.ticks.iter().enumerate() {
            assert_eq!(tick.ts, day_start + i as i64 * 3_600_000);
            assert_eq!(tick.price, Some(41.0 + i as f64));
        }
        // Positions 3 and 4 are 01:00 and 02:00 UTC, i.e. the two local 02:00s (CEST, then CET).
        assert_eq!(parsed.ticks[3].ts, utc("2025-10-26 01:00:00"));
        assert_eq!(parsed.ticks.last().map(|t| t.ts + t.interval_s * 1000), Some(day_end));
    }

    #[test]
    fn intraday_auctions_are_separate_nodes() {
        let mut xml = document("A03", "A07", &[("2025-10-01T22:00Z", "2025-10-01T22:30Z", "PT15M", &[(1, "1"), (2, "2")])]);
        xml = xml.replace(
            "<curveType>",
            "<classificationSequence_AttributeInstanceComponent.position>2</classificationSequence_AttributeInstanceComponent.position>\n<curveType>",
        );
        let parsed = parse(&xml);
        assert_eq!(distinct(&parsed.ticks, |t| &t.node), vec!["10YES-REE------0/IDA2"]);
        assert_eq!(distinct(&parsed.ticks, |t| &t.run), vec!["ID"]);
    }

    #[test]
    fn broken_documents_are_dead_letters() {
        let bad_period = parse(&document("A03", "A01", &[("2025-10-01T22:00Z", "2025-10-01T22:20Z", "PT15M", &[(1, "1")])]));
        assert!(bad_period.ticks.is_empty());
        assert!(bad_period.dead_letters[0].detail.contains("not a whole number"));
        let endless = parse(&document("A03", "A01", &[("2025-10-01T22:00Z", "2125-10-01T22:00Z", "PT1S", &[(1, "1")])]));
        assert!(endless.ticks.is_empty());
        assert!(endless.dead_letters[0].detail.contains("more than"));

        let truncated = document("A03", "A01", &[("2025-10-01T22:00Z", "2025-10-01T22:15Z", "PT15M", &[(1, "1")])]);
        let truncated = parse(&truncated.replace("</TimeSeries>", "</Series>"));
        assert_eq!(truncated.ticks.len(), 1, "the period finished before the error keeps its tick");
        assert!(truncated.dead_letters[0].detail.contains("malformed XML"));

        let ack =
            parse("<Acknowledgement_MarketDocument><Reason><code>999</code><text>No matching data found</text></Reason></Acknowledgement_MarketDocument>");
        assert!(ack.ticks.is_empty());
        assert!(ack.dead_letters[0].detail.contains("No matching data found"));

        assert_eq!(EntsoeA44.parse("t", "x.xml", &[0xff, 0xfe]).dead_letters.len(), 1);
    }

    #[test]
    fn resolutions() {
        assert_eq!(resolution_seconds("PT15M"), Some(900));
        assert_eq!(resolution_seconds("PT60M"), Some(3_600));
        assert_eq!(resolution_seconds("PT1H"), Some(3_600));
        assert_eq!(resolution_seconds("P1D"), Some(86_400));
        assert_eq!(resolution_seconds("P1M"), None);
        assert_eq!(resolution_seconds("PT0M"), None);
        assert_eq!(parse_utc("2025-09-28T22:00Z"), Some(utc("2025-09-28 22:00:00")));
        assert_eq!(parse_utc("2025-09-29T00:00:00+02:00"), Some(utc("2025-09-28 22:00:00")));
    }

    #[test]
    fn day_ahead_sample() {
        let Some(parsed) = parse_sample(&EntsoeA44, "entsoe/ES_day_ahead_price_A44_20250928_20251002.xml") else {
            return;
        };
        // 4 periods: 24 + 24 hourly positions, then 96 + 96 quarter-hours from
        // 2025-10-01 (SDAC 15-minute MTU); 230 points given, 10 omitted (A03).
        assert_eq!(parsed.ticks.len(), 24 + 24 + 96 + 96);
        assert_eq!(parsed.dead_letters.len(), 0);
        assert_eq!(distinct(&parsed.ticks, |t| &t.node), vec!["10YES-REE------0"]);
        assert_eq!(distinct(&parsed.ticks, |t| &t.market), vec!["ES"]);
        assert_eq!(distinct(&parsed.ticks, |t| &t.run), vec!["DA"]);
        assert_eq!(distinct(&parsed.ticks, |t| &t.currency), vec!["EUR"]);
        // The PT60M → PT15M change: the last hourly interval starts 2025-09-30T21:00Z,
        // the first quarter-hour at 2025-09-30T22:00Z (the 2025-10-01 Madrid day).
        let last_hour = parsed.ticks.iter().filter(|t| t.interval_s == 3_600).map(|t| t.ts).max();
        let first_quarter = parsed.ticks.iter().filter(|t| t.interval_s == 900).map(|t| t.ts).min();
        assert_eq!(last_hour, Some(utc("2025-09-30 21:00:00")));
        assert_eq!(first_quarter, Some(utc("2025-09-30 22:00:00")));
        assert_eq!(parsed.ticks.iter().filter(|t| t.interval_s == 3_600).count(), 48);
        // Spot values read off the file: lines 31-34, TimeSeries 1 position 1 = 51.6
        // at the period start 2025-09-28T22:00Z; position 3 = 45.
        assert_price(&parsed.ticks, "10YES-REE------0", "2025-09-28 22:00:00", 51.6);
        assert_price(&parsed.ticks, "10YES-REE------0", "2025-09-29 00:00:00", 45.0);
        // TimeSeries 3 (PT15M from 2025-09-30T22:00Z), lines 260-262: position 1 = 105.1.
        assert_price(&parsed.ticks, "10YES-REE------0", "2025-09-30 22:00:00", 105.1);
        // A03 in the sample: TimeSeries 3 omits positions 12 and 15. Lines 300-301
        // give position 11 = 100 (00:30Z), so 12 (00:45Z) repeats 100; lines 308-309
        // give position 14 = 97.51 (01:15Z), so 15 (01:30Z) repeats 97.51 before
        // position 16 = 97.91 (lines 312-313).
        assert_price(&parsed.ticks, "10YES-REE------0", "2025-10-01 00:30:00", 100.0);
        assert_price(&parsed.ticks, "10YES-REE------0", "2025-10-01 00:45:00", 100.0);
        assert_price(&parsed.ticks, "10YES-REE------0", "2025-10-01 01:30:00", 97.51);
        assert_price(&parsed.ticks, "10YES-REE------0", "2025-10-01 01:45:00", 97.91);
    }

    #[test]
    fn intraday_sample() {
        let Some(parsed) = parse_sample(&EntsoeA44, "entsoe/ES_intraday_price_A44_20250928_20251002.xml") else {
            return;
        };
        // 11 series, all PT15M, 877 points: IDA1 and IDA2 cover four whole days
        // each (96 positions), IDA3 10:00Z-22:00Z on three days (48 positions).
        assert_eq!(parsed.ticks.len(), 8 * 96 + 3 * 48);
        assert_eq!(parsed.dead_letters.len(), 0);
        assert_eq!(
            distinct(&parsed.ticks, |t| &t.node),
            vec!["10YES-REE------0/IDA1", "10YES-REE------0/IDA2", "10YES-REE------0/IDA3"]
        );
        assert_eq!(distinct(&parsed.ticks, |t| &t.run), vec!["ID"]);
        assert!(parsed.ticks.iter().all(|t| t.interval_s == 900));
        // Lines 33-34: TimeSeries 1 (IDA1) position 1 = 75 at 2025-09-28T22:00Z.
        assert_price(&parsed.ticks, "10YES-REE------0/IDA1", "2025-09-28 22:00:00", 75.0);
        // Lines 2765-2766: TimeSeries 9 (IDA3, from 2025-10-01T10:00Z) position 1 = -9.34.
        assert_price(&parsed.ticks, "10YES-REE------0/IDA3", "2025-10-01 10:00:00", -9.34);
        // Lines 2347-2348: TimeSeries 7 (IDA1) ends at position 94 = 105.01 (21:15Z);
        // the omitted trailing positions 95 and 96 repeat it.
        assert_price(&parsed.ticks, "10YES-REE------0/IDA1", "2025-10-01 21:15:00", 105.01);
        assert_price(&parsed.ticks, "10YES-REE------0/IDA1", "2025-10-01 21:45:00", 105.01);
    }
}
