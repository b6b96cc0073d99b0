//! The server store's connections, and the sessions that run statements on them.
//!
//! A small pool of its own rather than sqlx's: sqlx's pool pings a connection when it is
//! returned, in a task of its own, so a call that follows another at once finds no idle
//! connection and opens a new one (about 4 ms on PostgreSQL, which starts a process per
//! connection); a short-lived process (an isolated step, the `weft` command) paid for three
//! connections where one does. Here a connection goes back to the pool as its session ends,
//! is reused as it is unless it sat idle long enough for a server or proxy to drop it (then
//! it is pinged first), and is discarded if a statement on it never finished (its future was
//! dropped) or failed for any reason but the database's own refusal. A connection the server
//! ended takes the idle ones with it (they likely share its fate); a statement outside a
//! transaction then runs again, once, on a new connection (`transaction!` runs a whole
//! transaction again instead).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx_core::any::{AnyArguments, AnyConnection, AnyRow};
use sqlx_core::connection::Connection as _;
use sqlx_core::executor::Executor as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{CONNECT_TIMEOUT, Dialect, MAX_CONNECTIONS, configure};
use crate::{Error, Result};

/// A connection idle for longer than this is pinged before it is used again.
const STALE_AFTER: Duration = Duration::from_secs(30);

/// Where to connect, and the connections not in use.
pub(crate) struct Connections {
    url: String,
    dialect: Dialect,
    location: String,
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
}

struct Idle {
    connection: AnyConnection,
    since: Instant,
    /// It went back with a transaction open: roll it back before use.
    in_transaction: bool,
}

