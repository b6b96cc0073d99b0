//! Streaming, hashing file access for materializers.
//!
//! [`ArtifactWriter`] hands a materializer one `Write` per file. Bytes are buffered and hashed
//! in large chunks; a small file is published with one atomic create-only put, a large one is
//! streamed as a multipart upload that becomes visible only when complete. [`FileReader`]
//! hashes what it reads in large chunks too, and [`ArtifactReader`] checks every opened file
//! against its recorded hash once the materializer is done.

use std::io::{self, BufRead, Read, Seek, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{GetResultPayload, MultipartId, ObjectStoreExt, PutMode, PutOptions};

use crate::error::BoxError;
use crate::materializer::Metadata;
use crate::store::{ArtifactStore, StoredArtifact};
use crate::{Error, FileRecord, Result};
use weft_core::Digest;
use weft_core::artifact::VisualizationType;

/// Files up to this size are published with a single put; larger ones stream in parts of it.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Small writes to a local file are gathered up to this size. Larger gathers cost more than
/// they save: the kernel copies a write from a buffer that has left the CPU's caches several
/// times slower (a 420 MB Parquet file: 1.6 s of writes in 8 MiB blocks, 0.1 s in 1 MiB).
const LOCAL_BUFFER: usize = 1024 * 1024;
/// Read chunk size: large enough that hashing and syscalls stay cheap per byte.
const READ_CHUNK: usize = 256 * 1024;
/// A file hashed beside a decoder that reads it at random places is read in pieces of this
/// size.
const READ_PIECE: usize = 8 * 1024 * 1024;
/// From this size on, a block written to a local file has its room found by the file system
/// at once rather than page by page as it is copied in: a tenth off a 256 MiB write, and one
/// system call more than small writes should pay.
const PREALLOCATE_MIN: usize = 8 * 1024 * 1024;
/// From this size on, a block of bytes is hashed on a second thread while it is written:
/// hashing costs about as much as the IO itself.
const PARALLEL_HASH_MIN: usize = 1024 * 1024;

/// What is called before a version's first byte goes to the store (see
/// [`ArtifactStore::save_after`]).
pub type BeforeStoring<'a> = dyn Fn() -> std::result::Result<(), BoxError> + Sync + 'a;

/// Where a materializer writes the files of one artifact version.
pub struct ArtifactWriter<'a> {
    store: &'a ArtifactStore,
    pub(crate) before_storing: Option<&'a BeforeStoring<'a>>,
    prefix: Path,
    materializer: &'static str,
    data_type: &'static str,
    pub(crate) files: Vec<FileRecord>,
    pub(crate) metadata: Metadata,
    /// The histogram a materializer counted while writing the values, for its visualization
    /// to draw instead of counting again.
    pub(crate) counted: Option<crate::histogram::Histogram>,
    pub(crate) provenance: Vec<(String, String)>,
    /// How many more bytes of this version's files may be kept in their records.
    inline_left: usize,
}

impl<'a> ArtifactWriter<'a> {
    pub(crate) fn new(
        store: &'a ArtifactStore,
        prefix: Path,
        materializer: &'static str,
        data_type: &'static str,
    ) -> Self {
        Self {
            store,
            before_storing: None,
            prefix,
            materializer,
            data_type,
            files: Vec::new(),
            metadata: Metadata::new(),
            counted: None,
            provenance: Vec::new(),
            inline_left: store.inline_limit(),
        }
    }

    /// Where the value comes from, as `weft.*` key-value pairs (pipeline, run, step run,
    /// output) when a step saves it: formats with a place for string metadata (safetensors,
    /// Parquet) may carry it, so that a file found alone still says where it came from.
    pub fn provenance(&self) -> &[(String, String)] {
        &self.provenance
    }

