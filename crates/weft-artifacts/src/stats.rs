//! Summary statistics of numbers, gathered block by block while the numbers are written.
//!
//! Means and variances are combined across blocks with Chan et al.'s pairwise formulas, so a
//! long array loses no precision to one huge running sum. Statistics cover the finite values;
//! NaNs and infinities are counted apart (JSON has no way to say them, and a `min` of `-inf`
//! tells less than "3 values are infinite").

use crate::io::ArtifactWriter;

/// An integer type whose slices [`Summary::add_integer_slice`] describes.
pub trait Integer: Copy + Ord {
    /// The value, widened without loss.
    fn wide(self) -> i128;
    /// The nearest float to the value.
    fn float(self) -> f64;
}

macro_rules! integers {
    ($($ty:ty),*) => {$(
        impl Integer for $ty {
            fn wide(self) -> i128 {
                self as i128
            }

            #[allow(clippy::cast_precision_loss)]
            fn float(self) -> f64 {
                self as f64
            }
        }
    )*};
}

integers!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// Statistics of the values seen so far.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    count: u64,
    mean: f64,
    m2: f64,
    min: Option<f64>,
    max: Option<f64>,
    integer_range: Option<(i128, i128)>,
    nan: u64,
    infinite: u64,
    trues: Option<u64>,
    floats: bool,
}

impl Summary {
    /// Adds a block of floats.
    pub fn add_floats<T: Copy + Into<f64>>(&mut self, values: &[T]) {
        self.floats = true;
        // First pass assuming every value is finite: four independent lanes keep the
        // processor's pipelines full. A NaN or an infinity makes the sum non-finite.
        let (mut sum, mut low, mut high) = ([0.0; 4], [f64::INFINITY; 4], [f64::NEG_INFINITY; 4]);
        let blocks = values.chunks_exact(4);
        let rest = blocks.remainder();
        // Plain comparisons, not `f64::min`/`max`: one instruction each instead of a NaN-aware
        // sequence, three times faster over a large array. A NaN they mishandle makes the sum
        // NaN, and the block takes the slow path.
        let lower = |low: f64, value: f64| if value < low { value } else { low };
        let higher = |high: f64, value: f64| if value > high { value } else { high };
        for block in blocks {
            for lane in 0..4 {
                let value: f64 = block[lane].into();
                sum[lane] += value;
                low[lane] = lower(low[lane], value);
                high[lane] = higher(high[lane], value);
            }
        }
        for (lane, &value) in rest.iter().enumerate() {
            let value: f64 = value.into();
            sum[lane] += value;
            low[lane] = lower(low[lane], value);
            high[lane] = higher(high[lane], value);
        }
        let total: f64 = sum.iter().sum();
        if !total.is_finite() {
            self.add_floats_one_by_one(values);
            return;
        }
        let count = values.len();
        if count == 0 {
            return;
        }
        let mean = total / count as f64;
        let mut squares = [0.0; 4];
        let blocks = values.chunks_exact(4);
        let rest = blocks.remainder();
        for block in blocks {
            for lane in 0..4 {
                let deviation = block[lane].into() - mean;
                squares[lane] += deviation * deviation;
            }
        }
        for &value in rest {
            let deviation = value.into() - mean;
            squares[0] += deviation * deviation;
        }
        let low = low.iter().copied().fold(f64::INFINITY, f64::min);
        let high = high.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        self.combine(count as u64, mean, squares.iter().sum(), low, high);
    }

    /// The slow path for a block that holds NaNs, infinities, or overflows a sum.
    fn add_floats_one_by_one<T: Copy + Into<f64>>(&mut self, values: &[T]) {
        let finite = || {
            values
                .iter()
                .map(|&value| value.into())
                .filter(|value: &f64| value.is_finite())
        };
        for value in values.iter().map(|&value| value.into()) {
            if value.is_nan() {
                self.nan += 1;
            } else if value.is_infinite() {
                self.infinite += 1;
            }
        }
        let count = finite().count();
        if count == 0 {
            return;
        }
        // Mean from scaled values, so that finite values near f64::MAX do not overflow.
        let mean = finite().map(|value| value / count as f64).sum::<f64>();
        let m2 = finite().map(|value| (value - mean) * (value - mean)).sum();
        let low = finite().fold(f64::INFINITY, f64::min);
        let high = finite().fold(f64::NEG_INFINITY, f64::max);
        self.combine(count as u64, mean, m2, low, high);
    }

