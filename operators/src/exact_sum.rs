//! Exact, order-independent summation of doubles that supports removal.
//!
//! A retraction subtracts a value that was added earlier. With ordinary
//! floating-point addition `(a + b) - b` need not equal `a`, so a SUM that has
//! seen and then lost a row could differ from a fresh SUM over the surviving
//! rows, and two workers that saw the same rows in another order could
//! disagree. [`ExactSum`] keeps the sum *exactly*, so its [`ExactSum::value`]
//! is the correctly rounded (round half to even) sum of the current multiset,
//! whatever the order of additions and removals.
//!
//! The representation is a fixed-point "small superaccumulator" after
//! Radford Neal ("Fast exact summation using small and large
//! superaccumulators", 2015): every finite double is an integer multiple of
//! 2^-1074 below 2^1024, so it is an integer of at most 2098 bits. The
//! accumulator holds that integer in 67 signed 64-bit chunks of 32-bit stride;
//! adding a double adds its 53-bit mantissa to the two chunks it straddles.
//! Chunks overlap so that carries need only be propagated every
//! 1,024 additions, which keeps [`ExactSum::add`] at a few
//! integer operations and allocation-free. The accumulator also tracks the
//! span of chunks any addition reached: the values of one column are of
//! similar magnitude, so carries and [`ExactSum::value`] work on two or
//! three chunks instead of all 67. The crates.io options were looked
//! at first: `fsum` (Shewchuk partials) lets an intermediate sum overflow to
//! infinity for large finite inputs, and `xsum` (this algorithm) is neither
//! `Clone` nor retractable for infinities.
//!
//! Infinities and NaN cannot be held in the integer, so they are counted
//! separately: retracting them restores the finite sum.
//!
//! Two sums merge exactly ([`ExactSum::merge`]): a worker's partial sum of an
//! epoch joins its group's sum on another worker with the same result as if
//! every value had been added there, which is what lets an aggregation
//! pre-aggregate before the exchange without its answers depending on the
//! number of workers.

use serde::{Deserialize, Serialize};

/// Number of chunks: 2098 value bits need 66 chunks of 32 bits, plus one
/// for the carries of many large additions and the sign.
const CHUNKS: usize = 67;
/// Bits of value position each chunk stands for.
const CHUNK_BITS: u32 = 32;
const LOW_MASK: i64 = (1 << CHUNK_BITS) - 1;
/// After propagation a chunk is below 2^32; each addition moves it by less than
/// 2^53, so 1024 additions stay well inside `i64`.
const ADDS_BEFORE_CARRY: u32 = 1024;

/// The exact sum of a multiset of doubles. See the module documentation.
///
/// Not `PartialEq`: equal sums may be held in differently carried chunks.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(into = "SpanWire", try_from = "SpanWire")]
pub struct ExactSum {
    chunks: [i64; CHUNKS],
    /// Every chunk outside `lowest..=highest` is zero (none is nonzero while
    /// `lowest > highest`). After carries, `chunks[highest]` holds the sign.
    lowest: usize,
    highest: usize,
    adds_until_carry: u32,
    /// Multiplicities of `+inf`, `-inf` and NaN among the added values.
    pos_inf: i64,
    neg_inf: i64,
    nan: i64,
}

impl Default for ExactSum {
    fn default() -> Self {
        Self::new()
    }
}

impl ExactSum {
    /// An empty sum (value `0.0`).
    pub fn new() -> Self {
        ExactSum {
            chunks: [0; CHUNKS],
            lowest: CHUNKS,
            highest: 0,
            adds_until_carry: ADDS_BEFORE_CARRY,
            pos_inf: 0,
            neg_inf: 0,
            nan: 0,
        }
    }

    /// Adds `x`.
    #[inline]
    pub fn add(&mut self, x: f64) {
        self.add_signed(x, false);
    }

