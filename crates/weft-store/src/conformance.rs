//! The conformance suite every metadata store backend must pass, unchanged.
//!
//! Each case is a public async function taking a fresh, empty store. Generate one test per
//! case for a backend with [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! async fn fresh() -> (Arc<dyn MetadataStore>, Box<dyn Any + Send>) { ... }
//! weft_store::conformance_tests!(fresh);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use weft_core::artifact::{ArtifactType, FileRecord};
use weft_core::snapshot::{InputSpec, Invocation, OutputRef, OutputSpec, StepConfig};
use weft_core::{ExecutionMode, RunId, Snapshot, Status, StepRunId};

use crate::model::{
    Changes, Completion, Direction, InputKind, MetadataSource, NewArtifactVersion, NewInput,
    NewRun, NewStepRun, Resource, RunFilter, SaveType, StepError, StepErrorKind, StepRunPage,
};
use crate::{Error, MetadataStore};

/// Generates one `#[tokio::test]` per conformance case, each on a fresh store from `$fresh`,
/// an async function returning `(Arc<dyn MetadataStore>, guard)`; the guard is dropped after
/// the case (use it to remove temporary files).
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@cases $fresh;
            runs_start_initializing_and_snapshots_are_stored_once,
            runs_are_found_by_id_prefix_name_and_latest,
            runs_are_paged_by_cursor_and_filtered_by_time,
            runs_are_tagged_at_creation_and_later_and_filtered_by_tag,
            api_keys_are_created_found_revoked_and_touched,
            a_step_run_moves_its_run_to_running_and_completion_registers_outputs,
            finished_statuses_never_change,
            failed_step_runs_keep_their_error_and_fail_the_run,
            skipped_and_cached_step_runs_finish_a_run,
            retries_get_new_attempt_numbers,
            concurrent_completions_never_share_a_version,
            explicit_versions_must_be_unique,
            artifact_versions_are_found_by_name_and_version,
            names_are_exact_and_any_text,
            overlong_names_are_refused_alike,
            lineage_follows_reads_and_writes_across_runs,
            lineage_stops_at_its_limit,
            run_graph_has_parents_inputs_and_outputs,
            a_runs_step_runs_are_read_a_page_at_a_time,
            step_run_summaries_since_a_time_are_what_changed,
            a_runs_step_runs_list_in_id_order,
            metadata_is_stored_per_resource_and_replaced_per_key,
            tags_and_logs_are_recorded,
            batches_apply_completions_before_creations_and_all_or_nothing,
            batches_in_order_share_one_transaction,
            large_batches_are_recorded_whole,
            cache_candidates_are_the_newest_unexpired_completions,
            settings_and_cache_parts_read_back_per_step_run,
            expiring_a_step_by_name_matches_the_name_exactly,
            heartbeats_and_stop_requests,
            dynamic_runs_end_as_their_runtime_says,
            runs_are_resumed_once_they_ended_unfinished_and_one_at_a_time,
            unknown_references_are_clear_errors
        );
    };
    (@cases $fresh:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, guard) = $fresh().await;
                $crate::conformance::$case(store).await;
                drop(guard);
            }
        )*
    };
}

type Store = Arc<dyn MetadataStore>;

fn output(name: &str) -> OutputSpec {
    OutputSpec {
        name: name.into(),
        artifact_name: None,
        data_type: "u64".into(),
        materializer: "weft.json".into(),
        materializer_version: 1,
        artifact_type: ArtifactType::Data,
    }
}

/// A snapshot of a chain `a -> b -> c` (each reading the previous one's `output`).
pub fn chain_snapshot(pipeline: &str, mode: ExecutionMode) -> Snapshot {
    let invocation = |id: &str, upstream: Option<&str>| Invocation {
        id: id.into(),
        step: id.into(),
        code_hash: format!("code-{id}").into(),
        parameters: BTreeMap::from([("x".to_string(), json!(1))]).into(),
        inputs: upstream
            .map(|up| {
                BTreeMap::from([(
                    "input".to_string(),
                    InputSpec::Artifact(OutputRef {
                        invocation: up.into(),
                        output: "output".into(),
                    }),
                )])
                .into()
            })
            .unwrap_or_default(),
        after: Vec::new(),
        upstream: upstream.map(|u| vec![u.into()]).unwrap_or_default().into(),
        outputs: vec![output("output")].into(),
        config: StepConfig::default().into(),
    };
    Snapshot {
        format_version: weft_core::snapshot::FORMAT_VERSION,
        pipeline: pipeline.into(),
        parameters: BTreeMap::from([("n".to_string(), json!(3))]),
        execution_mode: mode,
        invocations: vec![
            invocation("a", None),
            invocation("b", Some("a")),
            invocation("c", Some("b")),
        ],
        dynamic: false,
    }
}

/// A new `running` step run of `invocation`, with no inputs.
pub fn running(run: RunId, invocation: &str) -> NewStepRun {
    NewStepRun {
        id: StepRunId::new(),
        run_id: run,
        invocation: invocation.into(),
        step: invocation.into(),
        code_hash: format!("code-{invocation}"),
        parameters: (&json!({"x": 1})).into(),
        config: (&json!({})).into(),
        status: Status::Running,
        status_reason: None,
        error: None,
        inputs: Vec::new(),
        parents: Vec::new(),
        cache_key: None,
        cache_parts: None,
        cache_expires_at: None,
        original_step_run: None,
    }
}

/// A new automatically numbered version of artifact `name` holding `content`.
pub fn version(name: &str, content: &str) -> NewArtifactVersion {
    NewArtifactVersion {
        id: weft_core::ArtifactVersionId::new(),
        name: name.into(),
        has_custom_name: false,
        version: None,
        artifact_type: ArtifactType::Data,
        uri: format!("file:///store/{name}/{content}/"),
        materializer: "weft.json".into(),
        materializer_version: 1,
        data_type: "u64".into(),
        content_hash: format!("hash-{content}"),
        size: 3,
        files: vec![FileRecord {
            name: "data.json".into(),
            size: 3,
            blake3: weft_core::Digest::of(content.as_bytes()),
            etag: Some(format!("tag-{content}")),
            visualization: None,
            inline: None,
        }],
        save_type: SaveType::StepOutput,
        metadata: BTreeMap::from([("storage_size".to_string(), json!(3))]),
        tags: Vec::new(),
    }
}

/// A new run of a chain pipeline named `pipeline`.
pub async fn new_run<S: crate::RunStore + ?Sized>(store: &S, pipeline: &str) -> RunId {
    let run = store
        .create_run(NewRun {
            snapshot: chain_snapshot(pipeline, ExecutionMode::ContinueOnFailure),
            config: json!({"max_parallelism": 2}),
            owner: None,
            resumed_from: None,
            tags: vec![],
        })
        .await
        .unwrap();
    run.id
}

/// Runs one step run of `invocation` to completion with one output; returns its id and the
/// output's version id.
async fn complete(
    store: &Store,
    run: RunId,
    invocation: &str,
    inputs: Vec<NewInput>,
    parents: Vec<StepRunId>,
    artifact: &str,
) -> (StepRunId, weft_core::ArtifactVersionId) {
    let mut new = running(run, invocation);
    new.inputs = inputs;
    new.parents = parents;
    let step_run = store.create_step_runs(vec![new]).await.unwrap().remove(0);
    let outputs = store
        .complete_step_run(
            step_run.id,
            Completion {
                outputs: vec![("output".into(), version(artifact, &step_run.id.to_string()))],
                log_uri: None,
                metadata: Vec::new(),
            },
        )
        .await
        .unwrap();
    (step_run.id, outputs[0].artifact_version.id)
}

async fn new_dynamic_run(store: &Store, pipeline: &str) -> RunId {
    let mut snapshot = chain_snapshot(pipeline, ExecutionMode::StopOnFailure);
    snapshot.invocations.clear();
    snapshot.dynamic = true;
    let run = store
        .create_run(NewRun {
            snapshot,
            config: json!({}),
            owner: None,
            resumed_from: None,
            tags: vec![],
        })
        .await
        .unwrap();
    run.id
}

