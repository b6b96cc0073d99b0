//! API keys, browser sessions and roles.
//!
//! A key is `weft_<id>_<secret>`: the id (12 hex digits) finds its record, and only a BLAKE3
//! hash of the secret (32 random bytes) is stored, so the store never holds a usable key.
//! The secret is random enough that a fast hash is as safe as a slow one; hashes are compared
//! in constant time. A request carries a key as `Authorization: Bearer <key>`, or the cookie
//! of a browser session made by signing in with a key (or with the one-time link `weft ui`
//! prints). Sessions live in the server's memory: a restart signs everyone out. Requests
//! that change something and come with a session cookie must also carry the session's
//! anti-forgery token in `X-Weft-Csrf` (the cookie is also `SameSite=Strict`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use weft_store::MetadataStore;
use weft_store::model::{ApiKey, NewApiKey, Role};

use crate::error::ApiError;

/// The cookie of a browser session.
pub(crate) const SESSION_COOKIE: &str = "weft_session";
/// The header that carries a session's anti-forgery token.
pub(crate) const CSRF_HEADER: &str = "x-weft-csrf";
/// How long a browser session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long the one-time sign-in link of `weft ui` can be used.
const ONE_TIME_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How often a key's last use is recorded.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A key just created: its record, and the key itself, which is shown once.
#[derive(Debug)]
pub struct CreatedKey {
    /// Its record.
    pub record: ApiKey,
    /// The key to give to clients (`weft_<id>_<secret>`).
    pub key: String,
}

/// Creates a key with `role`, recorded in `store`.
pub async fn create_key(
    store: &dyn MetadataStore,
    role: Role,
    name: Option<String>,
    expires_at: Option<DateTime<Utc>>,
) -> anyhow::Result<CreatedKey> {
    let id = hex(&random::<6>());
    let secret = token();
    let record = store
        .create_api_key(NewApiKey {
            id: id.clone(),
            name,
            role,
            secret_hash: hash(&secret),
            expires_at,
        })
        .await?;
    Ok(CreatedKey {
        record,
        key: format!("weft_{id}_{secret}"),
    })
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes, URL-safe.
fn token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random::<32>())
}

fn hash(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

/// Splits a key into its id and secret.
fn parse_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("weft_")?;
    let (id, secret) = rest.split_at_checked(12)?;
    let secret = secret.strip_prefix('_')?;
    let well_formed = id.bytes().all(|b| b.is_ascii_hexdigit())
        && secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then_some((id, secret))
}

/// Who made a request, once authenticated.
#[derive(Clone, Debug)]
pub(crate) struct Principal {
    pub(crate) role: Role,
    /// The key used, directly or through a session (none for a one-time sign-in).
    pub(crate) key: Option<String>,
    /// The session's anti-forgery token, when the request came with a session cookie.
    pub(crate) csrf: Option<String>,
}

struct Session {
    role: Role,
    key: Option<String>,
    csrf: String,
    expires: Instant,
}

/// Checks keys and keeps browser sessions.
pub(crate) struct Auth {
    store: Arc<dyn MetadataStore>,
    sessions: Mutex<HashMap<String, Session>>,
    one_time: Mutex<HashMap<String, Instant>>,
    touched: Mutex<HashMap<String, Instant>>,
    /// Whether cookies are marked `Secure` (the server speaks TLS).
    pub(crate) secure_cookies: bool,
}

impl Auth {
    pub(crate) fn new(store: Arc<dyn MetadataStore>, secure_cookies: bool) -> Self {
        Self {
            store,
            sessions: Mutex::default(),
            one_time: Mutex::default(),
            touched: Mutex::default(),
            secure_cookies,
        }
    }

    /// The role of a usable key; 401 for a key that is malformed, unknown, revoked or
    /// expired (without saying which: that would help a guesser), 503 if the store cannot
    /// be read.
    pub(crate) async fn check_key(&self, key: &str) -> Result<ApiKey, ApiError> {
        let refused =
            || ApiError::unauthorized("the API key is not valid (unknown, revoked or expired)");
        let (id, secret) = parse_key(key).ok_or_else(refused)?;
        let record = match self.store.api_key(id).await {
            Ok(record) => record,
            Err(weft_store::Error::NotFound { .. }) => return Err(refused()),
            Err(error) => return Err(error.into()),
        };
        let stored = blake3::Hash::from_hex(&record.secret_hash).map_err(|_| refused())?;
        // `blake3::Hash` compares in constant time.
        if blake3::hash(secret.as_bytes()) != stored || !record.usable(Utc::now()) {
            return Err(refused());
        }
        self.touch(&record.id).await;
        Ok(record)
    }

    /// Records a key's use, at most once a minute per key; a failure to record is no reason
    /// to refuse the request.
    async fn touch(&self, id: &str) {
        let now = Instant::now();
        {
            let mut touched = self.touched.lock().expect("not poisoned");
            if touched
                .get(id)
                .is_some_and(|last| now.duration_since(*last) < TOUCH_EVERY)
            {
                return;
            }
            touched.insert(id.to_owned(), now);
        }
        if let Err(error) = self.store.touch_api_key(id, Utc::now()).await {
            tracing::debug!(target: "weft::server", "cannot record the use of key {id}: {error}");
        }
    }

