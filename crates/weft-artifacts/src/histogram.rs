//! Histogram counts that need no range up front.
//!
//! A histogram's bins are as wide as a power of two and start at its multiples, and the
//! bars drawn are the narrowest such bins of which at most [`BARS`] span the values (so 20 to
//! 40 bars; integers get bins at least 1 wide, so each bar holds whole numbers). Bins like
//! these can be counted before the range is known: values are counted into narrow bins, and
//! when one falls outside them, neighbours merge in pairs into bins twice as wide, still
//! aligned, until it fits, which loses no count. So an array's histogram is counted in the
//! pass that hashes and describes it, while each block is in the cache, instead of a second
//! pass over memory once its minimum and maximum are known; and parts counted on different
//! threads add up exactly, whatever their order.

use crate::NpyElement;

/// Most bars in a histogram.
pub(crate) const BARS: usize = 40;
/// Counters in the window of bins being counted: room for the values to spread past the
/// range seen so far before bins must merge.
const WINDOW: usize = 4 * BARS;
/// Values counted into one set of 32-bit lane counters before they are added up.
const LANE_BLOCK: usize = 1 << 16;
/// Lanes of counters: eight values are placed at a time, each in its own lane, so that runs
/// of values in one bin do not wait on each other's increments.
const LANES: usize = 8;
/// A counter for the values below the window (and NaN, and -∞), the window, and one for
/// those above it (and +∞).
const GUARDED: usize = WINDOW + 2;
/// Bins are never narrower than 2^this, the smallest normal float: narrower ones could not
/// be told apart.
const MIN_EXPONENT: i32 = -1022;
/// Nor wider than 2^this: 40 such bins span every finite float.
const MAX_EXPONENT: i32 = 1022;

/// Counts of finite values in aligned bins of a power-of-two width.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Histogram {
    /// Bins are 2^`exponent` wide.
    exponent: i32,
    /// The narrowest bins allowed: 0 (whole numbers) for integers.
    floor_exponent: i32,
    /// The index of the first counter's bin (a value's bin is `floor(value / width)`).
    start: i64,
    /// [`WINDOW`] counters from `start` on; empty until the first finite value.
    counts: Vec<u64>,
}

/// What a histogram draws: the count of each bar, the first bar's lower edge and the last
/// bar's upper edge.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bars {
    pub(crate) counts: Vec<u64>,
    pub(crate) low: f64,
    pub(crate) high: f64,
}

impl Histogram {
    /// Nothing counted yet; `integers` for values that are all whole numbers.
    pub(crate) fn new(integers: bool) -> Self {
        Self {
            exponent: MIN_EXPONENT,
            floor_exponent: if integers { 0 } else { MIN_EXPONENT },
            start: 0,
            counts: Vec::new(),
        }
    }

    /// Counts the finite values of `values`, in the cache or about to be.
    pub(crate) fn add<T: NpyElement>(&mut self, values: &[T]) {
        for block in values.chunks(LANE_BLOCK) {
            self.add_block(block, false);
        }
    }

    /// Counts values that are in memory, not in the cache: each piece is read ahead (see
    /// [`read_ahead`]) while the one before it is counted.
    pub(crate) fn add_from_memory<T: NpyElement>(&mut self, values: &[T]) {
        for block in values.chunks(LANE_BLOCK) {
            self.add_block(block, true);
        }
    }

    /// Counts values one at a time, in blocks.
    #[cfg(any(feature = "ndarray", feature = "arrow", feature = "polars"))]
    pub(crate) fn add_each(&mut self, values: impl Iterator<Item = f64>) {
        const BLOCK: usize = 4096;
        let mut block = Vec::with_capacity(BLOCK);
        for value in values {
            block.push(value);
            if block.len() == BLOCK {
                self.add_block(&block, false);
                block.clear();
            }
        }
        self.add_block(&block, false);
    }

