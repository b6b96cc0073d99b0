//! [`ArtifactStore`]: where artifact files live, over any `object_store` backend.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use url::Url;
use weft_core::Digest;
use weft_core::artifact::{ArtifactType, FileRecord};

use crate::io::{ArtifactReader, ArtifactWriter, BeforeStoring, FileReader};
use crate::materializer::{Artifact, Loader, Materializer, Metadata};
use crate::{BoxError, Error, Result};

/// Version of the content-hash encoding (see [`content_hash`]).
const CONTENT_HASH_FORMAT: &str = "weft-artifact-v1";

/// How many bytes of a version's files, at most, are kept in their records (in the metadata
/// store) rather than as files: the outputs of most steps (numbers, short strings, small
/// structs and metric sets) fit. Each file costs a store a folder, a file and their
/// metadata writes (on a disk, hundreds of microseconds; on object storage, a request); a
/// record of up to 1 KiB, even encoded, stays within one page of the metadata database.
pub const INLINE_LIMIT: usize = 1024;

/// A store of artifact files, cheap to clone.
#[derive(Clone)]
pub struct ArtifactStore {
    inner: Arc<Inner>,
    inline_limit: usize,
}

struct Inner {
    objects: Arc<dyn ObjectStore>,
    /// The same store as `objects`, for uploads in parts that are known by id (and so can be
    /// aborted by a later process); `None` for a local folder, which needs none.
    multipart: Option<Arc<dyn MultipartStore>>,
    root: String,
    id: String,
    runtime: Handle,
    /// Local files are read and written on the calling thread (no hand-off to a runtime).
    local: bool,
    /// The same store as `objects` when it is a local folder, for asking the file system
    /// directly (see [`ArtifactStore::file_meta`]).
    files: Option<Arc<LocalFileSystem>>,
    /// The folder of a local store.
    folder: Option<PathBuf>,
    /// Stores opened to read versions recorded elsewhere (saved while the project used
    /// another artifact store), by the root they were opened at.
    elsewhere: std::sync::Mutex<std::collections::HashMap<String, ArtifactStore>>,
    /// Where the items of recently mapped collections lie, found once per process.
    item_spans: crate::items::SpanCache,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("root", &self.inner.root)
            .finish()
    }
}

/// What saving a value produced: everything the metadata store records about the version.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedArtifact {
    /// Location of the version's folder, ending in `/`.
    pub uri: String,
    /// The files written, sorted by name.
    pub files: Vec<FileRecord>,
    /// Hash over the materializer and every file's name, size and hash.
    pub content_hash: Digest,
    /// Total size of the files in bytes.
    pub size: u64,
    /// The materializer that wrote it.
    pub materializer: &'static str,
    /// The version of the materializer's format.
    pub materializer_version: u32,
    /// The Rust type of the value.
    pub data_type: &'static str,
    /// The kind of artifact.
    pub artifact_type: ArtifactType,
    /// Facts about the value, including `storage_size`.
    pub metadata: Metadata,
}

impl SavedArtifact {
    /// The description needed to load this version again.
    pub fn to_stored(&self) -> StoredArtifact {
        StoredArtifact {
            uri: self.uri.clone(),
            files: self.files.clone(),
            materializer: self.materializer.into(),
            materializer_version: self.materializer_version,
            data_type: self.data_type.into(),
        }
    }
}

/// What the artifact store needs to find, check and load a stored version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredArtifact {
    /// Location of the version's folder.
    pub uri: String,
    /// The files with their sizes and hashes.
    pub files: Vec<FileRecord>,
    /// The materializer that wrote it (borrowed from the materializer when this process
    /// saved it: a map's 100,000 outputs need no copy).
    pub materializer: Cow<'static, str>,
    /// The version of the materializer's format.
    pub materializer_version: u32,
    /// The Rust type of the value (borrowed like `materializer`).
    pub data_type: Cow<'static, str>,
}

