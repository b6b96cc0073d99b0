//! Errors of the metadata store.

use weft_core::status::TransitionError;

/// What went wrong in the metadata store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store's URL cannot be used.
    #[error("invalid metadata store URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store's file is empty: what a truncated copy or a failed restore leaves, not a
    /// store (SQLite would take it for a new one, and the history would be gone).
    #[error(
        "the metadata store {location} is an empty file (0 bytes), not a weft store: restore it from a backup, or remove it (and the artifact store beside it) to start afresh"
    )]
    Empty {
        /// The file.
        location: String,
    },
    /// The device holding the store is full: the write was rolled back.
    #[error("no space left on device, at {location} (the metadata store)")]
    Full {
        /// The store's file.
        location: String,
    },
    /// The store cannot be opened or created.
    #[error("cannot open the metadata store at {location}: {source}")]
    Open {
        /// Where it was looked for.
        location: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate the metadata store at {location}: {source}")]
    Migrate {
        /// Where the store is.
        location: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Nothing matches the reference.
    #[error("no {kind} matches `{reference}`")]
    NotFound {
        /// What was looked for (run, step run, artifact, ...).
        kind: &'static str,
        /// The id, prefix or name given.
        reference: String,
    },
    /// A prefix matches several records.
    #[error("`{reference}` matches {count} {kind}s; give more characters of the id")]
    Ambiguous {
        /// What was looked for.
        kind: &'static str,
        /// The prefix given.
        reference: String,
        /// How many matched.
        count: usize,
    },
    /// A status change the state machine refuses.
    #[error("{kind} {id}: {source}")]
    Transition {
        /// Run or step run.
        kind: &'static str,
        /// Its id.
        id: String,
        /// The refused change.
        #[source]
        source: TransitionError,
    },
    /// A write conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// A stored record cannot be decoded (written by an incompatible version, or damaged).
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// Why it cannot be decoded.
        reason: String,
    },
    /// The database reported an error.
    #[error("metadata store error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database server reported an error, or could not be reached.
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    #[error("metadata store error: {0}")]
    Server(#[from] sqlx_core::Error),
}

impl Error {
    pub(crate) fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// Whether the server aborted the transaction only because of another one (a deadlock,
    /// a serialization failure, a lock wait timeout): trying it again can succeed.
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    pub(crate) fn is_transient(&self) -> bool {
        let Error::Server(sqlx_core::Error::Database(database)) = self else {
            return false;
        };
        #[cfg(feature = "mysql")]
        let lock_wait_timeout = database
            .try_downcast_ref::<sqlx_mysql::MySqlDatabaseError>()
            .is_some_and(|mysql| mysql.number() == 1205);
        #[cfg(not(feature = "mysql"))]
        let lock_wait_timeout = false;
        matches!(database.code().as_deref(), Some("40001" | "40P01")) || lock_wait_timeout
    }

    /// Whether the connection to the server was lost (the server went away, an administrator
    /// ended the session, the network failed).
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    pub(crate) fn is_connection_lost(&self) -> bool {
        matches!(self, Error::Server(error) if crate::server::connection_lost(error))
    }
}
