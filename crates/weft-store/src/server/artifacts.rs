//! [`ArtifactRecords`] on a database server.

use async_trait::async_trait;
use weft_core::{ArtifactId, ArtifactVersionId, StepRunId};

use super::metadata::upsert_metadata;
use super::{ServerStore, Session, args, transaction};
use crate::model::{Artifact, ArtifactVersion, MetadataSource, NewArtifactVersion, Resource};
use crate::records::{self, Columns, VERSION_FROM, id_prefix, the_only};
use crate::{ArtifactRecords, Error, Result, time};

#[async_trait]
impl ArtifactRecords for ServerStore {
    async fn artifacts(&self, custom_only: bool) -> Result<Vec<Artifact>> {
        self.read()
            .await?
            .all(
                "SELECT a.id, a.name, a.has_custom_name, a.created_at, \
                 (SELECT COUNT(*) FROM artifact_versions v WHERE v.artifact_id = a.id) AS version_count, \
                 (SELECT version FROM artifact_versions w WHERE w.artifact_id = a.id ORDER BY w.id DESC LIMIT 1) AS latest \
                 FROM artifacts a WHERE (? = 0 OR a.has_custom_name = 1) ORDER BY a.name",
                args![i64::from(custom_only)],
                |row| {
                    Ok(Artifact {
                        id: records::parse("artifact id", &row.string("id")?)?,
                        name: row.string("name")?,
                        has_custom_name: row.int("has_custom_name")? != 0,
                        version_count: row.int("version_count")? as u64,
                        latest_version: row.text("latest")?,
                        created_at: records::timestamp(
                            "artifact created_at",
                            &row.string("created_at")?,
                        )?,
                    })
                },
            )
            .await
    }

    async fn artifact_versions(&self, name: &str) -> Result<Vec<ArtifactVersion>> {
        let mut s = self.read().await?;
        let columns = s.dialect().version_columns();
        let found = s
            .all(
                &format!(
                    "SELECT {columns} FROM {VERSION_FROM} WHERE a.name = ? ORDER BY v.id DESC"
                ),
                args![name.to_owned()],
                records::artifact_version,
            )
            .await?;
        if found.is_empty() {
            let exists = s
                .first(
                    "SELECT id FROM artifacts WHERE name = ?",
                    args![name.to_owned()],
                    |_| Ok(()),
                )
                .await?;
            if exists.is_none() {
                return Err(Error::NotFound {
                    kind: "artifact",
                    reference: name.to_owned(),
                });
            }
        }
        Ok(found)
    }

    async fn artifact_version(&self, id: ArtifactVersionId) -> Result<ArtifactVersion> {
        version_by_id(&mut self.read().await?, id).await
    }

    async fn find_artifact_version(&self, reference: &str) -> Result<ArtifactVersion> {
        let mut s = self.read().await?;
        let columns = s.dialect().version_columns();
        let not_found = || Error::NotFound {
            kind: "artifact version",
            reference: reference.to_owned(),
        };
        if let Ok(id) = reference.parse::<ArtifactVersionId>() {
            return version_by_id(&mut s, id).await;
        }
        if let Some((name, version)) = reference
            .rsplit_once(':')
            .filter(|(name, _)| !name.is_empty())
        {
            let found = if version == "latest" {
                s.first(
                    &format!(
                        "SELECT {columns} FROM {VERSION_FROM} WHERE a.name = ? ORDER BY v.id DESC LIMIT 1"
                    ),
                    args![name.to_owned()],
                    records::artifact_version,
                )
                .await?
            } else {
                s.first(
                    &format!(
                        "SELECT {columns} FROM {VERSION_FROM} WHERE a.name = ? AND v.version = ?"
                    ),
                    args![name.to_owned(), version.to_owned()],
                    records::artifact_version,
                )
                .await?
            };
            if let Some(found) = found {
                return Ok(found);
            }
        }
        let pattern = id_prefix(reference).ok_or_else(not_found)?;
        let found = s
            .all(
                &format!("SELECT {columns} FROM {VERSION_FROM} WHERE v.id LIKE ?"),
                args![pattern.clone()],
                records::artifact_version,
            )
            .await?;
        the_only(found, "artifact version", reference)
    }