/// A new run is `initializing`; the same snapshot content is stored once and reads back equal.
pub async fn runs_start_initializing_and_snapshots_are_stored_once(store: Store) {
    let first = store.run(new_run(&*store, "training").await).await.unwrap();
    let second = store.run(new_run(&*store, "training").await).await.unwrap();
    assert_eq!(first.status, Status::Initializing);
    assert_eq!(first.pipeline, "training");
    assert_eq!(first.invocations, 3);
    assert_eq!(first.config, json!({"max_parallelism": 2}));
    assert!(first.name.starts_with("training-"));
    assert_eq!(first.snapshot_id, second.snapshot_id);
    let snapshot = store
        .snapshot(first.snapshot_id.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        snapshot,
        chain_snapshot("training", ExecutionMode::ContinueOnFailure)
    );
    let outline = store
        .snapshot_outline(first.snapshot_id.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(outline.pipeline, snapshot.pipeline);
    assert_eq!(outline.execution_mode, snapshot.execution_mode);
    assert_eq!(outline.topological_order(), snapshot.topological_order());
    let outlined: Vec<_> = outline
        .invocations
        .iter()
        .map(|i| {
            let upstream: Vec<&str> = i.upstream.iter().map(String::as_str).collect();
            (i.id.as_str(), i.step.as_str(), &i.parameters, upstream)
        })
        .collect();
    let whole: Vec<_> = snapshot
        .invocations
        .iter()
        .map(|i| {
            let upstream: Vec<&str> = i.upstream.iter().map(|id| &**id).collect();
            (&*i.id, &*i.step, &i.parameters, upstream)
        })
        .collect();
    assert_eq!(outlined, whole);
    assert!(first.started_at.is_none() && first.ended_at.is_none());
}

/// Runs are found by full id, unique prefix, name and `latest`; filters apply.
pub async fn runs_are_found_by_id_prefix_name_and_latest(store: Store) {
    let first = new_run(&*store, "alpha").await;
    let second = new_run(&*store, "beta").await;
    assert_eq!(store.find_run("latest").await.unwrap().id, second);
    assert_eq!(store.find_run(&first.to_string()).await.unwrap().id, first);
    let name = store.run(first).await.unwrap().name;
    assert_eq!(store.find_run(&name).await.unwrap().id, first);
    let unique_tail = &second.to_string()[..36];
    assert_eq!(store.find_run(unique_tail).await.unwrap().id, second);
    let all = store.runs(&RunFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        [second, first],
        "newest first"
    );
    let alpha = store
        .runs(&RunFilter {
            pipeline: Some("alpha".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(alpha.len(), 1);
    let limited = store
        .runs(&RunFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
}

/// A run carries the tags it was created with and those attached later, in name order; a tag
/// filters the runs list (with the other filters and pages); a malformed tag is refused and
/// an unknown run is not found.
pub async fn runs_are_tagged_at_creation_and_later_and_filtered_by_tag(store: Store) {
    let tagged = store
        .create_run(NewRun {
            snapshot: chain_snapshot("p", ExecutionMode::ContinueOnFailure),
            config: json!({}),
            owner: None,
            resumed_from: None,
            tags: vec!["nightly".into(), "baseline".into(), "nightly".into()],
        })
        .await
        .unwrap();
    assert_eq!(tagged.tags, ["baseline", "nightly"]);
    assert_eq!(
        store.run(tagged.id).await.unwrap().tags,
        ["baseline", "nightly"]
    );
    let other = new_run(&*store, "p").await;
    let third = new_run(&*store, "q").await;
    assert!(store.run(other).await.unwrap().tags.is_empty());

    let run = store
        .tag_run(other, &["nightly".into(), "<b>x</b> ünï".into()])
        .await
        .unwrap();
    assert_eq!(run.tags, ["<b>x</b> ünï", "nightly"]);
    store.tag_run(third, &["nightly".into()]).await.unwrap();
    let with = |tag: &str, pipeline: Option<&str>, limit: Option<u32>, after: Option<RunId>| {
        let store = store.clone();
        let filter = RunFilter {
            tag: Some(tag.to_owned()),
            pipeline: pipeline.map(str::to_owned),
            limit,
            after,
            ..Default::default()
        };
        async move {
            store
                .runs(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        with("nightly", None, None, None).await,
        [third, other, tagged.id]
    );
    assert_eq!(
        with("nightly", Some("p"), None, None).await,
        [other, tagged.id]
    );
    assert_eq!(with("nightly", None, Some(1), Some(third)).await, [other]);
    assert_eq!(with("baseline", None, None, None).await, [tagged.id]);
    assert!(
        with("night", None, None, None).await.is_empty(),
        "tags match whole"
    );
    let listed = store.runs(&RunFilter::default()).await.unwrap();
    assert_eq!(
        listed[1].tags,
        ["<b>x</b> ünï", "nightly"],
        "lists carry tags"
    );

    let run = store
        .untag_run(other, &["nightly".into(), "absent".into()])
        .await
        .unwrap();
    assert_eq!(run.tags, ["<b>x</b> ünï"]);
    assert_eq!(with("nightly", None, None, None).await, [third, tagged.id]);
    store.tag_run(other, &["nightly".into()]).await.unwrap();
    store.tag_run(other, &["nightly".into()]).await.unwrap();
    assert_eq!(
        store.run(other).await.unwrap().tags,
        ["<b>x</b> ünï", "nightly"]
    );

    for bad in ["", "  ", "a\u{1f}b", "line\nbreak"] {
        assert!(
            matches!(
                store.tag_run(other, &[bad.into()]).await,
                Err(Error::Conflict(_))
            ),
            "{bad:?} is refused"
        );
    }
    let long = "t".repeat(weft_core::limits::NAME + 1);
    assert!(matches!(
        store.tag_run(other, &[long]).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.run(other).await.unwrap().tags,
        ["<b>x</b> ünï", "nightly"]
    );
    let unknown = RunId::new();
    assert!(matches!(
        store.tag_run(unknown, &["x".into()]).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.untag_run(unknown, &["x".into()]).await,
        Err(Error::NotFound { .. })
    ));
}

/// Summaries since a time leave out step runs that were created, started and ended before
/// it, and bring back one that ended after it.
pub async fn step_run_summaries_since_a_time_are_what_changed(store: Store) {
    let run = new_run(&*store, "p").await;
    let (a, _) = complete(&store, run, "a", vec![], vec![], "p::a::output").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let since = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let b = store
        .create_step_runs(vec![running(run, "b")])
        .await
        .unwrap()
        .remove(0);
    let ids = |summaries: Vec<crate::model::StepRunSummary>| {
        summaries
            .into_iter()
            .map(|s| (s.id, s.status))
            .collect::<Vec<_>>()
    };
    let all = store.step_run_summaries(run, None).await.unwrap();
    assert_eq!(ids(all), [(a, Status::Completed), (b.id, Status::Running)]);
    let changed = store.step_run_summaries(run, Some(since)).await.unwrap();
    assert_eq!(ids(changed), [(b.id, Status::Running)]);
    store
        .fail_step_run(
            b.id,
            StepError {
                kind: StepErrorKind::Error,
                message: "no".into(),
                chain: vec![],
                backtrace: None,
                retryable: false,
            },
            None,
        )
        .await
        .unwrap();
    let changed = store.step_run_summaries(run, Some(since)).await.unwrap();
    assert_eq!(ids(changed), [(b.id, Status::Failed)]);
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    assert!(
        store
            .step_run_summaries(run, Some(later))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Pages follow each other without overlap or gap, newest or oldest first, whatever the
/// filters; a time range keeps the runs created inside it.
pub async fn runs_are_paged_by_cursor_and_filtered_by_time(store: Store) {
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(new_run(&*store, if i % 2 == 0 { "even" } else { "odd" }).await);
    }
    let page = |after, oldest_first, pipeline: Option<&str>| {
        let store = store.clone();
        let pipeline = pipeline.map(str::to_owned);
        async move {
            store
                .runs(&RunFilter {
                    limit: Some(3),
                    after,
                    oldest_first,
                    pipeline,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|run| run.id)
                .collect::<Vec<_>>()
        }
    };
    for oldest_first in [false, true] {
        let mut expected = created.clone();
        if !oldest_first {
            expected.reverse();
        }
        let mut seen: Vec<RunId> = Vec::new();
        let mut after = None;
        loop {
            let ids = page(after, oldest_first, None).await;
            assert!(ids.len() <= 3);
            seen.extend(&ids);
            match ids.last() {
                Some(last) if ids.len() == 3 => after = Some(*last),
                _ => break,
            }
        }
        assert_eq!(
            seen, expected,
            "pages in order, oldest_first = {oldest_first}"
        );
    }
    let odd_after_first = page(Some(created[6]), false, Some("odd")).await;
    assert_eq!(odd_after_first, [created[5], created[3], created[1]]);
    assert!(page(Some(created[0]), false, None).await.is_empty());

    let times: Vec<_> = {
        let mut times = Vec::new();
        for id in &created {
            times.push(store.run(*id).await.unwrap().created_at);
        }
        times
    };
    let window = store
        .runs(&RunFilter {
            created_from: Some(times[2]),
            created_before: Some(times[5]),
            oldest_first: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let expected: Vec<_> = (0..7)
        .filter(|&i| times[i] >= times[2] && times[i] < times[5])
        .map(|i| created[i])
        .collect();
    assert!(expected.contains(&created[2]) && !expected.contains(&created[5]));
    assert_eq!(window.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
}

/// A key is found by id with its role and hash; ids are unique; revoking keeps the first
/// revocation time and makes it unusable; an expired key is unusable; bad fields are refused.
pub async fn api_keys_are_created_found_revoked_and_touched(store: Store) {
    use crate::model::{NewApiKey, Role};
    let new = |id: &str, role, expires_at| NewApiKey {
        id: id.into(),
        name: Some(format!("key {id}")),
        role,
        secret_hash: format!("{:0>64}", id.len()),
        expires_at,
    };
    let viewer = store
        .create_api_key(new("k1", Role::Viewer, None))
        .await
        .unwrap();
    assert_eq!(
        (viewer.role, viewer.name.as_deref()),
        (Role::Viewer, Some("key k1"))
    );
    assert!(viewer.usable(chrono::Utc::now()));
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let expired = store
        .create_api_key(new("k2", Role::Editor, Some(past)))
        .await
        .unwrap();
    assert!(!expired.usable(chrono::Utc::now()));
    assert!(matches!(
        store.create_api_key(new("k1", Role::Editor, None)).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store
            .create_api_key(new("bad id!", Role::Editor, None))
            .await,
        Err(Error::Conflict(_))
    ));
    let found = store.api_key("k1").await.unwrap();
    assert_eq!(found, viewer);
    assert_eq!(
        store
            .api_keys()
            .await
            .unwrap()
            .iter()
            .map(|key| key.id.as_str())
            .collect::<Vec<_>>(),
        ["k1", "k2"]
    );
    let revoked = store.revoke_api_key("k1").await.unwrap();
    let when = revoked.revoked_at.expect("revoked");
    assert!(!revoked.usable(chrono::Utc::now()));
    let again = store.revoke_api_key("k1").await.unwrap();
    assert_eq!(
        again.revoked_at,
        Some(when),
        "the first revocation time stays"
    );
    let used = chrono::Utc::now();
    store.touch_api_key("k2", used).await.unwrap();
    let touched = store.api_key("k2").await.unwrap().last_used_at.unwrap();
    assert!((touched - used).num_milliseconds().abs() < 1);
    assert!(matches!(
        store.api_key("nope").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.revoke_api_key("nope").await,
        Err(Error::NotFound { .. })
    ));
}

/// The first step run moves the run to `running`; completion registers version 1 with its
/// metadata, then version 2 in the next run; the run completes once every invocation did.
pub async fn a_step_run_moves_its_run_to_running_and_completion_registers_outputs(store: Store) {
    let run = new_run(&*store, "p").await;
    let (a, a_out) = complete(&store, run, "a", vec![], vec![], "p::a::output").await;
    let after_first = store.run(run).await.unwrap();
    assert_eq!(after_first.status, Status::Running);
    assert!(after_first.started_at.is_some());
    let a_run = store.step_run(a).await.unwrap();
    assert_eq!(a_run.status, Status::Completed);
    assert_eq!(a_run.attempt, 1);
    assert!(a_run.ended_at.is_some());
    let version = store.artifact_version(a_out).await.unwrap();
    assert_eq!((version.version.as_str(), version.producer), ("1", Some(a)));
    assert_eq!(version.files[0].name, "data.json");
    let input = |v| {
        vec![NewInput {
            name: "input".into(),
            position: 0,
            artifact_version: v,
            kind: InputKind::StepOutput,
        }]
    };
    let (_, b_out) = complete(&store, run, "b", input(a_out), vec![a], "p::b::output").await;
    assert_eq!(
        store.refresh_static_run(run).await.unwrap().status,
        Status::Running
    );
    let (_, _) = complete(&store, run, "c", input(b_out), vec![], "p::c::output").await;
    let finished = store.refresh_static_run(run).await.unwrap();
    assert_eq!(finished.status, Status::Completed);
    assert!(finished.ended_at.is_some());

    let next = new_run(&*store, "p").await;
    let (_, again) = complete(&store, next, "a", vec![], vec![], "p::a::output").await;
    assert_eq!(store.artifact_version(again).await.unwrap().version, "2");
    let versions = store.artifact_versions("p::a::output").await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        ["2", "1"]
    );
}

/// Completing, failing or stopping a finished step run is refused, and so is a step run in a
/// finished run.
pub async fn finished_statuses_never_change(store: Store) {
    let run = new_run(&*store, "p").await;
    let (a, _) = complete(&store, run, "a", vec![], vec![], "x").await;
    let again = store
        .complete_step_run(a, Completion::default())
        .await
        .unwrap_err();
    assert!(matches!(again, Error::Transition { .. }), "{again}");
    assert!(
        again.to_string().contains("completed is finished"),
        "{again}"
    );
    let failed = store
        .fail_step_run(a, error("late"), None)
        .await
        .unwrap_err();
    assert!(matches!(failed, Error::Transition { .. }), "{failed}");
    assert!(store.stop_step_run(a, "late").await.is_err());
    assert_eq!(store.step_run(a).await.unwrap().status, Status::Completed);

    let run = store
        .fail_run(run, "the orchestrator gave up")
        .await
        .unwrap();
    assert_eq!(run.status, Status::Failed);
    assert_eq!(
        run.status_reason.as_deref(),
        Some("the orchestrator gave up")
    );
    let late = store
        .create_step_runs(vec![running(run.id, "b")])
        .await
        .unwrap_err();
    assert!(matches!(late, Error::Conflict(_)), "{late}");
    assert!(store.fail_run(run.id, "again").await.is_err());
}

fn error(message: &str) -> StepError {
    StepError {
        kind: StepErrorKind::Error,
        message: message.into(),
        chain: vec![message.into(), "caused by this".into()],
        backtrace: None,
        retryable: true,
    }
}

/// A failed step run keeps its error; the run ends `failed` once nothing is left.
pub async fn failed_step_runs_keep_their_error_and_fail_the_run(store: Store) {
    let run = new_run(&*store, "p").await;
    let a = store
        .create_step_runs(vec![running(run, "a")])
        .await
        .unwrap()
        .remove(0);
    let failed = store
        .fail_step_run(a.id, error("boom"), Some("logs/x/".into()))
        .await
        .unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(
        failed.error.as_ref().unwrap().chain,
        ["boom", "caused by this"]
    );
    assert_eq!(store.log(a.id).await.unwrap().unwrap().uri, "logs/x/");
    let mut skipped = Vec::new();
    for invocation in ["b", "c"] {
        let mut new = running(run, invocation);
        new.status = Status::Skipped;
        new.status_reason = Some("upstream `a` failed".into());
        skipped.push(new);
    }
    let skipped = store.create_step_runs(skipped).await.unwrap();
    assert!(
        skipped
            .iter()
            .all(|s| s.status == Status::Skipped && s.ended_at.is_some())
    );
    let run = store.refresh_static_run(run).await.unwrap();
    assert_eq!(run.status, Status::Failed);
}

/// Skipped and cached step runs count as finished; a cached one reuses the original's outputs.
pub async fn skipped_and_cached_step_runs_finish_a_run(store: Store) {
    let first = new_run(&*store, "p").await;
    let (original, output) = complete(&store, first, "a", vec![], vec![], "p::a::output").await;
    let run = new_run(&*store, "p").await;
    let mut cached = running(run, "a");
    cached.status = Status::Cached;
    cached.original_step_run = Some(original);
    cached.cache_key = Some("key".into());
    let cached = store
        .create_step_runs(vec![cached])
        .await
        .unwrap()
        .remove(0);
    let outputs = store.step_run_outputs(cached.id).await.unwrap();
    assert_eq!(
        outputs[0].artifact_version.id, output,
        "no copy: the same version"
    );
    assert_eq!(
        store.step_run(cached.id).await.unwrap().original_step_run,
        Some(original)
    );
    assert_eq!(
        store.original_runs(run).await.unwrap(),
        [(cached.id, first)],
        "a run's reused step runs name the runs of their originals"
    );
    assert!(store.original_runs(first).await.unwrap().is_empty());
    let mut rest = Vec::new();
    for invocation in ["b", "c"] {
        let mut new = running(run, invocation);
        new.status = Status::Skipped;
        rest.push(new);
    }
    store.create_step_runs(rest).await.unwrap();
    assert_eq!(
        store.refresh_static_run(run).await.unwrap().status,
        Status::Completed
    );
}

/// A new attempt after a failure gets the next attempt number; an attempt after success is
/// refused.
pub async fn retries_get_new_attempt_numbers(store: Store) {
    let run = new_run(&*store, "p").await;
    let first = store
        .create_step_runs(vec![running(run, "a")])
        .await
        .unwrap()
        .remove(0);
    store
        .fail_step_run(first.id, error("flaky"), None)
        .await
        .unwrap();
    let second = store
        .create_step_runs(vec![running(run, "a")])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.attempt, 2);
    let still_running = store
        .create_step_runs(vec![running(run, "a")])
        .await
        .unwrap_err();
    assert!(
        matches!(still_running, Error::Conflict(_)),
        "{still_running}"
    );
    store
        .complete_step_run(second.id, Completion::default())
        .await
        .unwrap();
    let after_success = store
        .create_step_runs(vec![running(run, "a")])
        .await
        .unwrap_err();
    assert!(
        matches!(after_success, Error::Conflict(_)),
        "{after_success}"
    );
    let found = store.find_step_run(run, "a").await.unwrap();
    assert_eq!(found.id, second.id, "the latest attempt");
    let other = store
        .create_step_runs(vec![running(run, "a_2")])
        .await
        .unwrap()
        .remove(0);
    let attempts = store.attempts(run, "a").await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|s| (s.id, s.attempt))
            .collect::<Vec<_>>(),
        [(first.id, 1), (second.id, 2)],
        "oldest first, this invocation's only"
    );
    assert_eq!(store.attempts(run, "a_2").await.unwrap()[0].id, other.id);
    assert!(store.attempts(run, "nothing").await.unwrap().is_empty());
    assert!(store.attempts(RunId::new(), "a").await.unwrap().is_empty());
}

/// Many writers completing outputs of one artifact at once get distinct, consecutive versions.
pub async fn concurrent_completions_never_share_a_version(store: Store) {
    let run = new_run(&*store, "p").await;
    let mut tasks = Vec::new();
    for index in 0..24 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut new = running(run, &format!("step_{index}"));
            new.step = "step".into();
            let step_run = store.create_step_runs(vec![new]).await.unwrap().remove(0);
            store
                .complete_step_run(
                    step_run.id,
                    Completion {
                        outputs: vec![("output".into(), version("shared", &index.to_string()))],
                        log_uri: None,
                        metadata: Vec::new(),
                    },
                )
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut versions: Vec<u32> = store
        .artifact_versions("shared")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version.parse().unwrap())
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=24).collect::<Vec<_>>());
}

/// Names compare exactly (case and accents included), and any text round-trips: quotes,
/// unicode, SQL wildcards, the separator of tag lists in another field.
pub async fn names_are_exact_and_any_text(store: Store) {
    let upper = store
        .create_artifact_version(version("Model", "a"))
        .await
        .unwrap();
    let lower = store
        .create_artifact_version(version("model", "b"))
        .await
        .unwrap();
    let accented = store
        .create_artifact_version(version("modèl", "c"))
        .await
        .unwrap();
    assert_ne!(upper.artifact_id, lower.artifact_id);
    assert_ne!(lower.artifact_id, accented.artifact_id);
    assert_eq!((upper.version.as_str(), lower.version.as_str()), ("1", "1"));
    assert_eq!(store.artifact_versions("Model").await.unwrap().len(), 1);
    let hostile = "it's \"quoted\"; 100%_done ✓ --";
    let mut tagged = version(hostile, "d");
    tagged.tags = vec!["ünï côdé".into(), "a'b".into()];
    let stored = store.create_artifact_version(tagged).await.unwrap();
    let found = store
        .find_artifact_version(&format!("{hostile}:1"))
        .await
        .unwrap();
    assert_eq!((found.id, found.name.as_str()), (stored.id, hostile));
    assert_eq!(found.tags, ["a'b", "ünï côdé"]);
    assert!(matches!(
        store.artifact_versions("mod%").await,
        Err(Error::NotFound { .. })
    ));
    store
        .log_metadata(
            Resource::ArtifactVersion(stored.id),
            vec![("key 'with' \"quotes\"".into(), json!({"ü": "✓"}))],
            MetadataSource::User,
        )
        .await
        .unwrap();
    let entries = store
        .metadata(Resource::ArtifactVersion(stored.id))
        .await
        .unwrap();
    let entry = entries
        .iter()
        .find(|entry| entry.key == "key 'with' \"quotes\"")
        .unwrap();
    assert_eq!(entry.value, json!({"ü": "✓"}));
}

/// A name longer than every backend stores is refused before anything is written, with
/// what was too long, the same on every backend.
pub async fn overlong_names_are_refused_alike(store: Store) {
    let long = "x".repeat(513);
    let error = store
        .create_artifact_version(version(&long, "a"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Conflict(message) if message.starts_with("an artifact name is 513 characters long; at most 512")),
        "{error}"
    );
    assert!(store.artifacts(false).await.unwrap().is_empty());
    let fits = store
        .create_artifact_version(version(&"é".repeat(512), "b"))
        .await
        .unwrap();
    let error = store
        .tag_artifact_version(fits.id, &["t".repeat(600)])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("a tag is 600 characters long"),
        "{error}"
    );
    let run = new_run(&*store, "p").await;
    let mut step_run = running(run, &"i".repeat(600));
    step_run.step = "s".into();
    let error = store.create_step_runs(vec![step_run]).await.unwrap_err();
    assert!(
        error.to_string().contains("an invocation id is 600"),
        "{error}"
    );
    assert!(store.step_runs(run).await.unwrap().is_empty());
    let error = store
        .log_metadata(
            Resource::Run(run),
            vec![("k".repeat(513), json!(1))],
            MetadataSource::User,
        )
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("a metadata key is 513"),
        "{error}"
    );
}

/// An explicit version string is taken as is, and only once.
pub async fn explicit_versions_must_be_unique(store: Store) {
    let mut new = version("model", "x");
    new.version = Some("v1.0".into());
    new.save_type = SaveType::External;
    let created = store.create_artifact_version(new.clone()).await.unwrap();
    assert_eq!(created.version, "v1.0");
    assert_eq!(created.producer, None);
    let again = store.create_artifact_version(new).await.unwrap_err();
    assert!(matches!(again, Error::Conflict(_)), "{again}");
    let next = store
        .create_artifact_version(version("model", "y"))
        .await
        .unwrap();
    assert_eq!(next.version, "1");
}

/// Versions are found by id, id prefix, `name:version` and `name:latest`; artifacts list with
/// their counts.
pub async fn artifact_versions_are_found_by_name_and_version(store: Store) {
    let first = store
        .create_artifact_version(version("data", "1"))
        .await
        .unwrap();
    let second = store
        .create_artifact_version(version("data", "2"))
        .await
        .unwrap();
    assert_eq!(
        store.find_artifact_version("data:1").await.unwrap().id,
        first.id
    );
    assert_eq!(
        store.find_artifact_version("data:latest").await.unwrap().id,
        second.id
    );
    assert_eq!(
        store
            .find_artifact_version(&second.id.to_string())
            .await
            .unwrap()
            .id,
        second.id
    );
    let mut custom = version("named", "3");
    custom.has_custom_name = true;
    store.create_artifact_version(custom).await.unwrap();
    let all = store.artifacts(false).await.unwrap();
    let data = all.iter().find(|a| a.name == "data").unwrap();
    assert_eq!(
        (data.version_count, data.latest_version.as_deref()),
        (2, Some("2"))
    );
    let custom = store.artifacts(true).await.unwrap();
    assert_eq!(
        custom.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["named"]
    );
}

/// Producer, consumers and the lineage graph in both directions, across runs.
pub async fn lineage_follows_reads_and_writes_across_runs(store: Store) {
    let input = |v| {
        vec![NewInput {
            name: "input".into(),
            position: 0,
            artifact_version: v,
            kind: InputKind::StepOutput,
        }]
    };
    let run = new_run(&*store, "p").await;
    let (a, a_out) = complete(&store, run, "a", vec![], vec![], "p::a::output").await;
    let (b, b_out) = complete(&store, run, "b", input(a_out), vec![a], "p::b::output").await;
    let (c, c_out) = complete(&store, run, "c", input(b_out), vec![b], "p::c::output").await;
    // A second run reads `a`'s output as an external input.
    let other = new_run(&*store, "q").await;
    let mut external = input(a_out);
    external[0].kind = InputKind::External;
    let (d, d_out) = complete(&store, other, "a", external, vec![], "q::a::output").await;

    assert_eq!(store.producer(b_out).await.unwrap().unwrap().id, b);
    let consumers: Vec<StepRunId> = store
        .consumers(a_out)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(consumers, [b, d]);

    let up = store
        .lineage(c_out, Direction::Upstream, 10, None)
        .await
        .unwrap();
    assert!(!up.truncated);
    let mut up_versions: Vec<_> = up.artifact_versions.iter().map(|v| v.id).collect();
    up_versions.sort();
    assert_eq!(up_versions, [a_out, b_out]);
    let mut up_steps: Vec<_> = up.step_runs.iter().map(|s| s.id).collect();
    up_steps.sort();
    assert_eq!(up_steps, [a, b, c]);
    assert!(up.reads.contains(&(a_out, b, "input".into())));
    assert!(up.writes.contains(&(c, c_out, "output".into())));

    let down = store
        .lineage(a_out, Direction::Downstream, 10, None)
        .await
        .unwrap();
    let mut down_versions: Vec<_> = down.artifact_versions.iter().map(|v| v.id).collect();
    down_versions.sort();
    assert_eq!(down_versions, [b_out, c_out, d_out]);

    let shallow = store
        .lineage(a_out, Direction::Downstream, 1, None)
        .await
        .unwrap();
    assert_eq!(
        shallow.artifact_versions.len(),
        2,
        "one step deep: b's and d's outputs"
    );

    // A step met twice upstream: `p` wrote `pa` and `pb`; `r` reads `pb` and what `q` made
    // of `pa`. Both of `p`'s writes are in `r`'s lineage, met at different depths.
    let mut p = running(run, "p2");
    p.inputs = vec![];
    let p = store.create_step_runs(vec![p]).await.unwrap().remove(0);
    let written = store
        .complete_step_run(
            p.id,
            Completion {
                outputs: vec![
                    ("a".into(), version("p::p2::a", "pa")),
                    ("b".into(), version("p::p2::b", "pb")),
                ],
                log_uri: None,
                metadata: Vec::new(),
            },
        )
        .await
        .unwrap();
    let (pa, pb) = (
        written[0].artifact_version.id,
        written[1].artifact_version.id,
    );
    let (q, q_out) = complete(&store, run, "q2", input(pa), vec![p.id], "p::q2::output").await;
    let mut both = input(pb);
    both.extend(input(q_out));
    both[1].position = 1;
    let (r, r_out) = complete(&store, run, "r2", both, vec![p.id, q], "p::r2::output").await;
    let up = store
        .lineage(r_out, Direction::Upstream, 10, None)
        .await
        .unwrap();
    for write in [(p.id, pa), (p.id, pb), (q, q_out), (r, r_out)] {
        assert!(
            up.writes.iter().any(|(s, v, _)| (*s, *v) == write),
            "{write:?} missing from {:?}",
            up.writes
        );
    }
}

/// A limited lineage lists at most that many step runs and versions, says it stopped, and
/// lists only the reads and writes between what it lists; a limit it does not reach changes
/// nothing.
pub async fn lineage_stops_at_its_limit(store: Store) {
    let run = new_run(&*store, "p").await;
    let mut made = Vec::new();
    for i in 0..5 {
        let invocation = format!("a{i}");
        made.push(
            complete(
                &store,
                run,
                &invocation,
                vec![],
                vec![],
                &format!("p::{invocation}::output"),
            )
            .await,
        );
    }
    let inputs = made
        .iter()
        .enumerate()
        .map(|(position, &(_, version))| NewInput {
            name: "items".into(),
            position: position as u32,
            artifact_version: version,
            kind: InputKind::StepOutput,
        })
        .collect();
    let parents = made.iter().map(|&(step_run, _)| step_run).collect();
    let (fan_in, fan_in_out) =
        complete(&store, run, "fan_in", inputs, parents, "p::fan_in::output").await;

    let whole = store
        .lineage(fan_in_out, Direction::Upstream, 10, None)
        .await
        .unwrap();
    assert_eq!(
        (whole.step_runs.len(), whole.artifact_versions.len()),
        (6, 5)
    );
    assert!(!whole.truncated);
    let roomy = store
        .lineage(fan_in_out, Direction::Upstream, 10, Some(11))
        .await
        .unwrap();
    assert_eq!(roomy, whole, "a limit the lineage fits in");

    let cut = store
        .lineage(fan_in_out, Direction::Upstream, 10, Some(3))
        .await
        .unwrap();
    assert!(cut.truncated);
    assert_eq!(
        cut.step_runs.iter().map(|s| s.id).collect::<Vec<_>>(),
        [fan_in],
        "the fan-in, then two of its five inputs"
    );
    assert_eq!(cut.artifact_versions.len(), 2);
    let listed: Vec<_> = cut.artifact_versions.iter().map(|v| v.id).collect();
    assert!(
        cut.reads
            .iter()
            .all(|(version, step_run, _)| listed.contains(version) && *step_run == fan_in)
    );
    assert_eq!(cut.reads.len(), 2);
    assert!(
        cut.writes
            .iter()
            .all(|(step_run, version, _)| *step_run == fan_in && *version == fan_in_out)
    );

    let down = store
        .lineage(made[0].1, Direction::Downstream, 10, Some(1))
        .await
        .unwrap();
    assert!(down.truncated);
    assert_eq!(
        down.step_runs.iter().map(|s| s.id).collect::<Vec<_>>(),
        [fan_in]
    );
    assert!(
        down.artifact_versions.is_empty(),
        "no room for the fan-in's output"
    );
    assert!(down.writes.is_empty());
    let down_whole = store
        .lineage(made[0].1, Direction::Downstream, 10, Some(2))
        .await
        .unwrap();
    assert!(!down_whole.truncated);
    assert_eq!(down_whole.artifact_versions.len(), 1);
}

/// The run graph holds every step run with its parents, inputs and outputs.
pub async fn run_graph_has_parents_inputs_and_outputs(store: Store) {
    let input = |v| {
        vec![NewInput {
            name: "input".into(),
            position: 0,
            artifact_version: v,
            kind: InputKind::StepOutput,
        }]
    };
    let run = new_run(&*store, "p").await;
    let (a, a_out) = complete(&store, run, "a", vec![], vec![], "p::a::output").await;
    let (b, _) = complete(&store, run, "b", input(a_out), vec![a], "p::b::output").await;
    let graph = store.run_graph(run).await.unwrap();
    assert_eq!(
        graph
            .step_runs
            .iter()
            .map(|s| s.invocation.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(graph.parents, [(a, b)]);
    assert_eq!(graph.inputs.len(), 1);
    assert_eq!(
        (graph.inputs[0].0, graph.inputs[0].1.artifact_version.id),
        (b, a_out)
    );
    assert_eq!(graph.outputs.len(), 2);
    assert_eq!(store.step_run_parents(b).await.unwrap(), [a]);
    assert_eq!(
        store.step_run_inputs(b).await.unwrap()[0]
            .artifact_version
            .id,
        a_out
    );

    // The overview says the same, in brief.
    let overview = store.run_overview(run, true).await.unwrap();
    assert_eq!(overview.step_runs.len(), graph.step_runs.len());
    for (brief, full) in overview.step_runs.iter().zip(&graph.step_runs) {
        assert_eq!(
            (
                brief.id,
                &brief.invocation,
                &brief.step,
                brief.attempt,
                brief.status,
                &brief.parameters,
                &brief.cache_key,
                brief.original_step_run,
                brief.started_at,
                brief.ended_at
            ),
            (
                full.id,
                &full.invocation,
                &full.step,
                full.attempt,
                full.status,
                &full.parameters,
                &full.cache_key,
                full.original_step_run,
                full.started_at,
                full.ended_at
            )
        );
    }
    assert_eq!(overview.parents, graph.parents);
    let inputs: Vec<_> = overview
        .inputs
        .iter()
        .map(|link| {
            (
                link.step_run,
                link.name.as_str(),
                link.position,
                link.artifact_version,
            )
        })
        .collect();
    assert_eq!(inputs, [(b, "input", 0, a_out)]);
    let outputs: Vec<_> = overview
        .outputs
        .iter()
        .map(|link| {
            (
                link.step_run,
                link.name.clone(),
                link.artifact_version,
                link.artifact.clone(),
                link.version.clone(),
            )
        })
        .collect();
    let expected: Vec<_> = graph
        .outputs
        .iter()
        .map(|(step_run, output)| {
            (
                *step_run,
                output.name.clone(),
                output.artifact_version.id,
                output.artifact_version.name.clone(),
                output.artifact_version.version.clone(),
            )
        })
        .collect();
    assert_eq!(outputs, expected);
    // Without links: the same steps and parents, no inputs or outputs.
    let steps_only = store.run_overview(run, false).await.unwrap();
    assert_eq!(
        (&steps_only.step_runs, &steps_only.parents),
        (&overview.step_runs, &overview.parents)
    );
    assert!(steps_only.inputs.is_empty() && steps_only.outputs.is_empty());
}

/// A run's step runs list in id order (creation order), whatever order they were recorded
/// in, and ids order as their text does.
pub async fn a_runs_step_runs_list_in_id_order(store: Store) {
    let run = new_run(&*store, "p").await;
    let made: Vec<NewStepRun> = ["first", "second", "third", "fourth"]
        .into_iter()
        .map(|invocation| running(run, invocation))
        .collect();
    let mut ids: Vec<StepRunId> = made.iter().map(|step_run| step_run.id).collect();
    // Recorded out of order: the last made first, in two batches.
    let mut later = made;
    let earlier = later.split_off(2);
    store.create_step_runs(earlier).await.unwrap();
    store.create_step_runs(later).await.unwrap();
    let listed: Vec<StepRunId> = store
        .step_runs(run)
        .await
        .unwrap()
        .iter()
        .map(|step_run| step_run.id)
        .collect();
    ids.sort();
    assert_eq!(listed, ids);
    let mut texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
    texts.sort();
    assert_eq!(
        texts,
        ids.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
}

/// Pages of a run's step runs hold every step run once, in the same order as one page of them
/// all, with the links of their own step runs only; a status filter and a cursor from another
/// run are honoured.
pub async fn a_runs_step_runs_are_read_a_page_at_a_time(store: Store) {
    let run = new_run(&*store, "p").await;
    let (a, a_out) = complete(&store, run, "a", vec![], vec![], "p::a::output").await;
    let first_b = store
        .create_step_runs(vec![running(run, "b")])
        .await
        .unwrap()
        .remove(0)
        .id;
    store
        .fail_step_run(first_b, error("flaky"), None)
        .await
        .unwrap();
    let read_a = vec![NewInput {
        name: "input".into(),
        position: 0,
        artifact_version: a_out,
        kind: InputKind::StepOutput,
    }];
    let (second_b, _) = complete(&store, run, "b", read_a.clone(), vec![a], "p::b::output").await;
    // Created in the reverse of their names' order: pages follow creation.
    for item in (0..5).rev() {
        let invocation = format!("m:{item}");
        complete(
            &store,
            run,
            &invocation,
            read_a.clone(),
            vec![a],
            "p::m::output",
        )
        .await;
    }
    let c = store
        .create_step_runs(vec![running(run, "c")])
        .await
        .unwrap()
        .remove(0)
        .id;
    store.fail_step_run(c, error("broken"), None).await.unwrap();
    let other_run = new_run(&*store, "p").await;
    let (elsewhere, _) = complete(&store, other_run, "a", vec![], vec![], "p::a::output").await;

    let page = |after, limit, status, links| StepRunPage {
        after,
        limit,
        status,
        links,
    };
    let whole = store
        .step_run_page(run, &page(None, 100, None, true))
        .await
        .unwrap();
    assert_eq!(whole.step_runs.len(), 9);
    let listed: Vec<StepRunId> = whole.step_runs.iter().map(|s| s.id).collect();
    let all: Vec<StepRunId> = store
        .step_runs(run)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        listed, all,
        "every step run of the run, and only those, in creation order as the run is read"
    );
    let names: Vec<&str> = whole
        .step_runs
        .iter()
        .map(|s| s.invocation.as_str())
        .collect();
    assert_eq!(
        names,
        ["a", "b", "b", "m:4", "m:3", "m:2", "m:1", "m:0", "c"]
    );
    let position = |id| listed.iter().position(|&listed| listed == id).unwrap();
    assert_eq!(
        position(second_b),
        position(first_b) + 1,
        "attempts in order, together"
    );
    assert_eq!(whole.parents.len(), 6);
    assert_eq!(whole.inputs.len(), 6);
    assert_eq!(whole.outputs.len(), 7);

    // Two at a time: the same step runs in the same order, each page with its own links.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let part = store
            .step_run_page(run, &page(after, 2, None, true))
            .await
            .unwrap();
        assert!(part.step_runs.len() <= 2);
        let Some(last) = part.step_runs.last() else {
            break;
        };
        after = Some(last.id);
        let mine: Vec<StepRunId> = part.step_runs.iter().map(|s| s.id).collect();
        assert!(part.parents.iter().all(|(_, child)| mine.contains(child)));
        assert!(part.inputs.iter().all(|link| mine.contains(&link.step_run)));
        assert!(
            part.outputs
                .iter()
                .all(|link| mine.contains(&link.step_run))
        );
        let expected_parents = whole
            .parents
            .iter()
            .filter(|(_, child)| mine.contains(child))
            .count();
        assert_eq!(part.parents.len(), expected_parents);
        paged.extend(mine);
    }
    assert_eq!(paged, listed);

    // Without links, the parents still come (a picture needs them), inputs and outputs not.
    let brief = store
        .step_run_page(run, &page(None, 100, None, false))
        .await
        .unwrap();
    assert_eq!(brief.step_runs.len(), 9);
    assert_eq!(brief.parents, whole.parents);
    assert!(brief.inputs.is_empty() && brief.outputs.is_empty());

    // Only the failed ones, a page at a time.
    let failed = store
        .step_run_page(run, &page(None, 1, Some(Status::Failed), false))
        .await
        .unwrap();
    assert_eq!(failed.step_runs.len(), 1);
    let more = store
        .step_run_page(
            run,
            &page(
                Some(failed.step_runs[0].id),
                10,
                Some(Status::Failed),
                false,
            ),
        )
        .await
        .unwrap();
    let mut failed: Vec<StepRunId> = failed
        .step_runs
        .iter()
        .chain(&more.step_runs)
        .map(|s| s.id)
        .collect();
    failed.sort();
    let mut expected = vec![first_b, c];
    expected.sort();
    assert_eq!(failed, expected);

    // A cursor is a step run of this run.
    let wrong = store
        .step_run_page(run, &page(Some(elsewhere), 10, None, false))
        .await
        .unwrap_err();
    assert!(matches!(wrong, Error::NotFound { .. }), "{wrong}");
}

/// Metadata belongs to one resource; setting a key again replaces it.
pub async fn metadata_is_stored_per_resource_and_replaced_per_key(store: Store) {
    let run = new_run(&*store, "p").await;
    let (a, a_out) = complete(&store, run, "a", vec![], vec![], "x").await;
    let system = store
        .metadata(Resource::ArtifactVersion(a_out))
        .await
        .unwrap();
    assert_eq!(system[0].key, "storage_size");
    assert_eq!(system[0].source, MetadataSource::System);

    // A version with many facts (an array's statistics, a table's columns) keeps them all.
    let mut many = version("described", "1");
    many.metadata = (0..40)
        .map(|i| {
            (
                format!("fact_{i:02}"),
                json!({"index": i, "text": "ü \"quoted\""}),
            )
        })
        .collect();
    let described = store.create_artifact_version(many.clone()).await.unwrap();
    let facts = store
        .metadata(Resource::ArtifactVersion(described.id))
        .await
        .unwrap();
    assert_eq!(facts.len(), 40);
    for fact in &facts {
        assert_eq!(
            Some(&fact.value),
            many.metadata.get(&fact.key),
            "{}",
            fact.key
        );
        assert_eq!(fact.source, MetadataSource::System);
    }
    store
        .log_metadata(
            Resource::StepRun(a),
            vec![("accuracy".into(), json!(0.5))],
            MetadataSource::User,
        )
        .await
        .unwrap();
    store
        .log_metadata(
            Resource::StepRun(a),
            vec![("accuracy".into(), json!(0.9)), ("epochs".into(), json!(3))],
            MetadataSource::User,
        )
        .await
        .unwrap();
    let entries = store.metadata(Resource::StepRun(a)).await.unwrap();
    let entries: Vec<_> = entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.clone()))
        .collect();
    assert_eq!(entries, [("accuracy", json!(0.9)), ("epochs", json!(3))]);
    assert!(store.metadata(Resource::Run(run)).await.unwrap().is_empty());

    // A run's step runs' metadata at once: only theirs, by step run, in key order.
    let (b, _) = complete(&store, run, "b", vec![], vec![], "y").await;
    store
        .log_metadata(
            Resource::StepRun(b),
            vec![("loss".into(), json!(1))],
            MetadataSource::User,
        )
        .await
        .unwrap();
    let other = new_run(&*store, "p").await;
    let (c, _) = complete(&store, other, "c", vec![], vec![], "z").await;
    store
        .log_metadata(
            Resource::StepRun(c),
            vec![("loss".into(), json!(2))],
            MetadataSource::User,
        )
        .await
        .unwrap();
    let mut all: Vec<(StepRunId, String, serde_json::Value)> = store
        .step_runs_metadata(run)
        .await
        .unwrap()
        .into_iter()
        .map(|(step_run, entry)| (step_run, entry.key, entry.value))
        .collect();
    all.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    let mut expected = vec![
        (a, "accuracy".to_owned(), json!(0.9)),
        (a, "epochs".to_owned(), json!(3)),
        (b, "loss".to_owned(), json!(1)),
    ];
    expected.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    assert_eq!(all, expected);
}

/// Tags attach to versions (once each); logs are found by step run.
pub async fn tags_and_logs_are_recorded(store: Store) {
    let mut tagged = version("t", "1");
    tagged.tags = vec!["gold".into(), "iris".into()];
    let created = store.create_artifact_version(tagged).await.unwrap();
    assert_eq!(created.tags, ["gold", "iris"]);
    store
        .tag_artifact_version(created.id, &["gold".into(), "best".into()])
        .await
        .unwrap();
    assert_eq!(
        store.artifact_version(created.id).await.unwrap().tags,
        ["best", "gold", "iris"]
    );
    let other = store
        .create_artifact_version(version("t", "2"))
        .await
        .unwrap();
    store
        .tag_artifact_version(other.id, &["gold".into()])
        .await
        .unwrap();
    store
        .untag_artifact_version(created.id, &["gold".into(), "never-there".into()])
        .await
        .unwrap();
    assert_eq!(
        store.artifact_version(created.id).await.unwrap().tags,
        ["best", "iris"]
    );
    assert_eq!(
        store.artifact_version(other.id).await.unwrap().tags,
        ["gold"],
        "only the version named loses the tag"
    );
    assert!(matches!(
        store
            .untag_artifact_version(weft_core::ArtifactVersionId::new(), &["best".into()])
            .await,
        Err(Error::NotFound { .. })
    ));

    let run = new_run(&*store, "p").await;
    let a = store
        .create_step_runs(vec![running(run, "a")])
        .await
        .unwrap()
        .remove(0);
    assert!(store.log(a.id).await.unwrap().is_none());
    store
        .complete_step_run(
            a.id,
            Completion {
                outputs: vec![],
                log_uri: Some("logs/r/a/".into()),
                metadata: Vec::new(),
            },
        )
        .await
        .unwrap();
    let log = store.log(a.id).await.unwrap().unwrap();
    assert_eq!((log.run_id, log.uri.as_str()), (run, "logs/r/a/"));
}

/// Missing and ambiguous references are reported as such, never as database errors.
pub async fn unknown_references_are_clear_errors(store: Store) {
    assert!(matches!(
        store.find_run("latest").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.find_run("nope").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.run(RunId::new()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.step_run(StepRunId::new()).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .complete_step_run(StepRunId::new(), Completion::default())
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.artifact_versions("ghost").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.find_artifact_version("ghost:1").await,
        Err(Error::NotFound { .. })
    ));
    let run = new_run(&*store, "p").await;
    let mut bad = running(run, "a");
    bad.inputs = vec![NewInput {
        name: "input".into(),
        position: 0,
        artifact_version: weft_core::ArtifactVersionId::new(),
        kind: InputKind::External,
    }];
    let error = store.create_step_runs(vec![bad]).await.unwrap_err();
    assert!(matches!(error, Error::Conflict(_)), "{error}");
    // Nothing of the refused transaction remains.
    assert!(store.step_runs(run).await.unwrap().is_empty());
    assert_eq!(store.run(run).await.unwrap().status, Status::Initializing);
    let message = store
        .find_run("ffffffff-0000")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(message, "no run matches `ffffffff-0000`");
}

/// Batches applied in order, in one transaction: a later batch completes a step run an
/// earlier one creates, and starts one that reads its output; a refused change in the last
/// batch leaves nothing of any of them.
pub async fn batches_in_order_share_one_transaction(store: Store) {
    let run = new_run(&*store, "p").await;
    let a = running(run, "a");
    let a_id = a.id;
    let output = version("p::a::output", "a");
    let mut b = running(run, "b");
    b.inputs = vec![NewInput {
        name: "input".into(),
        position: 0,
        artifact_version: output.id,
        kind: InputKind::StepOutput,
    }];
    b.parents = vec![a_id];
    let completed = |id, output: Option<NewArtifactVersion>| Changes {
        completed: vec![(
            id,
            Completion {
                outputs: output.into_iter().map(|o| ("output".into(), o)).collect(),
                log_uri: None,
                metadata: Vec::new(),
            },
        )],
        ..Changes::default()
    };
    let applied = store
        .apply_in_order(vec![
            Changes {
                created: vec![a],
                ..Changes::default()
            },
            Changes {
                created: vec![b],
                ..completed(a_id, Some(output.clone()))
            },
        ])
        .await
        .unwrap();
    assert_eq!(applied.len(), 2);
    let b = applied[1].created[0].clone().expect("b is created");
    assert_eq!(applied[1].outputs[0][0].artifact_version.id, output.id);
    assert_eq!(
        store.step_run(a_id).await.unwrap().status,
        Status::Completed
    );
    assert_eq!(
        store.step_run_inputs(b.id).await.unwrap()[0]
            .artifact_version
            .id,
        output.id
    );

    // The first batch is valid alone, the second completes `a` again: neither is kept.
    let c = running(run, "c");
    let c_id = c.id;
    let refused = store
        .apply_in_order(vec![
            Changes {
                created: vec![c],
                ..completed(b.id, None)
            },
            completed(a_id, None),
        ])
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Transition { .. }), "{refused}");
    assert_eq!(store.step_run(b.id).await.unwrap().status, Status::Running);
    assert!(store.step_run(c_id).await.is_err(), "c was not created");
    assert_eq!(store.step_runs(run).await.unwrap().len(), 2);
    assert!(store.apply_in_order(Vec::new()).await.unwrap().is_empty());
    let applied = store
        .apply(Changes {
            created: vec![running(run, "d")],
            ..Changes::default()
        })
        .await
        .unwrap();
    assert!(!applied.stopping);

    // A stopping run turns away step runs that would start, but records those that already
    // run, and says it is stopping.
    store.request_stop(run).await.unwrap();
    let started = running(run, "e");
    let started_id = started.id;
    let applied = store
        .apply_in_order(vec![Changes {
            started: vec![started],
            created: vec![running(run, "f")],
            ..Changes::default()
        }])
        .await
        .unwrap();
    assert!(applied[0].stopping);
    assert!(applied[0].created[0].is_none(), "f is turned away");
    assert_eq!(
        store.step_run(started_id).await.unwrap().status,
        Status::Running
    );
    assert_eq!(store.step_runs(run).await.unwrap().len(), 4);
}

/// A batch registers a completion and creates the step run that reads its output, in one
/// transaction; a batch with a refused change leaves nothing behind.
pub async fn batches_apply_completions_before_creations_and_all_or_nothing(store: Store) {
    let run = new_run(&*store, "p").await;
    let a = store
        .create_step_runs(vec![running(run, "a")])
        .await
        .unwrap()
        .remove(0);
    let output = version("p::a::output", "a");
    let mut b = running(run, "b");
    b.inputs = vec![NewInput {
        name: "input".into(),
        position: 0,
        artifact_version: output.id,
        kind: InputKind::StepOutput,
    }];
    b.parents = vec![a.id];
    let applied = store
        .apply(Changes {
            completed: vec![(
                a.id,
                Completion {
                    outputs: vec![("output".into(), output.clone())],
                    log_uri: None,
                    metadata: Vec::new(),
                },
            )],
            created: vec![b],
            ..Changes::default()
        })
        .await
        .unwrap();
    assert_eq!(applied.outputs[0][0].artifact_version.id, output.id);
    let b = applied.created[0].clone().unwrap();
    assert_eq!(
        store.step_run_inputs(b.id).await.unwrap()[0]
            .artifact_version
            .id,
        output.id
    );
    assert_eq!(
        store.step_run(a.id).await.unwrap().status,
        Status::Completed
    );

    // `b` completes, but `a` cannot complete twice: nothing of the batch is kept.
    let refused = store
        .apply(Changes {
            completed: vec![(b.id, Completion::default()), (a.id, Completion::default())],
            created: vec![running(run, "c")],
            ..Changes::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Transition { .. }), "{refused}");
    assert_eq!(store.step_run(b.id).await.unwrap().status, Status::Running);
    assert_eq!(store.step_runs(run).await.unwrap().len(), 2);

    // A failure with weft's facts about where it ran: recorded together, as system metadata
    // beside the step's own.
    store
        .apply(Changes {
            failed: vec![(b.id, error("late"), None)],
            system_metadata: vec![(
                b.id,
                vec![
                    ("weft.operator".into(), json!("slurm")),
                    ("weft.host".into(), json!("Slurm job 12")),
                ],
            )],
            ..Changes::default()
        })
        .await
        .unwrap();
    let facts = store.metadata(Resource::StepRun(b.id)).await.unwrap();
    let fact = |key: &str| facts.iter().find(|entry| entry.key == key).cloned();
    let host = fact("weft.host").expect("the host is recorded");
    assert_eq!(
        (host.value, host.source),
        (json!("Slurm job 12"), MetadataSource::System)
    );
    assert_eq!(fact("weft.operator").unwrap().value, json!("slurm"));
    let long_key = "k".repeat(weft_core::limits::NAME + 1);
    let refused = store
        .apply(Changes {
            system_metadata: vec![(b.id, vec![(long_key, json!(1))])],
            ..Changes::default()
        })
        .await;
    assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
    let c = store
        .create_step_runs(vec![running(run, "c")])
        .await
        .unwrap()
        .remove(0);
    store
        .apply(Changes {
            stopped: vec![(c.id, "fail fast".into())],
            ..Changes::default()
        })
        .await
        .unwrap();
    let c = store.step_run(c.id).await.unwrap();
    assert_eq!(
        (c.status, c.status_reason.as_deref()),
        (Status::Stopped, Some("fail fast"))
    );
}

/// Settings are kept once per distinct text and a cached copy's cache key parts are its
/// original's, yet every step run reads back its own: shared and distinct settings in one
/// batch and across batches, a cached copy's parts, none for a copy without a key (resumed).
/// A run's list of step runs has their keys but not their parts.
pub async fn settings_and_cache_parts_read_back_per_step_run(store: Store) {
    let run = new_run(&*store, "p").await;
    let with = |invocation: &str, config: serde_json::Value, key: Option<&str>| {
        let mut new = running(run, invocation);
        new.config = (&config).into();
        new.cache_key = key.map(str::to_owned);
        new.cache_parts = key.map(|key| (&json!({"key": key, "code": "x"})).into());
        new
    };
    let shared = json!({"retries": 2, "isolated": false});
    let first = store
        .create_step_runs(vec![
            with("a", shared.clone(), Some("k1")),
            with("b", shared.clone(), Some("k2")),
            with("c", json!({"retries": 0}), None),
        ])
        .await
        .unwrap();
    let second = store
        .create_step_runs(vec![
            with("d", shared.clone(), Some("k1")),
            with("e", json!({"retries": 0, "timeout": "1s"}), Some("k1")),
        ])
        .await
        .unwrap();
    let expected = [
        (&first[0], shared.clone(), Some("k1")),
        (&first[1], shared.clone(), Some("k2")),
        (&first[2], json!({"retries": 0}), None),
        (&second[0], shared.clone(), Some("k1")),
        (
            &second[1],
            json!({"retries": 0, "timeout": "1s"}),
            Some("k1"),
        ),
    ];
    let copy = |invocation: &str, key: Option<&str>| {
        let mut new = with(invocation, shared.clone(), key);
        new.status = Status::Cached;
        new.original_step_run = Some(first[0].id);
        new
    };
    let copies = store
        .create_step_runs(vec![copy("f", Some("k1")), copy("g", None)])
        .await
        .unwrap();
    let expected = expected.into_iter().chain([
        (&copies[0], shared.clone(), Some("k1")),
        (&copies[1], shared.clone(), None),
    ]);
    let listed = store.step_runs(run).await.unwrap();
    for (created, config, key) in expected {
        let parts = key.map(|key| json!({"key": key, "code": "x"}));
        assert_eq!(created.config.value(), config, "{}", created.invocation);
        let read = store.step_run(created.id).await.unwrap();
        assert_eq!(read.config.value(), config, "{}", read.invocation);
        assert_eq!(
            read.cache_parts.map(|p| p.value()),
            parts,
            "{}",
            read.invocation
        );
        let listed = listed.iter().find(|s| s.id == created.id).unwrap();
        assert_eq!(listed.config.value(), config);
        assert_eq!(listed.cache_key.as_deref(), key, "the list keeps the key");
        assert_eq!(listed.cache_parts, None, "the list leaves the parts out");
    }
}

/// The newest completed step run with a key is the candidate; expired, failed and cached step
/// runs never are.
pub async fn cache_candidates_are_the_newest_unexpired_completions(store: Store) {
    let now = chrono::Utc::now();
    let entry = |key: &'static str, at: chrono::DateTime<chrono::Utc>| {
        let store = store.clone();
        async move {
            store
                .cache_candidate(key, at)
                .await
                .unwrap()
                .map(|entry| entry.step_run)
        }
    };
    let keyed = |run: RunId, invocation: &str, key: &str| {
        let mut new = running(run, invocation);
        new.cache_key = Some(key.into());
        new.cache_parts = Some(crate::model::JsonText::new(&json!({"step": invocation})));
        new
    };
    assert_eq!(entry("k", now).await, None);
    let run = new_run(&*store, "p").await;
    let first = store
        .create_step_runs(vec![keyed(run, "a", "k")])
        .await
        .unwrap()
        .remove(0);
    let output = version("p::a::output", "1");
    store
        .complete_step_run(
            first.id,
            Completion {
                outputs: vec![("output".into(), output.clone())],
                ..Completion::default()
            },
        )
        .await
        .unwrap();
    let candidate = store.cache_candidate("k", now).await.unwrap().unwrap();
    assert_eq!(candidate.step_run, first.id);
    assert_eq!(candidate.run_id, run);
    assert_eq!(candidate.outputs[0].artifact_version.id, output.id);
    assert_eq!(
        store.step_run(first.id).await.unwrap().cache_parts,
        Some((&json!({"step": "a"})).into())
    );

    // A failed step run with the same key is no candidate; a newer completed one is.
    let failed = store
        .create_step_runs(vec![keyed(run, "b", "k")])
        .await
        .unwrap()
        .remove(0);
    store
        .fail_step_run(failed.id, error("no"), None)
        .await
        .unwrap();
    let second = store
        .create_step_runs(vec![keyed(run, "c", "k")])
        .await
        .unwrap()
        .remove(0);
    store
        .complete_step_run(second.id, Completion::default())
        .await
        .unwrap();
    assert_eq!(entry("k", now).await, Some(second.id));

    // A cached step run reusing it is never a candidate itself.
    let mut cached = keyed(run, "d", "k");
    cached.status = Status::Cached;
    cached.original_step_run = Some(second.id);
    store.create_step_runs(vec![cached]).await.unwrap();
    assert_eq!(entry("k", now).await, Some(second.id));

    // Expiry: by time, and on demand.
    let mut expiring = keyed(run, "e", "soon");
    expiring.cache_expires_at = Some(now + chrono::Duration::seconds(60));
    let expiring = store
        .create_step_runs(vec![expiring])
        .await
        .unwrap()
        .remove(0);
    store
        .complete_step_run(expiring.id, Completion::default())
        .await
        .unwrap();
    assert_eq!(entry("soon", now).await, Some(expiring.id));
    assert_eq!(
        entry("soon", now + chrono::Duration::seconds(61)).await,
        None
    );
    let expired = store
        .expire_cache(crate::model::CacheExpiry::StepRuns(vec![second.id]))
        .await
        .unwrap();
    assert_eq!(expired, 1);
    assert_eq!(entry("k", chrono::Utc::now()).await, Some(first.id));
    let expired = store
        .expire_cache(crate::model::CacheExpiry::Step("a".into()))
        .await
        .unwrap();
    assert_eq!(expired, 1, "by step name");
    assert_eq!(entry("k", chrono::Utc::now()).await, None);
    let expired = store
        .expire_cache(crate::model::CacheExpiry::All)
        .await
        .unwrap();
    assert_eq!(
        expired, 1,
        "only the time-limited entry: failed and cached step runs are no entries, and the \
         expired stay expired"
    );
}

/// A batch of hundreds of step runs (a wide fan-out, a map) is recorded whole, each with its
/// inputs and parents, and an invocation that appears twice gets two attempts.
pub async fn large_batches_are_recorded_whole(store: Store) {
    let run = new_run(&*store, "p").await;
    let origin = store
        .create_step_runs(vec![running(run, "origin")])
        .await
        .unwrap()
        .remove(0);
    let outputs = store
        .complete_step_run(
            origin.id,
            Completion {
                outputs: vec![("output".into(), version("origin_output", "1"))],
                ..Completion::default()
            },
        )
        .await
        .unwrap();
    let input = outputs[0].artifact_version.id;
    let mut batch: Vec<NewStepRun> = (0..700)
        .map(|index| {
            let mut new = running(run, &format!("item:{index}"));
            new.parents = vec![origin.id];
            new.inputs = vec![NewInput {
                name: "value".into(),
                position: 0,
                artifact_version: input,
                kind: InputKind::StepOutput,
            }];
            new
        })
        .collect();
    let mut failed = running(run, "twice");
    failed.status = Status::Failed;
    failed.error = Some(error("first"));
    batch.push(failed);
    batch.push(running(run, "twice"));
    let created = store.create_step_runs(batch).await.unwrap();
    assert_eq!(created.len(), 702);
    assert_eq!(
        (created[700].attempt, created[701].attempt),
        (1, 2),
        "one invocation twice in a batch"
    );
    let graph = store.run_graph(run).await.unwrap();
    assert_eq!(graph.step_runs.len(), 703);
    assert_eq!(graph.parents.len(), 700);
    assert_eq!(graph.inputs.len(), 700);
    assert_eq!(store.consumers(input).await.unwrap().len(), 700);
}

/// `expire_cache` by step name takes the name, or the last segment of a path, literally:
/// `_` and `%` (common in Rust names) are no wildcards.
pub async fn expiring_a_step_by_name_matches_the_name_exactly(store: Store) {
    let run = new_run(&*store, "p").await;
    let steps = [
        "train_model",
        "pkg::train_model",
        "pkg::trainXmodel",
        "pkg::x_train_model",
    ];
    for (index, step) in steps.iter().enumerate() {
        let mut new = running(run, &format!("i{index}"));
        new.step = (*step).into();
        new.cache_key = Some(format!("key{index}"));
        let created = store.create_step_runs(vec![new]).await.unwrap().remove(0);
        store
            .complete_step_run(created.id, Completion::default())
            .await
            .unwrap();
    }
    let expire = |step: &str| store.expire_cache(crate::model::CacheExpiry::Step(step.into()));
    assert_eq!(expire("%").await.unwrap(), 0);
    assert_eq!(expire("train%").await.unwrap(), 0);
    assert_eq!(
        expire("train_model").await.unwrap(),
        2,
        "not trainXmodel, nor x_train_model"
    );
    let now = chrono::Utc::now();
    assert!(store.cache_candidate("key2", now).await.unwrap().is_some());
    assert!(store.cache_candidate("key3", now).await.unwrap().is_some());
}

/// Heartbeats are recorded and report the run's status; a stop request makes the run
/// `stopping`, refuses new running step runs, and the run ends `stopped`.
pub async fn heartbeats_and_stop_requests(store: Store) {
    let run = new_run(&*store, "p").await;
    let before = store.run(run).await.unwrap().heartbeat_at.unwrap();
    assert_eq!(store.unfinished_runs().await.unwrap().len(), 1);
    let a = store
        .create_step_runs(vec![running(run, "a")])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(store.heartbeat(run).await.unwrap(), Status::Running);
    assert!(store.run(run).await.unwrap().heartbeat_at.unwrap() >= before);
    assert_eq!(store.run_status(run).await.unwrap(), Status::Running);

    let stopping = store.request_stop(run).await.unwrap();
    assert_eq!(stopping.status, Status::Stopping);
    assert_eq!(store.run_status(run).await.unwrap(), Status::Stopping);
    assert_eq!(store.heartbeat(run).await.unwrap(), Status::Stopping);
    assert!(matches!(
        store.run_status(RunId::new()).await,
        Err(Error::NotFound { .. })
    ));
    let refused = store
        .create_step_runs(vec![running(run, "b")])
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("stopping"), "{refused}");
    let mut skipped = running(run, "b");
    skipped.status = Status::Skipped;
    let applied = store
        .apply(Changes {
            completed: vec![(a.id, Completion::default())],
            created: vec![running(run, "c"), skipped],
            ..Changes::default()
        })
        .await
        .unwrap();
    assert!(applied.created[0].is_none(), "no new step starts");
    assert!(applied.created[1].is_some(), "skips are still recorded");
    let mut c = running(run, "c");
    c.status = Status::Skipped;
    store.create_step_runs(vec![c]).await.unwrap();
    let run = store.refresh_static_run(run).await.unwrap();
    assert_eq!(run.status, Status::Stopped);
    assert!(store.unfinished_runs().await.unwrap().is_empty());
    assert!(
        store.request_stop(run.id).await.is_err(),
        "a finished run cannot stop"
    );
}