    /// Writes file `name` with `write`, then publishes it atomically.
    ///
    /// An error returned by `write` is reported as an encoding error of this artifact; a
    /// failure of the store itself as a write error. Either way nothing is published under
    /// `name`.
    ///
    /// Any error converts into the closure's error with `?`, so it needs no annotations:
    ///
    /// ```ignore
    /// writer.write_file("data.csv", |file| {
    ///     writeln!(file, "x,y")?;
    ///     serde_json::to_writer(file, &rows)?;
    ///     Ok(())
    /// })
    /// ```
    pub fn write_file(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut (dyn Write + Send)) -> std::result::Result<(), BoxError>,
    ) -> Result<()> {
        self.write_data_file(name, |sink| write(sink))
    }

    /// [`ArtifactWriter::write_file`] with the file's sink itself, for the built-in formats
    /// ([`FileSink::write_observed`]).
    pub(crate) fn write_data_file(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut FileSink<'_>) -> std::result::Result<(), BoxError>,
    ) -> Result<()> {
        let valid = !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..";
        self.write_any(name, valid, None, write)
    }

    /// Writes a visualization of the value: a document of type `kind` shown beside the data
    /// (`weft artifacts visualize` writes them out). It is hashed, published and verified like
    /// a data file. `name` is a plain file name (letters, digits, `.`, `_` and `-`, not
    /// starting with a dot).
    pub fn write_visualization(
        &mut self,
        name: &str,
        kind: VisualizationType,
        write: impl FnOnce(&mut (dyn Write + Send)) -> std::result::Result<(), BoxError>,
    ) -> Result<()> {
        let valid = (1..=128).contains(&name.len())
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        self.write_any(name, valid, Some(kind), |sink| write(sink))
    }

    /// Records a fact about the value being saved (shape, statistics, ...) as metadata of the
    /// version. Materializers call it while they write, so that nothing is read twice.
    pub fn describe(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.metadata.insert(key.to_owned(), value.into());
    }

    fn write_any(
        &mut self,
        name: &str,
        valid: bool,
        visualization: Option<VisualizationType>,
        write: impl FnOnce(&mut FileSink<'_>) -> std::result::Result<(), BoxError>,
    ) -> Result<()> {
        if !valid || self.files.iter().any(|file| file.name == name) {
            return Err(Error::BadFileName {
                materializer: self.materializer,
                name: name.into(),
            });
        }
        let mut sink = FileSink::new(self.store, self.prefix.clone().join(name), self.inline_left);
        sink.before_storing = self.before_storing.take();
        let written = write(&mut sink);
        if let Some(error) = sink.error.take() {
            sink.abort();
            return Err(error);
        }
        if let Err(source) = written {
            sink.abort();
            return Err(Error::Encode {
                data_type: self.data_type,
                materializer: self.materializer,
                source,
            });
        }
        if !sink.stays_inline()
            && let Err(error) = sink.may_store()
        {
            sink.abort();
            return Err(error);
        }
        // Still there if nothing was stored; called once, what it waited for is done.
        self.before_storing = sink.before_storing.take();
        let mut record = sink.finish(name)?;
        if record.is_inline() {
            self.inline_left -= record.size as usize;
        }
        record.visualization = visualization;
        self.files.push(record);
        Ok(())
    }
}

/// Is handed blocks of what [`FileSink::write_observed`] writes, as byte ranges of it.
pub(crate) type Observer<'o> = dyn FnMut(std::ops::Range<usize>) + Send + 'o;

/// The two [`Observer`]s of a write, which between them are handed every block once. The
/// first is handed blocks in order from the start; the second, blocks from the end back.
///
/// When the bytes go to a local file and are hashed on a second thread, the first is called
/// on the hashing thread with each block right after it is hashed, while it is in the cache,
/// for as long as the file is being written. Then the writing thread, its work done, takes
/// blocks from the end for the second, while the hashing thread hashes what is left and only
/// then goes on observing from where it stopped: the hash, which only that thread can do, is
/// not held up by observing, and both cores observe until they meet. The two run at once, so
/// each gathers its own and the caller adds them up. Otherwise the first is handed every
/// block.
pub(crate) struct Observers<'a, 'o> {
    pub(crate) in_order: &'a mut Observer<'o>,
    pub(crate) from_the_end: &'a mut Observer<'o>,
}

/// The blocks an [`Observer`] is handed: long enough to hash at full speed, short enough to
/// stay in the cache until observed; a whole number of elements of every `.npy` type.
const OBSERVED_BLOCK: usize = 512 * 1024;

/// The blocks of `length` bytes, as [`Observer`]s are handed them.
fn blocks(length: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..length)
        .step_by(OBSERVED_BLOCK)
        .map(move |start| start..(start + OBSERVED_BLOCK).min(length))
}

/// Hashes `data` while `io` runs: on a second thread when `data` is large, so that hashing
/// and the file system work at the same time. The blocks are handed to `observers` (see
/// [`Observers`]).
fn hash_alongside<R: Send>(
    hasher: &mut blake3::Hasher,
    data: &[u8],
    observers: Observers<'_, '_>,
    io: impl FnOnce() -> R + Send,
) -> R {
    let Observers {
        in_order,
        from_the_end,
    } = observers;
    if data.len() < PARALLEL_HASH_MIN {
        for block in blocks(data.len()) {
            hasher.update(&data[block.clone()]);
            in_order(block);
        }
        return io();
    }
    let length = data.len();
    // The blocks nobody has observed yet: the hashing thread takes them from the start, the
    // writing thread, once done, from the end.
    let unobserved = std::sync::Mutex::new(0..length.div_ceil(OBSERVED_BLOCK));
    let block_range = |index: usize| {
        let start = index * OBSERVED_BLOCK;
        start..(start + OBSERVED_BLOCK).min(length)
    };
    let take = |from_the_start: bool| {
        let mut left = unobserved.lock().expect("observing does not panic");
        if left.is_empty() {
            None
        } else if from_the_start {
            left.next()
        } else {
            left.next_back()
        }
    };
    let written = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| {
            for (index, block) in blocks(length).enumerate() {
                hasher.update(&data[block.clone()]);
                // Taken in order: the next one is this one, unless the end was reached.
                if !written.load(Ordering::Relaxed) && take(true) == Some(index) {
                    in_order(block);
                }
            }
            while let Some(index) = take(true) {
                in_order(block_range(index));
            }
        });
        let result = io();
        written.store(true, Ordering::Relaxed);
        while let Some(index) = take(false) {
            from_the_end(block_range(index));
        }
        hashing.join().expect("hashing does not panic");
        result
    })
}

