//! What the API and dashboard tests share: pipelines whose runs fill a store (one completes,
//! one fails, one waits for a gate), and a server over it with keys of both roles.
#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use weft::prelude::*;
use weft_store::model::Role;

#[step]
fn numbers(count: u64) -> Vec<f64> {
    tracing::info!("making {count} numbers");
    tracing::warn!(count, "a warning with <script>alert(1)</script> in it");
    (0..count).map(|i| i as f64).collect()
}

#[step]
fn total(values: Vec<f64>) -> f64 {
    values.iter().sum()
}

#[step]
fn broken(x: f64) -> Result<f64, std::io::Error> {
    tracing::error!("about to fail on {x}");
    Err(std::io::Error::other(format!("broken on {x}")))
}

#[pipeline]
fn good(count: u64) -> weft::Result<()> {
    let values = numbers(count)?;
    total(&values)?;
    Ok(())
}

#[pipeline]
fn bad() -> weft::Result<()> {
    let values = numbers(3)?;
    let sum = total(&values)?;
    broken(&sum)?;
    Ok(())
}

/// What a hostile user would put in a page: markup that runs script if inserted as HTML.
pub(crate) const HOSTILE: &str =
    "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=1</script>";

/// An HTML report that tries to reach the page around it and the API.
#[step]
fn report(title: String) -> weft::Html {
    weft::Html(format!(
        "<h1>{title}</h1><script>parent.document.title='pwned'; parent.window.__xss=2; \
         fetch('/api/v1/runs').then(() => {{ parent.window.__xss = 3; }});</script>"
    ))
}

#[pipeline]
fn hostile(note: String) -> weft::Result<()> {
    tracing::info!("{note}");
    report(note)?;
    Ok(())
}

/// Released by [`Fixture::open_gate`]: lets a run be watched while it runs.
#[step]
fn gated(gate: String) -> u64 {
    tracing::info!("waiting for the gate");
    while !std::path::Path::new(&gate).exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tracing::info!("the gate is open");
    1
}

#[step]
fn after_gate(x: u64) -> u64 {
    x + 1
}

#[pipeline]
fn watched(gate: String) -> weft::Result<()> {
    let x = gated(gate)?;
    after_gate(&x)?;
    Ok(())
}

#[step]
fn square(x: f64) -> f64 {
    x * x
}

/// A map of `n` items and a fan-in of their results.
#[pipeline(dynamic)]
fn mapped(n: u64) -> weft::Result<()> {
    let squares = square::map((0..n).map(|i| i as f64).collect::<Vec<_>>())?;
    total(&squares)?;
    Ok(())
}

/// A map of `n` items (and their fan-in) that starts once the gate opens.
#[pipeline(dynamic)]
fn mapped_after_gate(gate: String, n: u64) -> weft::Result<()> {
    gated(gate)?;
    let squares = square::map((0..n).map(|i| i as f64).collect::<Vec<_>>())?;
    total(&squares)?;
    Ok(())
}

pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) viewer: String,
    pub(crate) editor: String,
    pub(crate) good_run: String,
    pub(crate) bad_run: String,
    pub(crate) failed_step: String,
    pub(crate) version: String,
    /// A one-time sign-in token (as `weft ui` prints in its link).
    pub(crate) one_time: String,
}