    async fn create_artifact_version(&self, new: NewArtifactVersion) -> Result<ArtifactVersion> {
        crate::records::check_new_version(&new)?;
        transaction!(self, |s| {
            let mut locked =
                lock_artifacts(&mut s, [(new.name.as_str(), new.has_custom_name)]).await?;
            insert_version(&mut s, &new, None, &mut locked).await
        })
    }

    async fn tag_artifact_version(&self, id: ArtifactVersionId, tags: &[String]) -> Result<()> {
        crate::records::check_tags(tags)?;
        transaction!(self, |s| {
            version_by_id(&mut s, id).await?;
            insert_tags(&mut s, "artifact_version", &id.to_string(), tags).await
        })
    }

    async fn untag_artifact_version(&self, id: ArtifactVersionId, tags: &[String]) -> Result<()> {
        transaction!(self, |s| {
            version_by_id(&mut s, id).await?;
            remove_tags(&mut s, "artifact_version", &id.to_string(), tags).await
        })
    }
}

async fn version_by_id(s: &mut Session, id: ArtifactVersionId) -> Result<ArtifactVersion> {
    let columns = s.dialect().version_columns();
    s.first(
        &format!("SELECT {columns} FROM {VERSION_FROM} WHERE v.id = ?"),
        args![id.to_string()],
        records::artifact_version,
    )
    .await?
    .ok_or_else(|| Error::NotFound {
        kind: "artifact version",
        reference: id.to_string(),
    })
}

/// The artifacts a transaction has locked: name and id.
pub(crate) type Locked = Vec<(String, String)>;

/// Creates the artifacts named (if new) and locks their rows until the transaction ends, in
/// name order so that two transactions numbering versions of the same artifacts queue instead
/// of deadlocking. Whoever holds an artifact's lock numbers its next version.
pub(crate) async fn lock_artifacts<'a>(
    s: &mut Session,
    artifacts: impl IntoIterator<Item = (&'a str, bool)>,
) -> Result<Locked> {
    let mut artifacts: Vec<(&str, bool)> = artifacts.into_iter().collect();
    artifacts.sort();
    artifacts.dedup_by(|a, b| a.0 == b.0);
    let mut locked = Vec::with_capacity(artifacts.len());
    for (name, has_custom_name) in artifacts {
        locked.push((
            name.to_owned(),
            artifact_id(s, name, has_custom_name).await?,
        ));
    }
    Ok(locked)
}

/// The id of the artifact `name`, created on first use, with its row locked.
async fn artifact_id(s: &mut Session, name: &str, has_custom_name: bool) -> Result<String> {
    let select = "SELECT id FROM artifacts WHERE name = ? FOR UPDATE";
    let found = s
        .first(select, args![name.to_owned()], |row| row.string("id"))
        .await?;
    if let Some(id) = found {
        return Ok(id);
    }
    // Another writer may create it meanwhile: insert-or-ignore, then lock whichever won.
    let insert = s.dialect().insert_or_ignore(
        "artifacts (id, name, has_custom_name, created_at) VALUES (?, ?, ?, ?)",
        "name",
    );
    s.execute(
        &insert,
        args![
            ArtifactId::new().to_string(),
            name.to_owned(),
            i64::from(has_custom_name),
            time::format(time::now())
        ],
    )
    .await?;
    s.first(select, args![name.to_owned()], |row| row.string("id"))
        .await?
        .ok_or_else(|| Error::corrupt("artifacts", format!("artifact `{name}` vanished")))
}

