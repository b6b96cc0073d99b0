//! NumPy's `.npy` format: numeric vectors and (with the `ndarray` feature) arrays of any
//! dimension, readable by `numpy.load(path)` without pickle.
//!
//! Saving streams the elements' memory straight to the artifact writer in bounded chunks. The
//! statistics come from a pass over the memory on every core before the write when the
//! elements lie in memory as one slice, else from the same pass as the write. Loading checks
//! the header against the file's recorded size and the requested type before allocating
//! anything, then reads into the buffer that becomes the value.

use std::fmt::Write as _;
use std::io::Read;

use crate::histogram::Histogram;
use crate::io::{ArtifactReader, ArtifactWriter, FileReader};
use crate::items::{ItemFormat, ItemSpans};
use crate::stats::Summary;
use crate::{BoxError, Materializer, Result};

/// The file an `.npy` artifact keeps its data in.
pub(crate) const FILE: &str = "data.npy";
/// Elements per chunk when a non-contiguous array is copied out, and per statistics block.
#[cfg(any(feature = "ndarray", feature = "arrow", feature = "polars"))]
pub(crate) const CHUNK_ELEMENTS: usize = 64 * 1024;
/// Headers longer than this are refused: NumPy writes a few dozen bytes.
const MAX_HEADER: usize = 64 * 1024;
const MAGIC: &[u8] = b"\x93NUMPY";

mod sealed {
    pub trait Sealed {}
}

/// An element type stored in `.npy` files: `f32`, `f64`, signed and unsigned integers, and
/// `bool`.
pub trait NpyElement: sealed::Sealed + bytemuck::NoUninit + Send + Sync + 'static {
    /// NumPy's name of the type (`float64`).
    const DTYPE: &'static str;
    /// NumPy's type descriptor (`<f8`).
    const DESCR: &'static str;
    #[doc(hidden)]
    /// Whether the values are numbers, which have a histogram (not `bool`).
    const NUMBER: bool;
    #[doc(hidden)]
    /// Whether the values are whole numbers, whose histogram bars are at least 1 wide.
    const INTEGER: bool;

    #[doc(hidden)]
    /// Adds a block of values to a summary.
    fn summarize(values: &[Self], summary: &mut Summary);

    #[doc(hidden)]
    /// Reads `len` values stored as this type.
    fn read_values(file: &mut FileReader, len: usize) -> Result<Vec<Self>>;

    #[doc(hidden)]
    /// The value as a float, for histograms; `None` when the type has no order to plot.
    fn as_f64(self) -> Option<f64>;

    #[doc(hidden)]
    /// Decodes one element from its stored bytes.
    fn decode_one(bytes: &[u8]) -> std::result::Result<Self, BoxError>;
}

fn decode_plain<T: bytemuck::AnyBitPattern>(bytes: &[u8]) -> std::result::Result<T, BoxError> {
    bytemuck::try_pod_read_unaligned(bytes).map_err(|e| format!("{e:?}").into())
}

fn read_plain<T: bytemuck::Pod>(file: &mut FileReader, len: usize) -> Result<Vec<T>> {
    let mut values = vec![T::zeroed(); len];
    file.read_exact(bytemuck::cast_slice_mut(&mut values))
        .map_err(|e| file.decode_error(e))?;
    Ok(values)
}

macro_rules! float_elements {
    ($($ty:ty => $dtype:literal, $descr:literal;)*) => {$(
        impl sealed::Sealed for $ty {}
        impl NpyElement for $ty {
            const DTYPE: &'static str = $dtype;
            const DESCR: &'static str = $descr;
            const NUMBER: bool = true;
            const INTEGER: bool = false;

            fn summarize(values: &[Self], summary: &mut Summary) {
                summary.add_floats(values);
            }

            fn read_values(file: &mut FileReader, len: usize) -> Result<Vec<Self>> {
                read_plain(file, len)
            }

            fn decode_one(bytes: &[u8]) -> std::result::Result<Self, BoxError> {
                decode_plain(bytes)
            }

            fn as_f64(self) -> Option<f64> {
                Some(f64::from(self))
            }
        }
    )*};
}