/// Where the bytes of one file go until it is published.
enum Target {
    /// Nothing sent yet: the whole file may still fit in the buffer.
    Pending,
    /// A local store: a staging file beside the final one, renamed into place.
    Local {
        file: std::fs::File,
        staging: std::path::PathBuf,
    },
    /// Any other store: the final name claimed first by a create-only empty object (the
    /// server refuses a second claim), then a multipart upload to it (an upload in parts
    /// cannot be made create-only itself), which replaces the claim when it completes.
    /// Until then a marker object beside the file names the upload's id: a process that
    /// dies mid-upload leaves parts only the id can find, and reconcile aborts them by it.
    Upload {
        multipart: Arc<dyn MultipartStore>,
        id: MultipartId,
        marker: Path,
        /// Parts on their way, oldest first: up to [`PARTS_IN_FLIGHT`] are sent at once
        /// while the next ones are read and hashed.
        sending: std::collections::VecDeque<tokio::task::JoinHandle<object_store::Result<PartId>>>,
        /// Parts the server has, in order.
        sent: Vec<PartId>,
    },
}

/// The suffix of the marker object of an unfinished upload: `.<file name>.weft-upload`
/// beside the file, holding the upload's id.
const UPLOAD_MARKER: &str = ".weft-upload";

fn upload_marker(file: &Path) -> Path {
    let name = file.filename().unwrap_or_default();
    beside(file, &format!(".{name}{UPLOAD_MARKER}"))
}

/// The file whose unfinished upload the marker object at `path` names, if it is one.
pub(crate) fn upload_of_marker(path: &Path) -> Option<Path> {
    let name = path.filename()?;
    let file = name.strip_prefix('.')?.strip_suffix(UPLOAD_MARKER)?;
    (!file.is_empty()).then(|| beside(path, file))
}

/// The path of `name` in the folder of `path`.
fn beside(path: &Path, name: &str) -> Path {
    let parts: Vec<_> = path.parts().collect();
    let folder = &parts[..parts.len().saturating_sub(1)];
    Path::from_iter(folder.iter().cloned().chain([name.into()]))
}

/// How many parts of one upload are sent at once (each holds [`PART_SIZE`] bytes).
const PARTS_IN_FLIGHT: usize = 4;

pub(crate) struct FileSink<'a> {
    store: &'a ArtifactStore,
    path: Path,
    /// Where a local store keeps the file.
    local: Option<std::path::PathBuf>,
    buffer: Vec<u8>,
    hasher: blake3::Hasher,
    size: u64,
    target: Target,
    error: Option<Error>,
    /// A file of at most this many bytes is kept in its record, not stored.
    inline_budget: usize,
    /// Called before anything is stored, then dropped.
    before_storing: Option<&'a BeforeStoring<'a>>,
}

impl<'a> FileSink<'a> {
    fn new(store: &'a ArtifactStore, path: Path, inline_budget: usize) -> Self {
        let local = store.local_path_of(&path);
        Self {
            store,
            path,
            local,
            buffer: Vec::new(),
            hasher: blake3::Hasher::new(),
            size: 0,
            target: Target::Pending,
            error: None,
            inline_budget,
            before_storing: None,
        }
    }

    /// Whether what was written stays in the record when the file is finished.
    fn stays_inline(&self) -> bool {
        matches!(self.target, Target::Pending) && self.buffer.len() <= self.inline_budget
    }

    /// Calls `before_storing` the first time something is to be stored.
    fn may_store(&mut self) -> Result<()> {
        match self.before_storing.take() {
            Some(before_storing) => before_storing().map_err(|e| self.write_error(e)),
            None => Ok(()),
        }
    }

    fn write_error(&self, source: impl Into<BoxError>) -> Error {
        Error::write(self.store.display_path(&self.path), source.into())
    }

