//! [`ApiKeyStore`] on a database server.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{ServerStore, Session, args, constraint_error, transaction};
use crate::model::{ApiKey, NewApiKey};
use crate::records::{API_KEY_COLUMNS, api_key, check_new_api_key};
use crate::{ApiKeyStore, Error, Result, time};

#[async_trait]
impl ApiKeyStore for ServerStore {
    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey> {
        check_new_api_key(&new)?;
        let created_at = time::format(time::now());
        transaction!(self, |s| {
            s.execute(
                "INSERT INTO api_keys (id, name, role, secret_hash, created_at, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                args![
                    new.id.clone(),
                    new.name.clone(),
                    new.role.as_str(),
                    new.secret_hash.clone(),
                    created_at.clone(),
                    new.expires_at.map(time::format)
                ],
            )
            .await
            .map_err(|e| {
                constraint_error(
                    e,
                    &format!("an API key with id `{}` exists already", new.id),
                )
            })?;
            key_by_id(&mut s, &new.id).await
        })
    }

    async fn api_key(&self, id: &str) -> Result<ApiKey> {
        key_by_id(&mut self.read().await?, id).await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        self.read()
            .await?
            .all(
                &format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                args![],
                api_key,
            )
            .await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<ApiKey> {
        let now = time::format(time::now());
        transaction!(self, |s| {
            s.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                args![now.clone(), id.to_owned()],
            )
            .await?;
            key_by_id(&mut s, id).await
        })
    }

    async fn touch_api_key(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        let at = time::format(at);
        transaction!(self, |s| {
            s.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
                args![at.clone(), id.to_owned()],
            )
            .await
            .map(|_| ())
        })
    }
}

async fn key_by_id(s: &mut Session, id: &str) -> Result<ApiKey> {
    s.first(
        &format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?"),
        args![id.to_owned()],
        api_key,
    )
    .await?
    .ok_or_else(|| Error::NotFound {
        kind: "API key",
        reference: id.to_owned(),
    })
}