    fn add_block<T: NpyElement>(&mut self, values: &[T], from_memory: bool) {
        if self.counts.is_empty() {
            match finite_range(values) {
                Some((low, high)) => self.cover(low, high, self.floor_exponent),
                None => return,
            }
        }
        loop {
            let mut lanes = self.count(values, from_memory);
            let guards = |lane: &[u32; GUARDED]| u64::from(lane[0]) + u64::from(lane[WINDOW + 1]);
            if lanes.iter().map(guards).sum::<u64>() > 0 {
                // Values outside the window, or not finite: the block is counted again with
                // the window widened if its finite values need it.
                match finite_range(values) {
                    Some((low, high)) if !self.covers(low, high) => {
                        self.cover(low, high, self.exponent);
                        continue;
                    }
                    Some(_) => self.place_guarded(values, &mut lanes),
                    None => {}
                }
            }
            for (index, count) in self.counts.iter_mut().enumerate() {
                *count += lanes
                    .iter()
                    .map(|lane| u64::from(lane[index + 1]))
                    .sum::<u64>();
            }
            return;
        }
    }

    /// Places the finite values of `values` that [`Placement::place`] put in a guard though
    /// the window holds them (none, unless the two disagree on a value).
    fn place_guarded<T: NpyElement>(&self, values: &[T], lanes: &mut [[u32; GUARDED]; LANES]) {
        let placement = self.placement();
        for value in values.iter().filter_map(|value| value.as_f64()) {
            let placed = placement.place(value);
            if value.is_finite() && (placed == 0 || placed == WINDOW + 1) {
                let bin = self.index(value) - self.start;
                if let Ok(bin @ 0..WINDOW) = usize::try_from(bin) {
                    lanes[0][bin + 1] += 1;
                }
            }
        }
    }

    fn placement(&self) -> Placement {
        Placement {
            scale: power_of_two(-self.exponent),
            offset: GRID - 1.0 + self.start as f64,
        }
    }

    /// The lane counters of `values` over the window, guards included.
    fn count<T: NpyElement>(
        &self,
        values: &[T],
        from_memory: bool,
    ) -> Box<[[u32; GUARDED]; LANES]> {
        let placement = self.placement();
        let place = |value: T| placement.place(value.as_f64().unwrap_or(f64::NAN));
        let mut lanes = Box::new([[0u32; GUARDED]; LANES]);
        let mut count_piece = |piece: &[T]| {
            let blocks = piece.chunks_exact(LANES);
            for &value in blocks.remainder() {
                lanes[0][place(value)] += 1;
            }
            for block in blocks {
                // A block's bins first, then its counts: placed in a plain loop, the bins
                // measured faster than built with `array::from_fn`.
                let mut bins = [0usize; LANES];
                for (bin, &value) in bins.iter_mut().zip(block) {
                    *bin = place(value);
                }
                for (lane, &bin) in bins.iter().enumerate() {
                    lanes[lane][bin] += 1;
                }
            }
        };
        if !from_memory {
            count_piece(values);
            return lanes;
        }
        let mut pieces = values.chunks(AHEAD_BYTES / std::mem::size_of::<T>().max(1));
        let mut next = pieces.next();
        if let Some(first) = next {
            read_ahead(first);
        }
        while let Some(piece) = next {
            next = pieces.next();
            if let Some(following) = next {
                read_ahead(following);
            }
            count_piece(piece);
        }
        lanes
    }

    /// Whether the window holds every value in `low..=high`.
    fn covers(&self, low: f64, high: f64) -> bool {
        let (first, last) = (self.index(low), self.index(high));
        first >= self.start && last < self.start + WINDOW as i64
    }

    fn index(&self, value: f64) -> i64 {
        index_at(value, self.exponent)
    }

