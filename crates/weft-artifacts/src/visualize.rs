//! Built-in visualizations, drawn by weft itself: histograms as SVG, tables as CSV.

use std::fmt::Write as _;

use crate::NpyElement;
use crate::io::ArtifactWriter;
use crate::{Result, VisualizationType};

/// Bars in a histogram.
pub(crate) const BINS: usize = 40;
/// Fewer values than this draw no histogram: they show no distribution, and a step that
/// returns a handful of numbers should not pay a second file for each output.
pub(crate) const MIN_HISTOGRAM_VALUES: usize = 32;

/// Counts `values` into equal-width bins between the `min` and `max` the writer has
/// described (so they are not computed twice) and writes `histogram.svg`, counting on every
/// core. Nothing is written when there is no finite value.
pub(crate) fn histogram<T: NpyElement>(
    writer: &mut ArtifactWriter<'_>,
    values: &[T],
) -> Result<()> {
    let Some((low, high)) = described_range(writer) else {
        return Ok(());
    };
    let counts = bin_in_parallel(values, low, high);
    write_histogram(writer, &counts, low, high)
}

/// [`histogram`] of values that are not contiguous in memory.
#[cfg(feature = "ndarray")]
pub(crate) fn histogram_of(
    writer: &mut ArtifactWriter<'_>,
    values: impl Iterator<Item = f64>,
) -> Result<()> {
    let Some((low, high)) = described_range(writer) else {
        return Ok(());
    };
    let counts = bin(values, low, high);
    write_histogram(writer, &counts, low, high)
}

fn described_range(writer: &ArtifactWriter<'_>) -> Option<(f64, f64)> {
    let bound = |key: &str| writer.metadata.get(key).and_then(serde_json::Value::as_f64);
    bound("min").zip(bound("max"))
}

fn write_histogram(
    writer: &mut ArtifactWriter<'_>,
    counts: &[u64],
    low: f64,
    high: f64,
) -> Result<()> {
    let svg = histogram_svg(counts, low, high, "");
    writer.write_visualization("histogram.svg", VisualizationType::Svg, |file| {
        Ok(file.write_all(svg.as_bytes())?)
    })
}

/// Histogram counts over a range, counted block by block (each core counts its own).
#[derive(Debug, Clone, PartialEq)]
struct Bins {
    low: f64,
    high: f64,
    counts: [u64; BINS],
}

impl Bins {
    fn new((low, high): (f64, f64)) -> Self {
        Self {
            low,
            high,
            counts: [0; BINS],
        }
    }

    /// Counts a block. Eight values are placed at a time, each in its own set of counters,
    /// so that runs of values in one bin do not wait on each other's increments; the
    /// placement has no branch (a value outside the range, or NaN, lands in a bin past the
    /// last, which is dropped), which measured a third faster than skipping such values.
    fn add<T: NpyElement>(&mut self, values: &[T]) {
        // Each piece is read ahead (see `read_ahead`) while the one before it is counted.
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
            self.count(piece);
        }
    }

    fn count<T: NpyElement>(&mut self, values: &[T]) {
        const LANES: usize = 8;
        let placement = Placement::new(self.low, self.high);
        if placement.scale == 0.0 {
            // One bar (every value equal) or a range too wide to measure: rare, placed one by
            // one.
            for value in values {
                let bin = placement.bin(value.as_f64().unwrap_or(f64::NAN)) as usize;
                if let Some(count) = self.counts.get_mut(bin) {
                    *count += 1;
                }
            }
            return;
        }
        let place = |value: T| placement.bin_shifted(value.as_f64().unwrap_or(f64::NAN));
        // 32-bit counters fill faster; a piece never holds more values than one can count.
        for piece in values.chunks(LANES << 31) {
            let mut lanes = [[0u32; SHIFTED_BINS]; LANES];
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
            for (bin, count) in self.counts.iter_mut().enumerate() {
                *count += lanes
                    .iter()
                    .map(|lane| u64::from(lane[bin + 1]))
                    .sum::<u64>();
            }
        }
    }

    fn merge(&mut self, other: &Bins) {
        for (count, more) in self.counts.iter_mut().zip(other.counts) {
            *count += more;
        }
    }
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

/// Counts a slice on this thread.
#[cfg(feature = "arrow")]
pub(crate) fn bin_slice<T: NpyElement>(values: &[T], low: f64, high: f64) -> Vec<u64> {
    let mut bins = Bins::new((low, high));
    bins.add(values);
    bins.counts.to_vec()
}

