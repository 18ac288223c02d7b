//! Scalar functions: Flink's names and semantics where Flink has them.
//!
//! Each [`Function`] checks its argument types ([`Function::return_type`]) at
//! plan time and evaluates on already computed arguments ([`Function::eval`]).
//! NULL in gives NULL out unless the function says otherwise (`COALESCE`,
//! `NULLIF`, `IF`, `CONCAT_WS`).
//!
//! Time zones: timestamps are UTC. `CONVERT_TZ(ts, 'UTC', 'America/New_York')`
//! gives the wall-clock time in a market's zone (DST included, through
//! chrono-tz), which `HOUR`, `DAYOFWEEK` and `DATE_FORMAT` then read, e.g. for
//! on-peak / off-peak classification.

use chrono::{DateTime, Datelike, NaiveDateTime, Offset, TimeZone, Timelike};
use chrono_tz::Tz;

use carbonflow_core::scalar::compare;
use carbonflow_core::time::parse_timestamp;
use carbonflow_core::{DataType, Datum, Millis};

use super::expr::{EvalError, unit_millis};

/// A scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    /// `ABS(x)`
    Abs,
    /// `ROUND(x [, digits])`, half away from zero.
    Round,
    /// `FLOOR(x)`
    Floor,
    /// `CEIL(x)`
    Ceil,
    /// `SQRT(x)`
    Sqrt,
    /// `POWER(x, y)`
    Power,
    /// `LN(x)`
    Ln,
    /// `LOG10(x)`
    Log10,
    /// `EXP(x)`
    Exp,
    /// `MOD(x, y)`
    Mod,
    /// `SIGN(x)`
    Sign,
    /// `GREATEST(x, ...)`, NULL if any argument is NULL (Flink).
    Greatest,
    /// `LEAST(x, ...)`
    Least,
    /// `COALESCE(x, ...)`: the first non-null argument.
    Coalesce,
    /// `NULLIF(x, y)`
    NullIf,
    /// `IF(condition, then, else)`
    If,
    /// `UPPER(s)`
    Upper,
    /// `LOWER(s)`
    Lower,
    /// `TRIM(s)`
    Trim,
    /// `CHAR_LENGTH(s)`
    CharLength,
    /// `SUBSTRING(s, start [, length])`, 1-based.
    Substring,
    /// `CONCAT(s, ...)`: NULL if any argument is NULL (Flink).
    Concat,
    /// `REPLACE(s, from, to)`
    Replace,
    /// `YEAR(ts)`
    Year,
    /// `MONTH(ts)`
    Month,
    /// `DAYOFMONTH(ts)`
    DayOfMonth,
    /// `DAYOFWEEK(ts)`: 1 = Sunday ... 7 = Saturday (Flink).
    DayOfWeek,
    /// `DAYOFYEAR(ts)`
    DayOfYear,
    /// `HOUR(ts)`
    Hour,
    /// `MINUTE(ts)`
    Minute,
    /// `SECOND(ts)`
    Second,
    /// `DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm')` with Java's pattern letters.
    DateFormat,
    /// `TO_TIMESTAMP(s [, pattern])`
    ToTimestamp,
    /// `CONVERT_TZ(ts, 'from zone', 'to zone')`: wall-clock time in another zone.
    ConvertTz,
    /// `FLOOR(ts TO unit)`, written `TIMESTAMP_FLOOR` internally.
    TimestampFloor,
    /// `CEIL(ts TO unit)`.
    TimestampCeil,
}

/// Every function by its SQL name (aliases included), for lookup and docs.
const NAMES: &[(&str, Function)] = &[
    ("ABS", Function::Abs),
    ("ROUND", Function::Round),
    ("FLOOR", Function::Floor),
    ("CEIL", Function::Ceil),
    ("CEILING", Function::Ceil),
    ("SQRT", Function::Sqrt),
    ("POWER", Function::Power),
    ("POW", Function::Power),
    ("LN", Function::Ln),
    ("LOG10", Function::Log10),
    ("EXP", Function::Exp),
    ("MOD", Function::Mod),
    ("SIGN", Function::Sign),
    ("GREATEST", Function::Greatest),
    ("LEAST", Function::Least),
    ("COALESCE", Function::Coalesce),
    ("NULLIF", Function::NullIf),
    ("IF", Function::If),
    ("UPPER", Function::Upper),
    ("LOWER", Function::Lower),
    ("TRIM", Function::Trim),
    ("CHAR_LENGTH", Function::CharLength),
    ("CHARACTER_LENGTH", Function::CharLength),
    ("SUBSTRING", Function::Substring),
    ("SUBSTR", Function::Substring),
    ("CONCAT", Function::Concat),
    ("REPLACE", Function::Replace),
    ("YEAR", Function::Year),
    ("MONTH", Function::Month),
    ("DAYOFMONTH", Function::DayOfMonth),
    ("DAYOFWEEK", Function::DayOfWeek),
    ("DAYOFYEAR", Function::DayOfYear),
    ("HOUR", Function::Hour),
    ("MINUTE", Function::Minute),
    ("SECOND", Function::Second),
    ("DATE_FORMAT", Function::DateFormat),
    ("TO_TIMESTAMP", Function::ToTimestamp),
    ("CONVERT_TZ", Function::ConvertTz),
];