    /// Moves the window over `low..=high` and what was counted before, with bins at least
    /// 2^`at_least` wide, merging the bins counted so far as far as that takes.
    fn cover(&mut self, low: f64, high: f64, at_least: i32) {
        let (low, high) = match self.occupied() {
            Some((first, last)) => (low.min(self.edge(first)), high.max(self.edge(last))),
            None => (low, high),
        };
        // Never narrower than the bins counted so far (`exponent` starts at the minimum).
        let exponent = bar_exponent(low, high, at_least.max(self.exponent));
        let (first, last) = (index_at(low, exponent), index_at(high, exponent));
        // The slack goes evenly to both sides: the values may spread either way.
        let start = first - (WINDOW as i64 - (last - first + 1)) / 2;
        let mut counts = vec![0u64; WINDOW];
        if !self.counts.is_empty() {
            let shift = exponent - self.exponent;
            for (index, &count) in self.counts.iter().enumerate() {
                if count > 0 {
                    let merged = coarser(self.start + index as i64, shift);
                    counts[(merged - start) as usize] += count;
                }
            }
        }
        self.exponent = exponent;
        self.start = start;
        self.counts = counts;
    }

    /// The first and last bins with a count, as bin indices.
    fn occupied(&self) -> Option<(i64, i64)> {
        let first = self.counts.iter().position(|&count| count > 0)?;
        let last = self.counts.iter().rposition(|&count| count > 0)?;
        Some((self.start + first as i64, self.start + last as i64))
    }

    /// The lower edge of bin `index`: a value that lands in it would land with it in any
    /// coarser bin.
    fn edge(&self, index: i64) -> f64 {
        edge(index, self.exponent)
    }

    /// Adds what `other` counted.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        let Some((first, last)) = other.occupied() else {
            return;
        };
        let at_least = self.exponent.max(other.exponent);
        self.cover(other.edge(first), other.edge(last), at_least);
        let shift = self.exponent - other.exponent;
        for (index, &count) in other.counts.iter().enumerate() {
            if count > 0 {
                let merged = coarser(other.start + index as i64, shift);
                self.counts[(merged - self.start) as usize] += count;
            }
        }
    }

    /// The bars of values whose finite ones span `low..=high`: the narrowest bins, at most
    /// [`BARS`] of them over that range. `None` when nothing was counted.
    pub(crate) fn bars(&self, (low, high): (f64, f64)) -> Option<Bars> {
        self.occupied()?;
        if !(low.is_finite() && high.is_finite() && low <= high) {
            return None;
        }
        let exponent = bar_exponent(low, high, self.exponent);
        let shift = exponent - self.exponent;
        let (first, last) = (index_at(low, exponent), index_at(high, exponent));
        let mut counts = vec![0u64; (last - first + 1) as usize];
        for (index, &count) in self.counts.iter().enumerate() {
            if count > 0 {
                // A range given that does not hold every value counted is stretched no
                // further: the values outside it are counted in the bar at its end.
                let bar = coarser(self.start + index as i64, shift).clamp(first, last);
                counts[(bar - first) as usize] += count;
            }
        }
        Some(Bars {
            counts,
            low: edge(first, exponent),
            high: edge(last + 1, exponent),
        })
    }
}

/// Where values go among the window's counters.
#[derive(Clone, Copy)]
struct Placement {
    /// 1 / the bins' width.
    scale: f64,
    /// [`GRID`] - 1 + the index of the window's first bin.
    offset: f64,
}

impl Placement {
    /// The counter of `value` (see [`index_at`]), without a branch: a value below the window
    /// converts to 0 (so do NaN and -∞), one above it is clamped to the last guard. Exact,
    /// and the same in every window: the sum on the grid, minus a whole number, is a small
    /// number on the grid.
    fn place(self, value: f64) -> usize {
        (((value * self.scale + GRID) - self.offset) as u32).min(WINDOW as u32 + 1) as usize
    }
}

