//! Window assignment for TUMBLE, HOP and CUMULATE, as Flink's window TVFs do it.
//!
//! * `TUMBLE(size [, offset])`: consecutive windows of `size`, starting at
//!   `offset + k * size`. Each row is in exactly one.
//! * `HOP(slide, size [, offset])`: windows of `size` starting every `slide`
//!   at `offset + k * slide`. A row is in `size / slide` of them.
//! * `CUMULATE(step, max_size [, offset])`: the tumbling windows of `max_size`
//!   are emitted growing, one step at a time: `[s, s + step)`,
//!   `[s, s + 2 * step)`, …, `[s, s + max_size)`. A row is in those that
//!   end after it.
//!
//! Validation follows Flink's slicing assigners (`SliceAssigners`): sizes must
//! be positive, a HOP's size an integral multiple of its slide, and a
//! CUMULATE's max size an integral multiple of its step. Flink's legacy group
//! window `HOP` accepted other ratios; its window TVF rejects them, and so do
//! we. The offset may be any value, negative included; only its value modulo
//! the window size (slide, max size) matters, as with Flink's
//! `TimeWindow.getWindowStartWithOffset`.

use carbonflow_core::Millis;

/// A window table-valued function and its parameters, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowSpec {
    /// `TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])`.
    Tumble {
        /// Window length.
        size: Millis,
        /// Shift of the window starts.
        offset: Millis,
    },
    /// `HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])`.
    Hop {
        /// Distance between window starts.
        slide: Millis,
        /// Window length.
        size: Millis,
        /// Shift of the window starts.
        offset: Millis,
    },
    /// `CUMULATE(TABLE t, DESCRIPTOR(ts), step, max_size [, offset])`.
    Cumulate {
        /// Growth of the window end from one window to the next.
        step: Millis,
        /// Length of the largest window, which is a tumbling window.
        max_size: Millis,
        /// Shift of the window starts.
        offset: Millis,
    },
}

/// The largest `start <= ts` with `start ≡ offset (mod size)`; Flink's
/// `getWindowStartWithOffset`. Computed in `i128` so that extreme event times
/// and offsets cannot overflow; the result lies in `(ts - size, ts]`.
fn window_start(ts: Millis, offset: Millis, size: Millis) -> Millis {
    let ts = i128::from(ts);
    saturate(ts - (ts - i128::from(offset)).rem_euclid(i128::from(size)))
}

/// Clamps to the representable event times: a window starting before
/// `Millis::MIN` starts at `Millis::MIN` instead of wrapping around.
fn saturate(time: i128) -> Millis {
    time.clamp(Millis::MIN.into(), Millis::MAX.into()) as Millis
}