float_elements! {
    f32 => "float32", "<f4";
    f64 => "float64", "<f8";
}

macro_rules! integer_elements {
    ($($ty:ty => $dtype:literal, $descr:literal;)*) => {$(
        impl sealed::Sealed for $ty {}
        impl NpyElement for $ty {
            const DTYPE: &'static str = $dtype;
            const DESCR: &'static str = $descr;
            const NUMBER: bool = true;
            const INTEGER: bool = true;

            fn summarize(values: &[Self], summary: &mut Summary) {
                summary.add_integer_slice(values);
            }

            fn read_values(file: &mut FileReader, len: usize) -> Result<Vec<Self>> {
                read_plain(file, len)
            }

            fn decode_one(bytes: &[u8]) -> std::result::Result<Self, BoxError> {
                decode_plain(bytes)
            }

            #[allow(clippy::cast_precision_loss)]
            fn as_f64(self) -> Option<f64> {
                Some(self as f64)
            }
        }
    )*};
}

integer_elements! {
    i8 => "int8", "|i1";
    i16 => "int16", "<i2";
    i32 => "int32", "<i4";
    i64 => "int64", "<i8";
    u8 => "uint8", "|u1";
    u16 => "uint16", "<u2";
    u32 => "uint32", "<u4";
    u64 => "uint64", "<u8";
}

#[cfg(target_pointer_width = "64")]
integer_elements! {
    isize => "int64", "<i8";
    usize => "uint64", "<u8";
}

impl sealed::Sealed for bool {}
impl NpyElement for bool {
    const DTYPE: &'static str = "bool";
    const DESCR: &'static str = "|b1";
    const NUMBER: bool = false;
    const INTEGER: bool = false;

    fn summarize(values: &[Self], summary: &mut Summary) {
        summary.add_bools(values);
    }

    fn read_values(file: &mut FileReader, len: usize) -> Result<Vec<Self>> {
        let bytes = read_plain::<u8>(file, len)?;
        if let Some(at) = bytes.iter().position(|&byte| byte > 1) {
            return Err(file.decode_error(format!(
                "element {at} of a bool array is {} (not 0 or 1)",
                bytes[at]
            )));
        }
        Ok(bytes.into_iter().map(|byte| byte == 1).collect())
    }

    fn as_f64(self) -> Option<f64> {
        None
    }

    fn decode_one(bytes: &[u8]) -> std::result::Result<Self, BoxError> {
        match bytes {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(format!("a bool element is {bytes:?} (not 0 or 1)").into()),
        }
    }
}

/// What an `.npy` header declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<usize>,
}

impl Header {
    fn dtype(&self) -> &str {
        dtype_of(&self.descr).unwrap_or(&self.descr)
    }

    /// How the stored array is described in messages: `a float32 array of shape [3, 4]`.
    pub(crate) fn describe(&self) -> String {
        format!("a {} array of shape {:?}", self.dtype(), self.shape)
    }