/// Adding this puts a value (in bin widths) on a grid of 2^-40 bins (coarser for values far
/// from 0, on their own precision): a value a hair below a bin's upper edge rounds up to it.
/// Without it, where a value that close to an edge went would depend on the window the sum
/// was taken in, and so on how the values were split between threads.
const GRID: f64 = 6144.0;

/// The exponent of the narrowest bins, at least 2^`at_least` wide, of which at most [`BARS`]
/// hold every value in `low..=high` (finite, `low <= high`).
fn bar_exponent(low: f64, high: f64, at_least: i32) -> i32 {
    // Not narrower than a few steps between floats of the largest magnitude: narrower bins
    // could hold nothing between them, and this keeps every bin's index below 2^52, where
    // the arithmetic on indices, as floats and as integers, is exact.
    let magnitude = low.abs().max(high.abs());
    let resolution = if magnitude > 0.0 {
        magnitude.log2().floor() as i32 - 51
    } else {
        MIN_EXPONENT
    };
    // Below this estimate, more than twice [`BARS`] bins would span the range; divided
    // first, so that a range wider than the largest float is measured too.
    let estimate = (high / BARS as f64 - low / BARS as f64).log2().floor();
    let estimate = if estimate.is_finite() {
        estimate as i32
    } else {
        MIN_EXPONENT
    };
    let mut exponent = at_least
        .max(resolution)
        .max(estimate)
        .clamp(MIN_EXPONENT, MAX_EXPONENT);
    while exponent < MAX_EXPONENT
        && index_at(high, exponent) - index_at(low, exponent) >= BARS as i64
    {
        exponent += 1;
    }
    exponent
}

/// The index of the bin 2^`exponent` wide that holds `value`: `floor(value / width)`, but
/// for a value a hair below a bin's upper edge (see [`GRID`]).
fn index_at(value: f64, exponent: i32) -> i64 {
    ((value * power_of_two(-exponent) + GRID) - GRID).floor() as i64
}

/// The lower edge of bin `index` of bins 2^`exponent` wide; for the widest bins, whose outer
/// edges lie past the largest float, the largest float, which lands in the same bin.
fn edge(index: i64, exponent: i32) -> f64 {
    (index as f64 * power_of_two(exponent)).clamp(-f64::MAX, f64::MAX)
}

/// The index of the bin `shift` doublings wider that holds bin `index`.
fn coarser(index: i64, shift: i32) -> i64 {
    index >> shift.clamp(0, 63)
}

/// 2^`exponent`, for exponents of normal floats.
fn power_of_two(exponent: i32) -> f64 {
    let exponent = exponent.clamp(MIN_EXPONENT, 1023);
    f64::from_bits(((exponent + 1023) as u64) << 52)
}

/// The smallest and largest finite value of `values`, if there is one.
fn finite_range<T: NpyElement>(values: &[T]) -> Option<(f64, f64)> {
    let mut range: Option<(f64, f64)> = None;
    for value in values.iter().filter_map(|value| value.as_f64()) {
        if value.is_finite() {
            let (low, high) = range.get_or_insert((value, value));
            *low = low.min(value);
            *high = high.max(value);
        }
    }
    range
}

/// How far ahead of the counting values are read, in bytes: within the first-level cache.
const AHEAD_BYTES: usize = 32 * 1024;

/// Reads one byte of every cache line of `values`, so that they are on their way to the cache
/// when counted. Counting takes enough instructions per value that the processor does not
/// look far enough ahead by itself: 32 million values took 140 ms to count from memory, 38 ms
/// from the cache, and 58 ms from memory read ahead like this (the loads here are independent
/// of each other, so all of them are in flight at once).
fn read_ahead<T: NpyElement>(values: &[T]) {
    let bytes: &[u8] = bytemuck::cast_slice(values);
    let mut touched = 0u8;
    for &byte in bytes.iter().step_by(64) {
        touched ^= byte;
    }
    std::hint::black_box(touched);
}

