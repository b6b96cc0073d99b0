//! The metadata store on a database server: PostgreSQL, or MySQL/MariaDB.
//!
//! One implementation for both, through sqlx's `any` driver: the statements are the same SQL
//! except where the dialects differ ([`Dialect`]), and rows decode through the same
//! `crate::records` as SQLite's. Each backend has its own migrations (`migrations/postgres`,
//! `migrations/mysql`), applied by sqlx's migrator under a lock of the database, so that
//! processes opening a new store at once apply them once. Connections: see `connections`.
//!
//! Concurrency: many processes may write at once (an orchestrator per run, the CLI, workers
//! reading). Transactions run at READ COMMITTED; a write that decides from what it read locks
//! those rows first (`SELECT ... FOR UPDATE`: the run whose status changes, the step run,
//! the artifact whose next version is numbered), so two writers never take the same version
//! number or make conflicting status changes. A transaction the server aborts as a deadlock
//! or serialization failure is retried from the start, a bounded number of times.

mod api_keys;
mod artifacts;
mod connections;
mod lineage;
mod metadata;
mod runs;
mod step_runs;

use std::borrow::Cow;
use std::sync::{Arc, Once};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx_core::any::{Any, AnyArguments, AnyConnection, AnyRow};
use sqlx_core::arguments::Arguments;
use sqlx_core::executor::Executor;
use sqlx_core::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};
use sqlx_core::row::Row;

use crate::records::{Columns, run_columns, version_columns};
use crate::url::{Backend, redact};
use crate::{Error, MetadataStore, Result};
use connections::Connections;
pub(crate) use connections::{Session, connection_lost};

/// Connections one process keeps at most: a run's orchestrator writes through one at a time
/// and reads on a few more.
const MAX_CONNECTIONS: usize = 8;
/// How long a call waits for a connection (and a new store for its server) before failing.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of a transaction the server aborted as a deadlock or serialization failure.
pub(crate) const TRANSACTION_ATTEMPTS: u32 = 20;

/// Which SQL the server speaks where the two differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    /// The run columns with this server's tag aggregate.
    pub(crate) fn run_columns(self) -> &'static str {
        match self {
            Dialect::Postgres => run_columns!("string_agg(t.name, chr(31))"),
            Dialect::MySql => run_columns!("GROUP_CONCAT(t.name SEPARATOR '\u{1f}')"),
        }
    }

    /// The version columns with this server's tag aggregate.
    fn version_columns(self) -> &'static str {
        match self {
            Dialect::Postgres => version_columns!("string_agg(t.name, chr(31))"),
            Dialect::MySql => version_columns!("GROUP_CONCAT(t.name SEPARATOR '\u{1f}')"),
        }
    }

    /// The statement in the server's placeholder syntax: PostgreSQL numbers them.
    fn placeholders(self, text: &str) -> Cow<'_, str> {
        match self {
            Dialect::MySql => Cow::Borrowed(text),
            Dialect::Postgres => {
                let mut numbered = String::with_capacity(text.len() + 16);
                let mut count = 0;
                for c in text.chars() {
                    if c == '?' {
                        count += 1;
                        numbered.push('$');
                        numbered.push_str(&count.to_string());
                    } else {
                        numbered.push(c);
                    }
                }
                Cow::Owned(numbered)
            }
        }
    }

    /// `INSERT INTO <rest>` that does nothing when a row with the same key exists; `key` is a
    /// column of the conflicting key (MySQL needs one to assign to itself).
    fn insert_or_ignore(self, rest: &str, key: &str) -> String {
        match self {
            Dialect::Postgres => format!("INSERT INTO {rest} ON CONFLICT DO NOTHING"),
            Dialect::MySql => format!("INSERT INTO {rest} ON DUPLICATE KEY UPDATE {key} = {key}"),
        }
    }
}

/// The store on a PostgreSQL or MySQL/MariaDB server, cheap to clone.
#[derive(Clone)]
pub struct ServerStore {
    connections: Arc<Connections>,
    /// The URL without its password, for messages.
    location: String,
    /// The URL as given.
    url: String,
}

impl std::fmt::Debug for ServerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStore")
            .field("location", &self.location)
            .finish()
    }
}

