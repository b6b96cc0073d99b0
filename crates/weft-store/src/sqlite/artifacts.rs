//! [`ArtifactRecords`] for SQLite.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use weft_core::{ArtifactId, ArtifactVersionId, StepRunId};

use super::metadata::upsert_metadata;
use super::rows::{self, VERSION_COLUMNS, VERSION_FROM};
use super::{SqliteStore, id_prefix, the_only};
use crate::model::{Artifact, ArtifactVersion, MetadataSource, NewArtifactVersion, Resource};
use crate::{ArtifactRecords, Error, Result, time};

#[async_trait]
impl ArtifactRecords for SqliteStore {
    async fn artifacts(&self, custom_only: bool) -> Result<Vec<Artifact>> {
        self.read(move |connection| {
            rows::all(
                connection,
                "SELECT a.id, a.name, a.has_custom_name, a.created_at, COUNT(v.id) AS version_count, \
                 (SELECT version FROM artifact_versions w WHERE w.artifact_id = a.id ORDER BY w.id DESC LIMIT 1) AS latest \
                 FROM artifacts a LEFT JOIN artifact_versions v ON v.artifact_id = a.id \
                 WHERE (?1 = 0 OR a.has_custom_name = 1) GROUP BY a.id ORDER BY a.name",
                [custom_only],
                |row| {
                    Ok(Artifact {
                        id: rows::parse("artifact id", &row.get::<_, String>("id")?)?,
                        name: row.get("name")?,
                        has_custom_name: row.get("has_custom_name")?,
                        version_count: row.get::<_, i64>("version_count")? as u64,
                        latest_version: row.get("latest")?,
                        created_at: rows::timestamp("artifact created_at", &row.get::<_, String>("created_at")?)?,
                    })
                },
            )
        })
        .await
    }

    async fn artifact_versions(&self, name: &str) -> Result<Vec<ArtifactVersion>> {
        let name = name.to_owned();
        self.read(move |connection| {
            let found = rows::all(
                connection,
                &format!("SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE a.name = ? ORDER BY v.id DESC"),
                [&name],
                rows::artifact_version,
            )?;
            if found.is_empty() {
                let exists = connection
                    .prepare_cached("SELECT 1 FROM artifacts WHERE name = ?")?
                    .query_row([&name], |_| Ok(()))
                    .optional()?;
                if exists.is_none() {
                    return Err(Error::NotFound { kind: "artifact", reference: name.clone() });
                }
            }
            Ok(found)
        })
        .await
    }

    async fn artifact_version(&self, id: ArtifactVersionId) -> Result<ArtifactVersion> {
        self.read(move |connection| version_by_id(connection, id))
            .await
    }

    async fn find_artifact_version(&self, reference: &str) -> Result<ArtifactVersion> {
        let reference = reference.to_owned();
        self.read(move |connection| {
            let not_found =
                || Error::NotFound { kind: "artifact version", reference: reference.clone() };
            if let Ok(id) = reference.parse::<ArtifactVersionId>() {
                return version_by_id(connection, id);
            }
            if let Some((name, version)) =
                reference.rsplit_once(':').filter(|(name, _)| !name.is_empty())
            {
                let found = if version == "latest" {
                    rows::first(
                        connection,
                        &format!("SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE a.name = ? ORDER BY v.id DESC LIMIT 1"),
                        [name],
                        rows::artifact_version,
                    )?
                } else {
                    rows::first(
                        connection,
                        &format!("SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE a.name = ? AND v.version = ?"),
                        [name, version],
                        rows::artifact_version,
                    )?
                };
                if let Some(found) = found {
                    return Ok(found);
                }
            }
            let pattern = id_prefix(&reference).ok_or_else(not_found)?;
            let found = rows::all(
                connection,
                &format!("SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.id LIKE ?"),
                [&pattern],
                rows::artifact_version,
            )?;
            the_only(found, "artifact version", &reference)
        })
        .await
    }

    async fn create_artifact_version(&self, new: NewArtifactVersion) -> Result<ArtifactVersion> {
        crate::records::check_new_version(&new)?;
        self.write(move |tx| insert_version(tx, &new, None)).await
    }

    async fn tag_artifact_version(&self, id: ArtifactVersionId, tags: &[String]) -> Result<()> {
        crate::records::check_tags(tags)?;
        let tags = tags.to_vec();
        self.write(move |tx| {
            version_by_id(tx, id)?;
            insert_tags(tx, "artifact_version", &id.to_string(), &tags)
        })
        .await
    }

    async fn untag_artifact_version(&self, id: ArtifactVersionId, tags: &[String]) -> Result<()> {
        let tags = tags.to_vec();
        self.write(move |tx| {
            version_by_id(tx, id)?;
            remove_tags(tx, "artifact_version", &id.to_string(), &tags)
        })
        .await
    }
}

