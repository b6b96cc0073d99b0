//! Streaming, hashing file access for materializers.
//!
//! [`ArtifactWriter`] hands a materializer one `Write` per file. Bytes are buffered and hashed
//! in large chunks; a small file is published with one atomic create-only put, a large one is
//! streamed as a multipart upload that becomes visible only when complete. [`FileReader`]
//! hashes what it reads in large chunks too, and [`ArtifactReader`] checks every opened file
//! against its recorded hash once the materializer is done.

use std::io::{self, BufRead, Read, Write};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetResultPayload, MultipartUpload, ObjectStoreExt, PutMode, PutOptions};

use crate::error::BoxError;
use crate::store::{ArtifactStore, StoredArtifact};
use crate::{Error, FileRecord, Result};

/// Files up to this size are published with a single put; larger ones stream in parts of it.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Read chunk size: large enough that hashing and syscalls stay cheap per byte.
const READ_CHUNK: usize = 256 * 1024;

/// Where a materializer writes the files of one artifact version.
pub struct ArtifactWriter<'a> {
    store: &'a ArtifactStore,
    prefix: Path,
    materializer: &'static str,
    data_type: &'static str,
    pub(crate) files: Vec<FileRecord>,
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
            prefix,
            materializer,
            data_type,
            files: Vec::new(),
        }
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
        write: impl FnOnce(&mut dyn Write) -> std::result::Result<(), BoxError>,
    ) -> Result<()> {
        let valid = !name.is_empty()
            && !name.contains('/')
            && name != "."
            && name != ".."
            && !self.files.iter().any(|file| file.name == name);
        if !valid {
            return Err(Error::BadFileName {
                materializer: self.materializer,
                name: name.into(),
            });
        }
        let mut sink = FileSink::new(self.store, self.prefix.clone().join(name));
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
        let record = sink.finish(name)?;
        self.files.push(record);
        Ok(())
    }
}

struct FileSink<'a> {
    store: &'a ArtifactStore,
    path: Path,
    buffer: Vec<u8>,
    hasher: blake3::Hasher,
    size: u64,
    upload: Option<Box<dyn MultipartUpload>>,
    error: Option<Error>,
}

impl<'a> FileSink<'a> {
    fn new(store: &'a ArtifactStore, path: Path) -> Self {
        Self {
            store,
            path,
            buffer: Vec::new(),
            hasher: blake3::Hasher::new(),
            size: 0,
            upload: None,
            error: None,
        }
    }

    fn write_error(&self, source: impl Into<BoxError>) -> Error {
        Error::write(self.store.display_path(&self.path), source.into())
    }

    fn send_part(&mut self) -> Result<()> {
        let part = std::mem::take(&mut self.buffer);
        self.hasher.update(&part);
        self.size += part.len() as u64;
        let objects = self.store.objects();
        if self.upload.is_none() {
            let upload = self
                .store
                .wait(objects.put_multipart(&self.path))
                .map_err(|e| self.write_error(e))?;
            self.upload = Some(upload);
        }
        let upload = self.upload.as_mut().expect("created above");
        let sent = self.store.wait(upload.put_part(part.into()));
        sent.map_err(|e| self.write_error(e))
    }

    fn finish(mut self, name: &str) -> Result<FileRecord> {
        let store = self.store;
        let published = match self.upload.take() {
            None => {
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
            }
            Some(upload) => {
                self.upload = Some(upload);
                if !self.buffer.is_empty()
                    && let Err(error) = self.send_part()
                {
                    self.abort();
                    return Err(error);
                }
                let mut upload = self.upload.take().expect("set above");
                match store.wait(upload.complete()) {
                    Ok(published) => published,
                    Err(error) => {
                        let _ = store.wait(upload.abort());
                        return Err(self.write_error(error));
                    }
                }
            }
        };
        Ok(FileRecord {
            name: name.to_owned(),
            size: self.size,
            blake3: self.hasher.finalize().to_hex().to_string(),
            etag: published.e_tag,
        })
    }

    fn abort(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            let _ = self.store.wait(upload.abort());
        }
    }
}

impl Write for FileSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::other("the artifact store failed earlier"));
        }
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= PART_SIZE
            && let Err(error) = self.send_part()
        {
            let message = error.to_string();
            self.error = Some(error);
            return Err(io::Error::other(message));
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
        let Some(record) = self.stored.files.iter().find(|file| file.name == name) else {
            let known: Vec<&str> = self.stored.files.iter().map(|f| f.name.as_str()).collect();
            return Err(Error::UnknownFile {
                uri: self.stored.uri.clone(),
                name: name.into(),
                known: known.join(", "),
            });
        };
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
        Self {
            path,
            record,
            source,
            chunk: Bytes::new(),
            hasher: blake3::Hasher::new(),
            size: 0,
            at_end: false,
            reading: None,
        }
    }

    /// The file's location, for messages.
    pub fn path(&self) -> &str {
        &self.path
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
        let actual = self.hasher.finalize().to_hex().to_string();
        if actual == self.record.blake3 && self.size == self.record.size {
            Ok(())
        } else {
            Err(Error::Corrupt {
                path: self.path.clone(),
                expected: self.record.blake3.clone(),
                actual,
                expected_size: self.record.size,
                actual_size: self.size,
            })
        }
    }

    /// Reads the rest of the file and checks all of it against the recorded hash.
    pub(crate) fn verify(&mut self) -> Result<()> {
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

impl Read for FileReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
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