/// Two runs (one completed, one failed), a server on a free port, and keys of both roles.
pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let stores = weft::StoreConfig::in_folder(dir.path());
    let (good_run, bad_run, failed_step, version) = {
        let client = weft::Client::open(&stores).unwrap();
        let good_report = client.run(good::args(100)).unwrap();
        let bad_report = client.run(bad::args()).unwrap();
        assert_eq!(bad_report.run.status, weft::Status::Failed);
        let failed = bad_report
            .step_runs
            .iter()
            .find(|step| step.status == weft::Status::Failed)
            .unwrap();
        let numbers = good_report
            .step_runs
            .iter()
            .find(|step| step.invocation == "numbers")
            .unwrap();
        let version = client.output(numbers, "output").unwrap();
        let hostile_report = client.run(hostile::args(HOSTILE.to_owned())).unwrap();
        // Tags: `nightly` on two runs, and markup on the hostile one.
        let store = client.metadata_store();
        for (run, tags) in [
            (good_report.run.id, vec!["nightly".to_owned()]),
            (
                hostile_report.run.id,
                vec!["nightly".to_owned(), HOSTILE.to_owned()],
            ),
        ] {
            client.block_on(store.tag_run(run, &tags)).unwrap();
        }
        (
            good_report.run.id.to_string(),
            bad_report.run.id.to_string(),
            failed.id.to_string(),
            version.id.to_string(),
        )
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (base, viewer, editor, one_time) = runtime.block_on(async {
        let server = weft_server::Server::open(&stores, false).await.unwrap();
        let one_time = server.one_time_token();
        let viewer = server
            .create_key(Role::Viewer, None, None)
            .await
            .unwrap()
            .key;
        let editor = server
            .create_key(Role::Editor, Some("e".into()), None)
            .await
            .unwrap()
            .key;
        let listen = weft_server::Listen {
            address: "127.0.0.1:0".parse().unwrap(),
            tls: None,
        };
        let address = server.spawn(listen).await.unwrap();
        (format!("http://{address}"), viewer, editor, one_time)
    });
    Fixture {
        dir,
        runtime,
        base,
        http: reqwest::Client::new(),
        viewer,
        editor,
        good_run,
        bad_run,
        failed_step,
        version,
        one_time,
    }
}

