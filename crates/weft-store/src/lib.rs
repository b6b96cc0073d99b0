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
mod server;
mod sqlite;
mod time;

pub use api::{
    ArtifactRecords, LineageStore, MetadataRecords, MetadataStore, RunStore, StepRunStore,
};
pub use error::Error;
pub use server::{ServerStore, redact as redact_url};
pub use sqlite::SqliteStore;

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `url` names a metadata store this build can open, without opening it: a
/// known scheme, and a database for a server.
pub fn check_url(url: &str) -> Result<()> {
    match url.split_once("://") {
        Some(("sqlite", path)) if !path.is_empty() => Ok(()),
        Some(("postgres" | "postgresql" | "mysql" | "mariadb", _)) => server::check_url(url),
        Some((scheme, _)) if scheme != "sqlite" => Err(Error::InvalidUrl {
            url: server::redact(url),
            reason: format!(
                "`{scheme}://` is not a metadata store; use sqlite://<path>, postgres://... or mysql://..."
            ),
        }),
        _ => Err(Error::InvalidUrl {
            url: server::redact(url),
            reason: "expected a URL such as sqlite://.weft/weft.db".into(),
        }),
    }
}

/// Opens the metadata store at `url`. Relative paths are taken from `base`.
///
/// Supported: `sqlite://<path>` (created on first use); `postgres://` (or `postgresql://`)
/// and `mysql://` (or `mariadb://`) `user:password@host:port/<database>` for a database on a
/// server (the database must exist; its tables are created on first use).
pub async fn open(url: &str, base: &std::path::Path) -> Result<std::sync::Arc<dyn MetadataStore>> {
    match url.split_once("://") {
        Some(("sqlite", path)) => {
            let path = base.join(path);
            Ok(std::sync::Arc::new(SqliteStore::open(&path).await?))
        }
        Some(("postgres" | "postgresql" | "mysql" | "mariadb", _)) => {
            Ok(std::sync::Arc::new(ServerStore::open(url).await?))
        }
        Some((scheme, _)) => Err(Error::InvalidUrl {
            url: server::redact(url),
            reason: format!(
                "`{scheme}://` is not a metadata store; use sqlite://<path>, postgres://... or mysql://..."
            ),
        }),
        None => Err(Error::InvalidUrl {
            url: url.into(),
            reason: "expected a URL such as sqlite://.weft/weft.db".into(),
        }),
    }
}
