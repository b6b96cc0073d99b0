//! The conformance suite against PostgreSQL (a server `scripts/postgres-up.sh` starts; its
//! URL in `WEFT_TEST_POSTGRES_URL`), plus what only a server store does.

use std::any::Any;
use std::sync::Arc;

use weft_store::MetadataStore;
use weft_store::conformance::TestDatabase;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:54329/postgres";

async fn database() -> TestDatabase {
    let server = TestDatabase::server("WEFT_TEST_POSTGRES_URL", DEFAULT_SERVER);
    TestDatabase::create(&server).await.unwrap_or_else(|e| {
        panic!("no PostgreSQL test server at {server} (start one with scripts/postgres-up.sh): {e}")
    })
}

async fn fresh() -> (Arc<dyn MetadataStore>, Box<dyn Any + Send>) {
    let database = database().await;
    let store = weft_store::ServerStore::open(&database.url).await.unwrap();
    (Arc::new(store), Box::new(database))
}

/// Ends every other session on the database at `url`, as an administrator would.
async fn end_sessions(url: &str) {
    TestDatabase::execute(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap();
}

weft_store::conformance_tests!(fresh);
crate::server::server_tests!(database, end_sessions, tls, encrypted);

/// The URL of the database at `url` over TLS that verifies the server's certificate against
/// the authority `scripts/postgres-up.sh` made, and the same without that authority.
fn tls(url: &str) -> (String, String) {
    let authority = std::env::var("WEFT_TEST_POSTGRES_CA")
        .unwrap_or_else(|_| "/tmp/weft-postgres/ca.crt".to_owned());
    (
        format!("{url}?sslmode=verify-full&sslrootcert={}", authority),
        format!("{url}?sslmode=verify-full"),
    )
}

/// Whether a session opened with `url` is encrypted.
async fn encrypted(url: &str) -> bool {
    use sqlx_core::connection::Connection as _;
    let mut connection = sqlx_postgres::PgConnection::connect(url).await.unwrap();
    let (encrypted,): (bool,) =
        sqlx_core::query_as::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    encrypted
}
