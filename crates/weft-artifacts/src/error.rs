//! Errors of the artifact store and of materializers.

/// An error from a user's encoder or decoder, or from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong while storing or loading an artifact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store's location cannot be used.
    #[error("cannot open the artifact store at {location}: {source}")]
    Open {
        /// The location that was given.
        location: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// The store's URL is malformed or of an unsupported kind.
    #[error("invalid artifact store location `{location}`: {reason}")]
    InvalidLocation {
        /// The location that was given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing a file failed; nothing was published under its name.
    #[error("cannot write artifact file {path}: {source}")]
    Write {
        /// The file's location.
        path: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// The device holding the store is full; nothing was published under the file's name.
    #[error("no space left on device, at {path}")]
    Full {
        /// The file that could not be written.
        path: String,
    },
    /// A recorded file does not exist (any more).
    #[error(
        "artifact file {path} is missing: it was recorded when the artifact was saved but is no longer in the artifact store"
    )]
    Missing {
        /// The file's location.
        path: String,
    },
    /// A file is no longer the one recorded (its size or entity tag differ), seen by a read
    /// of part of it, which does not hash the whole file.
    #[error(
        "artifact file {path} changed after it was written: its size or modification differ from its record (`weft artifacts verify` checks its bytes)"
    )]
    Changed {
        /// The file's location.
        path: String,
    },
    /// A collection has no item at the position asked for.
    #[error("the collection at {uri} holds {count} items: there is no item {index}")]
    NoItem {
        /// The collection's location.
        uri: String,
        /// The position asked for.
        index: u64,
        /// How many items it holds.
        count: u64,
    },
    /// A file's bytes differ from what was recorded when it was written.
    #[error(
        "artifact file {path} is corrupt: it has {actual_size} bytes with BLAKE3 {actual}, but {expected_size} bytes with BLAKE3 {expected} were recorded when it was written"
    )]
    Corrupt {
        /// The file's location.
        path: String,
        /// The recorded hash.
        expected: String,
        /// The hash of what was read.
        actual: String,
        /// The recorded size.
        expected_size: u64,
        /// The size of what was read.
        actual_size: u64,
    },
    /// Reading a file failed.
    #[error("cannot read artifact file {path}: {source}")]
    Read {
        /// The file's location.
        path: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// The artifact holds another type than the one asked for.
    #[error(
        "the artifact at {uri} holds a `{stored}` (saved by materializer {stored_materializer}) and cannot be loaded as a `{requested}` (materializer {requested_materializer})"
    )]
    TypeMismatch {
        /// The artifact's location.
        uri: String,
        /// The Rust type it was saved from.
        stored: String,
        /// The materializer that saved it.
        stored_materializer: String,
        /// The Rust type asked for.
        requested: &'static str,
        /// The materializer of the type asked for.
        requested_materializer: &'static str,
    },
    /// The artifact was written by a newer format than this build understands.
    #[error(
        "the artifact at {uri} was written by materializer {materializer} version {stored}, but this build reads versions up to {supported}; upgrade weft to load it"
    )]
    NewerFormat {
        /// The artifact's location.
        uri: String,
        /// The materializer.
        materializer: String,
        /// The version it was written with.
        stored: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A materializer could not encode a value.
    #[error("cannot encode a `{data_type}` with materializer {materializer}: {source}")]
    Encode {
        /// The Rust type.
        data_type: &'static str,
        /// The materializer.
        materializer: &'static str,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// A materializer could not decode a file.
    #[error("cannot decode a `{data_type}` from {path} with materializer {materializer}: {source}")]
    Decode {
        /// The Rust type.
        data_type: &'static str,
        /// The file.
        path: String,
        /// The materializer.
        materializer: &'static str,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// A recorded location is outside this store.
    #[error(
        "the artifact at {uri} is neither in this artifact store ({root}) nor in a kind of store weft can read (file://, s3://)"
    )]
    ForeignUri {
        /// The recorded location.
        uri: String,
        /// This store's root.
        root: String,
    },
    /// A materializer asked for a file the artifact does not have.
    #[error("the artifact at {uri} has no file `{name}` (it has: {known})")]
    UnknownFile {
        /// The artifact's location.
        uri: String,
        /// The requested file.
        name: String,
        /// The files it has, comma-separated.
        known: String,
    },
    /// A materializer wrote the same file twice or an invalid file name.
    #[error("materializer {materializer} wrote an invalid or repeated file name `{name}`")]
    BadFileName {
        /// The materializer.
        materializer: &'static str,
        /// The name.
        name: String,
    },
}

impl Error {
    /// A failed write of the file at `path`: [`Error::Full`] when the device is full (said
    /// once, with the path, rather than in the words of every layer it passed), else
    /// [`Error::Write`].
    pub(crate) fn write(path: String, source: BoxError) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(error) = cause {
            let full = error.downcast_ref::<std::io::Error>().is_some_and(|io| {
                io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28)
            });
            if full {
                return Error::Full { path };
            }
            cause = error.source();
        }
        Error::Write { path, source }
    }
}