impl ServerStore {
    /// Connects to the database at `url` (`postgres://`, `postgresql://`, `mysql://` or
    /// `mariadb://`) and brings its schema up to date. The database must exist.
    pub async fn open(url: &str) -> Result<Self> {
        let location = redact(url);
        let (dialect, url) = dialect_of(url)?;
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(|| {
            // Fails only if the process installed drivers already; connecting then says
            // whether ours are among them.
            let _ = sqlx_core::any::driver::install_drivers(&[
                #[cfg(feature = "postgres")]
                sqlx_postgres::any::DRIVER,
                #[cfg(feature = "mysql")]
                sqlx_mysql::any::DRIVER,
            ]);
        });
        let open_error = |source: sqlx_core::Error| Error::Open {
            location: location.clone(),
            source: server_words(source),
        };
        // The first connection checks the schema (migrating it under a lock if needed), then
        // serves the store's first calls.
        let mut connection = Connections::connect(&url, dialect)
            .await
            .map_err(open_error)?;
        migrate(&mut connection, dialect, &location).await?;
        let connections = Connections::new(url.clone(), dialect, location.clone());
        connections.adopt(connection);
        Ok(Self {
            connections: Arc::new(connections),
            location,
            url,
        })
    }

    /// A session for reads.
    pub(crate) async fn read(&self) -> Result<Session> {
        self.connections.session().await
    }

    /// A session in a new transaction; it commits with [`Session::commit`] and rolls back
    /// if dropped before.
    pub(crate) async fn begin(&self) -> Result<Session> {
        let mut session = self.connections.session().await?;
        session.begin().await?;
        Ok(session)
    }
}

/// Runs `$body` (an expression using the session `$session`) in a write transaction and
/// commits it. A transaction the server aborted as a deadlock or serialization failure runs
/// again from the start, and so does one whose connection was lost before it committed (the
/// server rolled it back); a connection lost during the commit is an error, since the commit
/// may have happened.
macro_rules! transaction {
    ($store:expr, |$session:ident| $body:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let retry = attempt < $crate::server::TRANSACTION_ATTEMPTS;
            let mut $session = $store.begin().await?;
            let result: $crate::Result<_> = $body;
            match result {
                Ok(value) => match $session.commit().await {
                    Err(error) if retry && error.is_transient() => {}
                    committed => break committed.map(|()| value),
                },
                Err(error) => {
                    // At once: its row locks must not outlive it while the connection waits
                    // in the pool.
                    $session.rollback().await;
                    if !(retry && (error.is_transient() || error.is_connection_lost())) {
                        break Err(error);
                    }
                }
            }
            $crate::server::back_off(attempt).await;
        }
    }};
}
pub(crate) use transaction;

/// Waits a little, more after each failed attempt, with jitter so that two writers that
/// deadlocked do not collide again.
pub(crate) async fn back_off(attempt: u32) {
    let millis = fastrand::u64(1..=(2 * u64::from(attempt.min(10))));
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

/// The arguments of one statement, in placeholder order, as a function that builds them: a
/// read that lost its connection runs again on a new one, with its arguments built again.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        || -> $crate::Result<sqlx_core::any::AnyArguments<'_>> {
            #[allow(unused_mut)]
            let mut arguments = sqlx_core::any::AnyArguments::default();
            $(
                sqlx_core::arguments::Arguments::add(&mut arguments, $value)
                    .map_err(|e| $crate::Error::corrupt("a statement argument", e))?;
            )*
            Ok(arguments)
        }
    };
}
pub(crate) use args;

/// The arguments of an `IN (...)` list, or of several rows of one insert.
pub(crate) fn list_args(values: impl IntoIterator<Item = String>) -> Result<AnyArguments<'static>> {
    let mut arguments = AnyArguments::default();
    for value in values {
        arguments
            .add(value)
            .map_err(|e| Error::corrupt("a statement argument", e))?;
    }
    Ok(arguments)
}

impl Columns for AnyRow {
    fn text(&self, column: &str) -> Result<Option<String>> {
        // MySQL sends TEXT columns as blobs; their bytes are the UTF-8 text.
        match self.try_get::<Option<String>, _>(column) {
            Ok(text) => Ok(text),
            Err(sqlx_core::Error::ColumnDecode { .. }) => self
                .try_get::<Option<Vec<u8>>, _>(column)?
                .map(|bytes| String::from_utf8(bytes).map_err(|e| Error::corrupt(column, e)))
                .transpose(),
            Err(other) => Err(other.into()),
        }
    }