impl StoredArtifact {
    /// The record of file `name`, or an error listing the files there are.
    pub(crate) fn file(&self, name: &str) -> Result<&FileRecord> {
        self.files
            .iter()
            .find(|file| file.name == name)
            .ok_or_else(|| Error::UnknownFile {
                uri: self.uri.clone(),
                name: name.into(),
                known: self
                    .files
                    .iter()
                    .map(|file| file.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

impl ArtifactStore {
    /// Opens the store at `location`: a `file://` URL or a plain path, relative paths taken
    /// from `base`. A local folder is created if needed and checked to be writable, so that a
    /// bad location fails now rather than in the middle of a run.
    pub fn open(location: &str, base: &std::path::Path, runtime: Handle) -> Result<Self> {
        if location.starts_with("s3://") {
            return Self::s3(location, [], runtime);
        }
        Self::local(&Self::folder_of(location, base)?, runtime)
    }

    /// Opens the store at `location` to read it: nothing is created and nothing written (the
    /// folder may be read-only); one that does not exist reads as empty.
    pub fn open_existing(location: &str, base: &std::path::Path, runtime: Handle) -> Result<Self> {
        if location.starts_with("s3://") {
            return Self::s3(location, [], runtime);
        }
        Self::local_with(&Self::folder_of(location, base)?, runtime, false)
    }

    /// A store in an S3 bucket (`s3://bucket/prefix`), configured from the standard AWS
    /// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`; for S3-compatible servers `AWS_ENDPOINT_URL`,
    /// `AWS_ALLOW_HTTP=true` and `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=false`). Files are published
    /// create-only: single puts with `If-None-Match: *`; an upload in parts first claims its
    /// name with such a put of nothing, then completes over its own claim. `settings`
    /// (`object_store`'s S3 configuration keys, such as `aws_endpoint`) override the
    /// environment.
    #[cfg(feature = "s3")]
    pub fn s3<'s>(
        location: &str,
        settings: impl IntoIterator<Item = (&'s str, &'s str)>,
        runtime: Handle,
    ) -> Result<Self> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        let invalid = |reason: String| Error::InvalidLocation {
            location: location.into(),
            reason,
        };
        let Some(bucket_and_prefix) = location.strip_prefix("s3://") else {
            return Err(invalid("not an s3:// URL".into()));
        };
        let (bucket, prefix) = bucket_and_prefix
            .split_once('/')
            .unwrap_or((bucket_and_prefix, ""));
        if bucket.is_empty() {
            return Err(invalid("no bucket is named (s3://bucket/prefix)".into()));
        }
        let prefix = prefix.trim_matches('/');
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        // The AWS shared files (profiles) fill in what the environment leaves unset.
        for (key, value) in crate::aws_profile::settings().map_err(invalid)? {
            let key: AmazonS3ConfigKey = key.parse().expect("a known S3 setting");
            builder = builder.with_config(key, value);
        }
        for (key, value) in settings {
            let key: AmazonS3ConfigKey = key
                .parse()
                .map_err(|_| invalid(format!("`{key}` is not an S3 setting")))?;
            builder = builder.with_config(key, value);
        }
        let s3 = builder.build().map_err(|e| Error::Open {
            location: location.into(),
            source: e.into(),
        })?;
        let root = if prefix.is_empty() {
            format!("s3://{bucket}/")
        } else {
            format!("s3://{bucket}/{prefix}/")
        };
        let store = if prefix.is_empty() {
            Self::from_object_store(Arc::new(s3), root, runtime)
        } else {
            let prefix = Path::parse(prefix).map_err(|e| invalid(e.to_string()))?;
            let objects = object_store::prefix::PrefixStore::new(s3, prefix);
            Self::from_object_store(Arc::new(objects), root, runtime)
        };
        // One listing, before anything else: an endpoint that does not answer, a bucket that
        // does not exist or credentials the server refuses stop here, not at the first step.
        let probe = Path::from(".weft-probe");
        store
            .wait(store.objects().list_with_delimiter(Some(&probe)))
            .map_err(|e| Error::Open {
                location: location.into(),
                source: e.into(),
            })?;
        Ok(store)
    }

    #[cfg(not(feature = "s3"))]
    fn s3(location: &str, _: [(&str, &str); 0], _: Handle) -> Result<Self> {
        Err(Error::InvalidLocation {
            location: location.into(),
            reason: "`s3://` stores need weft's `s3` feature, which this build leaves out".into(),
        })
    }

    fn folder_of(location: &str, base: &std::path::Path) -> Result<PathBuf> {
        let path = match location.split_once("://") {
            Some(("file", rest)) => PathBuf::from(rest),
            Some((scheme, _)) => {
                return Err(Error::InvalidLocation {
                    location: location.into(),
                    reason: format!(
                        "`{scheme}://` stores are not supported by this build; use a file:// URL or a path"
                    ),
                });
            }
            None => PathBuf::from(location),
        };
        if path.as_os_str().is_empty() {
            return Err(Error::InvalidLocation {
                location: location.into(),
                reason: "the path is empty".into(),
            });
        }
        Ok(base.join(path))
    }

    /// Opens (creating if needed) a store in the local folder `path`.
    pub fn local(path: &std::path::Path, runtime: Handle) -> Result<Self> {
        Self::local_with(path, runtime, true)
    }

    /// A store in the local folder `path`; `writable`: created if needed and checked to be
    /// writable, else only opened.
    fn local_with(path: &std::path::Path, runtime: Handle, writable: bool) -> Result<Self> {
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Open {
            location: path.display().to_string(),
            source,
        };
        if !writable && !path.exists() {
            // Nothing was ever saved there: read as an empty store, and make no folder.
            let root = Url::from_directory_path(std::path::absolute(path).unwrap_or_default())
                .map_or_else(|()| path.display().to_string(), |url| url.to_string());
            let empty = Arc::new(object_store::memory::InMemory::new());
            return Ok(Self::with_objects(empty, None, root, runtime));
        }
        if writable {
            std::fs::create_dir_all(path).map_err(|e| open_error(e.into()))?;
            let probe = path.join(format!(".weft-write-probe-{}", std::process::id()));
            std::fs::write(&probe, b"").map_err(|e| open_error(e.into()))?;
            let _ = std::fs::remove_file(&probe);
        }
        let objects =
            Arc::new(LocalFileSystem::new_with_prefix(path).map_err(|e| open_error(e.into()))?);
        let canonical = std::fs::canonicalize(path).map_err(|e| open_error(e.into()))?;
        let root = Url::from_directory_path(&canonical)
            .map_err(|()| open_error("not an absolute path".into()))?;
        let id = match local_store_id(&canonical, writable) {
            Ok(id) => id,
            // A store that is only read and never had an id (nothing wrote it) is named by
            // its folder.
            Err(_) if !writable => root.to_string(),
            Err(error) => return Err(open_error(error.into())),
        };
        let mut store = Self::with_objects(objects.clone(), None, root.to_string(), runtime);
        let inner = Arc::get_mut(&mut store.inner).expect("just created");
        inner.local = true;
        inner.files = Some(objects);
        inner.id = id;
        inner.folder = Some(canonical);
        Ok(store)
    }

    /// Wraps any object store whose root is displayed as `root`. Large files are uploaded in
    /// parts through its [`MultipartStore`] side (every object storage backend of
    /// `object_store` has one), so that an upload left unfinished by a process that died can
    /// be found and aborted later.
    pub fn from_object_store<T: ObjectStore + MultipartStore>(
        objects: Arc<T>,
        root: String,
        runtime: Handle,
    ) -> Self {
        let multipart: Arc<dyn MultipartStore> = objects.clone();
        Self::with_objects(objects, Some(multipart), root, runtime)
    }

    fn with_objects(
        objects: Arc<dyn ObjectStore>,
        multipart: Option<Arc<dyn MultipartStore>>,
        root: String,
        runtime: Handle,
    ) -> Self {
        let root = if root.ends_with('/') {
            root
        } else {
            format!("{root}/")
        };
        Self {
            inline_limit: INLINE_LIMIT,
            inner: Arc::new(Inner {
                objects,
                multipart,
                id: root.clone(),
                root,
                runtime,
                local: false,
                files: None,
                folder: None,
                elsewhere: Default::default(),
                item_spans: Default::default(),
            }),
        }
    }

    /// The same store, keeping up to `bytes` of each version's files in their records
    /// ([`INLINE_LIMIT`] by default; 0: every file is a file).
    pub fn with_inline_limit(mut self, bytes: usize) -> Self {
        self.inline_limit = bytes;
        self
    }

    pub(crate) fn inline_limit(&self) -> usize {
        self.inline_limit
    }

    /// The store's root location, ending in `/`.
    pub fn root(&self) -> &str {
        &self.inner.root
    }

    /// The store's identity, part of cache keys: stable for a store however it is reached
    /// (a local store keeps it in `.weft-store-id` at its root).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    pub(crate) fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.objects
    }

    /// The store's uploads in parts, known by id; `None` for a local folder.
    pub(crate) fn multipart(&self) -> Option<&Arc<dyn MultipartStore>> {
        self.inner.multipart.as_ref()
    }

    pub(crate) fn runtime(&self) -> &Handle {
        &self.inner.runtime
    }

    /// Waits for a store operation on the calling thread. Local file operations run right
    /// here (object_store does the file IO inline when no runtime is current), so a step
    /// thread writing its outputs pays no hand-off; other stores run on the runtime.
    pub(crate) fn wait<F: std::future::Future>(&self, operation: F) -> F::Output {
        if self.inner.local {
            futures::executor::block_on(operation)
        } else {
            self.inner.runtime.block_on(operation)
        }
    }

    pub(crate) fn display_path(&self, path: &Path) -> String {
        format!("{}{}", self.inner.root, path)
    }

    /// Saves `value` under the folder made of `segments` (each segment is escaped as needed).
    ///
    /// Files are published atomically and never overwrite anything; if saving fails midway,
    /// the files already written are removed.
    pub fn save<T: Artifact>(&self, segments: &[&str], value: &T) -> Result<SavedArtifact> {
        self.save_with_provenance(segments, value, Vec::new())
    }

    /// [`save`](Self::save), telling the materializer where the value comes from
    /// ([`ArtifactWriter::provenance`]).
    pub fn save_with_provenance<T: Artifact>(
        &self,
        segments: &[&str],
        value: &T,
        provenance: Vec<(String, String)>,
    ) -> Result<SavedArtifact> {
        self.save_after(segments, value, provenance, &|| Ok(()))
    }

    /// [`save_with_provenance`](Self::save_with_provenance), calling `before_storing` before
    /// the first byte of the version goes to the store (a file created, an upload started):
    /// a caller that must record something first, such as the step run the files belong to,
    /// waits there, and an error it returns fails the save. A version whose files all stay
    /// in their records never calls it.
    pub fn save_after<T: Artifact>(
        &self,
        segments: &[&str],
        value: &T,
        provenance: Vec<(String, String)>,
        before_storing: &BeforeStoring<'_>,
    ) -> Result<SavedArtifact> {
        let prefix = Path::from_iter(segments.iter().copied());
        let materializer = <T::Materializer as Materializer<T>>::ID;
        let data_type = std::any::type_name::<T>();
        let mut writer = ArtifactWriter::new(self, prefix.clone(), materializer, data_type);
        writer.provenance = provenance;
        writer.before_storing = Some(before_storing);
        let mut saved = <T::Materializer as Materializer<T>>::save(value, &mut writer);
        if saved.is_ok() {
            saved = <T::Materializer as Materializer<T>>::visualize(value, &mut writer);
        }
        let mut files = std::mem::take(&mut writer.files);
        if let Err(error) = saved {
            self.delete_files(&prefix, &files);
            return Err(error);
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let size: u64 = files.iter().map(|file| file.size).sum();
        let mut metadata = Metadata::new();
        value.describe(&mut metadata);
        metadata.append(&mut writer.metadata);
        metadata.insert("storage_size".into(), size.into());
        Ok(SavedArtifact {
            uri: format!("{}{}/", self.inner.root, prefix),
            content_hash: content_hash(materializer, &files),
            files,
            size,
            materializer,
            materializer_version: <T::Materializer as Materializer<T>>::VERSION,
            data_type,
            artifact_type: T::ARTIFACT_TYPE,
            metadata,
        })
    }

    /// Loads a stored version as a `T`, checking that it holds a `T` and that every byte read
    /// matches its recorded hash.
    pub fn load<T: Artifact>(&self, stored: &StoredArtifact) -> Result<T> {
        let (materializer, load) = self.loader::<T>(stored)?;
        self.read_version(stored, (materializer, std::any::type_name::<T>()), load)
    }

    /// The materializer that reads `stored` as a `T` (its current one, or a format `T` was
    /// stored in before) and its loader, once checked that `stored` holds a `T` in a format
    /// version this build reads.
    pub(crate) fn loader<T: Artifact>(
        &self,
        stored: &StoredArtifact,
    ) -> Result<(&'static str, Loader<T>)> {
        let requested = std::any::type_name::<T>();
        let requested_materializer = <T::Materializer as Materializer<T>>::ID;
        let (materializer, supported, load, checks_type): (_, _, Loader<T>, _) =
            if stored.materializer == requested_materializer {
                (
                    requested_materializer,
                    <T::Materializer as Materializer<T>>::VERSION,
                    <T::Materializer as Materializer<T>>::load,
                    <T::Materializer as Materializer<T>>::SELF_DESCRIBING,
                )
            } else if let Some(former) = T::former_format(&stored.materializer) {
                (former.id, former.version, former.load, false)
            } else {
                return Err(self.mismatch::<T>(stored));
            };
        // A self-describing format checks what it reads against the requested type itself
        // (an array saved as `Vec<f64>` loads as an `Array1<f64>`, a 3-D one does not).
        if !checks_type && stored.data_type != requested {
            return Err(self.mismatch::<T>(stored));
        }
        if stored.materializer_version > supported {
            return Err(Error::NewerFormat {
                uri: stored.uri.clone(),
                materializer: stored.materializer.to_string(),
                stored: stored.materializer_version,
                supported,
            });
        }
        Ok((materializer, load))
    }

    /// A reader of `stored`'s files for `materializer`, reading into `data_type`, wherever
    /// the version is.
    pub(crate) fn read_version<R>(
        &self,
        stored: &StoredArtifact,
        reading: (&'static str, &'static str),
        read: impl FnOnce(&mut ArtifactReader<'_>) -> Result<R>,
    ) -> Result<R> {
        let (store, prefix) = self.locate(&stored.uri)?;
        let mut reader = ArtifactReader::new(&store, stored, prefix, reading);
        let read = read(&mut reader);
        // Corruption explains a decoding error better than the decoder does, so it wins.
        reader.verify_opened()?;
        read
    }

    /// The span `start..start + length` of file `name` of a stored version, read alone. The
    /// file is checked to be the one recorded (its size and entity tag) but not hashed: the
    /// caller verified it whole before.
    pub(crate) fn read_span(
        &self,
        stored: &StoredArtifact,
        name: &str,
        start: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        let record = stored.file(name)?;
        let (store, prefix) = self.locate(&stored.uri)?;
        let path = prefix.join(name);
        // Named only in errors: the success path is taken once per item of a map.
        let display = || store.display_path(&path);
        let end = start.saturating_add(length);
        if end > record.size {
            return Err(Error::Changed { path: display() });
        }
        if let Some(inline) = &record.inline {
            let bytes = inline.0.get(start as usize..end as usize);
            return bytes
                .map(<[u8]>::to_vec)
                .ok_or_else(|| Error::Changed { path: display() });
        }
        let read_error = |source: BoxError| Error::Read {
            path: display(),
            source,
        };
        if let Some(files) = &store.inner.files {
            use std::os::unix::fs::FileExt;
            let local = store
                .filesystem_path(files, &path)
                .map_err(|e| read_error(e.into()))?;
            let file = match std::fs::File::open(&local) {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::Missing { path: display() });
                }
                Err(error) => return Err(read_error(error.into())),
            };
            let meta = file.metadata().map_err(|e| read_error(e.into()))?;
            let changed = meta.len() != record.size
                || record
                    .etag
                    .as_ref()
                    .is_some_and(|etag| *etag != local_etag(&meta));
            if changed {
                return Err(Error::Changed { path: display() });
            }
            let mut bytes = vec![0; length as usize];
            file.read_exact_at(&mut bytes, start)
                .map_err(|e| read_error(e.into()))?;
            return Ok(bytes);
        }
        let options = object_store::GetOptions {
            range: Some((start..end).into()),
            if_match: record.etag.clone(),
            ..Default::default()
        };
        let got = store.wait(async {
            let got = store.objects().get_opts(&path, options).await?;
            let size = got.meta.size;
            Ok::<_, object_store::Error>((size, got.bytes().await?))
        });
        match got {
            Ok((size, bytes)) if size == record.size => Ok(bytes.to_vec()),
            Ok(_) | Err(object_store::Error::Precondition { .. }) => {
                Err(Error::Changed { path: display() })
            }
            Err(object_store::Error::NotFound { .. }) => Err(Error::Missing { path: display() }),
            Err(error) => Err(read_error(error.into())),
        }
    }

    pub(crate) fn item_spans(&self) -> &crate::items::SpanCache {
        &self.inner.item_spans
    }

    fn mismatch<T: Artifact>(&self, stored: &StoredArtifact) -> Error {
        Error::TypeMismatch {
            uri: stored.uri.clone(),
            stored: stored.data_type.to_string(),
            stored_materializer: stored.materializer.to_string(),
            requested: std::any::type_name::<T>(),
            requested_materializer: <T::Materializer as Materializer<T>>::ID,
        }
    }

    /// Reads every file of a stored version and checks it against its recorded hash.
    pub fn verify(&self, stored: &StoredArtifact) -> Result<()> {
        let (store, prefix) = self.locate(&stored.uri)?;
        for record in &stored.files {
            store
                .open_file(prefix.clone().join(record.name.as_str()), record.clone())?
                .verify()?;
        }
        Ok(())
    }

    /// Checks that every file of a stored version is still there and unchanged, cheaply: a
    /// file whose entity tag (for local files: inode, modification time and size) is the one
    /// recorded when it was written is taken as intact; any other is re-hashed.
    pub fn check(&self, stored: &StoredArtifact) -> Result<()> {
        let (store, prefix) = self.locate(&stored.uri)?;
        if !Arc::ptr_eq(&store.inner, &self.inner) {
            return store.check(stored);
        }
        for record in &stored.files {
            let path = prefix.clone().join(record.name.as_str());
            if record.is_inline() {
                // In the record: hashing it costs less than asking about a file.
                self.open_file(path, record.clone())?.verify()?;
                continue;
            }
            let unchanged = match self.file_meta(&path) {
                Ok((size, etag)) => {
                    record.etag.is_some() && etag == record.etag && size == record.size
                }
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(Error::Missing {
                        path: self.display_path(&path),
                    });
                }
                Err(error) => {
                    return Err(Error::Read {
                        path: self.display_path(&path),
                        source: error.into(),
                    });
                }
            };
            if !unchanged {
                self.open_file(path, record.clone())?.verify()?;
            }
        }
        Ok(())
    }

    /// The folder of a local store.
    pub fn local_folder(&self) -> Option<&std::path::Path> {
        self.inner.folder.as_deref()
    }

    /// Where the object `path` (relative to the store's root) is on this machine's file
    /// system, for a local store.
    pub fn local_path(&self, path: &str) -> Option<PathBuf> {
        // A path object_store would keep as it is needs no parsing (a step's live log).
        let plain = !path.is_empty()
            && path.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        match &self.inner.folder {
            Some(folder) if plain && self.inner.files.is_some() => Some(folder.join(path)),
            _ => self.local_path_of(&Path::from(path)),
        }
    }

    pub(crate) fn local_path_of(&self, path: &Path) -> Option<PathBuf> {
        let files = self.inner.files.as_ref()?;
        self.filesystem_path(files, path).ok()
    }

    /// Where object `path` is in the local folder. object_store maps it through a URL
    /// (parsed, escaped, unescaped), which cost a tenth of a trivial step's own work: a
    /// path with nothing escaped in it (no `%`) and no `#` (object_store's suffix for parts
    /// of an upload) is the folder joined with it; any other goes object_store's way.
    fn filesystem_path(
        &self,
        files: &LocalFileSystem,
        path: &Path,
    ) -> object_store::Result<PathBuf> {
        let text = path.as_ref();
        match &self.inner.folder {
            Some(folder) if !text.is_empty() && !text.contains(['%', '#']) => Ok(folder.join(text)),
            _ => files.path_to_filesystem(path),
        }
    }

    /// The size and entity tag of the file at `path`. A local store asks the file system on
    /// the calling thread: object_store would hand the `stat` to the runtime's blocking pool
    /// whenever a runtime is current, which costs ten times the `stat` itself.
    fn file_meta(&self, path: &Path) -> object_store::Result<(u64, Option<String>)> {
        let Some(files) = &self.inner.files else {
            let meta = self.wait(self.objects().head(path))?;
            return Ok((meta.size, meta.e_tag));
        };
        let not_found = |source: std::io::Error| object_store::Error::NotFound {
            path: path.to_string(),
            source: source.into(),
        };
        match std::fs::metadata(self.filesystem_path(files, path)?) {
            Ok(meta) if meta.is_dir() => Err(not_found(std::io::ErrorKind::IsADirectory.into())),
            Ok(meta) => Ok((meta.len(), Some(local_etag(&meta)))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(not_found(error)),
            Err(error) => Err(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: error.into(),
            }),
        }
    }

    /// Opens file `name` of a stored version, with its record.
    fn open_named<'s>(
        &self,
        stored: &'s StoredArtifact,
        name: &str,
    ) -> Result<(&'s FileRecord, FileReader)> {
        let record = stored.file(name)?;
        let (store, prefix) = self.locate(&stored.uri)?;
        let file = store.open_file(prefix.join(name), record.clone())?;
        Ok((record, file))
    }

