//! The metadata store: where weft remembers every run, step run, artifact version and the
//! links between them.
//!
//! The API is a set of small async traits split by aggregate ([`RunStore`],
//! [`StepRunStore`], [`ArtifactRecords`], [`LineageStore`], [`MetadataRecords`]), gathered in
//! [`MetadataStore`] so the engine can hold one `Arc<dyn MetadataStore>` and never name a
//! backend. Every write that changes a status runs in one transaction and consults
//! `weft_core::status`, so an illegal change is an error and a crash between two statements
//! cannot leave a run half-updated.
//!
//! [`SqliteStore`] is the embedded default (WAL, busy timeout, one writer connection, reads
//! on a pool). The [`conformance`] suite (feature `conformance`) is the contract: a backend is
//! done when it passes it unchanged.

mod api;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
pub mod model;
mod records;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod server;
mod sqlite;
mod time;
mod url;

pub use api::{
    ApiKeyStore, ArtifactRecords, LineageStore, MetadataRecords, MetadataStore, RunStore,
    StepRunStore,
};
pub use error::Error;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub use server::ServerStore;
pub use sqlite::SqliteStore;
pub use url::redact as redact_url;

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `url` names a metadata store this build can open, without opening it: a
/// known scheme whose backend this build has (see the crate's features), and a file or a
/// database.
pub fn check_url(url: &str) -> Result<()> {
    url::Backend::of(url).map(drop)
}

/// Opens the metadata store at `url` to read it: like [`open`], but a SQLite store is never
/// created (a missing one reads as empty), and one this process may not write is opened
/// read-only ([`MetadataStore::read_only`]).
pub async fn open_existing(
    url: &str,
    base: &std::path::Path,
) -> Result<std::sync::Arc<dyn MetadataStore>> {
    match url::Backend::of(url)? {
        url::Backend::Sqlite => {
            let path = base.join(url.split_once("://").map_or(url, |(_, path)| path));
            Ok(std::sync::Arc::new(
                SqliteStore::open_existing(&path).await?,
            ))
        }
        _ => open(url, base).await,
    }
}

/// Opens the metadata store at `url`. Relative paths are taken from `base`.
///
/// Supported: `sqlite://<path>` (created on first use); with the `postgres` and `mysql`
/// features, `postgres://` (or `postgresql://`) and `mysql://` (or `mariadb://`)
/// `user:password@host:port/<database>` for a database on a server (the database must exist;
/// its tables are created on first use).
pub async fn open(url: &str, base: &std::path::Path) -> Result<std::sync::Arc<dyn MetadataStore>> {
    match url::Backend::of(url)? {
        url::Backend::Sqlite => {
            let path = base.join(url.split_once("://").map_or(url, |(_, path)| path));
            Ok(std::sync::Arc::new(SqliteStore::open(&path).await?))
        }
        #[cfg(feature = "postgres")]
        url::Backend::Postgres => Ok(std::sync::Arc::new(ServerStore::open(url).await?)),
        #[cfg(feature = "mysql")]
        url::Backend::MySql => Ok(std::sync::Arc::new(ServerStore::open(url).await?)),
        #[allow(unreachable_patterns)] // with every backend built in
        backend => unreachable!("Backend::of refuses {backend:?} in this build"),
    }
}