    /// Creates the staging file of a local store, and its folder if it is missing.
    fn open_local(&mut self, destination: &std::path::Path) -> Result<()> {
        let file_name = destination
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let staging = destination.with_file_name(format!(
            ".{file_name}.{}.partial",
            uuid::Uuid::now_v7().simple()
        ));
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&staging)
        };
        let file = match create() {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let folder = staging.parent().expect("a file has a folder");
                std::fs::create_dir_all(folder).map_err(|e| self.write_error(e))?;
                create()
            }
            other => other,
        }
        .map_err(|e| self.write_error(e))?;
        self.target = Target::Local { file, staging };
        Ok(())
    }

    /// Sends `data` on: straight to a local file (hashed alongside), or as one part of an
    /// upload.
    fn send(&mut self, data: &[u8]) -> Result<()> {
        let (mut in_order, mut from_the_end) = (|_| {}, |_| {});
        self.send_observed(
            data,
            Observers {
                in_order: &mut in_order,
                from_the_end: &mut from_the_end,
            },
        )
    }

    /// [`FileSink::send`], handing `observers` the blocks of `data`.
    fn send_observed(&mut self, data: &[u8], observers: Observers<'_, '_>) -> Result<()> {
        if matches!(self.target, Target::Pending) {
            self.may_store()?;
        }
        if let Some(destination) = self.local.clone() {
            if matches!(self.target, Target::Pending) {
                self.open_local(&destination)?;
            }
            let Target::Local { file, .. } = &mut self.target else {
                unreachable!("opened above")
            };
            if data.len() >= PREALLOCATE_MIN {
                // Where the file system cannot, the write finds room as it goes, as without.
                let _ = rustix::fs::fallocate(
                    &*file,
                    rustix::fs::FallocateFlags::KEEP_SIZE,
                    self.size,
                    data.len() as u64,
                );
            }
            let written =
                hash_alongside(&mut self.hasher, data, observers, || file.write_all(data));
            self.size += data.len() as u64;
            return written.map_err(|e| self.write_error(e));
        }
        blocks(data.len()).for_each(observers.in_order);
        self.hasher.update(data);
        self.size += data.len() as u64;
        if matches!(self.target, Target::Pending) {
            self.start_upload()?;
        }
        let Target::Upload {
            multipart,
            id,
            sending,
            sent,
            ..
        } = &mut self.target
        else {
            unreachable!("a store is local or not")
        };
        let (multipart, id_owned, path) = (multipart.clone(), id.clone(), self.path.clone());
        let index = sent.len() + sending.len();
        let payload = Bytes::copy_from_slice(data).into();
        let part = async move { multipart.put_part(&path, &id_owned, index, payload).await };
        sending.push_back(self.store.runtime().spawn(part));
        while sending.len() > PARTS_IN_FLIGHT {
            let oldest = sending.pop_front().expect("more than one");
            match flatten(self.store.wait(oldest)) {
                Ok(part) => sent.push(part),
                Err(error) => return Err(self.write_error(error)),
            }
        }
        Ok(())
    }

    /// Claims the final name, starts an upload in parts to it and leaves the marker naming
    /// the upload; on failure, undoes what it did.
    fn start_upload(&mut self) -> Result<()> {
        let store = self.store;
        let objects = store.objects();
        let multipart = store
            .multipart()
            .expect("a store that is not local uploads in parts")
            .clone();
        let create_only = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        store
            .wait(objects.put_opts(&self.path, object_store::PutPayload::new(), create_only()))
            .map_err(|e| self.write_error(e))?;
        let id = match store.wait(multipart.create_multipart(&self.path)) {
            Ok(id) => id,
            Err(error) => {
                let _ = store.wait(objects.delete(&self.path));
                return Err(self.write_error(error));
            }
        };
        let marker = upload_marker(&self.path);
        let marked = store.wait(objects.put_opts(&marker, id.clone().into(), create_only()));
        if let Err(error) = marked {
            let _ = store.wait(multipart.abort_multipart(&self.path, &id));
            let _ = store.wait(objects.delete(&self.path));
            return Err(self.write_error(error));
        }
        self.target = Target::Upload {
            multipart,
            id,
            marker,
            sending: Default::default(),
            sent: Vec::new(),
        };
        Ok(())
    }

    /// Writes all of `data`, handing its blocks to `observers` while each is in the cache:
    /// on the hashing thread, as the block is hashed, when `data` goes straight to a local
    /// file (see [`Observers`]); else all of them to the first, here, before it is written. A
    /// materializer that describes the values it writes reads them from memory once.
    pub(crate) fn write_observed(
        &mut self,
        data: &[u8],
        observers: Observers<'_, '_>,
    ) -> io::Result<()> {
        let direct = self.local.is_some() && data.len() >= PARALLEL_HASH_MIN;
        if !direct || self.error.is_some() {
            blocks(data.len()).for_each(observers.in_order);
            return self.write_all(data);
        }
        let mut sent = Ok(());
        if !self.buffer.is_empty() {
            sent = self.send_buffer();
        }
        if sent.is_ok() {
            sent = self.send_observed(data, observers);
        }
        if let Err(error) = sent {
            let message = error.to_string();
            self.error = Some(error);
            return Err(io::Error::other(message));
        }
        Ok(())
    }

    fn send_buffer(&mut self) -> Result<()> {
        let buffer = std::mem::take(&mut self.buffer);
        let sent = self.send(&buffer);
        self.buffer = buffer;
        self.buffer.clear();
        sent
    }

    fn finish(mut self, name: &str) -> Result<FileRecord> {
        let store = self.store;
        if self.stays_inline() {
            // Small enough to live in the record: nothing is sent anywhere.
            let data = std::mem::take(&mut self.buffer);
            return Ok(FileRecord {
                name: name.to_owned(),
                size: data.len() as u64,
                blake3: Digest::of(&data),
                etag: None,
                visualization: None,
                inline: Some(weft_core::artifact::InlineBytes(data)),
            });
        }
        let etag = match (&self.local, &self.target) {
            (None, Target::Pending) => {
                let data = std::mem::take(&mut self.buffer);
                self.hasher.update(&data);
                self.size += data.len() as u64;
                let options = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                store
                    .wait(store.objects().put_opts(&self.path, data.into(), options))
                    .map_err(|e| self.write_error(e))?
                    .e_tag
            }
            (None, _) => {
                if !self.buffer.is_empty()
                    && let Err(error) = self.send_buffer()
                {
                    self.abort();
                    return Err(error);
                }
                let Target::Upload {
                    multipart,
                    id,
                    marker,
                    sending,
                    mut sent,
                } = std::mem::replace(&mut self.target, Target::Pending)
                else {
                    unreachable!("not local, not pending")
                };
                let mut result = Ok(());
                for part in sending {
                    match flatten(store.wait(part)) {
                        Ok(part) => sent.push(part),
                        Err(error) => result = result.and(Err(error)),
                    }
                }
                let objects = store.objects();
                let completed = result
                    .and_then(|()| store.wait(multipart.complete_multipart(&self.path, &id, sent)));
                match completed {
                    // The tag as the store reports it later (cache hits compare it), not as
                    // the completion answered it.
                    Ok(_) => {
                        let _ = store.wait(objects.delete(&marker));
                        store
                            .wait(objects.head(&self.path))
                            .map_err(|e| self.write_error(e))?
                            .e_tag
                    }
                    Err(error) => {
                        let _ = store.wait(multipart.abort_multipart(&self.path, &id));
                        let _ = store.wait(objects.delete(&self.path));
                        let _ = store.wait(objects.delete(&marker));
                        return Err(self.write_error(error));
                    }
                }
            }
            (Some(_), _) => {
                if (!self.buffer.is_empty() || matches!(self.target, Target::Pending))
                    && let Err(error) = self.send_buffer()
                {
                    self.abort();
                    return Err(error);
                }
                match self.publish_local() {
                    Ok(etag) => Some(etag),
                    Err(error) => {
                        self.abort();
                        return Err(error);
                    }
                }
            }
        };
        Ok(FileRecord {
            name: name.to_owned(),
            size: self.size,
            blake3: self.hasher.finalize().into(),
            etag,
            visualization: None,
            inline: None,
        })
    }

    /// Moves a local staging file to its final name, never replacing a file there.
    fn publish_local(&mut self) -> Result<String> {
        let destination = self.local.clone().expect("a local store");
        let Target::Local { file, staging } = &self.target else {
            unreachable!("sent above")
        };
        let meta = file.metadata().map_err(|e| self.write_error(e))?;
        publish_without_replacing(staging, &destination).map_err(|e| self.write_error(e))?;
        self.target = Target::Pending;
        Ok(crate::store::local_etag(&meta))
    }

    fn abort(&mut self) {
        match std::mem::replace(&mut self.target, Target::Pending) {
            Target::Pending => {}
            Target::Local { file, staging } => {
                drop(file);
                let _ = std::fs::remove_file(staging);
            }
            Target::Upload {
                multipart,
                id,
                marker,
                sending,
                ..
            } => {
                for part in sending {
                    part.abort();
                    let _ = self.store.wait(part);
                }
                let _ = self.store.wait(multipart.abort_multipart(&self.path, &id));
                // The claim on the final name and the marker go with the upload.
                let objects = self.store.objects();
                let _ = self.store.wait(objects.delete(&self.path));
                let _ = self.store.wait(objects.delete(&marker));
            }
        }
    }
}

