//! The conformance suite against PostgreSQL (a server `scripts/postgres-up.sh` starts; its
//! URL in `WEFT_TEST_POSTGRES_URL`), plus what only a server store does.

use std::any::Any;
use std::sync::Arc;

use weft_store::MetadataStore;
use weft_store::conformance::TestDatabase;

mod server;

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
server::server_tests!(database, end_sessions);

/// The authority that signed the server's certificate (`scripts/postgres-up.sh` makes both).
fn certificate() -> String {
    std::env::var("WEFT_TEST_POSTGRES_CA")
        .unwrap_or_else(|_| "/tmp/weft-postgres/ca.crt".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_verifies_the_server_certificate() {
    use sqlx_core::connection::Connection as _;
    use weft_store::RunStore as _;
    let database = database().await;
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        database.url,
        certificate()
    );
    let store = weft_store::ServerStore::open(&verified).await.unwrap();
    store.runs(&Default::default()).await.unwrap();
    // The same URL gives an encrypted session.
    let mut connection = sqlx_postgres::PgConnection::connect(&verified)
        .await
        .unwrap();
    let (encrypted,): (bool,) =
        sqlx_core::query_as::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    assert!(encrypted);
    // A certificate nobody vouches for is refused, and says so.
    let unverified = format!("{}?sslmode=verify-full", database.url);
    let error = weft_store::ServerStore::open(&unverified)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("cannot open the metadata store at") && error.contains("certificate"),
        "{error}"
    );
}
