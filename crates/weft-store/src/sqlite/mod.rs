//! The embedded SQLite metadata store.
//!
//! One file, WAL journal, a busy timeout, foreign keys on. Writes go through a single
//! connection and every write transaction starts with `BEGIN IMMEDIATE`, so the write lock is
//! taken up front: concurrent writers (threads or processes) queue on the busy timeout instead
//! of failing with "database is locked" when a read transaction tries to upgrade. Reads use a
//! small pool of connections and never block writers.
//!
//! The driver is rusqlite, run on tokio's blocking pool: one hand-off per store call, and the
//! statements of a transaction execute in-thread. (An async driver that sends every statement
//! to a connection thread costs ~30 µs per statement here, which alone would exceed the
//! per-step budget; see ARCHITECTURE.md.)

mod artifacts;
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

    fn open_blocking(path: &Path) -> Result<Self> {
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::Open {
            location: path.display().to_string(),
            source,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| open_error(e.into()))?;
        }
        let mut writer = connect(path).map_err(|e| open_error(e.into()))?;
        use_wal(&writer).map_err(|e| open_error(e.into()))?;
        migrate::run(&mut writer).map_err(|source| match source {
            Error::Database(source) => Error::Migrate {
                location: path.display().to_string(),
                source: source.into(),
            },
            other => other,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        })
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
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
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
                None => connect_reader(&inner.path)?,
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
        format!("sqlite://{}", self.inner.path.display())
    }

    fn url(&self) -> String {
        self.location()
    }
}

/// A poisoned lock only means a closure panicked mid-call; the connection itself is fine
/// (its transaction was rolled back when dropped).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    configure(&connection)?;
    Ok(connection)
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

fn connect_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    configure(&connection)?;
    Ok(connection)
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoint less often than the default 1000 pages: hot pages (the right edge of each
    // index) are then written back once per many commits instead of once per few.
    connection.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Without the stability guarantee, SQLite marks statements whose plan looked at a bound
    // value as expired when their bindings are cleared, which the statement cache does on
    // every return: each cached statement was parsed and planned again on every use.
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}