    /// The header's bytes: magic, version, length, the dictionary padded so that the data
    /// starts at a multiple of 64 bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut dict = format!(
            "{{'descr': '{}', 'fortran_order': {}, 'shape': (",
            self.descr,
            if self.fortran_order { "True" } else { "False" }
        );
        for (index, length) in self.shape.iter().enumerate() {
            if index > 0 {
                dict.push_str(", ");
            }
            let _ = write!(dict, "{length}");
        }
        if self.shape.len() == 1 {
            dict.push(',');
        }
        dict.push_str("), }");
        let (version, length_bytes) = if dict.len() + 12 < 65_536 {
            (1u8, 2)
        } else {
            (2u8, 4)
        };
        let preamble = MAGIC.len() + 2 + length_bytes;
        let unpadded = preamble + dict.len() + 1;
        let padded = unpadded.div_ceil(64) * 64;
        dict.extend(std::iter::repeat_n(' ', padded - unpadded));
        dict.push('\n');
        let mut bytes = Vec::with_capacity(padded);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&[version, 0]);
        if length_bytes == 2 {
            bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        } else {
            bytes.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        }
        bytes.extend_from_slice(dict.as_bytes());
        bytes
    }

    /// Reads a header and checks it against the size the file was recorded with, so that a
    /// hostile shape is refused before anything is allocated for it. Returns the header and
    /// the number of elements.
    pub(crate) fn read(file: &mut FileReader) -> Result<(Header, usize)> {
        let too_short =
            |file: &FileReader| file.decode_error("the file is too short for an .npy header");
        let mut preamble = [0u8; 8];
        file.read_exact(&mut preamble)
            .map_err(|_| too_short(file))?;
        if &preamble[..6] != MAGIC {
            return Err(file.decode_error("not an .npy file (its magic string is missing)"));
        }
        let (length, preamble_length) = match preamble[6] {
            1 => {
                let mut bytes = [0u8; 2];
                file.read_exact(&mut bytes).map_err(|_| too_short(file))?;
                (usize::from(u16::from_le_bytes(bytes)), 10)
            }
            2 | 3 => {
                let mut bytes = [0u8; 4];
                file.read_exact(&mut bytes).map_err(|_| too_short(file))?;
                (u32::from_le_bytes(bytes) as usize, 12)
            }
            version => {
                return Err(file.decode_error(format!(
                    "unsupported .npy format version {version}.{}",
                    preamble[7]
                )));
            }
        };
        if length > MAX_HEADER || (preamble_length + length) as u64 > file.recorded_size() {
            return Err(file.decode_error(format!(
                "the .npy header declares {length} bytes, more than the file or a sane header holds"
            )));
        }
        let mut text = vec![0u8; length];
        file.read_exact(&mut text)
            .map_err(|_| file.decode_error("the .npy header is cut short"))?;
        let text = std::str::from_utf8(&text)
            .map_err(|_| file.decode_error("the .npy header is not text"))?;
        let header = parse_dict(text).map_err(|reason| {
            file.decode_error(format!("the .npy header is not understood: {reason}"))
        })?;
        let Some(item_size) = item_size(&header.descr) else {
            return Err(file.decode_error(format!(
                "the .npy file holds elements of type `{}`, which weft does not read",
                header.descr
            )));
        };
        let data_bytes = file.recorded_size() - (preamble_length + length) as u64;
        let elements = header
            .shape
            .iter()
            .try_fold(1usize, |total, &length| total.checked_mul(length));
        let declared = elements.and_then(|count| count.checked_mul(item_size));
        match (elements, declared) {
            (Some(elements), Some(declared)) if declared as u64 == data_bytes => {
                Ok((header, elements))
            }
            _ => Err(file.decode_error(format!(
                "the header declares {}, which does not match the {data_bytes} bytes of data the file holds",
                header.describe()
            ))),
        }
    }
}

/// NumPy's name for a descriptor weft reads.
fn dtype_of(descr: &str) -> Option<&'static str> {
    Some(match descr {
        "<f4" => "float32",
        "<f8" => "float64",
        "|i1" | "<i1" => "int8",
        "<i2" => "int16",
        "<i4" => "int32",
        "<i8" => "int64",
        "|u1" | "<u1" => "uint8",
        "<u2" => "uint16",
        "<u4" => "uint32",
        "<u8" => "uint64",
        "|b1" | "<b1" => "bool",
        _ => return None,
    })
}

fn item_size(descr: &str) -> Option<usize> {
    dtype_of(descr)?;
    descr[2..].parse().ok()
}