    /// Opens a session; returns its cookie value and anti-forgery token.
    pub(crate) fn open_session(&self, role: Role, key: Option<String>) -> (String, String) {
        let (cookie, csrf) = (token(), token());
        let now = Instant::now();
        let mut sessions = self.sessions.lock().expect("not poisoned");
        sessions.retain(|_, session| session.expires > now);
        sessions.insert(
            hash(&cookie),
            Session {
                role,
                key,
                csrf: csrf.clone(),
                expires: now + SESSION_LIFETIME,
            },
        );
        (cookie, csrf)
    }

    pub(crate) fn close_session(&self, token: &str) {
        self.sessions
            .lock()
            .expect("not poisoned")
            .remove(&hash(token));
    }

    /// A new one-time sign-in token (for `weft ui`).
    pub(crate) fn one_time_token(&self) -> String {
        let token = token();
        self.one_time
            .lock()
            .expect("not poisoned")
            .insert(hash(&token), Instant::now() + ONE_TIME_LIFETIME);
        token
    }

    /// Uses up a one-time token: whether it was valid.
    pub(crate) fn redeem_one_time(&self, token: &str) -> bool {
        let mut tokens = self.one_time.lock().expect("not poisoned");
        let now = Instant::now();
        tokens.retain(|_, expires| *expires > now);
        tokens.remove(&hash(token)).is_some()
    }

    /// Who sent the request: by key (`Authorization: Bearer`) or session cookie.
    pub(crate) async fn principal(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let key = value
                .to_str()
                .ok()
                .and_then(|value| value.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    ApiError::unauthorized("the Authorization header must be `Bearer <API key>`")
                })?;
            let record = self.check_key(key.trim()).await?;
            return Ok(Principal {
                role: record.role,
                key: Some(record.id),
                csrf: None,
            });
        }
        let Some(token) = session_cookie(headers) else {
            return Err(ApiError::unauthorized(
                "sign in: send `Authorization: Bearer <API key>` (create one with `weft server keys create`)",
            ));
        };
        let (role, key, csrf) = {
            let sessions = self.sessions.lock().expect("not poisoned");
            match sessions.get(&hash(token)) {
                Some(session) if session.expires > Instant::now() => {
                    (session.role, session.key.clone(), session.csrf.clone())
                }
                _ => return Err(ApiError::unauthorized("the session ended: sign in again")),
            }
        };
        // A revoked or expired key ends its sessions at once.
        if let Some(id) = &key {
            match self.store.api_key(id).await {
                Ok(record) if record.usable(Utc::now()) => {}
                Ok(_) | Err(weft_store::Error::NotFound { .. }) => {
                    self.close_session(token);
                    return Err(ApiError::unauthorized(
                        "the key this session signed in with was revoked or expired",
                    ));
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Principal {
            role,
            key,
            csrf: Some(csrf),
        })
    }
}

/// The session cookie's value, if the request has one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The `Set-Cookie` value of a session.
pub(crate) fn session_set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
pub(crate) fn cleared_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Authenticates every request of the routes it wraps; requests that change something and
/// come with a session cookie must carry its anti-forgery token.
pub(crate) async fn authenticate(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = auth.principal(request.headers()).await?;
    let changes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes {
        check_csrf(&principal, request.headers())?;
    }
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// Refuses a request made with a session cookie that does not carry the session's
/// anti-forgery token (compared in constant time); a request made with a key needs none.
pub(crate) fn check_csrf(principal: &Principal, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &principal.csrf else {
        return Ok(());
    };
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|value| value.to_str().ok());
    let matches =
        sent.is_some_and(|sent| blake3::hash(sent.as_bytes()) == blake3::hash(expected.as_bytes()));
    if matches {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "a request that changes something must carry the session's X-Weft-Csrf token",
        ))
    }
}

/// Refuses requests from a role below editor (403).
pub(crate) async fn require_editor(request: Request, next: Next) -> Result<Response, ApiError> {
    let role = request
        .extensions()
        .get::<Principal>()
        .map(|principal| principal.role);
    if role != Some(Role::Editor) {
        return Err(ApiError::forbidden(
            "this action needs an editor key; this key is a viewer's",
        ));
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_only_in_their_exact_form() {
        let secret = token();
        let key = format!("weft_0123456789ab_{secret}");
        assert_eq!(parse_key(&key), Some(("0123456789ab", secret.as_str())));
        for bad in [
            "",
            "weft_",
            "weft_0123456789ab",
            "weft_0123456789ab_short",
            &format!("weft_0123456789zz_{secret}"),
            &format!("weft_0123456789ab-{secret}"),
            &format!("weft_0123456789ab_{secret}x"),
            &format!("weft_é123456789ab_{secret}"),
        ] {
            assert_eq!(parse_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn session_cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; weft_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(session_cookie(&headers), Some("abc"));
        let cookie = session_set_cookie("abc", true);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.ends_with("; Secure"));
    }
}