/// A run can be resumed once it ended without completing (failed or stopped), and by one
/// run at a time; a completed or still running one cannot.
pub async fn runs_are_resumed_once_they_ended_unfinished_and_one_at_a_time(store: Store) {
    let resume = |original: RunId| {
        let store = store.clone();
        async move {
            store
                .create_run(NewRun {
                    snapshot: chain_snapshot("p", ExecutionMode::ContinueOnFailure),
                    config: json!({}),
                    owner: None,
                    resumed_from: Some(original),
                    tags: vec![],
                })
                .await
        }
    };
    let conflict = |result: crate::Result<crate::model::Run>| match result {
        Err(Error::Conflict(message)) => message,
        other => panic!("a conflict, not {other:?}"),
    };
    let original = new_run(&*store, "p").await;
    let running = conflict(resume(original).await);
    assert!(running.contains("is still initializing"), "{running}");

    store.fail_run(original, "a step failed").await.unwrap();
    let first = resume(original).await.unwrap();
    let second = conflict(resume(original).await);
    assert!(
        second.contains(&format!("already being resumed by run {}", first.id)),
        "{second}"
    );
    store.fail_run(first.id, "failed again").await.unwrap();
    let third = resume(original).await.unwrap();
    assert_eq!(third.resumed_from, Some(original));

    let completed = new_dynamic_run(&store, "sweep").await;
    store
        .finish_dynamic_run(completed, Status::Completed, None)
        .await
        .unwrap();
    let done = conflict(resume(completed).await);
    assert!(
        done.contains("completed: there is nothing to resume"),
        "{done}"
    );
    assert!(matches!(
        resume(RunId::new()).await,
        Err(Error::NotFound { kind: "run", .. })
    ));
}