impl WindowSpec {
    /// Checks the parameters as Flink does; the message names the function.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            WindowSpec::Tumble { size, .. } if size <= 0 => Err(format!("TUMBLE window size must be positive, got {size} ms")),
            WindowSpec::Hop { slide, size, .. } if slide <= 0 || size <= 0 => Err(format!(
                "HOP window must satisfy slide > 0 and size > 0, got slide {slide} ms and size {size} ms"
            )),
            WindowSpec::Hop { slide, size, .. } if size % slide != 0 => Err(format!(
                "HOP window size must be an integral multiple of the slide, got size {size} ms and slide {slide} ms"
            )),
            WindowSpec::Cumulate { step, max_size, .. } if step <= 0 || max_size <= 0 => Err(format!(
                "CUMULATE window must satisfy step > 0 and max size > 0, got step {step} ms and max size {max_size} ms"
            )),
            WindowSpec::Cumulate { step, max_size, .. } if max_size % step != 0 => Err(format!(
                "CUMULATE window max size must be an integral multiple of the step, got max size {max_size} ms and step {step} ms"
            )),
            _ => Ok(()),
        }
    }

    /// Appends every window `[start, end)` that contains `ts`, in increasing
    /// order of start (for CUMULATE, which shares one start, of end). The spec
    /// must be valid ([`WindowSpec::validate`]); ends past `Millis::MAX`
    /// saturate.
    #[inline]
    pub fn assign(&self, ts: Millis, out: &mut Vec<(Millis, Millis)>) {
        match *self {
            WindowSpec::Tumble { size, offset } => {
                let start = window_start(ts, offset, size);
                out.push((start, start.saturating_add(size)));
            }
            WindowSpec::Hop { slide, size, offset } => {
                // The latest start is the slide-aligned one at or before ts; the
                // earliest is the first whose window still reaches past ts.
                let last = window_start(ts, offset, slide);
                let earlier = (i128::from(last) + i128::from(size) - i128::from(ts) - 1) / i128::from(slide);
                for back in (0..=earlier).rev() {
                    let start = saturate(i128::from(last) - back * i128::from(slide));
                    out.push((start, start.saturating_add(size)));
                }
            }
            WindowSpec::Cumulate { step, max_size, offset } => {
                let start = window_start(ts, offset, max_size);
                let steps = max_size / step;
                let first = (ts - start) / step + 1;
                for k in first..=steps {
                    out.push((start, start.saturating_add(k * step)));
                }
            }
        }
    }

    /// The length of the longest window: how far back a row's windows reach.
    pub fn max_size(&self) -> Millis {
        match *self {
            WindowSpec::Tumble { size, .. } | WindowSpec::Hop { size, .. } => size,
            WindowSpec::Cumulate { max_size, .. } => max_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carbonflow_core::time::parse_timestamp;
    use proptest::prelude::*;

    const MINUTE: Millis = 60_000;

    fn at(text: &str) -> Millis {
        parse_timestamp(text).expect("valid timestamp")
    }

    /// The `Bid` rows of Flink's window TVF documentation: (bidtime, price).
    fn bids() -> Vec<(Millis, f64)> {
        [("08:05", 4.0), ("08:07", 2.0), ("08:09", 5.0), ("08:11", 3.0), ("08:13", 1.0), ("08:17", 6.0)]
            .iter()
            .map(|(time, price)| (at(&format!("2020-04-15 {time}:00")), *price))
            .collect()
    }

    /// `SELECT window_start, window_end, SUM(price) … GROUP BY window_start, window_end`.
    fn window_sums(spec: WindowSpec) -> Vec<(Millis, Millis, f64)> {
        let mut sums = std::collections::BTreeMap::new();
        let mut windows = Vec::new();
        for (time, price) in bids() {
            windows.clear();
            spec.assign(time, &mut windows);
            for window in &windows {
                *sums.entry(*window).or_insert(0.0) += price;
            }
        }
        sums.into_iter().map(|((start, end), sum)| (start, end, sum)).collect()
    }

    fn table(rows: &[(&str, &str, f64)]) -> Vec<(Millis, Millis, f64)> {
        rows.iter()
            .map(|(start, end, sum)| (at(&format!("2020-04-15 {start}:00")), at(&format!("2020-04-15 {end}:00")), *sum))
            .collect()
    }

    #[test]
    fn flink_docs_tumble_example() {
        let spec = WindowSpec::Tumble { size: 10 * MINUTE, offset: 0 };
        assert_eq!(window_sums(spec), table(&[("08:00", "08:10", 11.0), ("08:10", "08:20", 10.0)]));
    }

    #[test]
    fn flink_docs_hop_example() {
        let spec = WindowSpec::Hop {
            slide: 5 * MINUTE,
            size: 10 * MINUTE,
            offset: 0,
        };
        let expected = table(&[
            ("08:00", "08:10", 11.0),
            ("08:05", "08:15", 15.0),
            ("08:10", "08:20", 10.0),
            ("08:15", "08:25", 6.0),
        ]);
        assert_eq!(window_sums(spec), expected);
    }

    #[test]
    fn flink_docs_cumulate_example() {
        let spec = WindowSpec::Cumulate {
            step: 2 * MINUTE,
            max_size: 10 * MINUTE,
            offset: 0,
        };
        let expected = table(&[
            ("08:00", "08:06", 4.0),
            ("08:00", "08:08", 6.0),
            ("08:00", "08:10", 11.0),
            ("08:10", "08:12", 3.0),
            ("08:10", "08:14", 4.0),
            ("08:10", "08:16", 4.0),
            ("08:10", "08:18", 10.0),
            ("08:10", "08:20", 10.0),
        ]);
        assert_eq!(window_sums(spec), expected);
    }

    #[test]
    fn flink_docs_offset_example() {
        // Flink's docs: 10-minute tumbling windows with a 1-minute offset.
        let spec = WindowSpec::Tumble {
            size: 10 * MINUTE,
            offset: MINUTE,
        };
        let expected = table(&[("08:01", "08:11", 11.0), ("08:11", "08:21", 10.0)]);
        assert_eq!(window_sums(spec), expected);
    }

    #[test]
    fn negative_times_and_offsets() {
        let mut out = Vec::new();
        WindowSpec::Tumble { size: 10, offset: 0 }.assign(-1, &mut out);
        WindowSpec::Tumble { size: 10, offset: -13 }.assign(-1, &mut out);
        WindowSpec::Tumble { size: 10, offset: 0 }.assign(-10, &mut out);
        assert_eq!(out, vec![(-10, 0), (-3, 7), (-10, 0)]);
    }

    #[test]
    fn validation_follows_flink() {
        assert!(WindowSpec::Tumble { size: 0, offset: 0 }.validate().is_err());
        assert!(WindowSpec::Hop { slide: 0, size: 10, offset: 0 }.validate().is_err());
        let err = WindowSpec::Hop {
            slide: 2000,
            size: 5000,
            offset: 0,
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("integral multiple"), "{err}");
        assert!(
            WindowSpec::Hop {
                slide: 5000,
                size: 10000,
                offset: -1000
            }
            .validate()
            .is_ok()
        );
        assert!(
            WindowSpec::Cumulate {
                step: 3,
                max_size: 10,
                offset: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            WindowSpec::Cumulate {
                step: 2,
                max_size: 10,
                offset: 0
            }
            .validate()
            .is_ok()
        );
        assert!(WindowSpec::Tumble { size: 5, offset: 99 }.validate().is_ok());
    }

    fn valid_spec() -> impl Strategy<Value = WindowSpec> {
        prop_oneof![
            (1i64..50, -100i64..100).prop_map(|(size, offset)| WindowSpec::Tumble { size, offset }),
            (1i64..20, 1i64..6, -100i64..100).prop_map(|(slide, k, offset)| WindowSpec::Hop {
                slide,
                size: slide * k,
                offset
            }),
            (1i64..20, 1i64..6, -100i64..100).prop_map(|(step, k, offset)| WindowSpec::Cumulate {
                step,
                max_size: step * k,
                offset
            }),
        ]
    }

    /// Every window the function defines near `ts`, from the definitions.
    fn brute_force(spec: WindowSpec, ts: Millis) -> Vec<(Millis, Millis)> {
        let mut windows = Vec::new();
        for start in ts - 200..=ts {
            match spec {
                WindowSpec::Tumble { size, offset } if (start - offset) % size == 0 => windows.push((start, start + size)),
                WindowSpec::Hop { slide, size, offset } if (start - offset) % slide == 0 => windows.push((start, start + size)),
                WindowSpec::Cumulate { step, max_size, offset } if (start - offset) % max_size == 0 => {
                    windows.extend((1..=max_size / step).map(|k| (start, start + k * step)));
                }
                _ => {}
            }
        }
        windows.retain(|&(start, end)| start <= ts && ts < end);
        windows
    }

    proptest! {
        #[test]
        fn assign_matches_brute_force(spec in valid_spec(), ts in -1000i64..1000) {
            prop_assert!(spec.validate().is_ok());
            let mut out = Vec::new();
            spec.assign(ts, &mut out);
            prop_assert_eq!(&out, &brute_force(spec, ts));
            prop_assert!(out.iter().all(|&(start, end)| end - start <= spec.max_size()));
        }
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut out = Vec::new();
        WindowSpec::Hop {
            slide: MINUTE,
            size: 5 * MINUTE,
            offset: 7,
        }
        .assign(Millis::MAX, &mut out);
        WindowSpec::Cumulate {
            step: MINUTE,
            max_size: 5 * MINUTE,
            offset: 0,
        }
        .assign(Millis::MIN, &mut out);
        assert_eq!(out.len(), 10);
    }
}