impl Function {
    /// The function with this SQL name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Function> {
        NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, f)| *f)
    }

    /// The SQL name shown in plans.
    pub fn name(self) -> &'static str {
        match self {
            Function::TimestampFloor => "FLOOR_TO",
            Function::TimestampCeil => "CEIL_TO",
            other => NAMES.iter().find(|(_, f)| *f == other).map(|(n, _)| *n).expect("every function has a name"),
        }
    }

    /// Checks the argument types and gives the result type, or says what is wrong.
    pub fn return_type(self, args: &[DataType]) -> Result<DataType, std::string::String> {
        use DataType::*;
        let name = self.name();
        let arity = |min: usize, max: usize| -> Result<(), std::string::String> {
            if args.len() < min || args.len() > max {
                let expected = if min == max {
                    min.to_string()
                } else if max == usize::MAX {
                    format!("at least {min}")
                } else {
                    format!("{min} to {max}")
                };
                Err(format!("{name} takes {expected} argument(s), found {}", args.len()))
            } else {
                Ok(())
            }
        };
        let expect = |index: usize, wanted: DataType| -> Result<(), std::string::String> {
            if args[index].coerces_to(wanted) {
                Ok(())
            } else {
                Err(format!("argument {} of {name} must be {wanted}, found {}", index + 1, args[index]))
            }
        };
        let numeric = |index: usize| -> Result<(), std::string::String> {
            if args[index].is_numeric() {
                Ok(())
            } else {
                Err(format!("argument {} of {name} must be numeric, found {}", index + 1, args[index]))
            }
        };
        let common = |args: &[DataType]| -> Result<DataType, std::string::String> {
            args.iter().try_fold(Null, |acc, t| {
                acc.unify(*t).ok_or_else(|| format!("arguments of {name} have no common type ({acc} and {t})"))
            })
        };
        match self {
            Function::Abs | Function::Floor | Function::Ceil | Function::Sign => {
                arity(1, 1)?;
                numeric(0)?;
                Ok(args[0])
            }
            Function::Round => {
                arity(1, 2)?;
                numeric(0)?;
                if args.len() == 2 {
                    expect(1, Int)?;
                }
                Ok(args[0])
            }
            Function::Sqrt | Function::Ln | Function::Log10 | Function::Exp => {
                arity(1, 1)?;
                numeric(0)?;
                Ok(Float)
            }
            Function::Power => {
                arity(2, 2)?;
                numeric(0)?;
                numeric(1)?;
                Ok(Float)
            }
            Function::Mod => {
                arity(2, 2)?;
                numeric(0)?;
                numeric(1)?;
                common(args)
            }
            Function::Greatest | Function::Least | Function::Coalesce => {
                arity(1, usize::MAX)?;
                common(args)
            }
            Function::NullIf => {
                arity(2, 2)?;
                common(args)?;
                Ok(args[0])
            }
            Function::If => {
                arity(3, 3)?;
                expect(0, Bool)?;
                common(&args[1..])
            }
            Function::Upper | Function::Lower | Function::Trim => {
                arity(1, 1)?;
                expect(0, String)?;
                Ok(String)
            }
            Function::CharLength => {
                arity(1, 1)?;
                expect(0, String)?;
                Ok(Int)
            }
            Function::Substring => {
                arity(2, 3)?;
                expect(0, String)?;
                (1..args.len()).try_for_each(|i| expect(i, Int))?;
                Ok(String)
            }
            Function::Concat => {
                arity(1, usize::MAX)?;
                Ok(String)
            }
            Function::Replace => {
                arity(3, 3)?;
                (0..3).try_for_each(|i| expect(i, String))?;
                Ok(String)
            }
            Function::Year
            | Function::Month
            | Function::DayOfMonth
            | Function::DayOfWeek
            | Function::DayOfYear
            | Function::Hour
            | Function::Minute
            | Function::Second => {
                arity(1, 1)?;
                expect(0, Timestamp)?;
                Ok(Int)
            }
            Function::DateFormat => {
                arity(2, 2)?;
                expect(0, Timestamp)?;
                expect(1, String)?;
                Ok(String)
            }
            Function::ToTimestamp => {
                arity(1, 2)?;
                (0..args.len()).try_for_each(|i| expect(i, String))?;
                Ok(Timestamp)
            }
            Function::ConvertTz => {
                arity(3, 3)?;
                if !matches!(args[0], Timestamp | String | Null) {
                    return Err(format!("argument 1 of {name} must be TIMESTAMP(3) or STRING, found {}", args[0]));
                }
                expect(1, String)?;
                expect(2, String)?;
                Ok(args[0])
            }
            Function::TimestampFloor | Function::TimestampCeil => {
                arity(2, 2)?;
                expect(0, Timestamp)?;
                Ok(Timestamp)
            }
        }
    }

    /// Evaluates the function on argument values whose types were checked.
    pub fn eval(self, args: &[Datum]) -> Result<Datum, EvalError> {
        match self {
            Function::Coalesce => return Ok(args.iter().find(|d| !d.is_null()).cloned().unwrap_or(Datum::Null)),
            Function::NullIf => {
                return Ok(if compare(&args[0], &args[1])? == Some(std::cmp::Ordering::Equal) {
                    Datum::Null
                } else {
                    args[0].clone()
                });
            }
            Function::If => return Ok(if args[0] == Datum::Bool(true) { args[1].clone() } else { args[2].clone() }),
            _ => {}
        }
        if args.iter().any(Datum::is_null) {
            return Ok(Datum::Null);
        }
        let float = |f: fn(f64) -> f64| Datum::float(f(args[0].as_f64().expect("checked numeric")));
        Ok(match self {
            Function::Abs => match &args[0] {
                Datum::Int(v) => Datum::Int(v.checked_abs().ok_or_else(|| EvalError("integer overflow in ABS".into()))?),
                _ => float(f64::abs),
            },
            Function::Round => round(&args[0], args.get(1).and_then(Datum::as_i64).unwrap_or(0)),
            Function::Floor => match &args[0] {
                Datum::Int(v) => Datum::Int(*v),
                _ => float(f64::floor),
            },
            Function::Ceil => match &args[0] {
                Datum::Int(v) => Datum::Int(*v),
                _ => float(f64::ceil),
            },
            Function::Sign => match &args[0] {
                Datum::Int(v) => Datum::Int(v.signum()),
                _ => float(|x| if x == 0.0 { 0.0 } else { x.signum() }),
            },
            Function::Sqrt => float(f64::sqrt),
            Function::Ln => float(f64::ln),
            Function::Log10 => float(f64::log10),
            Function::Exp => float(f64::exp),
            Function::Power => Datum::float(args[0].as_f64().expect("numeric").powf(args[1].as_f64().expect("numeric"))),
            Function::Mod => match (&args[0], &args[1]) {
                (Datum::Int(_), Datum::Int(0)) => return Err(EvalError("MOD by zero".into())),
                (Datum::Int(a), Datum::Int(b)) => Datum::Int(a.wrapping_rem(*b)),
                (a, b) => Datum::float(a.as_f64().expect("numeric") % b.as_f64().expect("numeric")),
            },
            Function::Greatest | Function::Least => {
                let mut pick = &args[0];
                for next in &args[1..] {
                    let ordering = compare(next, pick)?.expect("NULL returned early");
                    if (self == Function::Greatest && ordering.is_gt()) || (self == Function::Least && ordering.is_lt()) {
                        pick = next;
                    }
                }
                // Widen an integer winner when the common type is DOUBLE.
                if args.iter().any(|d| matches!(d, Datum::Float(_))) {
                    Datum::float(pick.as_f64().expect("numeric"))
                } else {
                    pick.clone()
                }
            }
            Function::Upper => Datum::string(&text(&args[0]).to_uppercase()),
            Function::Lower => Datum::string(&text(&args[0]).to_lowercase()),
            Function::Trim => Datum::string(text(&args[0]).trim()),
            Function::CharLength => Datum::Int(text(&args[0]).chars().count() as i64),
            Function::Substring => {
                let chars: Vec<char> = text(&args[0]).chars().collect();
                let start = (args[1].as_i64().expect("int").max(1) - 1) as usize;
                let length = args.get(2).and_then(Datum::as_i64).map_or(usize::MAX, |l| l.max(0) as usize);
                Datum::string(&chars.iter().skip(start).take(length).collect::<String>())
            }
            Function::Concat => Datum::string(&args.iter().map(ToString::to_string).collect::<String>()),
            Function::Replace => Datum::string(&text(&args[0]).replace(text(&args[1]), text(&args[2]))),
            Function::Year => Datum::Int(i64::from(datetime(&args[0])?.year())),
            Function::Month => Datum::Int(i64::from(datetime(&args[0])?.month())),
            Function::DayOfMonth => Datum::Int(i64::from(datetime(&args[0])?.day())),
            Function::DayOfWeek => Datum::Int(i64::from(datetime(&args[0])?.weekday().number_from_sunday())),
            Function::DayOfYear => Datum::Int(i64::from(datetime(&args[0])?.ordinal())),
            Function::Hour => Datum::Int(i64::from(datetime(&args[0])?.hour())),
            Function::Minute => Datum::Int(i64::from(datetime(&args[0])?.minute())),
            Function::Second => Datum::Int(i64::from(datetime(&args[0])?.second())),
            Function::DateFormat => Datum::string(&datetime(&args[0])?.format(&java_to_strftime(text(&args[1]))).to_string()),
            Function::ToTimestamp => match args.get(1) {
                None => parse_timestamp(text(&args[0]))
                    .map(Datum::Timestamp)
                    .ok_or_else(|| EvalError(format!("'{}' is not a timestamp", text(&args[0]))))?,
                Some(pattern) => NaiveDateTime::parse_from_str(text(&args[0]), &java_to_strftime(text(pattern)))
                    .map(|t| Datum::Timestamp(t.and_utc().timestamp_millis()))
                    .map_err(|_| EvalError(format!("'{}' does not match the pattern '{}'", text(&args[0]), text(pattern))))?,
            },
            Function::ConvertTz => {
                let (from, to) = (zone(text(&args[1]))?, zone(text(&args[2]))?);
                match &args[0] {
                    Datum::Timestamp(t) => Datum::Timestamp(convert_tz(*t, from, to)?),
                    other => {
                        let t = parse_timestamp(text(other)).ok_or_else(|| EvalError(format!("'{other}' is not a timestamp")))?;
                        Datum::string(&carbonflow_core::time::format_timestamp(convert_tz(t, from, to)?))
                    }
                }
            }
            Function::TimestampFloor | Function::TimestampCeil => {
                let t = args[0].as_timestamp().expect("timestamp");
                let unit = args[1].as_i64().expect("unit millis");
                let floor = t - t.rem_euclid(unit);
                Datum::Timestamp(if self == Function::TimestampCeil && floor != t { floor + unit } else { floor })
            }
            Function::Coalesce | Function::NullIf | Function::If => unreachable!("handled above"),
        })
    }

    /// The unit argument of `FLOOR(ts TO unit)`.
    pub fn time_unit(unit: &str) -> Option<Millis> {
        unit_millis(unit)
    }
}

