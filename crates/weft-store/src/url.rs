//! Metadata store URLs: which backend a URL names, whether this build has it, and how to
//! show one without its password. Always compiled, so that a URL this build cannot open is
//! refused with the feature that would open it, before anything runs.

use crate::{Error, Result};

/// The backend a metadata store URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// `sqlite://<path>`.
    Sqlite,
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `mysql://` or `mariadb://`.
    MySql,
}

impl Backend {
    /// The backend `url` names, checked for what it needs (a path, a database) and for
    /// whether this build can open it.
    pub(crate) fn of(url: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact(url),
            reason,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(
                "expected a URL such as sqlite://.weft/weft.db".into(),
            ));
        };
        let backend = match scheme {
            "sqlite" if !rest.is_empty() => return Ok(Backend::Sqlite),
            "sqlite" => return Err(invalid("the URL names no file (sqlite://<path>)".into())),
            "postgres" | "postgresql" => Backend::Postgres,
            "mysql" | "mariadb" => Backend::MySql,
            other => {
                return Err(invalid(format!(
                    "`{other}://` is not a metadata store; use sqlite://<path>, postgres://... or mysql://..."
                )));
            }
        };
        let database = rest
            .split_once('/')
            .map(|(_, path)| path.split('?').next().unwrap_or(""))
            .unwrap_or("");
        if database.is_empty() {
            return Err(invalid(
                "the URL names no database (…://user@host:port/<database>)".into(),
            ));
        }
        if !backend.built_in() {
            let (name, feature) = match backend {
                Backend::Postgres => ("PostgreSQL", "postgres"),
                _ => ("MySQL/MariaDB", "mysql"),
            };
            return Err(invalid(format!(
                "this build of weft has no {name} support; build it with the `{feature}` feature \
                 (weft = {{ features = [\"{feature}\"] }} in Cargo.toml, and \
                 `cargo install weft-cli --features {feature}` for the weft command)"
            )));
        }
        Ok(backend)
    }

    /// Whether this build has the backend's driver.
    fn built_in(self) -> bool {
        match self {
            Backend::Sqlite => true,
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::MySql => cfg!(feature = "mysql"),
        }
    }
}

/// The URL with its password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://weft:s3cret@db:5432/weft"),
            "postgres://weft:***@db:5432/weft"
        );
        assert_eq!(
            redact("mysql://weft@db/weft?ssl-mode=required"),
            "mysql://weft@db/weft?ssl-mode=required"
        );
        assert_eq!(
            redact("postgres://u:p@ss@host/db"),
            "postgres://u:***@host/db"
        );
    }

    #[test]
    fn urls_name_their_backend_and_what_they_lack() {
        assert_eq!(
            Backend::of("sqlite://.weft/weft.db").unwrap(),
            Backend::Sqlite
        );
        let error = Backend::of("postgres://weft:secret@host:5432").unwrap_err();
        assert!(error.to_string().contains("names no database"), "{error}");
        assert!(!error.to_string().contains("secret"), "{error}");
        assert!(Backend::of("redis://h/0").is_err());
        assert!(Backend::of("sqlite://").is_err());
        assert!(Backend::of(".weft/weft.db").is_err());
    }

    #[test]
    fn a_backend_left_out_of_the_build_names_its_feature() {
        let postgres = Backend::of("postgresql://h/db");
        if cfg!(feature = "postgres") {
            assert_eq!(postgres.unwrap(), Backend::Postgres);
        } else {
            let error = postgres.unwrap_err().to_string();
            assert!(error.contains("`postgres` feature"), "{error}");
        }
    }
}