    /// Opens file `name` of a stored version to stream it out; call
    /// [`FileReader::verify`] once it is read to check it against its recorded hash.
    pub fn open_version_file(&self, stored: &StoredArtifact, name: &str) -> Result<FileReader> {
        self.open_named(stored, name).map(|(_, file)| file)
    }

    /// Reads up to `limit` bytes of one file of a stored version, for previews. The bytes are
    /// verified only if the whole file fits in `limit`.
    pub fn read_head(&self, stored: &StoredArtifact, name: &str, limit: usize) -> Result<Vec<u8>> {
        let (record, mut file) = self.open_named(stored, name)?;
        let mut head = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, limit as u64), &mut head)
            .map_err(|e| Error::Read {
                path: file.path().to_owned(),
                source: e.into(),
            })?;
        if record.size as usize <= limit {
            file.verify()?;
        }
        Ok(head)
    }

    /// Streams file `name` of a stored version into `out`, checking it against its recorded
    /// hash; returns how many bytes were written. On an error, what was written is not to be
    /// trusted.
    pub fn copy_file(
        &self,
        stored: &StoredArtifact,
        name: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<u64> {
        let (_, mut file) = self.open_named(stored, name)?;
        let copied = std::io::copy(&mut file, out).map_err(|e| Error::Read {
            path: file.path().to_owned(),
            source: e.into(),
        })?;
        file.verify()?;
        Ok(copied)
    }

    /// Removes every file of a stored version (after a failed step, for example).
    pub fn delete(&self, stored: &StoredArtifact) -> Result<()> {
        let prefix = self.prefix_of(&stored.uri)?;
        self.delete_files(&prefix, &stored.files);
        Ok(())
    }

    fn delete_files(&self, prefix: &Path, files: &[FileRecord]) {
        for file in files.iter().filter(|file| !file.is_inline()) {
            let path = prefix.clone().join(file.name.as_str());
            let _ = self.wait(self.objects().delete(&path));
        }
    }

    pub(crate) fn open_file(&self, path: Path, record: FileRecord) -> Result<FileReader> {
        let display = self.display_path(&path);
        if let Some(inline) = &record.inline {
            let bytes = Bytes::copy_from_slice(&inline.0);
            return Ok(FileReader::inline(display, record, bytes));
        }
        let result = self.wait(self.objects().get(&path));
        match result {
            Ok(found) => {
                let length = found.range.end - found.range.start;
                Ok(FileReader::new(
                    display,
                    record,
                    found.payload,
                    length,
                    self.clone(),
                ))
            }
            Err(object_store::Error::NotFound { .. }) => Err(Error::Missing { path: display }),
            Err(error) => Err(Error::Read {
                path: display,
                source: error.into(),
            }),
        }
    }

    /// The store that holds a version recorded at `uri`, and the version's folder in it:
    /// this store, or, for a version saved while the project used another artifact store, a
    /// store opened (once) where the version is, so that it is read where it was written: a
    /// local folder (`file://`) or a bucket (`s3://`, with this process's AWS settings).
    fn locate(&self, uri: &str) -> Result<(ArtifactStore, Path)> {
        if uri.starts_with(self.inner.root.as_str()) {
            return Ok((self.clone(), self.prefix_of(uri)?));
        }
        let foreign = || Error::ForeignUri {
            uri: uri.into(),
            root: self.inner.root.clone(),
        };
        let (root, relative) = if let Some(path) = uri.strip_prefix("file:///") {
            ("file:///".to_owned(), path)
        } else if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').ok_or_else(foreign)?;
            (format!("s3://{bucket}/"), key)
        } else {
            return Err(foreign());
        };
        let mut elsewhere = self
            .inner
            .elsewhere
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let store = match elsewhere.get(&root) {
            Some(store) => store.clone(),
            None => {
                let runtime = self.inner.runtime.clone();
                let store = if root.starts_with("file:") {
                    Self::local_with(std::path::Path::new("/"), runtime, false)?
                } else {
                    Self::open_existing(&root, std::path::Path::new("/"), runtime)?
                };
                elsewhere.insert(root, store.clone());
                store
            }
        };
        let prefix = store.prefix_of(&format!("{}{relative}", store.inner.root))?;
        Ok((store, prefix))
    }

    fn prefix_of(&self, uri: &str) -> Result<Path> {
        let relative =
            uri.strip_prefix(self.inner.root.as_str())
                .ok_or_else(|| Error::ForeignUri {
                    uri: uri.into(),
                    root: self.inner.root.clone(),
                })?;
        Path::parse(relative.trim_end_matches('/')).map_err(|e| Error::InvalidLocation {
            location: uri.into(),
            reason: e.to_string(),
        })
    }

    /// Removes whatever a step run that never finished left under `prefix` (its invocation's
    /// folder): the `<output>/<step run id>/` folders, including staged files that were never
    /// published and, on object storage, uploads in parts that were never completed (each
    /// left a marker naming its id beside its file). Nothing there was registered. Best
    /// effort: failures are ignored.
    pub fn remove_partial(&self, prefix: &str, step_run: &str) {
        if let Some(folder) = &self.inner.folder {
            let Ok(outputs) = std::fs::read_dir(folder.join(prefix.trim_end_matches('/'))) else {
                return;
            };
            for output in outputs.flatten() {
                let partial = output.path().join(step_run);
                if partial.is_dir() {
                    let _ = std::fs::remove_dir_all(&partial);
                }
            }
            return;
        }
        let Ok(paths) = self.list_objects(prefix.trim_end_matches('/')) else {
            return;
        };
        let marker = format!("/{step_run}/");
        for path in paths.iter().filter(|path| path.contains(&marker)) {
            let path = Path::from(path.as_str());
            if let Some(file) = crate::io::upload_of_marker(&path) {
                self.abort_upload(&path, &file);
            }
            let _ = self.wait(self.objects().delete(&path));
        }
    }

    /// Aborts the upload in parts of `file` whose id the marker object at `marker` holds (its
    /// parts stay on the server, out of sight of listings, until then).
    fn abort_upload(&self, marker: &Path, file: &Path) {
        let Some(multipart) = self.multipart() else {
            return;
        };
        let Ok(Some(id)) = self.get_object(marker.as_ref()) else {
            return;
        };
        let Ok(id) = String::from_utf8(id.to_vec()) else {
            return;
        };
        let _ = self.wait(multipart.abort_multipart(file, &id));
    }

    /// Writes a whole object at `path` (relative to the root), refusing to overwrite one.
    pub fn put_object(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        let location = Path::from(path);
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.wait(self.objects().put_opts(&location, bytes.into(), options))
            .map(|_| ())
            .map_err(|e| Error::write(self.display_path(&location), e.into()))
    }

    /// Reads a whole object; `None` if it does not exist.
    pub fn get_object(&self, path: &str) -> Result<Option<Bytes>> {
        let location = Path::from(path);
        let read = self.wait(async {
            match self.objects().get(&location).await {
                Ok(found) => found.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(error) => Err(error),
            }
        });
        read.map_err(|e| Error::Read {
            path: self.display_path(&location),
            source: e.into(),
        })
    }

    /// Opens the object at `path` to read it as a stream: a local file, or ranged reads of
    /// [`OBJECT_READ_CHUNK`] bytes from object storage, so that reading a large object (a
    /// step's log) holds one chunk in memory, not the object. `None` if it does not exist.
    pub fn open_object(&self, path: &str) -> Result<Option<Box<dyn std::io::BufRead + Send>>> {
        let location = Path::from(path);
        let read_error = |source: object_store::Error| Error::Read {
            path: self.display_path(&location),
            source: source.into(),
        };
        if let Some(local) = self.local_path_of(&location) {
            return match std::fs::File::open(&local) {
                Ok(file) => Ok(Some(Box::new(std::io::BufReader::with_capacity(
                    64 * 1024,
                    file,
                )))),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(Error::Read {
                    path: self.display_path(&location),
                    source: error.into(),
                }),
            };
        }
        let size = match self.wait(self.objects().head(&location)) {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(read_error(error)),
        };
        let reader = RangedReader {
            store: self.clone(),
            location,
            size,
            offset: 0,
        };
        Ok(Some(Box::new(std::io::BufReader::with_capacity(
            OBJECT_READ_CHUNK,
            reader,
        ))))
    }

    /// Removes the object `prefix` and every object under it (whole path segments); what
    /// cannot be removed is left (a later sweep tries again).
    pub fn remove_objects(&self, prefix: &str) {
        // A local store removes the folder at once, as `remove_partial` does.
        if let Some(path) = self.local_path(prefix) {
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            return;
        }
        let _ = self.wait(self.objects().delete(&Path::from(prefix)));
        if let Ok(paths) = self.list_objects(prefix) {
            for path in paths {
                let _ = self.wait(self.objects().delete(&Path::from(path.as_str())));
            }
        }
    }

    /// The paths of every object under `prefix`, sorted.
    pub fn list_objects(&self, prefix: &str) -> Result<Vec<String>> {
        let location = Path::from(prefix);
        let listed: Result<Vec<_>, _> = self
            .runtime()
            .block_on(self.objects().list(Some(&location)).try_collect::<Vec<_>>());
        let mut paths: Vec<String> = listed
            .map_err(|e| Error::Read {
                path: self.display_path(&location),
                source: e.into(),
            })?
            .into_iter()
            .map(|meta| meta.location.to_string())
            .collect();
        paths.sort();
        Ok(paths)
    }
}