    /// Removes an `x` added before. For finite `x` this is `add(-x)`; for an
    /// infinity it is not (`+inf + -inf` is NaN, a removed `+inf` is gone).
    #[inline]
    pub fn remove(&mut self, x: f64) {
        self.add_signed(x, true);
    }

    /// Adds `x` `times` times, or removes it `-times` times: an update with a
    /// multiplicity. Costs one addition per unit of multiplicity, which is
    /// cheap for the ±1 diffs that dominate a dataflow.
    #[inline]
    pub fn add_times(&mut self, x: f64, times: i64) {
        let negate = times < 0;
        for _ in 0..times.unsigned_abs() {
            self.add_signed(x, negate);
        }
    }

    #[inline]
    fn add_signed(&mut self, x: f64, negate: bool) {
        let bits = x.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as u32;
        let fraction = (bits & ((1 << 52) - 1)) as i64;
        let negative = (bits >> 63 == 1) != negate;
        if exponent == 0x7ff {
            self.add_non_finite(x, negate);
            return;
        }
        // A normal double is (2^52 + fraction) * 2^(exponent - 1075), i.e. the
        // mantissa shifted left by `exponent - 1` units of 2^-1074; a
        // subnormal is `fraction` units.
        let (mantissa, shift) = if exponent == 0 { (fraction, 0) } else { (fraction | (1 << 52), exponent - 1) };
        if mantissa == 0 {
            return;
        }
        if self.adds_until_carry == 0 {
            self.propagate_carries();
        }
        self.adds_until_carry -= 1;
        let index = (shift / CHUNK_BITS) as usize;
        if index < self.lowest || index >= self.highest {
            self.widen(index);
        }
        let low_shift = shift % CHUNK_BITS;
        let low = (mantissa << low_shift) & LOW_MASK;
        let high = mantissa >> (CHUNK_BITS - low_shift);
        if negative {
            self.chunks[index] -= low;
            self.chunks[index + 1] -= high;
        } else {
            self.chunks[index] += low;
            self.chunks[index + 1] += high;
        }
    }

    /// Extends the span to chunks `index` and `index + 1`.
    #[cold]
    fn widen(&mut self, index: usize) {
        self.lowest = self.lowest.min(index);
        self.highest = self.highest.max(index + 1);
    }

    #[cold]
    fn add_non_finite(&mut self, x: f64, negate: bool) {
        let step = if negate { -1 } else { 1 };
        if x.is_nan() {
            self.nan += step;
        } else if x > 0.0 {
            self.pos_inf += step;
        } else {
            self.neg_inf += step;
        }
    }

    /// Adds every value `other` holds, as if each had been added here.
    pub fn merge(&mut self, other: &ExactSum) {
        self.pos_inf += other.pos_inf;
        self.neg_inf += other.neg_inf;
        self.nan += other.nan;
        if other.lowest > other.highest {
            return;
        }
        // Carried, a chunk here is below 2^32 in magnitude (the top one at
        // most holds the sign); one of `other` is below 2^32 plus its
        // additions since its last carry, each less than 2^53. The merged
        // chunk takes what is left of that budget, one addition fewer.
        let other_additions = ADDS_BEFORE_CARRY - other.adds_until_carry;
        self.propagate_carries();
        self.lowest = self.lowest.min(other.lowest);
        self.highest = self.highest.max(other.highest);
        for index in other.lowest..=other.highest {
            self.chunks[index] += other.chunks[index];
        }
        self.adds_until_carry = ADDS_BEFORE_CARRY.saturating_sub(other_additions + 1);
    }

    /// Brings every chunk of the span but its top one into `[0, 2^32)`, keeping the value.
    fn propagate_carries(&mut self) {
        if self.lowest <= self.highest {
            self.highest = normalize(&mut self.chunks, self.lowest, self.highest);
        }
        self.adds_until_carry = ADDS_BEFORE_CARRY;
    }

