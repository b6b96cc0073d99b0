//! Versioned, checksummed schema migrations.
//!
//! Each migration is an SQL file applied once, inside the same `BEGIN IMMEDIATE` transaction
//! that records it, so two processes opening a new store at once cannot both apply it. A
//! migration that changed after it was applied, or a store migrated by a newer build, is
//! refused with a clear error.

use rusqlite::{Connection, TransactionBehavior, params};

use crate::{Error, Result, time};

/// Every migration, in order: (version, description, SQL, whether reading needs it). Never
/// edit a released one. A migration reading does not need (one that only drops an index)
/// may be missing from a store that is only read.
const MIGRATIONS: &[(i64, &str, &str, bool)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
        true,
    ),
    (
        2,
        "drop unused indexes",
        include_str!("../../migrations/sqlite/0002_drop_unused_indexes.sql"),
        false,
    ),
    (
        3,
        "api keys",
        include_str!("../../migrations/sqlite/0003_api_keys.sql"),
        false,
    ),
    (
        4,
        "runs by status in id order",
        include_str!("../../migrations/sqlite/0004_runs_by_status_in_id_order.sql"),
        false,
    ),
    (
        5,
        "cache candidates only",
        include_str!("../../migrations/sqlite/0005_cache_candidates_only.sql"),
        false,
    ),
    (
        6,
        "shared settings",
        include_str!("../../migrations/sqlite/0006_shared_settings.sql"),
        true,
    ),
    (
        7,
        "step runs by run in id order",
        include_str!("../../migrations/sqlite/0007_step_runs_by_run_in_id_order.sql"),
        false,
    ),
];

/// Checks, without writing, that the store's schema is exactly this build's (a read-only
/// store cannot be migrated).
pub(super) fn check(connection: &Connection) -> Result<()> {
    let applied: Vec<(i64, String)> = connection
        .prepare("SELECT version, checksum FROM weft_migrations ORDER BY version")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let expected: Vec<(i64, String)> = MIGRATIONS
        .iter()
        .map(|(version, _, sql, _)| (*version, blake3::hash(sql.as_bytes()).to_hex().to_string()))
        .collect();
    // What was applied must be this build's first migrations, and what was not must not be
    // needed to read.
    let readable = applied.len() <= expected.len()
        && applied[..] == expected[..applied.len()]
        && MIGRATIONS[applied.len()..]
            .iter()
            .all(|(_, _, _, needed_to_read)| !needed_to_read);
    if !readable {
        return Err(Error::Conflict(format!(
            "the read-only metadata store has schema versions {:?}, and this build expects {:?}; open it with a matching weft, or where it can be written",
            applied
                .iter()
                .map(|(version, _)| version)
                .collect::<Vec<_>>(),
            expected
                .iter()
                .map(|(version, _)| version)
                .collect::<Vec<_>>(),
        )));
    }
    Ok(())
}

pub(super) fn run(connection: &mut Connection) -> Result<()> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS weft_migrations (
            version      INTEGER PRIMARY KEY,
            description  TEXT NOT NULL,
            checksum     TEXT NOT NULL,
            applied_at   TEXT NOT NULL
        )",
    )?;
    let applied: Vec<(i64, String)> = tx
        .prepare("SELECT version, checksum FROM weft_migrations ORDER BY version")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let newest_known = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some((version, _)) = applied.iter().find(|(version, _)| *version > newest_known) {
        return Err(Error::Conflict(format!(
            "the metadata store has schema version {version}, newer than this build knows ({newest_known}); upgrade weft"
        )));
    }
    for (version, description, sql, _) in MIGRATIONS {
        let checksum = blake3::hash(sql.as_bytes()).to_hex().to_string();
        match applied.iter().find(|(applied, _)| applied == version) {
            Some((_, recorded)) if *recorded != checksum => {
                return Err(Error::Conflict(format!(
                    "migration {version} ({description}) differs from the one applied to this store; migrations must never change"
                )));
            }
            Some(_) => {}
            None => {
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO weft_migrations (version, description, checksum, applied_at) VALUES (?, ?, ?, ?)",
                    params![version, description, checksum, time::format(time::now())],
                )?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}
