//! Built-in visualizations, drawn by weft itself: histograms as SVG, tables as CSV.

use std::fmt::Write as _;

use crate::NpyElement;
use crate::histogram::{Bars, Histogram, count_in_parallel};
use crate::io::ArtifactWriter;
use crate::{Result, VisualizationType};

/// Fewer values than this draw no histogram: they show no distribution, and a step that
/// returns a handful of numbers should not pay a second file for each output.
pub(crate) const MIN_HISTOGRAM_VALUES: usize = 32;

/// Writes `histogram.svg` of `values`: from the counts made while they were written (see
/// [`ArtifactWriter::counted`]), or else counted now, on every core. Nothing is written when
/// there is no finite value, or when the values are not numbers.
pub(crate) fn histogram<T: NpyElement>(
    writer: &mut ArtifactWriter<'_>,
    values: &[T],
) -> Result<()> {
    if !T::NUMBER {
        return Ok(());
    }
    let counted = match writer.counted.take() {
        Some(counted) => counted,
        None => count_in_parallel(values, T::INTEGER),
    };
    write_histogram(writer, &counted)
}

/// [`histogram`] of values that are not contiguous in memory.
#[cfg(feature = "ndarray")]
pub(crate) fn histogram_of<T: NpyElement>(
    writer: &mut ArtifactWriter<'_>,
    values: impl Iterator<Item = T>,
) -> Result<()> {
    if !T::NUMBER {
        return Ok(());
    }
    let mut counted = Histogram::new(T::INTEGER);
    counted.add_each(values.filter_map(NpyElement::as_f64));
    write_histogram(writer, &counted)
}

/// The smallest and largest finite value, as the writer has described them.
fn described_range(writer: &ArtifactWriter<'_>) -> Option<(f64, f64)> {
    let bound = |key: &str| writer.metadata.get(key).and_then(serde_json::Value::as_f64);
    bound("min").zip(bound("max"))
}

fn write_histogram(writer: &mut ArtifactWriter<'_>, counted: &Histogram) -> Result<()> {
    let Some(bars) = described_range(writer).and_then(|range| counted.bars(range)) else {
        return Ok(());
    };
    let svg = histogram_svg(&bars, "");
    writer.write_visualization("histogram.svg", VisualizationType::Svg, |file| {
        Ok(file.write_all(svg.as_bytes())?)
    })
}

/// Draws `bars` as a self-contained SVG document.
pub(crate) fn histogram_svg(bars: &Bars, title: &str) -> String {
    let Bars { counts, low, high } = bars;
    let (low, high) = (*low, *high);
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
    fn titles_are_escaped() {
        let bars = Bars {
            counts: vec![1, 2],
            low: 0.0,
            high: 1.0,
        };
        let svg = histogram_svg(&bars, "<script>&");
        assert!(svg.contains("&lt;script&gt;&amp;") && !svg.contains("<script>"));
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(12345678.0), "1.235e7");
    }
}