/// Parses the header dictionary NumPy writes: `{'descr': '<f8', 'fortran_order': False,
/// 'shape': (3, 4), }`, keys in any order, nothing else.
fn parse_dict(text: &str) -> std::result::Result<Header, String> {
    let mut rest = text.trim_end_matches([' ', '\n', '\0']).trim();
    rest = rest
        .strip_prefix('{')
        .and_then(|inner| inner.strip_suffix('}'))
        .ok_or("it is not a dictionary")?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (key, after) = quoted(rest).ok_or("a key is not a quoted string")?;
        rest = after
            .trim_start()
            .strip_prefix(':')
            .ok_or("a key has no value")?
            .trim_start();
        match key {
            "descr" => {
                let (value, after) = quoted(rest).ok_or("`descr` is not a string")?;
                descr = Some(value.to_owned());
                rest = after;
            }
            "fortran_order" => {
                let (value, after) = if let Some(after) = rest.strip_prefix("True") {
                    (true, after)
                } else if let Some(after) = rest.strip_prefix("False") {
                    (false, after)
                } else {
                    return Err("`fortran_order` is not True or False".into());
                };
                fortran_order = Some(value);
                rest = after;
            }
            "shape" => {
                let inner = rest.strip_prefix('(').ok_or("`shape` is not a tuple")?;
                let end = inner.find(')').ok_or("`shape` is not closed")?;
                let mut lengths = Vec::new();
                for part in inner[..end].split(',').map(str::trim) {
                    if part.is_empty() {
                        continue;
                    }
                    let length = part.trim_end_matches('L');
                    lengths.push(
                        length
                            .parse::<usize>()
                            .map_err(|_| format!("`{part}` is not a length"))?,
                    );
                }
                if lengths.len() > 32 {
                    return Err(format!(
                        "{} dimensions is more than NumPy allows",
                        lengths.len()
                    ));
                }
                shape = Some(lengths);
                rest = &inner[end + 1..];
            }
            other => return Err(format!("unexpected key `{other}`")),
        }
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(after) => rest = after,
            None if rest.is_empty() => break,
            None => return Err("entries are not separated by commas".into()),
        }
    }
    Ok(Header {
        descr: descr.ok_or("`descr` is missing")?,
        fortran_order: fortran_order.ok_or("`fortran_order` is missing")?,
        shape: shape.ok_or("`shape` is missing")?,
    })
}

/// A string in single or double quotes at the start of `text`, and what follows it.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let quote = text.chars().next().filter(|c| matches!(c, '\'' | '"'))?;
    let inner = &text[1..];
    let end = inner.find(quote)?;
    Some((&inner[..end], &inner[end + 1..]))
}

/// Writes an `.npy` file of `shape` holding `values`, which lie in memory in C order, or in
/// Fortran order if `fortran_order`. The bytes go to the file straight from `values`, and the
/// values are described, and a 1-D array's histogram counted (see [`crate::histogram`]), block
/// by block on the thread that hashes them, as each is hashed, while the block is in the
/// cache, and by the writing thread once the file has them (see [`crate::io::Observers`]).
/// Measured on two cores, for 256 MiB: the write alone 63–71 ms, with the hash and the
/// statistics 76 ms, with the histogram too 98–111 ms, where counting it in a pass of its
/// own after the write took 110–117 ms (and describing before the write, even on every core,
/// added a third).
pub(crate) fn save_slice<T: NpyElement>(
    writer: &mut ArtifactWriter<'_>,
    shape: &[usize],
    fortran_order: bool,
    values: &[T],
) -> Result<()> {
    let header = Header {
        descr: T::DESCR.into(),
        fortran_order,
        shape: shape.to_vec(),
    };
    let histogram = shape.len() == 1 && values.len() >= crate::visualize::MIN_HISTOGRAM_VALUES;
    let (mut in_order, mut from_the_end) = (
        Described::new::<T>(histogram),
        Described::new::<T>(histogram),
    );
    let size = std::mem::size_of::<T>();
    let elements = |bytes: std::ops::Range<usize>| &values[bytes.start / size..bytes.end / size];
    writer.write_data_file(FILE, |file| {
        std::io::Write::write_all(file, &header.encode())?;
        let observers = crate::io::Observers {
            in_order: &mut |bytes| in_order.add(elements(bytes)),
            from_the_end: &mut |bytes| from_the_end.add(elements(bytes)),
        };
        file.write_observed(bytemuck::cast_slice(values), observers)?;
        Ok::<(), BoxError>(())
    })?;
    in_order.merge(&from_the_end);
    describe_array::<T>(writer, shape, fortran_order, &in_order.summary);
    writer.counted = in_order.histogram;
    Ok(())
}