/// Renames `staging` to `destination` unless something is there already: one system call
/// where the file system can (Linux's `RENAME_NOREPLACE`), else a hard link and an unlink.
fn publish_without_replacing(
    staging: &std::path::Path,
    destination: &std::path::Path,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, staging, CWD, destination, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    std::fs::hard_link(staging, destination)?;
    let _ = std::fs::remove_file(staging);
    Ok(())
}

impl Write for FileSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::other("the artifact store failed earlier"));
        }
        let local = self.local.is_some();
        let direct = local && data.len() >= PARALLEL_HASH_MIN;
        let gathered = if local { LOCAL_BUFFER } else { PART_SIZE };
        if !direct && self.buffer.len() + data.len() <= gathered {
            self.buffer.extend_from_slice(data);
            return Ok(data.len());
        }
        // Large writes to local files go straight to the file (no copy); otherwise the
        // buffer is sent when full, uploads in bounded parts.
        let taken = if local {
            data.len()
        } else {
            PART_SIZE - self.buffer.len()
        };
        let mut sent = Ok(());
        if local {
            if !self.buffer.is_empty() {
                sent = self.send_buffer();
            }
            if sent.is_ok() {
                if direct {
                    sent = self.send(data);
                } else {
                    self.buffer.extend_from_slice(data);
                }
            }
        } else {
            self.buffer.extend_from_slice(&data[..taken]);
            sent = self.send_buffer();
        }
        if let Err(error) = sent {
            let message = error.to_string();
            self.error = Some(error);
            return Err(io::Error::other(message));
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for FileSink<'_> {
    fn drop(&mut self) {
        // A sink dropped unpublished (a panicking materializer) leaves no staging file.
        self.abort();
    }
}