/// A dynamic run's status is what its runtime says, through the state machine; unfinished
/// step runs end with it, and the run counts the invocations it made.
pub async fn dynamic_runs_end_as_their_runtime_says(store: Store) {
    let run = new_dynamic_run(&store, "sweep").await;
    let recorded = store.run(run).await.unwrap();
    assert_eq!(recorded.invocations, 0);
    let snapshot = store
        .snapshot(recorded.snapshot_id.as_ref().unwrap())
        .await
        .unwrap();
    assert!(snapshot.dynamic && snapshot.invocations.is_empty());
    complete(&store, run, "a", Vec::new(), Vec::new(), "x").await;
    complete(&store, run, "b:0", Vec::new(), Vec::new(), "y").await;
    let finished = store
        .finish_dynamic_run(run, Status::Completed, None)
        .await
        .unwrap();
    assert_eq!(finished.status, Status::Completed);
    assert_eq!(finished.invocations, 2);
    assert!(finished.ended_at.is_some());
    assert!(matches!(
        store
            .finish_dynamic_run(run, Status::Failed, Some("late"))
            .await,
        Err(Error::Transition { .. })
    ));

    // A failed run takes its unfinished step runs with it.
    let failing = new_dynamic_run(&store, "sweep").await;
    let hanging = store
        .create_step_runs(vec![running(failing, "a")])
        .await
        .unwrap()
        .remove(0);
    let failed = store
        .finish_dynamic_run(failing, Status::Failed, Some("the function panicked"))
        .await
        .unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(
        failed.status_reason.as_deref(),
        Some("the function panicked")
    );
    let hanging = store.step_run(hanging.id).await.unwrap();
    assert_eq!(hanging.status, Status::Failed);
    assert!(
        hanging
            .error
            .unwrap()
            .message
            .contains("the function panicked")
    );

    // A run asked to stop ends stopped, and a run without any step can complete.
    let stopping = new_dynamic_run(&store, "sweep").await;
    store.request_stop(stopping).await.unwrap();
    let stopped = store
        .finish_dynamic_run(stopping, Status::Completed, None)
        .await
        .unwrap();
    assert_eq!(stopped.status, Status::Stopped);
    let empty = new_dynamic_run(&store, "sweep").await;
    let completed = store
        .finish_dynamic_run(empty, Status::Completed, None)
        .await
        .unwrap();
    assert_eq!(completed.status, Status::Completed);
    assert!(matches!(
        store.finish_dynamic_run(empty, Status::Running, None).await,
        Err(Error::Conflict(_))
    ));
}