fn text(datum: &Datum) -> &str {
    datum.as_str().unwrap_or_default()
}

fn datetime(datum: &Datum) -> Result<NaiveDateTime, EvalError> {
    let millis = datum.as_timestamp().expect("checked timestamp");
    DateTime::from_timestamp_millis(millis)
        .map(|t| t.naive_utc())
        .ok_or_else(|| EvalError(format!("timestamp {millis} out of range")))
}

fn zone(name: &str) -> Result<Tz, EvalError> {
    name.parse::<Tz>().map_err(|_| EvalError(format!("unknown time zone '{name}'")))
}

/// Reads `millis` as wall-clock time in `from` and gives the wall-clock time in `to`.
fn convert_tz(millis: Millis, from: Tz, to: Tz) -> Result<Millis, EvalError> {
    let naive = DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| EvalError("timestamp out of range".into()))?
        .naive_utc();
    // An ambiguous local time (the repeated autumn hour) takes the earlier
    // instant; a missing one (spring forward) is shifted by the offset before it.
    let instant = match from.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.with_timezone(&chrono::Utc),
        chrono::LocalResult::None => {
            let offset = from.offset_from_utc_datetime(&naive).fix();
            (naive - chrono::Duration::seconds(i64::from(offset.local_minus_utc()))).and_utc()
        }
    };
    Ok(instant.with_timezone(&to).naive_local().and_utc().timestamp_millis())
}