/// Reads the id of the local store at `root`, creating it on first use. It is written to a
/// temporary file and linked into place, so that concurrent openers agree on one id.
fn local_store_id(root: &std::path::Path, writable: bool) -> std::io::Result<String> {
    let path = root.join(".weft-store-id");
    match std::fs::read_to_string(&path) {
        Ok(id) => return Ok(id.trim().to_owned()),
        Err(error) if !writable => return Err(error),
        Err(_) => {}
    }
    let candidate = uuid::Uuid::now_v7().to_string();
    let staged = root.join(format!(".weft-store-id.{candidate}"));
    std::fs::write(&staged, &candidate)?;
    let linked = std::fs::hard_link(&staged, &path);
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok(candidate),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().to_owned())
        }
        Err(error) => Err(error),
    }
}

/// The content hash of an artifact version: BLAKE3 over a versioned, length-prefixed encoding
/// of the materializer id and every data file's name, size and hash, in name order.
/// Visualizations are left out: they show the data, and a better drawing of the same data
/// must not make it new content (nor invalidate the cache entries that consumed it).
pub(crate) fn content_hash(materializer: &str, files: &[FileRecord]) -> Digest {
    let mut hasher = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(CONTENT_HASH_FORMAT.as_bytes());
    field(materializer.as_bytes());
    for file in files.iter().filter(|file| !file.is_visualization()) {
        field(file.name.as_bytes());
        field(&file.size.to_le_bytes());
        field(file.blake3.to_hex().as_bytes());
    }
    hasher.finalize().into()
}