    /// The correctly rounded sum (ties to even). An empty or cancelled sum is
    /// `+0.0`. NaN if a NaN is held or both infinities are; otherwise the held
    /// infinity; otherwise `±inf` only when the exact finite sum rounds past
    /// `f64::MAX`.
    pub fn value(&self) -> f64 {
        if self.nan != 0 || (self.pos_inf != 0 && self.neg_inf != 0) {
            return f64::NAN;
        }
        if self.pos_inf != 0 {
            return if self.pos_inf > 0 { f64::INFINITY } else { f64::NEG_INFINITY };
        }
        if self.neg_inf != 0 {
            return if self.neg_inf > 0 { f64::NEG_INFINITY } else { f64::INFINITY };
        }
        let (lowest, highest) = (self.lowest, self.highest);
        if lowest > highest {
            return 0.0;
        }
        if highest <= lowest + 1 && lowest >= 2 {
            // Two chunks (the usual case: values of one magnitude) hold the sum
            // as an i128 of units of 2^(32 * lowest - 1074). Its conversion
            // rounds correctly (ties to even), and scaling by that power of
            // two, at least 2^-1010, is exact or overflows exactly when the
            // correctly rounded sum does.
            let units = i128::from(self.chunks[lowest]) + (i128::from(self.chunks[lowest + 1]) << CHUNK_BITS);
            let scale = f64::from_bits(((lowest as u64) * u64::from(CHUNK_BITS) + 1023 - 1074) << 52);
            return units as f64 * scale;
        }
        let mut chunks = [0; CHUNKS];
        chunks[lowest..=highest].copy_from_slice(&self.chunks[lowest..=highest]);
        let mut highest = normalize(&mut chunks, lowest, highest);
        let negative = chunks[highest] < 0;
        if negative {
            for chunk in &mut chunks[lowest..=highest] {
                *chunk = -*chunk;
            }
            highest = normalize(&mut chunks, lowest, highest);
        }
        let magnitude = round_to_f64(&chunks, lowest, highest);
        if negative { -magnitude } else { magnitude }
    }
}

/// How a sum crosses between processes: the chunks of its span only (two or
/// three for the values of one column, not all 67), and the non-finite counts.
#[derive(Serialize, Deserialize)]
struct SpanWire {
    /// Index of the first chunk sent.
    lowest: usize,
    chunks: Vec<i64>,
    pos_inf: i64,
    neg_inf: i64,
    nan: i64,
}

impl From<ExactSum> for SpanWire {
    fn from(sum: ExactSum) -> Self {
        let chunks = if sum.lowest <= sum.highest {
            sum.chunks[sum.lowest..=sum.highest].to_vec()
        } else {
            Vec::new()
        };
        SpanWire {
            lowest: sum.lowest.min(CHUNKS),
            chunks,
            pos_inf: sum.pos_inf,
            neg_inf: sum.neg_inf,
            nan: sum.nan,
        }
    }
}

impl TryFrom<SpanWire> for ExactSum {
    type Error = String;

    fn try_from(wire: SpanWire) -> Result<Self, Self::Error> {
        let mut sum = ExactSum {
            pos_inf: wire.pos_inf,
            neg_inf: wire.neg_inf,
            nan: wire.nan,
            ..ExactSum::new()
        };
        if wire.chunks.is_empty() {
            return Ok(sum);
        }
        let end = wire.lowest + wire.chunks.len();
        if end > CHUNKS {
            return Err(format!("an exact sum has {CHUNKS} chunks, not {end}"));
        }
        sum.chunks[wire.lowest..end].copy_from_slice(&wire.chunks);
        (sum.lowest, sum.highest) = (wire.lowest, end - 1);
        // The chunks may be uncarried: carry before the next addition.
        sum.adds_until_carry = 0;
        Ok(sum)
    }
}