impl Fixture {
    /// Sends a request with `key` (if any); its status and JSON body (`Null` if none).
    pub(crate) fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.runtime.block_on(async {
            let mut request = self.http.request(method, format!("{}{path}", self.base));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    pub(crate) fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, Some(&self.viewer), None);
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub(crate) fn key(
        &self,
        role: Role,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> (String, String) {
        self.runtime.block_on(async {
            let stores = weft::StoreConfig::in_folder(self.dir.path());
            let store = weft_store::open(&stores.metadata, &stores.base)
                .await
                .unwrap();
            let created = weft_server::create_key(store.as_ref(), role, None, expires_at)
                .await
                .unwrap();
            (created.record.id, created.key)
        })
    }

    /// Starts a run of `watched` in the background; returns its id once recorded, and the
    /// gate's path (create the file to let it finish).
    pub(crate) fn start_watched(
        &self,
    ) -> (String, std::path::PathBuf, std::thread::JoinHandle<()>) {
        self.start_gated("watched", watched::args)
    }

    /// Starts a map of `n` items that waits for its gate; the run id, the gate, the thread.
    pub(crate) fn start_map_after_gate(
        &self,
        n: u64,
    ) -> (String, std::path::PathBuf, std::thread::JoinHandle<()>) {
        self.start_gated("mapped_after_gate", move |gate| {
            mapped_after_gate::args(gate, n)
        })
    }

    fn start_gated(
        &self,
        pipeline: &str,
        args: impl FnOnce(String) -> weft::PipelineCall + Send + 'static,
    ) -> (String, std::path::PathBuf, std::thread::JoinHandle<()>) {
        let gate = self.dir.path().join(format!("gate-{pipeline}"));
        let stores = weft::StoreConfig::in_folder(self.dir.path());
        let gate_text = gate.display().to_string();
        let running = std::thread::spawn(move || {
            let client = weft::Client::open(&stores).unwrap();
            client.run(args(gate_text)).unwrap();
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, runs) = self.call(
                Method::GET,
                &format!("/api/v1/runs?pipeline={pipeline}"),
                Some(&self.viewer),
                None,
            );
            if let Some(id) = runs["runs"][0]["id"].as_str() {
                return (id.to_owned(), gate, running);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the watched run never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Runs `mapped` over `n` items; its run id.
    pub(crate) fn run_mapped(&self, n: u64) -> String {
        let client = weft::Client::open(&weft::StoreConfig::in_folder(self.dir.path())).unwrap();
        client.run(mapped::args(n)).unwrap().run.id.to_string()
    }

    /// The id of the version that step `invocation` of `run` wrote, read through the API.
    pub(crate) fn output_of(&self, run: &str, invocation: &str) -> String {
        let detail = self.get(&format!("/api/v1/runs/{run}"));
        let step = detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|step| step["invocation"] == invocation)
            .unwrap_or_else(|| panic!("no step `{invocation}` in run {run}"))["id"]
            .clone();
        detail["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|output| output["step_run"] == step)
            .unwrap_or_else(|| panic!("step `{invocation}` wrote nothing"))["artifact_version"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs `hostile` with `note` (its HTML report holds the note); the report's version id.
    pub(crate) fn run_report(&self, note: &str) -> String {
        let client = weft::Client::open(&weft::StoreConfig::in_folder(self.dir.path())).unwrap();
        let report = client.run(hostile::args(note.to_owned())).unwrap();
        client
            .output(&report.step_runs[0], "output")
            .unwrap()
            .id
            .to_string()
    }

    pub(crate) fn revoke(&self, id: &str) {
        self.runtime.block_on(async {
            let stores = weft::StoreConfig::in_folder(self.dir.path());
            let store = weft_store::open(&stores.metadata, &stores.base)
                .await
                .unwrap();
            store.revoke_api_key(id).await.unwrap();
        });
    }

    /// Every route of the API: (method, path, body, whether it needs an editor).
    pub(crate) fn routes(&self) -> Vec<(Method, String, Option<Value>, bool)> {
        let v = &self.version;
        vec![
            (Method::GET, "/api/v1/runs".into(), None, false),
            (
                Method::GET,
                format!("/api/v1/runs/{}", self.good_run),
                None,
                false,
            ),
            (
                Method::GET,
                format!("/api/v1/step-runs/{}", self.failed_step),
                None,
                false,
            ),
            (
                Method::GET,
                format!("/api/v1/step-runs/{}/logs/tail", self.failed_step),
                None,
                false,
            ),
            (
                Method::GET,
                format!("/api/v1/step-runs/{}/logs", self.failed_step),
                None,
                false,
            ),
            (Method::GET, "/api/v1/artifacts".into(), None, false),
            (
                Method::GET,
                "/api/v1/artifacts/good::numbers::output/versions".into(),
                None,
                false,
            ),
            (
                Method::GET,
                format!("/api/v1/artifact-versions/{v}"),
                None,
                false,
            ),
            (
                Method::GET,
                format!("/api/v1/artifact-versions/{v}/files/data.npy"),
                None,
                false,
            ),
            (
                Method::GET,
                format!("/api/v1/artifact-versions/{v}/lineage"),
                None,
                false,
            ),
            (
                Method::POST,
                format!("/api/v1/runs/{}/stop", self.good_run),
                None,
                true,
            ),
            (
                Method::POST,
                format!("/api/v1/artifact-versions/{v}/tags"),
                Some(json!({"tags": ["gold"]})),
                true,
            ),
            (
                Method::DELETE,
                format!("/api/v1/artifact-versions/{v}/tags"),
                Some(json!({"tags": ["gold"]})),
                true,
            ),
            (
                Method::POST,
                format!("/api/v1/runs/{}/tags", self.good_run),
                Some(json!({"tags": ["gold"]})),
                true,
            ),
            (
                Method::DELETE,
                format!("/api/v1/runs/{}/tags", self.good_run),
                Some(json!({"tags": ["gold"]})),
                true,
            ),
            (
                Method::POST,
                "/api/v1/cache/expire".into(),
                Some(json!({"step": "nothing::matches"})),
                true,
            ),
        ]
    }
}