    /// Adds a block of integers.
    pub fn add_integers(&mut self, values: impl Iterator<Item = i128> + Clone) {
        let (mut count, mut sum, mut low, mut high) = (0u64, 0i128, i128::MAX, i128::MIN);
        for value in values.clone() {
            count += 1;
            sum += value;
            low = low.min(value);
            high = high.max(value);
        }
        if count == 0 {
            return;
        }
        let mean = sum as f64 / count as f64;
        let m2 = values
            .map(|value| {
                let deviation = value as f64 - mean;
                deviation * deviation
            })
            .sum();
        self.combine_integers(count, mean, m2, low, high);
    }

    /// Adds a block of integers held in memory: [`Summary::add_integers`] at several times
    /// the speed (four independent lanes; ranges compared in the values' own type; squares
    /// from each value's float, not from a 128-bit one, whose conversion is a library call).
    pub fn add_integer_slice<T: Integer>(&mut self, values: &[T]) {
        let Some(&first) = values.first() else {
            return;
        };
        let (mut sum, mut low, mut high) = ([0i128; 4], [first; 4], [first; 4]);
        let blocks = values.chunks_exact(4);
        for (lane, &value) in blocks.remainder().iter().enumerate() {
            sum[lane] += value.wide();
            low[lane] = low[lane].min(value);
            high[lane] = high[lane].max(value);
        }
        for block in blocks {
            for lane in 0..4 {
                sum[lane] += block[lane].wide();
                low[lane] = low[lane].min(block[lane]);
                high[lane] = high[lane].max(block[lane]);
            }
        }
        let count = values.len() as u64;
        let mean = sum.iter().sum::<i128>() as f64 / count as f64;
        let mut squares = [0.0; 4];
        let blocks = values.chunks_exact(4);
        for &value in blocks.remainder() {
            let deviation = value.float() - mean;
            squares[0] += deviation * deviation;
        }
        for block in blocks {
            for lane in 0..4 {
                let deviation = block[lane].float() - mean;
                squares[lane] += deviation * deviation;
            }
        }
        let low = low.into_iter().min().unwrap_or(first).wide();
        let high = high.into_iter().max().unwrap_or(first).wide();
        self.combine_integers(count, mean, squares.iter().sum(), low, high);
    }

    fn combine_integers(&mut self, count: u64, mean: f64, m2: f64, low: i128, high: i128) {
        self.integer_range = Some(match self.integer_range {
            Some((old_low, old_high)) => (old_low.min(low), old_high.max(high)),
            None => (low, high),
        });
        self.combine(count, mean, m2, low as f64, high as f64);
    }

    /// Adds a block of booleans.
    pub fn add_bools(&mut self, values: &[bool]) {
        let trues = values.iter().filter(|&&value| value).count() as u64;
        *self.trues.get_or_insert(0) += trues;
        self.count += values.len() as u64;
    }

    /// Adds what `other` saw.
    pub fn merge(&mut self, other: &Summary) {
        self.nan += other.nan;
        self.infinite += other.infinite;
        self.floats |= other.floats;
        if let Some(trues) = other.trues {
            *self.trues.get_or_insert(0) += trues;
            self.count += other.count;
            return;
        }
        if let Some((low, high)) = other.integer_range {
            self.integer_range = Some(match self.integer_range {
                Some((old_low, old_high)) => (old_low.min(low), old_high.max(high)),
                None => (low, high),
            });
        }
        if let Some((low, high)) = other.range() {
            self.combine(other.count, other.mean, other.m2, low, high);
        }
    }

    fn combine(&mut self, count: u64, mean: f64, m2: f64, low: f64, high: f64) {
        let total = self.count + count;
        let delta = mean - self.mean;
        let weight = count as f64 / total as f64;
        self.mean += delta * weight;
        self.m2 += m2 + delta * delta * self.count as f64 * weight;
        self.count = total;
        self.min = Some(self.min.map_or(low, |old| old.min(low)));
        self.max = Some(self.max.map_or(high, |old| old.max(high)));
    }

    /// Whether the values were integers.
    #[cfg(any(feature = "arrow", feature = "polars"))]
    pub(crate) fn integers(&self) -> bool {
        self.integer_range.is_some()
    }

    /// The smallest and largest finite value, if there was one.
    pub fn range(&self) -> Option<(f64, f64)> {
        self.min.zip(self.max)
    }

    /// Records the statistics as metadata of the version being written.
    pub(crate) fn describe(&self, writer: &mut ArtifactWriter<'_>) {
        for (key, value) in self.facts() {
            writer.describe(key, value);
        }
    }

