//! What only a store on a database server does, for each server: many writers at once, from
//! stores of their own as separate processes have, and servers that are not there.

/// One test per case against the server whose fresh databases `$database` makes, whose
/// sessions on a database `$end_sessions` ends (as an administrator or a restart would),
/// whose TLS URLs (verifying, and without the authority) `$tls` makes, and whose sessions
/// `$encrypted` says are encrypted.
macro_rules! server_tests {
    ($database:ident, $end_sessions:ident, $tls:ident, $encrypted:ident) => {
        mod on_server {
            use std::sync::Arc;
            use std::time::{Duration, Instant};

            use weft_store::conformance::{chain_snapshot, running, version};
            use weft_store::model::{Completion, NewRun};
            use weft_store::{
                ArtifactRecords, MetadataStore, RunStore, ServerStore, StepRunStore,
            };

            async fn new_run(store: &ServerStore) -> weft_core::RunId {
                store
                    .create_run(NewRun {
                        snapshot: chain_snapshot("p", Default::default()),
                        config: serde_json::json!({}),
                        owner: None,
                        resumed_from: None,
                        tags: vec![],
                    })
                    .await
                    .unwrap()
                    .id
            }

            /// Six stores (six pools, as six processes have) each run twenty steps at once
            /// that all write versions of one shared artifact and one of their own, while
            /// their runs heartbeat and one run is asked to stop: no version is taken twice,
            /// nothing is lost, and nothing waits forever.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn many_stores_writing_at_once_lose_nothing() {
                let database = super::$database().await;
                let mut stores = Vec::new();
                for _ in 0..6 {
                    stores.push(ServerStore::open(&database.url).await.unwrap());
                }
                let work = async {
                    let mut tasks = Vec::new();
                    for (writer, store) in stores.iter().enumerate() {
                        let run = new_run(store).await;
                        for index in 0..20 {
                            let store = store.clone();
                            tasks.push(tokio::spawn(async move {
                                let step_run = store
                                    .create_step_runs(vec![running(run, &format!("step_{index}"))])
                                    .await
                                    .unwrap()
                                    .remove(0);
                                store.heartbeat(run).await.unwrap();
                                let outputs = vec![
                                    ("shared".into(), version("shared", "x")),
                                    ("own".into(), version(&format!("own_{writer}"), "y")),
                                ];
                                store
                                    .complete_step_run(
                                        step_run.id,
                                        Completion {
                                            outputs,
                                            log_uri: Some(format!("logs/{writer}/{index}")),
                                            metadata: vec![("i".into(), serde_json::json!(index))],
                                        },
                                    )
                                    .await
                                    .unwrap();
                            }));
                        }
                    }
                    let stopped = new_run(&stores[0]).await;
                    stores[1].request_stop(stopped).await.unwrap();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    stopped
                };
                let stopped = tokio::time::timeout(Duration::from_secs(120), work)
                    .await
                    .expect("writers at once never wait forever");
                let mut numbers: Vec<u32> = stores[2]
                    .artifact_versions("shared")
                    .await
                    .unwrap()
                    .iter()
                    .map(|v| v.version.parse().unwrap())
                    .collect();
                numbers.sort();
                assert_eq!(numbers, (1..=120).collect::<Vec<_>>());
                for writer in 0..6 {
                    let own = stores[3]
                        .artifact_versions(&format!("own_{writer}"))
                        .await
                        .unwrap();
                    assert_eq!(own.len(), 20);
                }
                let runs = stores[4].runs(&Default::default()).await.unwrap();
                assert_eq!(runs.len(), 7);
                for run in runs.iter().filter(|run| run.id != stopped) {
                    let step_runs = stores[5].step_runs(run.id).await.unwrap();
                    assert_eq!(step_runs.len(), 20);
                    assert!(step_runs.iter().all(|s| s.status == weft_core::Status::Completed));
                }
                assert_eq!(
                    stores[0].run(stopped).await.unwrap().status,
                    weft_core::Status::Stopping
                );
            }

            /// A refused write releases the locks it took at once, not when its connection is
            /// next used: another process can lock the same run right after.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_refused_write_releases_its_locks() {
                let database = super::$database().await;
                let first = ServerStore::open(&database.url).await.unwrap();
                let second = ServerStore::open(&database.url).await.unwrap();
                let run = new_run(&first).await;
                first.fail_run(run, "for the test").await.unwrap();
                // Locks the run, then refuses: the run is finished.
                let refused = first.create_step_runs(vec![running(run, "late")]).await;
                assert!(refused.is_err());
                let locked_again =
                    tokio::time::timeout(Duration::from_secs(5), second.heartbeat(run)).await;
                assert_eq!(
                    locked_again.expect("the run's lock was released").unwrap(),
                    weft_core::Status::Failed
                );
            }

            /// Connections the server ended (a restart, an administrator) are replaced: a read
            /// runs again on a new connection, a transaction from its start; work goes on.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn connections_the_server_ended_are_replaced() {
                let database = super::$database().await;
                let store = ServerStore::open(&database.url).await.unwrap();
                let run = new_run(&store).await;
                // Several pooled connections, all ended at once.
                let reads = (0..4).map(|_| store.run(run));
                for read in futures::future::join_all(reads).await {
                    read.unwrap();
                }
                super::$end_sessions(&database.url).await;
                assert_eq!(store.run(run).await.unwrap().id, run);
                super::$end_sessions(&database.url).await;
                assert_eq!(store.heartbeat(run).await.unwrap(), weft_core::Status::Initializing);
                super::$end_sessions(&database.url).await;
                let created = store
                    .create_step_runs(vec![running(run, "after")])
                    .await
                    .unwrap();
                assert_eq!(store.step_runs(run).await.unwrap()[0].id, created[0].id);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_tls_connection_verifies_the_server_certificate() {
                let database = super::$database().await;
                let (verified, unverified) = super::$tls(&database.url);
                let store = ServerStore::open(&verified).await.unwrap();
                store.runs(&Default::default()).await.unwrap();
                assert!(super::$encrypted(&verified).await, "the same URL gives an encrypted session");
                // A certificate nobody vouches for is refused, and says so.
                let error = ServerStore::open(&unverified).await.unwrap_err().to_string();
                assert!(
                    error.starts_with("cannot open the metadata store at")
                        && error.contains("certificate"),
                    "{error}"
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stores_opened_at_once_migrate_once() {
                let database = super::$database().await;
                let opened = futures::future::join_all(
                    (0..4).map(|_| ServerStore::open(&database.url)),
                )
                .await;
                let stores: Vec<ServerStore> = opened.into_iter().map(Result::unwrap).collect();
                let run = new_run(&stores[0]).await;
                assert_eq!(stores[3].find_run("latest").await.unwrap().id, run);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_server_that_is_not_there_is_a_clear_error_that_keeps_the_password() {
                let database = super::$database().await;
                let scheme = database.url.split_once("://").unwrap().0;
                let url = format!("{scheme}://weft:s3cret@127.0.0.1:1/weft");
                let started = Instant::now();
                let error = ServerStore::open(&url).await.unwrap_err().to_string();
                assert!(
                    error.starts_with(&format!(
                        "cannot open the metadata store at {scheme}://weft:***@127.0.0.1:1/weft"
                    )),
                    "{error}"
                );
                assert!(!error.contains("s3cret"), "{error}");
                assert!(started.elapsed() < Duration::from_secs(30), "{error}");
                let error = weft_store::open(&url, std::path::Path::new("."))
                    .await
                    .unwrap_err()
                    .to_string();
                assert!(error.contains("cannot open the metadata store"), "{error}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_database_that_does_not_exist_is_a_clear_error() {
                let database = super::$database().await;
                let (server, _) = database.url.rsplit_once('/').unwrap();
                let error = ServerStore::open(&format!("{server}/no_such_database"))
                    .await
                    .unwrap_err()
                    .to_string();
                assert!(error.starts_with("cannot open the metadata store at"), "{error}");
                assert!(error.contains("no_such_database"), "{error}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_store_migrated_by_a_newer_build_is_refused() {
                let database = super::$database().await;
                let store = ServerStore::open(&database.url).await.unwrap();
                drop(store);
                let newer = weft_store::conformance::TestDatabase::execute(
                    &database.url,
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                     SELECT 99, 'from the future', success, checksum, execution_time \
                     FROM _sqlx_migrations WHERE version = 1",
                )
                .await;
                newer.unwrap();
                let error = ServerStore::open(&database.url).await.unwrap_err().to_string();
                assert!(error.contains("schema version 99"), "{error}");
                assert!(error.contains("upgrade weft"), "{error}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_store_from_before_shared_settings_keeps_them_when_migrated() {
                let database = super::$database().await;
                let store = ServerStore::open(&database.url).await.unwrap();
                let run = new_run(&store).await;
                let mut new = running(run, "a");
                new.config = (&serde_json::json!({"retries": 3})).into();
                new.cache_key = Some("k".into());
                new.cache_parts = Some((&serde_json::json!({"code": "x"})).into());
                let step_run = store.create_step_runs(vec![new]).await.unwrap().remove(0);
                drop(store);
                // Back to schema 4: settings on every row.
                for statement in [
                    "UPDATE step_runs SET \
                     config = (SELECT c.config FROM step_configs c WHERE c.config_key = step_runs.config)",
                    "DROP TABLE step_configs",
                    "DELETE FROM _sqlx_migrations WHERE version = 5",
                ] {
                    weft_store::conformance::TestDatabase::execute(&database.url, statement)
                        .await
                        .unwrap();
                }
                let store = ServerStore::open(&database.url).await.unwrap();
                let read = store.step_run(step_run.id).await.unwrap();
                assert_eq!(read.config.value(), serde_json::json!({"retries": 3}));
                assert_eq!(
                    read.cache_parts.map(|parts| parts.value()),
                    Some(serde_json::json!({"code": "x"}))
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_url_names_the_store_in_messages() {
                let database = super::$database().await;
                let store: Arc<dyn MetadataStore> =
                    weft_store::open(&database.url, std::path::Path::new(".")).await.unwrap();
                // The MariaDB test user has a password: messages show `***` instead.
                assert_eq!(store.location(), database.url.replace(":weft@", ":***@"));
            }
        }
    };
}
pub(crate) use server_tests;