/// Carries the excess of every chunk in `lowest..highest` into the next, and
/// on upward while the top one is 2^32 or more in magnitude, so that all
/// chunks of the span but the top one are in `[0, 2^32)` and the top one
/// carries the sign of the whole number (its magnitude below 2^32 unless it
/// is the last chunk). Returns the index of the top chunk.
fn normalize(chunks: &mut [i64; CHUNKS], lowest: usize, mut highest: usize) -> usize {
    let mut i = lowest;
    loop {
        while i < highest {
            let carry = chunks[i] >> CHUNK_BITS;
            chunks[i] &= LOW_MASK;
            chunks[i + 1] += carry;
            i += 1;
        }
        if highest == CHUNKS - 1 || chunks[highest].unsigned_abs() < 1 << CHUNK_BITS {
            return highest;
        }
        highest += 1;
    }
}

/// Rounds a non-negative fixed-point number (units of 2^-1074), normalized
/// over `lowest..=highest` and zero elsewhere, to the nearest double, ties
/// to even.
fn round_to_f64(chunks: &[i64; CHUNKS], lowest: usize, highest: usize) -> f64 {
    let Some(top) = (lowest..=highest).rev().find(|&i| chunks[i] != 0) else {
        return 0.0;
    };
    let chunk = |i: usize| chunks[i] as u128;
    let top_bits = 64 - (chunks[top] as u64).leading_zeros();
    // Index of the most significant bit, counted in units of 2^-1074.
    let msb = top as u32 * CHUNK_BITS + top_bits - 1;
    if msb < 53 {
        // Below 2^53 units the value is exact, and the bit pattern of a double
        // with biased exponent 0 or 1 is the unit count itself.
        let units = chunk(0) | (chunk(1) << CHUNK_BITS);
        return f64::from_bits(units as u64);
    }
    // The top three chunks hold at least 65 bits: the 53-bit mantissa, the
    // rounding bit and some sticky bits; everything below only adds stickiness.
    let window = (chunk(top) << 64) | (chunk(top - 1) << 32) | if top >= 2 { chunk(top - 2) } else { 0 };
    let drop = 64 + top_bits - 53;
    let mut mantissa = (window >> drop) as u64;
    let round_bit = (window >> (drop - 1)) & 1 == 1;
    let sticky = window & ((1 << (drop - 1)) - 1) != 0 || (top >= 3 && chunks[lowest.min(top - 2)..top - 2].iter().any(|&c| c != 0));
    if round_bit && (sticky || mantissa & 1 == 1) {
        mantissa += 1;
    }
    // Value = mantissa * 2^(shift - 1074) with mantissa in [2^52, 2^53]; the
    // biased exponent is shift + 1, and adding the mantissa (with its implicit
    // bit) to shift << 52 yields the bit pattern, a rounding carry included.
    let shift = u64::from(msb - 52);
    let bits = (shift << 52) + mantissa;
    if bits >= f64::INFINITY.to_bits() {
        f64::INFINITY
    } else {
        f64::from_bits(bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sum_of(values: &[f64]) -> f64 {
        let mut sum = ExactSum::new();
        for &v in values {
            sum.add(v);
        }
        sum.value()
    }

    /// Python's `math.fsum` (Shewchuk's partials with the half-even fix-up),
    /// an independent reference for inputs whose partial sums cannot overflow.
    fn fsum_reference(values: &[f64]) -> f64 {
        let mut partials: Vec<f64> = Vec::new();
        for &value in values {
            let mut x = value;
            let mut kept = 0;
            for i in 0..partials.len() {
                let mut y = partials[i];
                if x.abs() < y.abs() {
                    std::mem::swap(&mut x, &mut y);
                }
                let hi = x + y;
                let lo = y - (hi - x);
                if lo != 0.0 {
                    partials[kept] = lo;
                    kept += 1;
                }
                x = hi;
            }
            partials.truncate(kept);
            partials.push(x);
        }
        let Some(mut hi) = partials.pop() else { return 0.0 };
        let mut lo = 0.0;
        while let Some(x) = partials.pop() {
            let y = x;
            let old = hi;
            hi = old + y;
            let yr = hi - old;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        if let Some(&next) = partials.last()
            && ((lo < 0.0 && next < 0.0) || (lo > 0.0 && next > 0.0))
        {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }

    #[test]
    fn sums_that_naive_addition_gets_wrong() {
        assert_eq!(sum_of(&[0.1; 10]), 1.0);
        assert_eq!(sum_of(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum_of(&[1e100, 1.0, -1e100, 1e-100, 1e50, -1.0, -1e50]), 1e-100);
        // The intermediate 2e308 overflows a double but not the accumulator.
        assert_eq!(sum_of(&[1e308, 1e308, -1e308]), 1e308);
        assert_eq!(sum_of(&[f64::MAX, f64::MAX]), f64::INFINITY);
        assert_eq!(sum_of(&[-f64::MAX, -f64::MAX]), f64::NEG_INFINITY);
    }

    #[test]
    fn ties_round_to_even_and_sticky_bits_break_ties() {
        let half_ulp = f64::EPSILON / 2.0;
        assert_eq!(sum_of(&[1.0, half_ulp]), 1.0);
        assert_eq!(sum_of(&[1.0 + f64::EPSILON, half_ulp]), 1.0 + 2.0 * f64::EPSILON);
        assert_eq!(sum_of(&[1.0, half_ulp, 1e-300]), 1.0 + f64::EPSILON);
        assert_eq!(sum_of(&[1.0, half_ulp, -1e-300]), 1.0);
    }

    #[test]
    fn subnormals_and_zero() {
        let tiny = f64::from_bits(1);
        assert_eq!(sum_of(&[tiny, tiny, tiny]).to_bits(), 3);
        assert_eq!(sum_of(&[f64::MIN_POSITIVE, -tiny]), f64::MIN_POSITIVE - tiny);
        assert_eq!(sum_of(&[]).to_bits(), 0);
        assert_eq!(sum_of(&[-0.0, 2.5, -2.5]).to_bits(), 0);
        assert_eq!(sum_of(&[-3.0, 0.5]), -2.5);
    }

    #[test]
    fn non_finite_values_are_counted_and_can_be_retracted() {
        let mut sum = ExactSum::new();
        sum.add(1.5);
        sum.add(f64::INFINITY);
        assert_eq!(sum.value(), f64::INFINITY);
        sum.add(f64::NEG_INFINITY);
        assert!(sum.value().is_nan());
        sum.add(f64::NAN);
        sum.remove(f64::INFINITY);
        sum.remove(f64::NEG_INFINITY);
        assert!(sum.value().is_nan());
        sum.add_times(f64::NAN, -1);
        assert_eq!(sum.value(), 1.5);
        sum.add(1.0);
        assert_eq!(sum.value(), 2.5);
    }

    #[test]
    fn many_additions_propagate_carries() {
        let mut sum = ExactSum::new();
        for _ in 0..10_000 {
            sum.add(f64::MAX / 4.0);
            sum.add(-f64::MAX / 4.0);
            sum.add(0.1);
        }
        assert_eq!(sum.value(), fsum_reference(&[0.1; 10_000]));
        sum.add_times(0.1, -10_000);
        assert_eq!(sum.value().to_bits(), 0);
    }

    /// Doubles of every magnitude, sign and kind of rounding behaviour.
    fn any_finite() -> impl Strategy<Value = f64> {
        prop_oneof![
            (-1e6f64..1e6),
            (-1e3f64..1e3).prop_map(|x| (x * 100.0).round() / 100.0),
            any::<f64>().prop_filter("finite and summable", |x| x.is_finite() && x.abs() < 1e300),
            (0u64..1 << 20).prop_map(f64::from_bits),
        ]
    }

    proptest! {
        #[test]
        fn matches_python_fsum_in_any_order(values in proptest::collection::vec(any_finite(), 0..40), seed in any::<u64>()) {
            let expected = fsum_reference(&values);
            let mut shuffled = values.clone();
            // A deterministic permutation from the seed: order must not matter.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            // The accumulator never returns -0.0 (rows normalise it anyway).
            prop_assert_eq!(sum_of(&values).to_bits(), (expected + 0.0).to_bits());
            prop_assert_eq!(sum_of(&shuffled).to_bits(), (expected + 0.0).to_bits());
        }

        /// Values that are multiples of 2^-10 below 2^40 sum exactly in i128;
        /// the result then rounds once, which `as f64` does correctly.
        #[test]
        fn matches_exact_dyadic_arithmetic(units in proptest::collection::vec(-(1i64 << 50)..(1i64 << 50), 0..60)) {
            let values: Vec<f64> = units.iter().map(|&u| u as f64 / 1024.0).collect();
            let exact: i128 = units.iter().map(|&u| i128::from(u)).sum();
            let expected = exact as f64 / 1024.0;
            prop_assert_eq!(sum_of(&values).to_bits(), (expected + 0.0).to_bits());
        }

        /// Thousands of updates (past several carry propagations) of values of
        /// one magnitude, then of another, each removed again in part: the
        /// span of chunks grows and carries cross it, in both signs.
        #[test]
        fn long_runs_across_carries_match_python_fsum(
            first in proptest::collection::vec(-1e3f64..1e3, 1500..2500),
            second in proptest::collection::vec(any_finite(), 0..40),
            keep in 0usize..1500,
        ) {
            let mut sum = ExactSum::new();
            for &x in first.iter().chain(&second) {
                sum.add(x);
            }
            for &x in &first[keep..] {
                sum.remove(x);
            }
            let kept: Vec<f64> = first[..keep].iter().chain(&second).copied().collect();
            prop_assert_eq!(sum.value().to_bits(), (fsum_reference(&kept) + 0.0).to_bits());
        }

        /// Sums of any split of the values, merged in any order, equal the
        /// sum of all of them; carries pending on either side included.
        #[test]
        fn merged_parts_equal_one_sum(
            values in proptest::collection::vec(any_finite(), 0..3000),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
            non_finite in proptest::collection::vec(prop::sample::select(vec![f64::INFINITY, f64::NEG_INFINITY, f64::NAN]), 0..2),
        ) {
            let mut bounds: Vec<usize> = cuts.iter().map(|cut| cut.index(values.len() + 1)).collect();
            bounds.extend([0, values.len()]);
            bounds.sort_unstable();
            let mut merged = ExactSum::new();
            for (i, part) in bounds.windows(2).enumerate().rev() {
                let mut partial = ExactSum::new();
                values[part[0]..part[1]].iter().for_each(|&x| partial.add(x));
                if i % 2 == 1 {
                    // Half the parts cross a process boundary on the way.
                    partial = crate::over_the_wire(partial);
                }
                merged.merge(&partial);
            }
            let mut all = ExactSum::new();
            for &x in values.iter().chain(&non_finite) {
                all.add(x);
            }
            let mut extremes = ExactSum::new();
            non_finite.iter().for_each(|&x| extremes.add(x));
            merged.merge(&extremes);
            prop_assert_eq!(merged.value().to_bits(), all.value().to_bits());
            // The merged sum goes on taking values and carries.
            for &x in values.iter().take(1500) {
                merged.add(x);
                all.add(x);
            }
            prop_assert_eq!(merged.value().to_bits(), all.value().to_bits());
        }

        #[test]
        fn retraction_restores_a_fresh_sum(kept in proptest::collection::vec(any_finite(), 0..20), removed in proptest::collection::vec(any_finite(), 0..20)) {
            let mut sum = ExactSum::new();
            for (i, &x) in removed.iter().chain(&kept).enumerate() {
                sum.add(x);
                if i % 3 == 0 {
                    sum.add(f64::INFINITY);
                    sum.add(f64::NAN);
                }
            }
            for i in 0..removed.len() + kept.len() {
                if i % 3 == 0 {
                    sum.remove(f64::INFINITY);
                    sum.remove(f64::NAN);
                }
            }
            for &x in &removed {
                sum.remove(x);
            }
            prop_assert_eq!(sum.value().to_bits(), sum_of(&kept).to_bits());
        }
    }
}