    fn integer(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get::<Option<i64>, _>(column)?)
    }
}

/// Session settings: MySQL reads committed data (as PostgreSQL does by default), quotes
/// identifiers as the standard says, refuses to truncate, and aggregates long tag lists.
async fn configure(connection: &mut AnyConnection, dialect: Dialect) -> sqlx_core::Result<()> {
    if dialect == Dialect::MySql {
        connection
            .execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .await?;
        connection
            .execute(
                "SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', \
                 SESSION group_concat_max_len = 16777216, SESSION time_zone = '+00:00'",
            )
            .await?;
    }
    Ok(())
}

/// The migrations of a dialect, built into the binary. Never edit a released one.
#[derive(Clone, Copy, Debug)]
struct Embedded(Dialect);

impl Embedded {
    /// (version, description, SQL), in order.
    fn migrations(self) -> &'static [(i64, &'static str, &'static str)] {
        match self.0 {
            Dialect::Postgres => &[
                (
                    1,
                    "initial",
                    include_str!("../../migrations/postgres/0001_initial.sql"),
                ),
                (
                    2,
                    "api keys",
                    include_str!("../../migrations/postgres/0002_api_keys.sql"),
                ),
                (
                    3,
                    "runs by status in id order",
                    include_str!("../../migrations/postgres/0003_runs_by_status_in_id_order.sql"),
                ),
                (
                    4,
                    "cache candidates only",
                    include_str!("../../migrations/postgres/0004_cache_candidates_only.sql"),
                ),
                (
                    5,
                    "shared settings",
                    include_str!("../../migrations/postgres/0005_shared_settings.sql"),
                ),
                (
                    6,
                    "step runs by run in id order",
                    include_str!("../../migrations/postgres/0006_step_runs_by_run_in_id_order.sql"),
                ),
            ],
            Dialect::MySql => &[
                (
                    1,
                    "initial",
                    include_str!("../../migrations/mysql/0001_initial.sql"),
                ),
                (
                    2,
                    "api keys",
                    include_str!("../../migrations/mysql/0002_api_keys.sql"),
                ),
                (
                    3,
                    "runs by status in id order",
                    include_str!("../../migrations/mysql/0003_runs_by_status_in_id_order.sql"),
                ),
                (
                    4,
                    "cache candidates only",
                    include_str!("../../migrations/mysql/0004_cache_candidates_only.sql"),
                ),
                (
                    5,
                    "shared settings",
                    include_str!("../../migrations/mysql/0005_shared_settings.sql"),
                ),
                (
                    6,
                    "step runs by run in id order",
                    include_str!("../../migrations/mysql/0006_step_runs_by_run_in_id_order.sql"),
                ),
            ],
        }
    }

    fn newest(self) -> i64 {
        self.migrations().last().map_or(0, |m| m.0)
    }
}

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx_core::error::BoxDynError>> {
        let migrations = self
            .migrations()
            .iter()
            .map(|(version, description, sql)| {
                let simple = MigrationType::Simple;
                Migration::new(
                    *version,
                    (*description).into(),
                    simple,
                    (*sql).into(),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

/// Brings the schema up to date. Processes opening a new store at once queue on a lock of the
/// database (sqlx's own lock does not wait on MariaDB), so each migration applies once.
async fn migrate(connection: &mut AnyConnection, dialect: Dialect, location: &str) -> Result<()> {
    if up_to_date(connection, dialect).await {
        return Ok(());
    }
    let migrate_error_of = |e: sqlx_core::Error| Error::Migrate {
        location: location.to_owned(),
        source: server_words(e),
    };
    let unlock = match dialect {
        Dialect::Postgres => {
            // Waits as long as another process migrates; the key is per database.
            connection
                .execute("SELECT pg_advisory_lock(hashtext('weft.migrations'))")
                .await
                .map_err(migrate_error_of)?;
            "SELECT pg_advisory_unlock(hashtext('weft.migrations'))"
        }
        Dialect::MySql => {
            // Lock names are per server: the database's name makes it per database.
            let locked: i64 = sqlx_core::query_scalar::query_scalar::<Any, i64>(
                "SELECT COALESCE(GET_LOCK(CONCAT('weft.migrations.', DATABASE()), 120), 0) + 0 AS locked",
            )
            .fetch_one(&mut *connection)
            .await
            .map_err(migrate_error_of)?;
            if locked != 1 {
                return Err(Error::Migrate {
                    location: location.to_owned(),
                    source: "another process held the migration lock for two minutes".into(),
                });
            }
            "SELECT RELEASE_LOCK(CONCAT('weft.migrations.', DATABASE()))"
        }
    };
    let mut migrator = Migrator::new(Embedded(dialect))
        .await
        .map_err(|e| Error::Migrate {
            location: location.to_owned(),
            source: e.into(),
        })?;
    migrator.set_locking(false);
    let migrated = migrator
        .run(&mut *connection)
        .await
        .map_err(|e| migrate_error(e, location, Embedded(dialect).newest()));
    connection.execute(unlock).await.map_err(migrate_error_of)?;
    migrated
}

/// Whether every migration of this build is applied, unchanged, and nothing else is: one
/// query instead of the lock and the migrator's several, for every process that opens an
/// existing store (each isolated step does). Anything else takes the full path, which
/// explains what is wrong.
async fn up_to_date(connection: &mut AnyConnection, dialect: Dialect) -> bool {
    let applied = sqlx_core::query::query::<Any>(
        "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(&mut *connection)
    .await;
    let Ok(applied) = applied else {
        return false;
    };
    let known: Vec<(i64, Vec<u8>)> = Embedded(dialect)
        .migrations()
        .iter()
        .map(|(version, description, sql)| {
            let migration = Migration::new(
                *version,
                (*description).into(),
                MigrationType::Simple,
                (*sql).into(),
                false,
            );
            (migration.version, migration.checksum.into_owned())
        })
        .collect();
    let applied: Option<Vec<(i64, Vec<u8>)>> = applied
        .iter()
        .map(|row| Some((row.try_get(0).ok()?, row.try_get(1).ok()?)))
        .collect();
    applied == Some(known)
}

/// The server's own words, once (sqlx's errors repeat their source in their message).
fn server_words(error: sqlx_core::Error) -> Box<dyn std::error::Error + Send + Sync> {
    match error {
        sqlx_core::Error::Database(database) => database.to_string().into(),
        other => other.to_string().into(),
    }
}

/// Says what a refused migration means for the user.
fn migrate_error(error: MigrateError, location: &str, newest_known: i64) -> Error {
    match error {
        MigrateError::VersionMissing(version) if version > newest_known => {
            Error::Conflict(format!(
                "the metadata store at {location} has schema version {version}, newer than this build knows ({newest_known}); upgrade weft"
            ))
        }
        MigrateError::VersionMismatch(version) => Error::Conflict(format!(
            "migration {version} of the metadata store at {location} differs from the one this build has; migrations must never change"
        )),
        other => Error::Migrate {
            location: location.to_owned(),
            source: other.into(),
        },
    }
}

/// Checks a server URL's form without connecting.
/// The server's dialect and the URL sqlx takes (it knows MariaDB as MySQL).
fn dialect_of(url: &str) -> Result<(Dialect, String)> {
    let dialect = match Backend::of(url)? {
        Backend::Postgres => Dialect::Postgres,
        Backend::MySql => Dialect::MySql,
        Backend::Sqlite => {
            return Err(Error::InvalidUrl {
                url: redact(url),
                reason: "expected postgres://... or mysql://...".into(),
            });
        }
    };
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    Ok((dialect, url))
}

impl MetadataStore for ServerStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn url(&self) -> String {
        self.url.clone()
    }
}

/// Maps a constraint violation to a conflict that says what was wrong.
pub(crate) fn constraint_error(error: Error, what: &str) -> Error {
    match &error {
        Error::Server(sqlx_core::Error::Database(database))
            if !matches!(database.kind(), sqlx_core::error::ErrorKind::Other) =>
        {
            Error::Conflict(what.into())
        }
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(feature = "postgres", feature = "mysql"))]
    fn urls_name_a_server_and_a_database() {
        assert_eq!(
            dialect_of("mariadb://u:p@h/db").unwrap(),
            (Dialect::MySql, "mysql://u:p@h/db".into())
        );
        assert_eq!(
            dialect_of("postgresql://h/db").unwrap().0,
            Dialect::Postgres
        );
        assert!(dialect_of("sqlite://weft.db").is_err());
    }
}
