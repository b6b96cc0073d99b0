//! The metadata store on a database server: orchestration overhead per step with the metadata
//! store on SQLite, PostgreSQL (over TCP and over its Unix socket) and MariaDB (the artifact
//! store on tmpfs for all), for a chain and a fan-out of trivial steps, computed and then fully
//! cached, and for isolated steps, whose processes each open the store.
//!
//! Needs the servers `scripts/postgres-up.sh` and `scripts/mariadb-up.sh` start (or their URLs
//! in `WEFT_TEST_POSTGRES_URL` and `WEFT_TEST_MYSQL_URL`); each measurement gets a new
//! database. Prints figures; asserts nothing. `cargo bench -p weft --bench servers`
//! (`-- --quick`: one repetition instead of five).

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::{chain, fan_out, isolated_chain, median};
use weft::config::StoreConfig;
use weft::prelude::*;
use weft_store::conformance::TestDatabase;

const CHAIN: usize = 200;
const FAN: u64 = 200;
const ISOLATED: usize = 20;

#[derive(Clone, Copy)]
enum Store {
    Sqlite,
    Postgres,
    /// PostgreSQL on this machine through its Unix socket instead of TCP.
    PostgresSocket,
    MariaDb,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Store::Sqlite => "SQLite (tmpfs)",
            Store::Postgres => "PostgreSQL",
            Store::PostgresSocket => "  (Unix socket)",
            Store::MariaDb => "MariaDB",
        }
    }
}

/// Runs `call` twice on new stores (computed, then every step a cache hit) and times both.
fn timed(store: Store, base: &Path, call: impl Fn() -> weft::PipelineCall) -> (Duration, Duration) {
    let dir = tempfile::tempdir_in(base).expect("a folder for the stores");
    let server = |variable: &str, default: &str| {
        let server = TestDatabase::server(variable, default);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime
            .block_on(TestDatabase::create(&server))
            .unwrap_or_else(|e| panic!("no database server at {server} (see scripts/): {e}"))
    };
    let database = match store {
        Store::Sqlite => None,
        Store::Postgres | Store::PostgresSocket => Some(server(
            "WEFT_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:54329/postgres",
        )),
        Store::MariaDb => Some(server(
            "WEFT_TEST_MYSQL_URL",
            "mysql://weft:weft@127.0.0.1:33069/mysql",
        )),
    };
    let mut stores = StoreConfig::in_folder(dir.path());
    if let Some(database) = &database {
        stores.metadata = database.url.clone();
    }
    if let Store::PostgresSocket = store {
        let folder = std::env::var("WEFT_POSTGRES_DIR").unwrap_or("/tmp/weft-postgres".into());
        stores.metadata.push_str(&format!("?host={folder}"));
    }
    let client = Client::open(&stores).expect("the stores open");
    let computed = common::timed_run(&client, call(), &weft::RunConfig::default()).0;
    let cached = common::timed_run(&client, call(), &weft::RunConfig::default()).0;
    (computed, cached)
}

fn main() -> std::process::ExitCode {
    // This binary also hosts the isolated steps it starts.
    if std::env::args().nth(1).as_deref() == Some("__weft-step") {
        return weft::main();
    }
    let quick = std::env::args().any(|argument| argument == "--quick");
    let repeats = if quick { 1 } else { 5 };
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    println!(
        "weft with the metadata store on a server: trivial steps, artifacts under {}, median of {repeats}, ms per step",
        base.display()
    );
    println!(
        "{:<18}{:>14}{:>14}{:>14}{:>14}{:>14}",
        "metadata store", "chain", "chain cached", "fan-out", "fan cached", "isolated"
    );
    for store in [
        Store::Sqlite,
        Store::Postgres,
        Store::PostgresSocket,
        Store::MariaDb,
    ] {
        timed(store, &base, || chain::args(3)); // warm-up
        let measure = |call: &dyn Fn() -> weft::PipelineCall| {
            let runs: Vec<(Duration, Duration)> =
                (0..repeats).map(|_| timed(store, &base, call)).collect();
            (
                median(runs.iter().map(|r| r.0).collect()),
                median(runs.iter().map(|r| r.1).collect()),
            )
        };
        let (chain, chain_cached) = measure(&|| chain::args(CHAIN));
        let (fan, fan_cached) = measure(&|| fan_out::args(FAN));
        let (isolated, _) = measure(&|| isolated_chain::args(ISOLATED));
        let per = |total: Duration, steps: usize| total.as_secs_f64() * 1e3 / steps as f64;
        println!(
            "{:<18}{:>14.3}{:>14.3}{:>14.3}{:>14.3}{:>14.3}",
            store.name(),
            per(chain, CHAIN),
            per(chain_cached, CHAIN),
            per(fan, FAN as usize + 1),
            per(fan_cached, FAN as usize + 1),
            per(isolated, ISOLATED),
        );
    }
    println!(
        "(chain: {CHAIN} steps, each on the previous one's output; fan-out: one step feeding {FAN}; isolated: a chain of {ISOLATED} steps, each in a process of its own)"
    );
    std::process::ExitCode::SUCCESS
}
