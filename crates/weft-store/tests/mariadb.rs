//! The conformance suite against MariaDB (a server `scripts/mariadb-up.sh` starts; its
//! URL in `WEFT_TEST_MYSQL_URL`), plus what only a server store does.

use std::any::Any;
use std::sync::Arc;

use weft_store::MetadataStore;
use weft_store::conformance::TestDatabase;

mod server;

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

weft_store::conformance_tests!(fresh);
server::server_tests!(database);