/// Registers one artifact version inside a write transaction: creates the artifact on first
/// use and takes the next integer version under the artifact's row lock, so two writers (of
/// any process) can never take the same number.
pub(crate) async fn insert_version(
    s: &mut Session,
    new: &NewArtifactVersion,
    producer: Option<StepRunId>,
    locked: &mut Locked,
) -> Result<ArtifactVersion> {
    let now = time::now();
    let created_at = time::format(now);
    let artifact_id = match locked.iter().find(|(name, _)| *name == new.name) {
        Some((_, id)) => id.clone(),
        None => {
            let id = artifact_id(s, &new.name, new.has_custom_name).await?;
            locked.push((new.name.clone(), id.clone()));
            id
        }
    };
    let (version, number) = match &new.version {
        Some(version) => (version.clone(), version.parse::<i64>().ok()),
        None => {
            let latest = s
                .first(
                    "SELECT MAX(version_number) AS latest FROM artifact_versions WHERE artifact_id = ?",
                    args![artifact_id.clone()],
                    |row| row.integer("latest"),
                )
                .await?
                .flatten();
            let next = latest.unwrap_or(0) + 1;
            (next.to_string(), Some(next))
        }
    };
    let id = new.id;
    let inserted = s
        .execute(
            "INSERT INTO artifact_versions (id, artifact_id, version, version_number, artifact_type, uri, \
             materializer, materializer_version, data_type, content_hash, size, files, save_type, \
             producer_step_run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            args![
                id.to_string(),
                artifact_id.clone(),
                version.clone(),
                number,
                new.artifact_type.as_str(),
                new.uri.clone(),
                new.materializer.clone(),
                i64::from(new.materializer_version),
                new.data_type.clone(),
                new.content_hash.clone(),
                new.size as i64,
                serde_json::to_string(&new.files).expect("plain data"),
                new.save_type.as_str(),
                producer.map(|p| p.to_string()),
                created_at.clone()
            ],
        )
        .await;
    if let Err(Error::Server(sqlx_core::Error::Database(database))) = &inserted
        && database.is_unique_violation()
    {
        return Err(Error::Conflict(format!(
            "artifact `{}` already has a version `{version}` (or version id {id} exists); explicit versions must be unique",
            new.name
        )));
    }
    inserted?;
    if !new.metadata.is_empty() {
        let entries: Vec<(String, serde_json::Value)> = new
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        upsert_metadata(
            s,
            Resource::ArtifactVersion(id),
            &entries,
            MetadataSource::System,
        )
        .await?;
    }
    insert_tags(s, "artifact_version", &id.to_string(), &new.tags).await?;
    records::registered_version(new, &artifact_id, version, producer, now)
}

/// Attaches tags (created on first use) to one resource; tags it has are kept.
pub(crate) async fn insert_tags(
    s: &mut Session,
    resource_type: &str,
    resource_id: &str,
    tags: &[String],
) -> Result<()> {
    let insert_tag = s
        .dialect()
        .insert_or_ignore("tags (id, name, created_at) VALUES (?, ?, ?)", "name");
    let insert_link = s.dialect().insert_or_ignore(
        "tag_links (tag_id, resource_type, resource_id) \
         SELECT id, ?, ? FROM tags WHERE name = ?",
        "tag_id",
    );
    // In name order, as artifacts are locked, so writers sharing tags queue instead of
    // deadlocking.
    let mut tags: Vec<&String> = tags.iter().collect();
    tags.sort();
    tags.dedup();
    for tag in tags {
        s.execute(
            &insert_tag,
            args![
                uuid::Uuid::now_v7().to_string(),
                tag.clone(),
                time::format(time::now())
            ],
        )
        .await?;
        s.execute(
            &insert_link,
            args![
                resource_type.to_owned(),
                resource_id.to_owned(),
                tag.clone()
            ],
        )
        .await?;
    }
    Ok(())
}

/// Detaches tags (by name) from one resource; tags it does not have are ignored.
pub(crate) async fn remove_tags(
    s: &mut Session,
    resource_type: &str,
    resource_id: &str,
    tags: &[String],
) -> Result<()> {
    for tag in tags {
        s.execute(
            "DELETE FROM tag_links WHERE resource_type = ? AND resource_id = ? \
             AND tag_id IN (SELECT id FROM tags WHERE name = ?)",
            args![
                resource_type.to_owned(),
                resource_id.to_owned(),
                tag.clone()
            ],
        )
        .await?;
    }
    Ok(())
}