/// Where a materializer reads the files of one artifact version.
pub struct ArtifactReader<'a> {
    store: &'a ArtifactStore,
    stored: &'a StoredArtifact,
    prefix: Path,
    /// Who reads, and into what: named by decoding errors.
    materializer: &'static str,
    data_type: &'static str,
    opened: Vec<FileReader>,
}

impl<'a> ArtifactReader<'a> {
    pub(crate) fn new(
        store: &'a ArtifactStore,
        stored: &'a StoredArtifact,
        prefix: Path,
        (materializer, data_type): (&'static str, &'static str),
    ) -> Self {
        Self {
            store,
            stored,
            prefix,
            materializer,
            data_type,
            opened: Vec::new(),
        }
    }

    /// Opens file `name` of this artifact version for reading.
    pub fn open(&mut self, name: &str) -> Result<&mut FileReader> {
        let record = self.stored.file(name)?;
        let mut reader = self
            .store
            .open_file(self.prefix.clone().join(name), record.clone())?;
        reader.reading = Some((self.materializer, self.data_type));
        self.opened.push(reader);
        Ok(self.opened.last_mut().expect("pushed above"))
    }

    /// Reads every opened file to its end and checks it against its recorded hash.
    pub(crate) fn verify_opened(&mut self) -> Result<()> {
        for file in &mut self.opened {
            file.verify()?;
        }
        Ok(())
    }
}

enum Source {
    Local(io::Take<std::fs::File>),
    /// The bytes kept in the file's record, until they are read.
    Inline(Option<Bytes>),
    Stream {
        stream: BoxStream<'static, object_store::Result<Bytes>>,
        store: ArtifactStore,
    },
}

/// One file of an artifact version, read through a buffer that hashes what passes through it.
pub struct FileReader {
    path: String,
    record: FileRecord,
    source: Source,
    chunk: Bytes,
    hasher: blake3::Hasher,
    size: u64,
    at_end: bool,
    /// The materializer reading it and the type it reads into, once a materializer opened it.
    reading: Option<(&'static str, &'static str)>,
    /// The file's length in the store when it was opened.
    stored_length: u64,
}

impl FileReader {
    pub(crate) fn new(
        path: String,
        record: FileRecord,
        payload: GetResultPayload,
        length: u64,
        store: ArtifactStore,
    ) -> Self {
        let source = match payload {
            GetResultPayload::File(file, _) => Source::Local(file.take(length)),
            GetResultPayload::Stream(stream) => Source::Stream { stream, store },
        };
        Self::from_source(path, record, source, length)
    }

    /// A file whose bytes are kept in its record.
    pub(crate) fn inline(path: String, record: FileRecord, bytes: Bytes) -> Self {
        let length = bytes.len() as u64;
        Self::from_source(path, record, Source::Inline(Some(bytes)), length)
    }

    fn from_source(path: String, record: FileRecord, source: Source, stored_length: u64) -> Self {
        Self {
            path,
            record,
            source,
            chunk: Bytes::new(),
            hasher: blake3::Hasher::new(),
            size: 0,
            at_end: false,
            reading: None,
            stored_length,
        }
    }

    /// The file's location, for messages.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The file's size: as recorded when it was written, and never more than the store holds
    /// now (a record that claims more is not trusted with an allocation).
    pub fn recorded_size(&self) -> u64 {
        self.record.size.min(self.stored_length)
    }

    /// How many bytes are left to read, going by [`recorded_size`](Self::recorded_size).
    pub fn remaining(&self) -> u64 {
        let consumed = self.size - self.chunk.len() as u64;
        self.recorded_size().saturating_sub(consumed)
    }

    /// Reads the rest of the file into a buffer allocated once, at the recorded size.
    pub fn read_all(&mut self) -> Result<Vec<u8>> {
        let mut bytes = vec![0; self.remaining() as usize];
        let filled = read_full(self, &mut bytes).map_err(|e| self.decode_error(e))?;
        if filled < bytes.len() {
            // Shorter than recorded: the hash check says so once the reader reaches the end.
            bytes.truncate(filled);
        }
        let mut probe = [0u8; 1];
        if self.read(&mut probe).map_err(|e| self.decode_error(e))? != 0 {
            // Longer than recorded: read on, so that the hash check sees the whole file.
            bytes.push(probe[0]);
            self.read_to_end(&mut bytes)
                .map_err(|e| self.decode_error(e))?;
        }
        Ok(bytes)
    }