/// What is learnt of an array's values block by block: their statistics and, for an array
/// that gets one, their histogram.
struct Described {
    summary: Summary,
    histogram: Option<Histogram>,
}

impl Described {
    /// For values of type `T`, with a histogram if asked and `T` has one.
    fn new<T: NpyElement>(histogram: bool) -> Self {
        Self {
            summary: Summary::default(),
            histogram: (histogram && T::NUMBER).then(|| Histogram::new(T::INTEGER)),
        }
    }

    fn add<T: NpyElement>(&mut self, values: &[T]) {
        T::summarize(values, &mut self.summary);
        if let Some(histogram) = &mut self.histogram {
            histogram.add(values);
        }
    }

    fn merge(&mut self, other: &Self) {
        self.summary.merge(&other.summary);
        if let (Some(histogram), Some(other)) = (&mut self.histogram, &other.histogram) {
            histogram.merge(other);
        }
    }
}

/// The statistics of `values`, on this thread, block by block: each block is read from
/// memory once and described from the cache.
#[cfg(any(feature = "arrow", feature = "polars"))]
pub(crate) fn summarize<T: NpyElement>(values: &[T]) -> Summary {
    let mut summary = Summary::default();
    for chunk in values.chunks(CHUNK_ELEMENTS) {
        T::summarize(chunk, &mut summary);
    }
    summary
}

/// Writes an `.npy` file of `shape` whose elements come as contiguous blocks from `blocks`
/// (copied out of an array not contiguous in memory), each described before it is written.
#[cfg(feature = "ndarray")]
pub(crate) fn save<'v, T: NpyElement>(
    writer: &mut ArtifactWriter<'_>,
    shape: &[usize],
    fortran_order: bool,
    blocks: impl FnOnce(&mut dyn FnMut(&[T]) -> std::io::Result<()>) -> std::io::Result<()> + 'v,
) -> Result<()> {
    let header = Header {
        descr: T::DESCR.into(),
        fortran_order,
        shape: shape.to_vec(),
    };
    let mut summary = Summary::default();
    writer.write_file(FILE, |file| {
        file.write_all(&header.encode())?;
        blocks(&mut |block: &[T]| {
            for chunk in block.chunks(CHUNK_ELEMENTS) {
                T::summarize(chunk, &mut summary);
            }
            file.write_all(bytemuck::cast_slice(block))
        })?;
        Ok::<(), BoxError>(())
    })?;
    describe_array::<T>(writer, shape, fortran_order, &summary);
    Ok(())
}

/// Records an array's dtype, shape, order and statistics as the version's metadata.
fn describe_array<T: NpyElement>(
    writer: &mut ArtifactWriter<'_>,
    shape: &[usize],
    fortran_order: bool,
    summary: &Summary,
) {
    writer.describe("dtype", T::DTYPE);
    writer.describe("shape", shape.to_vec());
    if shape.len() > 1 {
        writer.describe("order", if fortran_order { "F" } else { "C" });
    }
    summary.describe(writer);
}

/// Reads an `.npy` artifact stored as `T`, of `ndim` dimensions if given, and builds a value
/// from its shape, order (Fortran or not) and elements in stored order.
pub(crate) fn load_with<T: NpyElement, V, E: Into<BoxError>>(
    reader: &mut ArtifactReader<'_>,
    ndim: Option<usize>,
    build: impl FnOnce(Vec<usize>, bool, Vec<T>) -> std::result::Result<V, E>,
) -> Result<V> {
    let file = reader.open(FILE)?;
    let (header, elements) = Header::read(file)?;
    check_type::<T>(file, &header, ndim)?;
    let values = T::read_values(file, elements)?;
    build(header.shape, header.fortran_order, values).map_err(|e| file.decode_error(e))
}