/// `ROUND` half away from zero, as Flink (BigDecimal HALF_UP) does.
fn round(value: &Datum, digits: i64) -> Datum {
    match value {
        Datum::Int(v) if digits >= 0 => Datum::Int(*v),
        Datum::Int(v) => {
            let factor = 10i64.saturating_pow(digits.unsigned_abs() as u32);
            let rounded = (*v as f64 / factor as f64).round() as i64 * factor;
            Datum::Int(rounded)
        }
        other => {
            let v = other.as_f64().expect("numeric");
            let factor = 10f64.powi(digits.clamp(-30, 30) as i32);
            // Round through the decimal text so 2.675 (stored as 2.67499...) rounds as written.
            let scaled: f64 = format!("{}", v * factor).parse().unwrap_or(v * factor);
            Datum::float(scaled.round() / factor)
        }
    }
}

/// Translates Java's `SimpleDateFormat` letters (what Flink uses) to chrono's.
fn java_to_strftime(pattern: &str) -> String {
    const LETTERS: &[(&str, &str)] = &[
        ("yyyy", "%Y"),
        ("yy", "%y"),
        ("MMMM", "%B"),
        ("MMM", "%b"),
        ("MM", "%m"),
        ("dd", "%d"),
        ("HH", "%H"),
        ("hh", "%I"),
        ("mm", "%M"),
        ("ss", "%S"),
        ("SSS", "%3f"),
        ("EEEE", "%A"),
        ("EEE", "%a"),
        ("a", "%p"),
        ("D", "%j"),
    ];
    let mut out = String::new();
    let mut rest = pattern;
    'outer: while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'').unwrap_or(quoted.len());
            out.push_str(&quoted[..end].replace('%', "%%"));
            rest = quoted.get(end + 1..).unwrap_or("");
            continue;
        }
        for (java, chrono) in LETTERS {
            if let Some(after) = rest.strip_prefix(java) {
                out.push_str(chrono);
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next().expect("non-empty");
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Datum {
        Datum::Timestamp(parse_timestamp(text).unwrap())
    }

    #[test]
    fn names_round_trip() {
        for (name, function) in NAMES {
            assert_eq!(Function::from_name(name), Some(*function));
        }
        assert_eq!(Function::from_name("no_such_function"), None);
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round(&Datum::float(2.5), 0), Datum::float(3.0));
        assert_eq!(round(&Datum::float(-2.5), 0), Datum::float(-3.0));
        assert_eq!(round(&Datum::float(2.675), 2), Datum::float(2.68));
        assert_eq!(round(&Datum::Int(1250), -2), Datum::Int(1300));
    }

    #[test]
    fn calendar_functions() {
        let t = ts("2024-03-10 06:30:15");
        assert_eq!(Function::Hour.eval(std::slice::from_ref(&t)).unwrap(), Datum::Int(6));
        // 2024-03-10 is a Sunday.
        assert_eq!(Function::DayOfWeek.eval(std::slice::from_ref(&t)).unwrap(), Datum::Int(1));
        assert_eq!(
            Function::DateFormat.eval(&[t.clone(), Datum::string("yyyy-MM-dd HH'h'")]).unwrap(),
            Datum::string("2024-03-10 06h")
        );
        assert_eq!(Function::TimestampFloor.eval(&[t, Datum::Int(3_600_000)]).unwrap(), ts("2024-03-10 06:00:00"));
    }

    #[test]
    fn convert_tz_follows_dst() {
        let utc = Datum::string("UTC");
        let ny = Datum::string("America/New_York");
        // Before the spring change New York is UTC-5, after it UTC-4.
        let before = Function::ConvertTz.eval(&[ts("2024-03-10 06:30:00"), utc.clone(), ny.clone()]).unwrap();
        assert_eq!(before, ts("2024-03-10 01:30:00"));
        let after = Function::ConvertTz.eval(&[ts("2024-03-10 07:30:00"), utc.clone(), ny.clone()]).unwrap();
        assert_eq!(after, ts("2024-03-10 03:30:00"));
        // The repeated autumn hour maps back to its earlier instant.
        let back = Function::ConvertTz.eval(&[ts("2024-11-03 01:30:00"), ny, utc]).unwrap();
        assert_eq!(back, ts("2024-11-03 05:30:00"));
        assert!(
            Function::ConvertTz
                .eval(&[ts("2024-01-01 00:00:00"), Datum::string("Mars/Base"), Datum::string("UTC")])
                .is_err()
        );
    }

    #[test]
    fn type_errors_are_explained() {
        assert_eq!(
            Function::Abs.return_type(&[DataType::String]).unwrap_err(),
            "argument 1 of ABS must be numeric, found STRING"
        );
        assert_eq!(Function::Round.return_type(&[]).unwrap_err(), "ROUND takes 1 to 2 argument(s), found 0");
        assert_eq!(
            Function::Coalesce.return_type(&[DataType::Null, DataType::Int, DataType::Float]).unwrap(),
            DataType::Float
        );
    }
}