/// Detaches tags (by name) from one resource; tags it does not have are ignored.
pub(crate) fn remove_tags(
    connection: &Connection,
    resource_type: &str,
    resource_id: &str,
    tags: &[String],
) -> Result<()> {
    for tag in tags {
        connection
            .prepare_cached(
                "DELETE FROM tag_links WHERE resource_type = ? AND resource_id = ? \
                 AND tag_id IN (SELECT id FROM tags WHERE name = ?)",
            )?
            .execute(params![resource_type, resource_id, tag])?;
    }
    Ok(())
}

fn version_by_id(connection: &Connection, id: ArtifactVersionId) -> Result<ArtifactVersion> {
    rows::first(
        connection,
        &format!("SELECT {VERSION_COLUMNS} FROM {VERSION_FROM} WHERE v.id = ?"),
        [id.to_string()],
        rows::artifact_version,
    )?
    .ok_or_else(|| Error::NotFound {
        kind: "artifact version",
        reference: id.to_string(),
    })
}

/// Registers one artifact version inside a write transaction: creates the artifact on first
/// use and takes the next integer version. The transaction holds the write lock, so two
/// writers (threads or processes) can never take the same number.
pub(crate) fn insert_version(
    connection: &Connection,
    new: &NewArtifactVersion,
    producer: Option<StepRunId>,
) -> Result<ArtifactVersion> {
    let now = time::now();
    let created_at = time::format(now);
    // Looked up, then inserted if new: the caller's write transaction keeps other writers
    // out in between. An upsert with `RETURNING` did the same at three times the cost (a
    // twentieth of a map item's instructions).
    let existing: Option<String> = connection
        .prepare_cached("SELECT id FROM artifacts WHERE name = ?")?
        .query_row([&new.name], |row| row.get(0))
        .optional()?;
    let created = existing.is_none();
    let artifact_id = match existing {
        Some(id) => id,
        None => {
            let id = ArtifactId::new().to_string();
            connection
                .prepare_cached(
                    "INSERT INTO artifacts (id, name, has_custom_name, created_at) VALUES (?, ?, ?, ?)",
                )?
                .execute(params![id, new.name, new.has_custom_name, created_at])?;
            id
        }
    };
    let (version, number) = match &new.version {
        Some(version) => (version.clone(), version.parse::<i64>().ok()),
        // An artifact created just now has no versions yet (every output of a map item).
        None if created => ("1".to_owned(), Some(1)),
        None => {
            let next: i64 = connection
                .prepare_cached(
                    "SELECT COALESCE(MAX(version_number), 0) + 1 FROM artifact_versions WHERE artifact_id = ?",
                )?
                .query_row([&artifact_id], |row| row.get(0))?;
            (next.to_string(), Some(next))
        }
    };
    let id = new.id;
    let inserted = connection
        .prepare_cached(
            "INSERT INTO artifact_versions (id, artifact_id, version, version_number, artifact_type, uri, \
             materializer, materializer_version, data_type, content_hash, size, files, save_type, \
             producer_step_run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            id.to_string(),
            artifact_id,
            version,
            number,
            new.artifact_type.as_str(),
            new.uri,
            new.materializer,
            new.materializer_version,
            new.data_type,
            new.content_hash,
            new.size as i64,
            serde_json::to_string(&new.files).expect("plain data"),
            new.save_type.as_str(),
            producer.map(|p| p.to_string()),
            created_at
        ]);
    if let Err(rusqlite::Error::SqliteFailure(failure, _)) = &inserted
        && failure.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return Err(Error::Conflict(format!(
            "artifact `{}` already has a version `{version}` (or version id {id} exists); explicit versions must be unique",
            new.name
        )));
    }
    inserted?;
    if !new.metadata.is_empty() {
        let entries = new
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        upsert_metadata(
            connection,
            Resource::ArtifactVersion(id),
            entries,
            MetadataSource::System,
        )?;
    }
    insert_tags(connection, "artifact_version", &id.to_string(), &new.tags)?;
    rows::registered_version(new, &artifact_id, version, producer, now)
}

/// Attaches tags (created on first use) to one resource; tags it has are kept.
pub(crate) fn insert_tags(
    connection: &Connection,
    resource_type: &str,
    resource_id: &str,
    tags: &[String],
) -> Result<()> {
    for tag in tags {
        connection
            .prepare_cached("INSERT INTO tags (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING")?
            .execute(params![uuid::Uuid::now_v7().to_string(), tag, time::format(time::now())])?;
        connection
            .prepare_cached(
                "INSERT INTO tag_links (tag_id, resource_type, resource_id) \
                 SELECT id, ?, ? FROM tags WHERE name = ? ON CONFLICT DO NOTHING",
            )?
            .execute(params![resource_type, resource_id, tag])?;
    }
    Ok(())
}