/// Runs `work` on parts of `values`, one per core (parts of at least a million values).
fn in_parallel<T: Sync, R: Send>(values: &[T], work: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = values.len().div_ceil(threads).max(1 << 20);
    if values.len() <= per_thread {
        return vec![work(values)];
    }
    let work = &work;
    std::thread::scope(|scope| {
        let running: Vec<_> = values
            .chunks(per_thread)
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        running
            .into_iter()
            .map(|thread| thread.join().expect("counting does not panic"))
            .collect()
    })
}

/// Counts a slice on every core.
pub(crate) fn bin_in_parallel<T: NpyElement>(values: &[T], low: f64, high: f64) -> Vec<u64> {
    let parts = in_parallel(values, |part| {
        let mut bins = Bins::new((low, high));
        bins.add(part);
        bins
    });
    let mut whole = Bins::new((low, high));
    for part in &parts {
        whole.merge(part);
    }
    whole.counts.to_vec()
}

/// The counters [`Placement::bin_shifted`] counts into: one below the range, the bins, one
/// above.
const SHIFTED_BINS: usize = BINS + 2;

/// Where a value goes among [`BINS`] equal bins spanning `low..=high`.
#[derive(Clone, Copy)]
struct Placement {
    low: f64,
    high: f64,
    scale: f64,
}

impl Placement {
    fn new(low: f64, high: f64) -> Self {
        let width = high - low;
        let scale = if width > 0.0 && width.is_finite() {
            BINS as f64 / width
        } else {
            0.0
        };
        Self { low, high, scale }
    }

    /// The bin of `value` plus one, in `0..SHIFTED_BINS`: 0 for a value below the range, NaN
    /// or -∞, `BINS + 1` for one above it. Needs a positive scale. Cheaper than [`Self::bin`]:
    /// the offset is shifted by one bin so that the conversion itself sends everything below
    /// the range (and NaN) to 0, and only a value at the top of the range or past it, rare,
    /// takes a branch; counting a block of values measured 24 against 38 ms per 32 million.
    fn bin_shifted(self, value: f64) -> usize {
        let shifted = ((value - self.low) * self.scale + 1.0) as u32 as usize;
        if shifted <= BINS {
            return shifted;
        }
        if value <= self.high { BINS } else { BINS + 1 }
    }

    /// The bin of `value`: [`BINS`], past the last, for a value outside the range or NaN.
    /// Without a branch, so that a block of values is placed at full speed; clamped while
    /// still a float and converted to `u32`, which measured a third faster than converting
    /// to `usize` (a longer instruction sequence on x86-64) and clamping after.
    fn bin(self, value: f64) -> u32 {
        let inside = value >= self.low && value <= self.high;
        // `max` first: a NaN offset (an infinite value times a zero scale) is bin 0.
        let offset = ((value - self.low) * self.scale)
            .max(0.0)
            .min((BINS - 1) as f64);
        (if inside { offset } else { BINS as f64 }) as u32
    }
}

/// Counts the finite `values` into [`BINS`] bins spanning `low..=high`.
#[cfg(any(feature = "ndarray", feature = "arrow", feature = "polars"))]
pub(crate) fn bin(values: impl Iterator<Item = f64>, low: f64, high: f64) -> Vec<u64> {
    let placement = Placement::new(low, high);
    let mut counts = vec![0u64; BINS + 1];
    for value in values {
        counts[placement.bin(value) as usize] += 1;
    }
    counts.truncate(BINS);
    counts
}