/// Checks that `header` declares elements of type `T`, in `ndim` dimensions if given.
fn check_type<T: NpyElement>(
    file: &FileReader,
    header: &Header,
    ndim: Option<usize>,
) -> Result<()> {
    let dimensions_match = ndim.is_none_or(|ndim| ndim == header.shape.len());
    if header.descr != T::DESCR && dtype_of(&header.descr) != Some(T::DTYPE) || !dimensions_match {
        let asked = match ndim {
            Some(ndim) => format!("a {ndim}-D array of {}", T::DTYPE),
            None => format!("an array of {}", T::DTYPE),
        };
        return Err(file.decode_error(format!("it holds {}, not {asked}", header.describe())));
    }
    Ok(())
}

/// Stores a `Vec` of numbers (or of `bool`s) as a 1-D `.npy` array in `data.npy`.
pub struct Npy;

impl<T: NpyElement> Materializer<Vec<T>> for Npy {
    const ID: &'static str = "weft.npy";
    const VERSION: u32 = 1;
    const SELF_DESCRIBING: bool = true;

    fn save(value: &Vec<T>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        save_slice(writer, &[value.len()], false, value)
    }

    fn load(reader: &mut ArtifactReader<'_>) -> Result<Vec<T>> {
        load_with(reader, Some(1), |_, _, values| Ok::<_, BoxError>(values))
    }

    fn visualize(value: &Vec<T>, writer: &mut ArtifactWriter<'_>) -> Result<()> {
        if value.len() < crate::visualize::MIN_HISTOGRAM_VALUES {
            return Ok(());
        }
        crate::visualize::histogram(writer, value)
    }
}

/// Items of a 1-D array lie one after the other, after the header.
impl<T: NpyElement> ItemFormat<T> for Npy {
    fn find_items(reader: &mut ArtifactReader<'_>) -> Result<Option<ItemSpans>> {
        let file = reader.open(FILE)?;
        let (header, elements) = Header::read(file)?;
        check_type::<T>(file, &header, Some(1))?;
        let size = std::mem::size_of::<T>() as u64;
        let start = file.recorded_size() - elements as u64 * size;
        Ok(Some(ItemSpans::even(FILE, start, size, elements as u64)))
    }

    fn decode_item(bytes: &[u8]) -> std::result::Result<T, BoxError> {
        T::decode_one(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_what_numpy_writes() {
        let header =
            parse_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }").unwrap();
        assert_eq!(header.shape, [3, 4]);
        let header =
            parse_dict("{\"shape\": (7,), \"fortran_order\": True, \"descr\": \"|b1\"}").unwrap();
        assert_eq!((header.shape, header.fortran_order), (vec![7], true));
        assert_eq!(
            parse_dict("{'descr': '<f8', 'fortran_order': False, 'shape': ()}")
                .unwrap()
                .shape,
            Vec::<usize>::new()
        );
        for bad in [
            "[]",
            "{'descr': '<f8'}",
            "{'descr': '<f8', 'fortran_order': maybe, 'shape': ()}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (), 'x': 1}",
        ] {
            assert!(parse_dict(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encoded_headers_are_aligned_and_parse_back() {
        for shape in [vec![], vec![5], vec![2, 3, 4]] {
            let header = Header {
                descr: "<i4".into(),
                fortran_order: shape.len() == 3,
                shape,
            };
            let bytes = header.encode();
            assert_eq!(bytes.len() % 64, 0);
            assert_eq!(*bytes.last().unwrap(), b'\n');
            let text = std::str::from_utf8(&bytes[10..]).unwrap();
            assert_eq!(parse_dict(text).unwrap(), header);
        }
    }
}
