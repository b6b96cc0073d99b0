//! The embedded SQLite metadata store.
//!
//! One file, WAL journal, a busy timeout, foreign keys on. Writes go through a single
//! connection and every write transaction starts with `BEGIN IMMEDIATE`, so the write lock is
//! taken up front: concurrent writers (threads or processes) queue on the busy timeout instead
//! of failing with "database is locked" when a read transaction tries to upgrade. Reads use a
//! small pool of connections and never block writers. Checkpoints run on a thread of their
//! own (`checkpoint`), so that writes do not wait on their fsyncs.
//!
//! The driver is rusqlite, run on tokio's blocking pool: one hand-off per store call, and the
//! statements of a transaction execute in-thread. (An async driver that sends every statement
//! to a connection thread costs ~30 µs per statement here, which alone would exceed the
//! per-step budget; see ARCHITECTURE.md.)

mod api_keys;
mod artifacts;
mod checkpoint;
mod lineage;
mod metadata;
mod migrate;
mod rows;
mod runs;
mod step_runs;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub(crate) use crate::records::{id_prefix, placeholders, the_only};
use crate::{Error, MetadataStore, Result};

/// How long a writer waits for another writer (any process) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle read connections kept open.
const IDLE_READERS: usize = 4;
/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 128;

/// The SQLite metadata store, cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// The file, for messages (`path` may be a `file:` URI).
    location: String,
    /// Whether this stands for a store that does not exist (see `open_empty`).
    empty: bool,
    /// How every connection opens the file: read-write, or read-only for a store this
    /// process may not write (a read-only mount, another user's files).
    flags: OpenFlags,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens the store in file `path`, creating it (and its folder) if needed and bringing
    /// its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(|e| Error::corrupt("the store opener", e))?
    }

    /// Opens the store in file `path` to read it. Reading never creates a store: a missing
    /// one reads as empty, and no file is made. A store this process cannot write (a read-only mount, another user's file) is opened
    /// read-only: everything can be read, and a write fails with the database's "readonly"
    /// error. A read-only store must already have this build's schema.
    pub async fn open_existing(path: &Path) -> Result<Self> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_existing_blocking(&path))
            .await
            .map_err(|e| Error::corrupt("the store opener", e))?
    }

    /// Whether the store was opened read-only (or stands for one that does not exist).
    pub fn is_read_only(&self) -> bool {
        self.inner.empty || self.inner.flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY)
    }

    fn open_blocking(path: &Path) -> Result<Self> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| open_error(path, e.into()))?;
        }
        // An empty file is taken for a new store here (another process may be creating
        // it right now); `weft::Client` refuses one beside an artifact store with files.
        Self::open_writable(path, OpenFlags::default())
    }

    fn open_existing_blocking(path: &Path) -> Result<Self> {
        match std::fs::metadata(path) {
            Ok(file) if file.is_file() => {}
            Ok(_) => return Err(open_error(path, "it is not a file".into())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Self::open_empty(path);
            }
            Err(error) => return Err(open_error(path, error.into())),
        }
        refuse_empty(path)?;
        let writable = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        match Self::open_writable(path, writable) {
            Err(error) if refused_writing(&error) => Self::open_read_only(path),
            opened => opened,
        }
    }

    /// A store that does not exist reads as an empty one: an in-memory database with the
    /// schema, named after `path` in messages and counted read-only (nothing is reconciled,
    /// nothing is kept). No file is created.
    fn open_empty(path: &Path) -> Result<Self> {
        let name = format!(
            "file:weft-empty-{}?mode=memory&cache=shared",
            uuid::Uuid::now_v7().simple()
        );
        let mut writer = connect(Path::new(&name), OpenFlags::default())
            .map_err(|e| open_error(path, e.into()))?;
        migrate::run(&mut writer)?;
        let mut store = Self::with_writer(Path::new(&name), OpenFlags::default(), writer);
        let inner = Arc::get_mut(&mut store.inner).expect("just made");
        inner.location = path.display().to_string();
        inner.empty = true;
        Ok(store)
    }

    fn open_writable(path: &Path, flags: OpenFlags) -> Result<Self> {
        let mut writer = connect(path, flags).map_err(|e| open_error(path, e.into()))?;
        use_wal(&writer).map_err(|e| open_error(path, e.into()))?;
        let limits = checkpoint::WalLimits::default();
        checkpoint::hand_off(&mut writer, path.to_owned(), flags, limits)
            .map_err(|e| open_error(path, e.into()))?;
        migrate::run(&mut writer).map_err(|source| match source {
            Error::Database(source) => Error::Migrate {
                location: path.display().to_string(),
                source: source.into(),
            },
            other => other,
        })?;
        Ok(Self::with_writer(path, flags, writer))
    }

    /// Read-only: no WAL switch, no migration, only a check that the schema is this build's.
    /// Where SQLite cannot share the WAL index (it may not create `-shm` beside the file), the
    /// file is read as immutable: nobody can be writing it then either.
    fn open_read_only(path: &Path) -> Result<Self> {
        let read_only = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let plain = connect(path, read_only)
            .map_err(Error::from)
            .and_then(|connection| migrate::check(&connection).map(|()| connection));
        let (connection, path) = match plain {
            Ok(connection) => (connection, path.to_owned()),
            Err(Error::Database(_)) => {
                let immutable = PathBuf::from(format!("file:{}?immutable=1", uri_path(path)));
                let connection =
                    connect(&immutable, read_only).map_err(|e| open_error(path, e.into()))?;
                migrate::check(&connection)?;
                (connection, immutable)
            }
            Err(other) => return Err(other),
        };
        Ok(Self::with_writer(&path, read_only, connection))
    }

    fn with_writer(path: &Path, flags: OpenFlags, writer: Connection) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                location: path_for_messages(path),
                empty: false,
                flags,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Runs `work` in one write transaction holding the write lock. The transaction commits
    /// if `work` succeeds and rolls back otherwise.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let mut connection = lock(&inner.writer);
            let written = (|| {
                let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let value = work(&tx)?;
                tx.commit()?;
                Ok(value)
            })();
            written.map_err(|error| match error {
                Error::Database(rusqlite::Error::SqliteFailure(failure, _))
                    if failure.code == rusqlite::ErrorCode::DiskFull =>
                {
                    Error::Full {
                        location: inner.location.clone(),
                    }
                }
                other => other,
            })
        })
        .await
    }

    /// Runs `work` on a read connection.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        blocking(move || {
            let idle = lock(&inner.readers).pop();
            let connection = match idle {
                Some(connection) => connection,
                None => connect_reader(&inner.path, inner.flags)?,
            };
            let value = work(&connection);
            let mut readers = lock(&inner.readers);
            if readers.len() < IDLE_READERS {
                readers.push(connection);
            }
            value
        })
        .await
    }
}