    /// Reads straight into `out`, a large buffer, from a local file: in pieces, on every core
    /// (see [`crate::split_read`]), hashed in order as they come. Returns how much was read;
    /// less than `out` only at the end of the file.
    fn read_direct(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Source::Local(file) = &mut self.source else {
            unreachable!("only local files are read directly")
        };
        // The pieces are read at explicit offsets; the file's own offset and what is left of
        // its recorded length move on by what was read, as a plain read would move them.
        let allowed = usize::try_from(file.limit()).unwrap_or(usize::MAX);
        let wanted = out.len().min(allowed);
        let offset = file.get_mut().stream_position()?;
        let filled = crate::split_read::read_hashed(
            file.get_ref(),
            offset,
            &mut out[..wanted],
            &mut self.hasher,
        )?;
        file.get_mut()
            .seek(io::SeekFrom::Start(offset + filled as u64))?;
        file.set_limit(file.limit() - filled as u64);
        self.size += filled as u64;
        Ok(filled)
    }

    /// For a decoder that reads a file at random places (Parquet's footer first, then the
    /// column chunks it needs): runs `decode` on the stored file itself when it is a local
    /// file not read from yet, while a second thread hashes the whole file. What `decode`
    /// returns counts only if the file matches its record; a file that does not is reported
    /// as corrupt whatever the decoder made of it. Nothing is buffered: the decoder reads
    /// what it needs, the hasher reads in 8 MiB pieces.
    ///
    /// `None` where the file is not local (read it with [`read_all`](Self::read_all)).
    pub fn decode_local<T: Send>(
        &mut self,
        decode: impl FnOnce(std::fs::File) -> std::result::Result<T, BoxError> + Send,
    ) -> Option<Result<T>> {
        let Source::Local(file) = &self.source else {
            return None;
        };
        if self.size != 0 || self.at_end {
            return None;
        }
        let own = file.get_ref();
        // The decoder's handle shares the file offset with this one; the hasher reads at
        // explicit offsets and never moves it.
        let decoder_handle = match own.try_clone() {
            Ok(handle) => handle,
            Err(error) => return Some(Err(self.decode_error(error))),
        };
        let (decoded, hashed) = std::thread::scope(|scope| {
            let hashing = scope.spawn(|| hash_whole_file(own));
            let decoded = decode(decoder_handle);
            (decoded, hashing.join().expect("hashing does not panic"))
        });
        let (hasher, size) = match hashed {
            Ok(hashed) => hashed,
            Err(error) => {
                return Some(Err(Error::Read {
                    path: self.path.clone(),
                    source: error.into(),
                }));
            }
        };
        self.hasher = hasher;
        self.size = size;
        self.at_end = true;
        Some(
            self.check()
                .and_then(|()| decoded.map_err(|e| self.decode_error(e))),
        )
    }

    /// A decoding error for this file, naming the file, the type being read and the
    /// materializer reading it.
    pub fn decode_error(&self, source: impl Into<BoxError>) -> Error {
        let (materializer, data_type) = self.reading.unwrap_or(("a materializer", "a value"));
        Error::Decode {
            data_type,
            path: self.path.clone(),
            materializer,
            source: source.into(),
        }
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        if self.at_end {
            return Ok(());
        }
        let chunk = match &mut self.source {
            Source::Local(file) => {
                // Sized to what is left, so small files cost a small allocation.
                let wanted = file.limit().clamp(1, READ_CHUNK as u64) as usize;
                let mut buffer = vec![0; wanted];
                let read = file.read(&mut buffer)?;
                buffer.truncate(read);
                Bytes::from(buffer)
            }
            Source::Inline(bytes) => bytes.take().unwrap_or_default(),
            Source::Stream { stream, store } => match store.wait(stream.next()) {
                Some(Ok(bytes)) => bytes,
                Some(Err(error)) => return Err(io::Error::other(error)),
                None => Bytes::new(),
            },
        };
        if chunk.is_empty() {
            self.at_end = true;
            if let Err(error) = self.check() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    error.to_string(),
                ));
            }
        }
        self.hasher.update(&chunk);
        self.size += chunk.len() as u64;
        self.chunk = chunk;
        Ok(())
    }

    fn check(&self) -> Result<()> {
        let actual = Digest::from(self.hasher.finalize());
        if actual == self.record.blake3 && self.size == self.record.size {
            Ok(())
        } else {
            Err(Error::Corrupt {
                path: self.path.clone(),
                expected: self.record.blake3.to_string(),
                actual: actual.to_string(),
                expected_size: self.record.size,
                actual_size: self.size,
            })
        }
    }

    /// Reads the rest of the file and checks all of it against the recorded hash (a reader
    /// that streamed the file out calls it at the end: what it sent is trustworthy only if
    /// this succeeds).
    pub fn verify(&mut self) -> Result<()> {
        while !self.at_end {
            self.chunk = Bytes::new();
            if let Err(source) = self.next_chunk()
                && !self.at_end
            {
                return Err(Error::Read {
                    path: self.path.clone(),
                    source: source.into(),
                });
            }
        }
        self.check()
    }
}