/// The entity tag object_store's local file system gives a file: inode, modification time
/// (microseconds) and size, in hex. A test pins it to object_store's own; should the two
/// ever differ, checks fall back to re-hashing the file, which is slower but still right.
pub(crate) fn local_etag(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0u64;
    let modified = meta
        .modified()
        .ok()
        .and_then(|at| at.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{inode:x}-{modified:x}-{:x}\"", meta.len())
}

/// How much of a remote object [`ArtifactStore::open_object`] reads at a time.
pub const OBJECT_READ_CHUNK: usize = 1024 * 1024;

/// Reads a remote object front to back in ranged requests.
struct RangedReader {
    store: ArtifactStore,
    location: Path,
    size: u64,
    offset: u64,
}

impl std::io::Read for RangedReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.offset >= self.size || buffer.is_empty() {
            return Ok(0);
        }
        let end = (self.offset + buffer.len() as u64).min(self.size);
        let bytes = self
            .store
            .wait(
                self.store
                    .objects()
                    .get_range(&self.location, self.offset..end),
            )
            .map_err(std::io::Error::other)?;
        let read = bytes.len().min(buffer.len());
        if read == 0 {
            // Shorter than it said: it changed while being read.
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} ended early", self.location),
            ));
        }
        buffer[..read].copy_from_slice(&bytes[..read]);
        self.offset += read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths mapped without object_store land where object_store puts them; the others
    /// (escaped, reserved, empty) are mapped, or refused, by object_store.
    #[test]
    fn local_paths_are_where_object_store_puts_them() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let store = ArtifactStore::local(dir.path(), runtime.handle().clone()).unwrap();
        let files = store.inner.files.as_ref().unwrap();
        for text in [
            "runs/0190-ab/step-run/output/data.json",
            "logs/0190-ab/0190-cd.log",
            "a/./b",
            "a/../b",
            "a//b/",
            "/a/b",
            ".hidden/x..y/-_",
            "a b/c?d/e=f&g+h,i;j@k!l'm(n)*o$",
            "ünïcödé/名前/файл",
            "a/b%2Fc",
            "a/%2E%2E/b",
            "a/.weft-tmp-1#7",
            "x#y/data.bin",
            "",
        ] {
            let path = Path::from(text);
            let expected = files.path_to_filesystem(&path);
            let mapped = store.filesystem_path(files, &path);
            match (&expected, &mapped) {
                (Ok(expected), Ok(mapped)) => assert_eq!(mapped, expected, "{text:?}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{text:?}: object_store gives {expected:?}, weft {mapped:?}"),
            }
            if !text.is_empty() && !text.contains(['%', '#']) {
                let put = runtime.block_on(files.put(&path, Bytes::from("1").into()));
                put.unwrap();
                assert!(mapped.unwrap().is_file(), "{text:?}");
            }
            assert_eq!(
                store.local_path(text),
                expected.ok(),
                "local_path({text:?})"
            );
        }
    }

    /// The fast path of `check` is only fast while this holds.
    #[test]
    fn local_entity_tags_match_object_store() {
        let dir = tempfile::tempdir().unwrap();
        let objects = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let path = Path::from("a/data.json");
        let put =
            futures::executor::block_on(objects.put(&path, Bytes::from("42").into())).unwrap();
        let meta = std::fs::metadata(objects.path_to_filesystem(&path).unwrap()).unwrap();
        assert_eq!(Some(local_etag(&meta)), put.e_tag);
    }
}
