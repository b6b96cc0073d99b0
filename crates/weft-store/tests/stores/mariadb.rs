//! The conformance suite against MariaDB (a server `scripts/mariadb-up.sh` starts; its
//! URL in `WEFT_TEST_MYSQL_URL`), plus what only a server store does.

use std::any::Any;
use std::sync::Arc;

use weft_store::MetadataStore;
use weft_store::conformance::TestDatabase;

const DEFAULT_SERVER: &str = "mysql://weft:weft@127.0.0.1:33069/mysql";

async fn database() -> TestDatabase {
    let server = TestDatabase::server("WEFT_TEST_MYSQL_URL", DEFAULT_SERVER);
    TestDatabase::create(&server).await.unwrap_or_else(|e| {
        panic!("no MariaDB test server at {server} (start one with scripts/mariadb-up.sh): {e}")
    })
}

async fn fresh() -> (Arc<dyn MetadataStore>, Box<dyn Any + Send>) {
    let database = database().await;
    let store = weft_store::ServerStore::open(&database.url).await.unwrap();
    (Arc::new(store), Box::new(database))
}

/// Ends every other session on the database at `url`, as an administrator would.
async fn end_sessions(url: &str) {
    use sqlx_core::connection::Connection as _;
    use sqlx_core::executor::Executor as _;
    let mut admin = sqlx_mysql::MySqlConnection::connect(url).await.unwrap();
    let sessions: Vec<(i64,)> = sqlx_core::query_as::query_as(
        "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for (id,) in sessions {
        admin
            .execute(&*format!("KILL CONNECTION {id}"))
            .await
            .unwrap();
    }
}

weft_store::conformance_tests!(fresh);
crate::server::server_tests!(database, end_sessions, tls, encrypted);

/// The URL of the database at `url` over TLS that verifies the server's certificate against
/// the authority `scripts/mariadb-up.sh` made, and the same without that authority.
fn tls(url: &str) -> (String, String) {
    let authority = std::env::var("WEFT_TEST_MYSQL_CA")
        .unwrap_or_else(|_| "/tmp/weft-mariadb/ca.crt".to_owned());
    (
        format!("{url}?ssl-mode=verify_identity&ssl-ca={}", authority),
        format!("{url}?ssl-mode=verify_identity"),
    )
}

/// Whether a session opened with `url` is encrypted.
async fn encrypted(url: &str) -> bool {
    use sqlx_core::connection::Connection as _;
    let mut connection = sqlx_mysql::MySqlConnection::connect(url).await.unwrap();
    let (_, cipher): (String, String) =
        sqlx_core::query_as::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    !cipher.is_empty()
}