/// Draws bars of `counts` over `low..=high` as a self-contained SVG document.
pub(crate) fn histogram_svg(counts: &[u64], low: f64, high: f64, title: &str) -> String {
    let (width, height) = (640.0, 320.0);
    let (left, right, top, bottom) = (64.0, 16.0, 28.0, 40.0);
    let plot_width = width - left - right;
    let plot_height = height - top - bottom;
    let tallest = counts.iter().copied().max().unwrap_or(0).max(1);
    let total: u64 = counts.iter().sum();
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" \
         width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let heading = if title.is_empty() {
        format!("{total} values")
    } else {
        format!("{} ({total} values)", escape(title))
    };
    let _ = writeln!(
        svg,
        "<text x=\"{left}\" y=\"18\" font-weight=\"bold\">{heading}</text>"
    );
    let bar = plot_width / counts.len().max(1) as f64;
    for (index, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let bar_height = plot_height * count as f64 / tallest as f64;
        let x = left + bar * index as f64;
        let y = top + plot_height - bar_height;
        let _ = writeln!(
            svg,
            "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{bar_height:.2}\" fill=\"#4c78a8\"><title>{count}</title></rect>",
            (bar - 1.0).max(0.5)
        );
    }
    let axis_y = top + plot_height;
    let _ = writeln!(
        svg,
        "<path d=\"M{left} {top}V{axis_y}H{}\" stroke=\"#333\" fill=\"none\"/>",
        left + plot_width
    );
    let label_y = axis_y + 16.0;
    for (x, value, anchor) in [
        (left, low, "start"),
        (left + plot_width / 2.0, (low + high) / 2.0, "middle"),
        (left + plot_width, high, "end"),
    ] {
        let _ = writeln!(
            svg,
            "<text x=\"{x}\" y=\"{label_y}\" text-anchor=\"{anchor}\">{}</text>",
            number(value)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{tallest}</text>\n<text x=\"{}\" y=\"{axis_y}\" text-anchor=\"end\">0</text>\n</svg>",
        left - 6.0,
        top + 10.0,
        left - 6.0
    );
    svg
}

/// A number short enough for an axis label.
pub(crate) fn number(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let magnitude = value.abs();
    if !(1e-3..1e6).contains(&magnitude) {
        return format!("{value:.3e}");
    }
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Escapes text for XML.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c if c.is_control() => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(any(feature = "ndarray", feature = "arrow", feature = "polars"))]
    fn values_land_in_their_bins() {
        let counts = bin([0.0, 0.5, 1.0, f64::NAN, 2.0].into_iter(), 0.0, 1.0);
        assert_eq!(counts[0], 1);
        assert_eq!(counts[BINS / 2], 1);
        assert_eq!(counts[BINS - 1], 1);
        assert_eq!(counts.iter().sum::<u64>(), 3);
        assert_eq!(bin([5.0, 5.0].into_iter(), 5.0, 5.0)[0], 2);
        // A range too wide for its width to be finite counts everything in the first bin.
        let widest = bin([f64::MAX, -f64::MAX, 0.0].into_iter(), -f64::MAX, f64::MAX);
        assert_eq!(widest[0], 3);
        let many: Vec<f64> = (0..3_000_001).map(|i| f64::from(i % 1000)).collect();
        let parallel = bin_in_parallel(&many, 0.0, 999.0);
        assert_eq!(parallel, bin(many.iter().copied(), 0.0, 999.0));
        assert_eq!(parallel.iter().sum::<u64>(), 3_000_001);
        // Outside the range (even by less than a bin), NaN and infinities count nowhere, in
        // blocks and in the rest; the ends of the range count in the first and last bins.
        let odd = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.5,
            1.5,
            -0.01,
            1.01,
            0.0,
            1.0,
            0.3,
        ];
        let mixed: Vec<f64> = odd.iter().cycle().take(10 * 1000 + 9).copied().collect();
        let counted = bin_in_parallel(&mixed, 0.0, 1.0);
        assert_eq!(counted, bin(mixed.iter().copied(), 0.0, 1.0));
        assert_eq!(counted.iter().sum::<u64>(), 3 * 1000 + 2);
        assert_eq!((counted[0], counted[BINS - 1]), (1001, 1001));
        // Bins placed block by block agree with values placed one by one, edges included.
        let edges: Vec<f64> = (0..=4 * BINS)
            .map(|quarter| -1.0 + 3.0 * quarter as f64 / (4 * BINS) as f64)
            .collect();
        assert_eq!(
            bin_in_parallel(&edges, -1.0, 2.0),
            bin(edges.iter().copied(), -1.0, 2.0)
        );
        assert_eq!(
            bin_in_parallel(&[true, false], 0.0, 1.0)
                .iter()
                .sum::<u64>(),
            0
        );
        assert_eq!(bin_in_parallel(&[3i64, -3], -3.0, 3.0)[BINS - 1], 1);
    }

    #[test]
    fn titles_are_escaped() {
        let svg = histogram_svg(&[1, 2], 0.0, 1.0, "<script>&");
        assert!(svg.contains("&lt;script&gt;&amp;") && !svg.contains("<script>"));
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(12345678.0), "1.235e7");
    }
}
