//! [`MetadataRecords`] on a database server.

use async_trait::async_trait;
use weft_core::{RunId, StepRunId, canonical};

use super::{Dialect, ServerStore, Session, args, list_args, transaction};
use crate::model::{MetadataEntry, MetadataSource, Resource};
use crate::records::{self, Columns};
use crate::{Error, MetadataRecords, Result, time};

#[async_trait]
impl MetadataRecords for ServerStore {
    async fn log_metadata(
        &self,
        resource: Resource,
        entries: Vec<(String, serde_json::Value)>,
        source: MetadataSource,
    ) -> Result<()> {
        crate::records::check_metadata_keys(entries.iter().map(|(key, _)| key.as_str()))?;
        transaction!(self, |s| upsert_metadata(
            &mut s, resource, &entries, source
        )
        .await)
    }

    async fn metadata(&self, resource: Resource) -> Result<Vec<MetadataEntry>> {
        self.read()
            .await?
            .all(
                "SELECT \"key\", value, source FROM metadata WHERE resource_type = ? AND resource_id = ? ORDER BY \"key\"",
                args![resource.kind(), resource.id()],
                |row| {
                    Ok(MetadataEntry {
                        key: row.string("key")?,
                        value: serde_json::from_str(&row.string("value")?)
                            .map_err(|e| Error::corrupt("metadata value", e))?,
                        source: records::parse("metadata source", &row.string("source")?)?,
                    })
                },
            )
            .await
    }

    async fn step_runs_metadata(&self, run: RunId) -> Result<Vec<(StepRunId, MetadataEntry)>> {
        self.read()
            .await?
            .all(
                "SELECT m.resource_id, m.\"key\", m.value, m.source FROM metadata m \
                 JOIN step_runs s ON s.id = m.resource_id \
                 WHERE m.resource_type = 'step_run' AND s.run_id = ? ORDER BY m.resource_id, m.\"key\"",
                args![run.to_string()],
                |row| {
                    Ok((
                        records::parse("step run id", &row.string("resource_id")?)?,
                        MetadataEntry {
                            key: row.string("key")?,
                            value: serde_json::from_str(&row.string("value")?)
                                .map_err(|e| Error::corrupt("metadata value", e))?,
                            source: records::parse("metadata source", &row.string("source")?)?,
                        },
                    ))
                },
            )
            .await
    }
}

/// Sets entries, in one statement; a key set again replaces its value (the last of several
/// entries with one key wins).
pub(crate) async fn upsert_metadata(
    s: &mut Session,
    resource: Resource,
    entries: &[(String, serde_json::Value)],
    source: MetadataSource,
) -> Result<()> {
    // One row per key: PostgreSQL refuses to update a row twice in one statement.
    let entries: std::collections::BTreeMap<&str, &serde_json::Value> = entries
        .iter()
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    let now = time::format(time::now());
    let (kind, id) = (resource.kind(), resource.id());
    let rows = vec!["(?, ?, ?, ?, ?, ?)"; entries.len()].join(", ");
    let update = match s.dialect() {
        Dialect::Postgres => {
            "ON CONFLICT (resource_type, resource_id, \"key\") DO UPDATE SET \
             value = excluded.value, source = excluded.source, created_at = excluded.created_at"
        }
        Dialect::MySql => {
            "ON DUPLICATE KEY UPDATE \
             value = VALUES(value), source = VALUES(source), created_at = VALUES(created_at)"
        }
    };
    let arguments = || {
        list_args(entries.iter().flat_map(|(key, value)| {
            [
                kind.to_owned(),
                id.clone(),
                (*key).to_owned(),
                canonical::to_string(value),
                source.as_str().to_owned(),
                now.clone(),
            ]
        }))
    };
    s.execute(
        &format!(
            "INSERT INTO metadata (resource_type, resource_id, \"key\", value, source, created_at) \
             VALUES {rows} {update}"
        ),
        arguments,
    )
    .await?;
    Ok(())
}