    /// The statistics as metadata entries: `min`, `max`, `mean`, `std` of the finite values,
    /// `nan_count` and `infinite_count` for floats, `true_count` for booleans.
    pub fn facts(&self) -> Vec<(&'static str, serde_json::Value)> {
        let finite = |value: f64| value.is_finite().then_some(value);
        let mut facts = Vec::new();
        if let Some(trues) = self.trues {
            facts.push(("true_count", trues.into()));
            if self.count > 0 {
                facts.push(("mean", (trues as f64 / self.count as f64).into()));
            }
            return facts;
        }
        if self.floats {
            facts.push(("nan_count", self.nan.into()));
            facts.push(("infinite_count", self.infinite.into()));
        }
        if self.count == 0 {
            return facts;
        }
        match self.integer_range {
            Some((low, high)) => {
                facts.push(("min", integer(low)));
                facts.push(("max", integer(high)));
            }
            None => {
                if let Some((low, high)) = self.range() {
                    facts.push(("min", low.into()));
                    facts.push(("max", high.into()));
                }
            }
        }
        if let Some(mean) = finite(self.mean) {
            facts.push(("mean", mean.into()));
        }
        if let Some(std) = finite((self.m2 / self.count as f64).sqrt()) {
            facts.push(("std", std.into()));
        }
        facts
    }
}

fn integer(value: i128) -> serde_json::Value {
    match (i64::try_from(value), u64::try_from(value)) {
        (Ok(signed), _) => signed.into(),
        (_, Ok(unsigned)) => unsigned.into(),
        _ => (value as f64).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn blocks_combine_to_the_statistics_of_the_whole() {
        let values: Vec<f64> = (0..10_001).map(|i| (i as f64).sin() * 1e3 + 1e9).collect();
        let mut whole = Summary::default();
        whole.add_floats(&values);
        let mut blocks = Summary::default();
        for block in values.chunks(777) {
            blocks.add_floats(block);
        }
        let mut merged = Summary::default();
        for half in values.chunks(5000) {
            let mut part = Summary::default();
            part.add_floats(half);
            merged.merge(&part);
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64;
        for summary in [whole, blocks, merged] {
            assert!(close(summary.mean, mean));
            assert!(close(summary.m2 / summary.count as f64, var), "{summary:?}");
        }
    }

    #[test]
    fn nans_and_infinities_are_counted_apart() {
        let mut summary = Summary::default();
        summary.add_floats(&[1.0, f64::NAN, 3.0, f64::INFINITY, f64::NEG_INFINITY]);
        summary.add_floats(&[f64::NAN]);
        assert_eq!((summary.nan, summary.infinite, summary.count), (2, 2, 2));
        assert_eq!(summary.range(), Some((1.0, 3.0)));
        assert!(close(summary.mean, 2.0));
    }

    #[test]
    fn huge_finite_values_do_not_overflow_the_mean() {
        let mut summary = Summary::default();
        summary.add_floats(&[f64::MAX, f64::MAX]);
        assert_eq!(summary.mean, f64::MAX);
    }

    #[test]
    fn integers_keep_their_exact_range() {
        let mut summary = Summary::default();
        summary.add_integers([u64::MAX as i128, 0].into_iter());
        assert_eq!(summary.integer_range, Some((0, u64::MAX as i128)));
        assert_eq!(integer(u64::MAX as i128), serde_json::json!(u64::MAX));
        let mut slice = Summary::default();
        slice.add_integer_slice(&[u64::MAX, 0]);
        assert_eq!(slice.integer_range, summary.integer_range);
    }

    #[test]
    fn integer_slices_are_described_like_integer_streams() {
        let odd = [i64::MIN, -7, 0, 3, 3, 12, i64::MAX, 41, -2];
        for length in 0..=odd.len() {
            let values = &odd[..length];
            let (mut slice, mut stream) = (Summary::default(), Summary::default());
            slice.add_integer_slice(values);
            stream.add_integers(values.iter().map(|&value| i128::from(value)));
            assert_eq!(slice.count, stream.count, "{values:?}");
            assert_eq!(slice.integer_range, stream.integer_range, "{values:?}");
            assert!(close(slice.mean, stream.mean), "{values:?}");
            assert!(close(slice.m2, stream.m2), "{values:?}");
        }
        let mut small = Summary::default();
        small.add_integer_slice(&[200u8, 1, 255, 0, 7]);
        assert_eq!(small.integer_range, Some((0, 255)));
        assert!(close(small.mean, 92.6));
    }
}
