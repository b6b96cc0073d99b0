//! [`ApiKeyStore`] for SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::SqliteStore;
use super::rows;
use crate::model::{ApiKey, NewApiKey};
use crate::records::{API_KEY_COLUMNS, api_key, check_new_api_key};
use crate::{ApiKeyStore, Error, Result, time};

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey> {
        check_new_api_key(&new)?;
        self.write(move |tx| {
            let inserted = tx.execute(
                "INSERT INTO api_keys (id, name, role, secret_hash, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                params![
                    new.id,
                    new.name,
                    new.role.as_str(),
                    new.secret_hash,
                    time::format(time::now()),
                    new.expires_at.map(time::format),
                ],
            )?;
            if inserted == 0 {
                return Err(Error::Conflict(format!(
                    "an API key with id `{}` exists already",
                    new.id
                )));
            }
            key_by_id(tx, &new.id)
        })
        .await
    }

    async fn api_key(&self, id: &str) -> Result<ApiKey> {
        let id = id.to_owned();
        self.read(move |connection| key_by_id(connection, &id))
            .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        self.read(|connection| {
            rows::all(
                connection,
                &format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                [],
                |row| api_key(row),
            )
        })
        .await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<ApiKey> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, time::format(time::now())],
            )?;
            key_by_id(tx, &id)
        })
        .await
    }

    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
                params![id, time::format(at)],
            )?;
            Ok(())
        })
        .await
    }
}

fn key_by_id(connection: &rusqlite::Connection, id: &str) -> Result<ApiKey> {
    rows::first(
        connection,
        &format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?"),
        [id],
        |row| api_key(row),
    )?
    .ok_or_else(|| Error::NotFound {
        kind: "API key",
        reference: id.to_owned(),
    })
}