impl Connections {
    pub(crate) fn new(url: String, dialect: Dialect, location: String) -> Self {
        Self {
            url,
            dialect,
            location,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// A new connection, configured; a server that is not there fails at once.
    pub(crate) async fn connect(
        url: &str,
        dialect: Dialect,
    ) -> std::result::Result<AnyConnection, sqlx_core::Error> {
        let connect = AnyConnection::connect(url);
        let mut connection = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .unwrap_or(Err(sqlx_core::Error::PoolTimedOut))?;
        configure(&mut connection, dialect).await?;
        Ok(connection)
    }

    /// Puts a connection opened elsewhere (the one that checked the schema) in the pool.
    pub(crate) fn adopt(&self, connection: AnyConnection) {
        self.give_back(connection, false);
    }

    fn give_back(&self, connection: AnyConnection, in_transaction: bool) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.push(Idle {
            connection,
            since: Instant::now(),
            in_transaction,
        });
    }

    /// Drops the idle connections: one was found dead, so the server (or the network to it)
    /// went away, and the others are likely dead too.
    fn forget_idle(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    async fn connect_anew(&self) -> Result<AnyConnection> {
        Self::connect(&self.url, self.dialect)
            .await
            .map_err(|e| Error::Open {
                location: self.location.clone(),
                source: super::server_words(e),
            })
    }

    /// A session on an idle connection, or on a new one if none is idle.
    pub(crate) async fn session(self: &Arc<Self>) -> Result<Session> {
        let permit = tokio::time::timeout(CONNECT_TIMEOUT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                Error::Conflict(format!(
                    "all {MAX_CONNECTIONS} connections of this process to the metadata store at {} stayed busy for {} s",
                    self.location,
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .expect("the semaphore is never closed");
        let mut connection = None;
        loop {
            let next = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(mut idle) = next else { break };
            let usable = if idle.in_transaction {
                idle.connection.execute("ROLLBACK").await.is_ok()
            } else if idle.since.elapsed() > STALE_AFTER {
                idle.connection.ping().await.is_ok()
            } else {
                true
            };
            if usable {
                connection = Some(idle.connection);
                break;
            }
        }
        let connection = match connection {
            Some(connection) => connection,
            None => self.connect_anew().await?,
        };
        Ok(Session {
            connection: Some(connection),
            connections: self.clone(),
            dialect: self.dialect,
            clean: Arc::new(AtomicBool::new(true)),
            in_transaction: false,
            locked_runs: Vec::new(),
            _permit: permit,
        })
    }
}

/// A connection in use, and the dialect its statements are written in. It goes back to the
/// pool when dropped (rolled back first if a transaction is still open), unless a statement
/// on it never finished.
pub(crate) struct Session {
    connection: Option<AnyConnection>,
    connections: Arc<Connections>,
    dialect: Dialect,
    clean: Arc<AtomicBool>,
    in_transaction: bool,
    /// The runs this transaction has locked, with their status as it stands in it: a
    /// transaction that locked a run needs no second round trip to know its status.
    pub(crate) locked_runs: Vec<(weft_core::RunId, weft_core::Status)>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take()
            && self.clean.load(Ordering::Relaxed)
        {
            self.connections.give_back(connection, self.in_transaction);
        }
    }
}

/// Marks a session unclean while a statement is in flight: if the statement's future is
/// dropped halfway, the connection is in an unknown state and must not be reused.
struct InFlight(Arc<AtomicBool>);

impl InFlight {
    fn start(clean: &Arc<AtomicBool>) -> Self {
        clean.store(false, Ordering::Relaxed);
        Self(clean.clone())
    }

    /// The statement ended: the connection is fine unless it failed for another reason
    /// than the database refusing the statement.
    fn land<T>(self, result: &std::result::Result<T, sqlx_core::Error>) {
        let fine = match result {
            Ok(_) => true,
            Err(error) if connection_lost(error) => false,
            Err(error) => matches!(
                error,
                sqlx_core::Error::Database(_)
                    | sqlx_core::Error::RowNotFound
                    | sqlx_core::Error::ColumnDecode { .. }
                    | sqlx_core::Error::ColumnNotFound(_)
                    | sqlx_core::Error::ColumnIndexOutOfBounds { .. }
                    | sqlx_core::Error::TypeNotFound { .. }
            ),
        };
        self.0.store(fine, Ordering::Relaxed);
    }
}

impl Session {
    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn connection(&mut self) -> &mut AnyConnection {
        self.connection
            .as_mut()
            .expect("a session holds its connection until dropped")
    }

    /// Starts a transaction on this session.
    pub(crate) async fn begin(&mut self) -> Result<()> {
        self.control("BEGIN").await?;
        self.in_transaction = true;
        Ok(())
    }

    /// Commits the session's transaction.
    pub(crate) async fn commit(mut self) -> Result<()> {
        self.control("COMMIT").await?;
        self.in_transaction = false;
        Ok(())
    }

    /// Rolls the session's transaction back now, releasing its locks (a failed rollback
    /// discards the connection, which ends the transaction too).
    pub(crate) async fn rollback(mut self) {
        if self.control("ROLLBACK").await.is_ok() {
            self.in_transaction = false;
        } else {
            self.clean.store(false, Ordering::Relaxed);
        }
    }

    /// Whether a statement that failed with `error` runs again on a new connection: when the
    /// connection was lost outside a transaction (a statement of a transaction cannot: the
    /// whole transaction runs again), once.
    async fn reconnects(&mut self, error: &sqlx_core::Error, retried: &mut bool) -> Result<bool> {
        if !connection_lost(error) {
            return Ok(false);
        }
        self.connections.forget_idle();
        if self.in_transaction || *retried {
            return Ok(false);
        }
        *retried = true;
        self.connection = Some(self.connections.connect_anew().await?);
        self.clean.store(true, Ordering::Relaxed);
        Ok(true)
    }

    /// Runs a transaction control statement, unprepared (MySQL prepares only some).
    async fn control(&mut self, statement: &'static str) -> Result<()> {
        let mut retried = false;
        loop {
            let flight = InFlight::start(&self.clean);
            let done = self.connection().execute(statement).await;
            flight.land(&done);
            match done {
                Err(error) if self.reconnects(&error, &mut retried).await? => {}
                done => return Ok(done.map(drop)?),
            }
        }
    }

    /// Runs `text` and decodes every row with `decode`.
    pub(crate) async fn all<'a, T>(
        &mut self,
        text: &str,
        arguments: impl Fn() -> Result<AnyArguments<'a>>,
        decode: impl Fn(&AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let sql = self.dialect.placeholders(text);
        let mut retried = false;
        loop {
            let flight = InFlight::start(&self.clean);
            let rows = sqlx_core::query::query_with(&sql, arguments()?)
                .fetch_all(self.connection())
                .await;
            flight.land(&rows);
            match rows {
                Err(error) if self.reconnects(&error, &mut retried).await? => {}
                rows => return rows?.iter().map(decode).collect(),
            }
        }
    }

    /// Runs `text` and decodes the first row, if any.
    pub(crate) async fn first<'a, T>(
        &mut self,
        text: &str,
        arguments: impl Fn() -> Result<AnyArguments<'a>>,
        decode: impl Fn(&AnyRow) -> Result<T>,
    ) -> Result<Option<T>> {
        let sql = self.dialect.placeholders(text);
        let mut retried = false;
        loop {
            let flight = InFlight::start(&self.clean);
            let row = sqlx_core::query::query_with(&sql, arguments()?)
                .fetch_optional(self.connection())
                .await;
            flight.land(&row);
            match row {
                Err(error) if self.reconnects(&error, &mut retried).await? => {}
                row => return row?.as_ref().map(decode).transpose(),
            }
        }
    }

    /// Runs `text`; returns how many rows it changed.
    pub(crate) async fn execute<'a>(
        &mut self,
        text: &str,
        arguments: impl Fn() -> Result<AnyArguments<'a>>,
    ) -> Result<u64> {
        let sql = self.dialect.placeholders(text);
        let mut retried = false;
        loop {
            let flight = InFlight::start(&self.clean);
            let done = sqlx_core::query::query_with(&sql, arguments()?)
                .execute(self.connection())
                .await;
            flight.land(&done);
            match done {
                Err(error) if self.reconnects(&error, &mut retried).await? => {}
                done => return Ok(done?.rows_affected()),
            }
        }
    }
}

/// Whether `error` says the connection is gone: the server ended it (shut down, restarted, an
/// administrator killed it) or the network failed. The connection cannot be used again.
pub(crate) fn connection_lost(error: &sqlx_core::Error) -> bool {
    match error {
        sqlx_core::Error::Io(_)
        | sqlx_core::Error::Tls(_)
        | sqlx_core::Error::Protocol(_)
        | sqlx_core::Error::WorkerCrashed => true,
        sqlx_core::Error::Database(database) => {
            let code = database.code();
            let code = code.as_deref().unwrap_or_default();
            // PostgreSQL: connection exceptions (08...), administrator or crash shutdown
            // (57P01-57P03). MySQL: a killed connection (70100, ER_CONNECTION_KILLED).
            #[cfg(feature = "mysql")]
            let mysql_lost = database
                .try_downcast_ref::<sqlx_mysql::MySqlDatabaseError>()
                .is_some_and(|mysql| matches!(mysql.number(), 1927 | 2006 | 2013));
            #[cfg(not(feature = "mysql"))]
            let mysql_lost = false;
            code.starts_with("08")
                || matches!(code, "57P01" | "57P02" | "57P03" | "70100")
                || mysql_lost
        }
        _ => false,
    }
}