/// Counts `values` on every core (parts of at least a million values), from memory.
pub(crate) fn count_in_parallel<T: NpyElement>(values: &[T], integers: bool) -> Histogram {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = values.len().div_ceil(threads).max(1 << 20);
    let count = |part: &[T]| {
        let mut histogram = Histogram::new(integers);
        histogram.add_from_memory(part);
        histogram
    };
    if values.len() <= per_thread {
        return count(values);
    }
    let count = &count;
    let parts: Vec<Histogram> = std::thread::scope(|scope| {
        let running: Vec<_> = values
            .chunks(per_thread)
            .map(|part| scope.spawn(move || count(part)))
            .collect();
        running
            .into_iter()
            .map(|thread| thread.join().expect("counting does not panic"))
            .collect()
    });
    let mut whole = Histogram::new(integers);
    for part in &parts {
        whole.merge(part);
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bars of `values` computed the plain way: the narrowest power-of-two width with at
    /// most 40 bins over the range, each value's bin by division.
    fn plain_bars(values: &[f64], integers: bool) -> Option<Bars> {
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let low = finite.iter().copied().reduce(f64::min)?;
        let high = finite.iter().copied().reduce(f64::max)?;
        let floor = if integers { 0 } else { MIN_EXPONENT };
        let exponent = bar_exponent(low, high, floor);
        let width = 2f64.powi(exponent);
        // `floor(value / width)`, a value within 2^-41 of a width below an edge rounded up
        // to it.
        let bin_of = |value: f64, width: f64| ((value / width + 6144.0) - 6144.0).floor() as i64;
        let bin = |value: f64| bin_of(value, width);
        let (first, last) = (bin(low), bin(high));
        assert!(last - first < BARS as i64, "{low} {high} {exponent}");
        // Bins narrower than a few steps between floats are not used, however few the bars.
        let magnitude = low.abs().max(high.abs());
        if exponent > floor && high - low > magnitude * 1e-12 {
            let narrower = width / 2.0;
            assert!(
                bin_of(high, narrower) - bin_of(low, narrower) >= BARS as i64,
                "the narrowest width that fits"
            );
        }
        let mut counts = vec![0u64; (last - first + 1) as usize];
        for value in finite {
            counts[(bin(value) - first) as usize] += 1;
        }
        Some(Bars {
            counts,
            low: (first as f64 * width).max(-f64::MAX),
            high: ((last + 1) as f64 * width).min(f64::MAX),
        })
    }

    fn range(values: &[f64]) -> (f64, f64) {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        (
            finite.clone().reduce(f64::min).unwrap_or(f64::NAN),
            finite.reduce(f64::max).unwrap_or(f64::NAN),
        )
    }

    fn streamed(values: &[f64], block: usize) -> Histogram {
        let mut histogram = Histogram::new(false);
        for part in values.chunks(block) {
            histogram.add(part);
        }
        histogram
    }

    /// Counted in blocks of any size, or in pieces merged in any order: the same bars as
    /// counting the plain way.
    #[test]
    fn counts_do_not_depend_on_how_the_values_come() {
        let mut seed = 7u64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        // A range that keeps growing (each block past the last), values on both sides of 0,
        // a narrow band far from 0, and non-finite values among them.
        let growing: Vec<f64> = (0..50_000).map(|i| i as f64 * (1.0 + random())).collect();
        let signed: Vec<f64> = (0..30_000).map(|_| (random() - 0.3) * 1e6).collect();
        let band: Vec<f64> = (0..30_000).map(|_| 1e9 + random() * 1e-3).collect();
        let mut odd = signed.clone();
        for (at, value) in [
            (5, f64::NAN),
            (70, f64::INFINITY),
            (9000, f64::NEG_INFINITY),
        ] {
            odd[at] = value;
        }
        let reversed: Vec<f64> = growing.iter().rev().copied().collect();
        for values in [&growing, &signed, &band, &odd, &reversed] {
            let expected = plain_bars(values, false);
            for block in [1, 7, 1000, 1 << 20] {
                assert_eq!(
                    streamed(values, block).bars(range(values)),
                    expected,
                    "blocks of {block}"
                );
            }
            let (left, right) = values.split_at(values.len() / 3);
            let mut merged = streamed(right, 333);
            merged.merge(&streamed(left, 100));
            assert_eq!(merged.bars(range(values)), expected, "merged");
            assert_eq!(
                count_in_parallel(values, false).bars(range(values)),
                expected
            );
        }
    }

    #[test]
    fn bars_are_the_narrowest_aligned_bins_that_fit() {
        let bars = |values: &[f64], integers| {
            let mut histogram = Histogram::new(integers);
            histogram.add(values);
            histogram.bars(range(values)).unwrap()
        };
        // 0..=39 in whole numbers: one bar per number.
        let numbers: Vec<f64> = (0..40).map(f64::from).collect();
        let whole = bars(&numbers, true);
        assert_eq!(
            (whole.counts, whole.low, whole.high),
            (vec![1; 40], 0.0, 40.0)
        );
        // 0..=40 no longer fits 40 bars of 1: bars of 2.
        let more: Vec<f64> = (0..=40).map(f64::from).collect();
        let wider = bars(&more, true);
        assert_eq!((wider.counts.len(), wider.low, wider.high), (21, 0.0, 42.0));
        // Integers 0..=9 are not split into fractions of a number; floats are.
        assert_eq!(bars(&numbers[..10], true).counts, vec![1; 10]);
        let fine = bars(&numbers[..10], false);
        assert_eq!((fine.counts.len(), fine.low, fine.high), (37, 0.0, 9.25));
        // -1..=1: bars of 1/16, edges on their multiples.
        let unit = bars(&[-1.0, 0.0, 0.5, 1.0], false);
        assert_eq!((unit.counts.len(), unit.low, unit.high), (33, -1.0, 1.0625));
        assert_eq!(unit.counts.iter().sum::<u64>(), 4);
        // A value a hair below an edge counts with the edge, the same way in every window.
        let hair = bars(&[-1e-17, 0.5, 1.0 - f64::EPSILON / 2.0], false);
        assert_eq!((hair.low, hair.high), (0.0, 1.03125));
        assert_eq!(
            (hair.counts[0], hair.counts[16], hair.counts[32]),
            (1, 1, 1)
        );
        // One value repeated: one bar.
        let single = bars(&[0.3; 100], false);
        assert_eq!(single.counts, vec![100]);
        assert!(single.low <= 0.3 && 0.3 < single.high);
        assert_eq!(bars(&[0.0; 3], false).counts, vec![3]);
    }

    #[test]
    fn extreme_values_are_counted_without_overflow() {
        let cases: [&[f64]; 5] = [
            &[f64::MAX, -f64::MAX, 0.0],
            &[f64::MIN_POSITIVE, 5e-324, 0.0, -5e-324],
            &[1e300, 1e300 * (1.0 + f64::EPSILON)],
            &[-1e-300, 1e300],
            &[1e15, 1e15 + 0.125],
        ];
        for values in cases {
            let mut histogram = Histogram::new(false);
            histogram.add(values);
            let bars = histogram.bars(range(values)).unwrap();
            assert_eq!(
                bars.counts.iter().sum::<u64>(),
                values.len() as u64,
                "{values:?}"
            );
            assert!(bars.counts.len() <= BARS, "{values:?}");
            assert_eq!(Some(bars), plain_bars(values, false), "{values:?}");
        }
        let mut nothing = Histogram::new(false);
        nothing.add(&[f64::NAN, f64::INFINITY]);
        nothing.add::<f64>(&[]);
        assert_eq!(nothing.bars((0.0, 1.0)), None);
        let mut bools = Histogram::new(false);
        bools.add(&[true, false]);
        assert_eq!(bools.bars((0.0, 1.0)), None);
    }
}