/// A database of its own on a test server, dropped with this value, so that tests running at
/// once never see each other's records.
#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(Debug)]
pub struct TestDatabase {
    /// The database's URL, for [`crate::open`] or a child process.
    pub url: String,
    server: String,
    name: String,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl TestDatabase {
    /// The server in environment variable `variable` (a URL of any database on it, as
    /// `scripts/postgres-up.sh` and `scripts/mariadb-up.sh` print), or `default`.
    pub fn server(variable: &str, default: &str) -> String {
        std::env::var(variable).unwrap_or_else(|_| default.to_owned())
    }

    /// Creates an empty database on the server at `server_url`.
    pub async fn create(server_url: &str) -> crate::Result<Self> {
        let name = format!("weft_test_{}", uuid::Uuid::now_v7().simple());
        let (base, _) = server_url
            .rsplit_once('/')
            .ok_or_else(|| Error::InvalidUrl {
                url: server_url.into(),
                reason: "no database in the URL".into(),
            })?;
        let sql = if server_url.starts_with("postgres") {
            format!("CREATE DATABASE {name}")
        } else {
            format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        };
        Self::execute(server_url, &sql).await?;
        Ok(Self {
            url: format!("{base}/{name}"),
            server: server_url.to_owned(),
            name,
        })
    }

    /// Runs one statement on the database at `url` (to set up what a test needs).
    pub async fn execute(url: &str, sql: &str) -> crate::Result<()> {
        use sqlx_core::connection::Connection as _;
        use sqlx_core::executor::Executor as _;
        if url.starts_with("postgres") {
            #[cfg(feature = "postgres")]
            sqlx_postgres::PgConnection::connect(url)
                .await?
                .execute(sql)
                .await?;
        } else {
            #[cfg(feature = "mysql")]
            sqlx_mysql::MySqlConnection::connect(url)
                .await?
                .execute(sql)
                .await?;
        }
        Ok(())
    }
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        let sql = if server.starts_with("postgres") {
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        } else {
            format!("DROP DATABASE IF EXISTS {name}")
        };
        // Drop runs in async tests too: drop the database from a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(Self::execute(&server, &sql)).ok()
        });
        let _ = dropped.join();
    }
}