/// Hashes a file from its start to its end, reading at explicit offsets (the file's own
/// offset is left alone), in 8 MiB pieces.
fn hash_whole_file(file: &std::fs::File) -> io::Result<(blake3::Hasher, u64)> {
    use std::os::unix::fs::FileExt;
    let mut hasher = blake3::Hasher::new();
    let mut piece = vec![0u8; READ_PIECE];
    let mut offset = 0u64;
    loop {
        let read = match file.read_at(&mut piece, offset) {
            Ok(0) => return Ok((hasher, offset)),
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&piece[..read]);
        offset += read as u64;
    }
}

/// Reads until `out` is full or the source ends; returns how much was read.
fn read_full(source: &mut impl Read, out: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < out.len() {
        match source.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

impl Read for FileReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.chunk.is_empty()
            && !self.at_end
            && out.len() >= 2 * READ_CHUNK
            && matches!(self.source, Source::Local(_))
        {
            let read = self.read_direct(out)?;
            if read > 0 {
                return Ok(read);
            }
        }
        let available = self.fill_buf()?;
        let count = available.len().min(out.len());
        out[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl BufRead for FileReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.chunk.is_empty() {
            self.next_chunk()?;
        }
        Ok(&self.chunk)
    }

    fn consume(&mut self, amount: usize) {
        let _ = self.chunk.split_to(amount.min(self.chunk.len()));
    }
}

/// The result of a part sent on the runtime: a part whose task failed (panicked or was
/// cancelled) is an error like any other.
fn flatten<T>(
    sent: std::result::Result<object_store::Result<T>, tokio::task::JoinError>,
) -> object_store::Result<T> {
    sent.unwrap_or_else(|error| {
        Err(object_store::Error::Generic {
            store: "S3",
            source: Box::new(error),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The observers see every block of what is written once between them, the first in
    /// order, on both paths (a large write straight to a local file, hashed on a second
    /// thread; a small one, buffered), and the file's hash is the hash of every byte written.
    #[test]
    fn observed_writes_hand_over_every_block_once_and_hash_everything() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = ArtifactStore::local(dir.path(), runtime.handle().clone()).unwrap();
        let mut writer = ArtifactWriter::new(&store, Path::from("observed"), "test", "bytes");
        for (name, length) in [("large.bin", 3 * OBSERVED_BLOCK + 5), ("small.bin", 1000)] {
            let data: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
            let mut in_order: Vec<std::ops::Range<usize>> = Vec::new();
            let mut from_the_end: Vec<std::ops::Range<usize>> = Vec::new();
            writer
                .write_data_file(name, |file| {
                    file.write_all(b"header")?;
                    // The hashing thread is slowed down, so that the writing thread, done
                    // first, takes blocks from the end.
                    let observers = Observers {
                        in_order: &mut |block| {
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            in_order.push(block);
                        },
                        from_the_end: &mut |block| from_the_end.push(block),
                    };
                    file.write_observed(&data, observers)?;
                    Ok(())
                })
                .unwrap();
            let mut next = 0;
            for block in &in_order {
                assert_eq!(block.start, next, "{name}: blocks in order, none skipped");
                next = block.end;
            }
            for block in from_the_end.iter().rev() {
                assert_eq!(
                    block.start, next,
                    "{name}: the rest from the end, none skipped"
                );
                next = block.end;
            }
            for block in in_order.iter().chain(&from_the_end) {
                assert!(block.len() <= OBSERVED_BLOCK && !block.is_empty(), "{name}");
            }
            assert_eq!(next, length, "{name}: every byte observed");
            if length > PARALLEL_HASH_MIN {
                assert!(
                    !from_the_end.is_empty(),
                    "{name}: the writing thread helped"
                );
            }
            let record = writer.files.iter().find(|file| file.name == name).unwrap();
            let mut whole = b"header".to_vec();
            whole.extend_from_slice(&data);
            assert_eq!(record.size, whole.len() as u64, "{name}");
            assert_eq!(record.blake3, Digest::of(&whole), "{name}");
        }
    }

    #[test]
    fn an_upload_marker_names_its_file_and_nothing_else_does() {
        let file = Path::from("pipe/step/out/0192-run/data.bin");
        let marker = upload_marker(&file);
        assert_eq!(
            marker.as_ref(),
            "pipe/step/out/0192-run/.data.bin.weft-upload"
        );
        assert_eq!(upload_of_marker(&marker), Some(file));
        for other in [
            "pipe/step/out/0192-run/data.bin",
            "pipe/step/out/0192-run/.weft-upload",
            "pipe/step/out/0192-run/..weft-upload",
            "pipe/step/out/0192-run/data.bin.weft-upload",
        ] {
            assert_eq!(upload_of_marker(&Path::from(other)), None, "{other}");
        }
    }
}