/// Runs blocking database work from async code. On a multi-threaded runtime it runs right on
/// the calling thread (`block_in_place` moves other tasks away if that thread is a worker),
/// which saves two thread hand-offs per call; elsewhere it goes to the blocking pool.
async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::corrupt("a store task", e))?
    }
}

impl MetadataStore for SqliteStore {
    fn location(&self) -> String {
        format!("sqlite://{}", self.inner.location)
    }

    fn url(&self) -> String {
        self.location()
    }

    fn read_only(&self) -> bool {
        self.is_read_only()
    }
}

/// A poisoned lock only means a closure panicked mid-call; the connection itself is fine
/// (its transaction was rolled back when dropped).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connect(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(path, flags)?;
    configure(&connection)?;
    Ok(connection)
}

fn open_error(path: &Path, source: Box<dyn std::error::Error + Send + Sync>) -> Error {
    Error::Open {
        location: path.display().to_string(),
        source,
    }
}

/// A 0-byte file is what a truncated or failed copy of a store leaves; SQLite would take it
/// for a new, empty store, and the history would silently be gone. It is also what another
/// process creating the store shows for a few milliseconds, until its first write (a
/// `weft runs list` started beside a first run): the file is refused only once it stayed
/// empty for [`CREATION_GRACE`].
fn refuse_empty(path: &Path) -> Result<()> {
    let empty = || std::fs::metadata(path).is_ok_and(|file| file.is_file() && file.len() == 0);
    let deadline = std::time::Instant::now() + CREATION_GRACE;
    while empty() {
        if std::time::Instant::now() >= deadline {
            return Err(Error::Empty {
                location: path.display().to_string(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(())
}

/// How long an empty store file may be another process's store in the making.
const CREATION_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether opening failed only because this process may not write the store.
fn refused_writing(error: &Error) -> bool {
    let source = match error {
        Error::Open { source, .. } | Error::Migrate { source, .. } => {
            source.downcast_ref::<rusqlite::Error>()
        }
        Error::Database(source) => Some(source),
        _ => None,
    };
    matches!(
        source.and_then(rusqlite::Error::sqlite_error_code),
        Some(
            rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::PermissionDenied
        )
    )
}

/// `path` for a `file:` URI: absolute, with the characters URIs reserve escaped.
fn uri_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut escaped = String::new();
    for byte in absolute.to_string_lossy().bytes() {
        match byte {
            b'%' | b'?' | b'#' => escaped.push_str(&format!("%{byte:02X}")),
            _ => escaped.push(byte as char),
        }
    }
    escaped
}

/// The file a store path or `file:` URI names: messages name the file, not the URI it was
/// opened through.
fn path_for_messages(path: &Path) -> String {
    let text = path.display().to_string();
    match text.strip_prefix("file:") {
        Some(uri) => uri.split('?').next().unwrap_or(uri).to_owned(),
        None => text,
    }
}

/// Switches the file to WAL. The mode is persistent, so only the first opener pays; switching
/// needs a moment of exclusive access that SQLite does not wait for, so a busy file is
/// retried until the busy timeout.
fn use_wal(connection: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let mode: rusqlite::Result<String> =
            connection.pragma_query_value(None, "journal_mode", |row| row.get(0));
        let switched = match mode {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(_) => connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| {
                row.get::<_, String>(0)
            }),
            Err(error) => Err(error),
        };
        match switched {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(error) => return Err(error),
            Ok(mode) => {
                return Err(rusqlite::Error::InvalidParameterName(format!(
                    "the file refused WAL mode (it stays in `{mode}` mode)"
                )));
            }
        }
    }
}

fn connect_reader(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let flags = (flags - OpenFlags::SQLITE_OPEN_CREATE) | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    configure(&connection)?;
    Ok(connection)
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Sorts (`ORDER BY` over a run's thousands of step runs) stay in memory: SQLite's default
    // spills them to temporary files, which cost more than the query on a real disk.
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoint less often than the default 1000 pages: hot pages (the right edge of each
    // index) are then written back once per many commits instead of once per few. (The
    // store's own writer checkpoints on another thread instead: see `checkpoint`.)
    connection.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Without the stability guarantee, SQLite marks statements whose plan looked at a bound
    // value as expired when their bindings are cleared, which the statement cache does on
    // every return: each cached statement was parsed and planned again on every use.
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}
