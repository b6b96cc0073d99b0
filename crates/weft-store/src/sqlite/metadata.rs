//! [`MetadataRecords`] for SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, params};
use weft_core::{RunId, StepRunId, canonical};

use super::SqliteStore;
use super::rows;
use crate::model::{MetadataEntry, MetadataSource, Resource};
use crate::{Error, MetadataRecords, Result, time};

#[async_trait]
impl MetadataRecords for SqliteStore {
    async fn log_metadata(
        &self,
        resource: Resource,
        entries: Vec<(String, serde_json::Value)>,
        source: MetadataSource,
    ) -> Result<()> {
        crate::records::check_metadata_keys(entries.iter().map(|(key, _)| key.as_str()))?;
        self.write(move |tx| upsert_metadata(tx, resource, entries, source))
            .await
    }

    async fn metadata(&self, resource: Resource) -> Result<Vec<MetadataEntry>> {
        self.read(move |connection| {
            rows::all(
                connection,
                "SELECT key, value, source FROM metadata WHERE resource_type = ? AND resource_id = ? ORDER BY key",
                [resource.kind().to_owned(), resource.id()],
                |row| {
                    Ok(MetadataEntry {
                        key: row.get(0)?,
                        value: serde_json::from_str(&row.get::<_, String>(1)?)
                            .map_err(|e| Error::corrupt("metadata value", e))?,
                        source: rows::parse("metadata source", &row.get::<_, String>(2)?)?,
                    })
                },
            )
        })
        .await
    }

    async fn step_runs_metadata(&self, run: RunId) -> Result<Vec<(StepRunId, MetadataEntry)>> {
        self.read(move |connection| {
            rows::all(
                connection,
                "SELECT m.resource_id, m.key, m.value, m.source FROM metadata m \
                 JOIN step_runs s ON s.id = m.resource_id \
                 WHERE m.resource_type = 'step_run' AND s.run_id = ? ORDER BY m.resource_id, m.key",
                [run.to_string()],
                |row| {
                    Ok((
                        rows::parse("step run id", &row.get::<_, String>(0)?)?,
                        MetadataEntry {
                            key: row.get(1)?,
                            value: serde_json::from_str(&row.get::<_, String>(2)?)
                                .map_err(|e| Error::corrupt("metadata value", e))?,
                            source: rows::parse("metadata source", &row.get::<_, String>(3)?)?,
                        },
                    ))
                },
            )
        })
        .await
    }
}

/// Sets entries; a key set again replaces its value.
pub(crate) fn upsert_metadata(
    connection: &Connection,
    resource: Resource,
    entries: Vec<(String, serde_json::Value)>,
    source: MetadataSource,
) -> Result<()> {
    let now = time::format(time::now());
    let (kind, id) = (resource.kind(), resource.id());
    let mut statement = connection.prepare_cached(
        "INSERT INTO metadata (resource_type, resource_id, key, value, source, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (resource_type, resource_id, key) DO UPDATE SET \
         value = excluded.value, source = excluded.source, created_at = excluded.created_at",
    )?;
    for (key, value) in entries {
        statement.execute(params![
            kind,
            id,
            key,
            canonical::to_string(&value),
            source.as_str(),
            now
        ])?;
    }
    Ok(())
}
