//! The server under a large store: 10,000 runs, one run mapping over 2,000 items (and a fan-in of them), and a step
//! whose log has 1,000,000 lines, in a SQLite store on the real disk under `target/` (and on
//! PostgreSQL with `WEFT_BENCH_POSTGRES_URL`, for the two reads). Measures, through a real
//! server on loopback:
//!
//! - `GET /runs` (a page of 50; the first page, a filtered one, one deep in the list): p50, p95;
//! - `GET /runs/{run}` of the map's run: p50, p95; pages of its steps (`/steps`), the first,
//!   one by cursor, and the failed ones;
//! - the lineage of the map's fan-in output (2,000 inputs): as the dashboard asks for it
//!   (its first 200 records) and whole;
//! - pages and searches of the 1,000,000-line log, and the server process's peak memory
//!   before and after them;
//! - how long a status change takes to reach an events client;
//! - with ChromeDriver (`WEFT_TEST_CHROMEDRIVER`), how long the map's run page takes
//!   to be drawn in Chromium.
//!
//! Prints figures; asserts nothing. `cargo bench -p weft-server --bench server` (add
//! `--features postgres` for the PostgreSQL part, and `-- --runs N` for another number of
//! runs).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use weft::prelude::*;
use weft_store::model::Role;

#[step]
fn one(x: u64) -> u64 {
    x
}

#[pipeline]
fn small(x: u64) -> weft::Result<()> {
    one(x)?;
    Ok(())
}

#[step]
fn item(x: u64) -> u64 {
    x + 1
}

#[step]
fn sum_of(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// A map and the fan-in of its results.
#[pipeline(dynamic)]
fn wide(n: u64) -> weft::Result<()> {
    let items = item::map((0..n).collect::<Vec<_>>())?;
    sum_of(&items)?;
    Ok(())
}

#[step]
fn chatty(lines: u64) -> u64 {
    for i in 0..lines {
        if i % 1000 == 999 {
            tracing::warn!("w{i}");
        } else {
            tracing::info!("l{i}");
        }
    }
    lines
}

#[pipeline]
fn talk(lines: u64) -> weft::Result<()> {
    chatty(lines)?;
    Ok(())
}

#[step]
fn wait_for(gate: String) -> u64 {
    while !Path::new(&gate).exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    1
}

#[pipeline]
fn gated(gate: String) -> weft::Result<()> {
    wait_for(gate)?;
    Ok(())
}

fn peak_memory_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    times[((times.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(duration: Duration) -> String {
    format!("{:7.2} ms", duration.as_secs_f64() * 1e3)
}

struct Served {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Served {
    async fn get(&self, path: &str) -> (Duration, Value) {
        let started = Instant::now();
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let body: Value = response.json().await.unwrap();
        (started.elapsed(), body)
    }

    async fn timed(&self, label: &str, path: &str, repeats: usize) {
        let mut times = Vec::new();
        for _ in 0..repeats {
            times.push(self.get(path).await.0);
        }
        println!(
            "  {label:<44} p50 {}  p95 {}  ({repeats} requests)",
            ms(percentile(&mut times, 0.5)),
            ms(percentile(&mut times, 0.95))
        );
    }
}

async fn serve(stores: &weft::StoreConfig) -> Served {
    let server = weft_server::Server::open(stores, false).await.unwrap();
    let key = server
        .create_key(Role::Viewer, None, None)
        .await
        .unwrap()
        .key;
    let listen = weft_server::Listen {
        address: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    };
    let address = server.spawn(listen).await.unwrap();
    Served {
        base: format!("http://{address}"),
        key,
        http: reqwest::Client::new(),
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let runs: u64 = arguments
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| arguments.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let disk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-stores");
    std::fs::create_dir_all(&disk).unwrap();
    let folder = tempfile::tempdir_in(&disk).unwrap();
    let stores = weft::StoreConfig::in_folder(folder.path());
    println!(
        "weft server: {runs} runs, a map of 2,000 items and its fan-in, a log of 1,000,000 lines (SQLite on disk)"
    );

    let started = Instant::now();
    let client = weft::Client::open(&stores).unwrap();
    for i in 0..runs.saturating_sub(3) {
        client.run(small::args(i % 20)).unwrap();
    }
    let wide_report = client.run(wide::args(2000)).unwrap();
    let wide_run = wide_report.run.id;
    let fan_in = wide_report
        .step_runs
        .iter()
        .find(|step| step.invocation == "sum_of")
        .expect("the fan-in ran");
    let fan_in_output = client.output(fan_in, "output").unwrap().id;
    let talk_report = client.run(talk::args(1_000_000)).unwrap();
    let chatty_step = talk_report.step_runs[0].id;
    println!("  filled in {:.1} s", started.elapsed().as_secs_f64());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let served = serve(&stores).await;
        served.get("/api/v1/runs").await;
        served
            .timed("GET /runs (first page of 50)", "/api/v1/runs?limit=50", 200)
            .await;
        served
            .timed(
                "GET /runs?status=completed",
                "/api/v1/runs?limit=50&status=completed",
                200,
            )
            .await;
        served
            .timed(
                "GET /runs?pipeline=small&order=oldest",
                "/api/v1/runs?limit=50&pipeline=small&order=oldest",
                200,
            )
            .await;
        // A page deep in the list: the cursor of the run in the middle.
        let (_, middle) = served
            .get(&format!("/api/v1/runs?limit={}", runs / 2))
            .await;
        let cursor = middle["next_cursor"].as_str().unwrap().to_owned();
        served
            .timed(
                "GET /runs (a page in the middle, by cursor)",
                &format!("/api/v1/runs?limit=50&cursor={cursor}"),
                200,
            )
            .await;
        served
            .timed(
                "GET /runs/{run} (2,001 step runs)",
                &format!("/api/v1/runs/{wide_run}"),
                20,
            )
            .await;
        served
            .timed(
                "GET /runs/{run}/steps (first page of 200)",
                &format!("/api/v1/runs/{wide_run}/steps?limit=200"),
                20,
            )
            .await;
        let (_, half) = served
            .get(&format!(
                "/api/v1/runs/{wide_run}/steps?steps=brief&limit=1000"
            ))
            .await;
        let cursor = half["next_cursor"].as_str().unwrap().to_owned();
        served
            .timed(
                "GET /runs/{run}/steps (a page of 200 in the middle, by cursor)",
                &format!("/api/v1/runs/{wide_run}/steps?limit=200&cursor={cursor}"),
                20,
            )
            .await;
        served
            .timed(
                "GET /runs/{run}/steps?status=failed (none: the whole run looked through)",
                &format!("/api/v1/runs/{wide_run}/steps?status=failed"),
                20,
            )
            .await;
        served
            .timed(
                "GET lineage of the fan-in output (200)",
                &format!("/api/v1/artifact-versions/{fan_in_output}/lineage?limit=200"),
                20,
            )
            .await;
        served
            .timed(
                "GET lineage of the fan-in output (4,001)",
                &format!("/api/v1/artifact-versions/{fan_in_output}/lineage?limit=100000"),
                20,
            )
            .await;

        let before = peak_memory_mib();
        let path = format!("/api/v1/step-runs/{chatty_step}/logs");
        // How many lines the log kept (a step's log is capped at 64 MiB): the last line found
        // by halving.
        let (mut low, mut high) = (0u64, 1_000_000u64);
        while low + 1 < high {
            let middle = (low + high) / 2;
            let (_, page) = served.get(&format!("{path}?limit=1&offset={middle}")).await;
            if page["lines"]
                .as_array()
                .is_some_and(|lines| !lines.is_empty())
            {
                low = middle;
            } else {
                high = middle;
            }
        }
        println!(
            "  log: {} lines kept of 1,000,000 logged (a step's log is capped at 64 MiB)",
            low + 1
        );
        served
            .timed("GET log page at line 0", &format!("{path}?limit=200"), 20)
            .await;
        served
            .timed(
                "GET log page at line 500,000",
                &format!("{path}?limit=200&offset=500000"),
                10,
            )
            .await;
        served
            .timed(
                "GET log page at its last lines",
                &format!("{path}?limit=200&offset={}", low.saturating_sub(199)),
                10,
            )
            .await;
        served
            .timed(
                "GET log, level=warn (1 line in 1,000)",
                &format!("{path}?limit=200&level=warn"),
                5,
            )
            .await;
        served
            .timed(
                "GET log, search a rare text (whole log)",
                &format!("{path}?limit=200&q=l{}", low - 1),
                5,
            )
            .await;
        println!(
            "  peak memory of the process: {before:.0} MiB before the log reads, {:.0} MiB after",
            peak_memory_mib()
        );

        // Live: from the recorded end of a step to its event at a client.
        let mut delays = Vec::new();
        for attempt in 0..5 {
            let gate = folder.path().join(format!("gate-{attempt}"));
            let stores = stores.clone();
            let gate_text = gate.display().to_string();
            let running = std::thread::spawn(move || {
                weft::Client::open(&stores)
                    .unwrap()
                    .run(gated::args(gate_text))
                    .unwrap();
            });
            let run = loop {
                let (_, page) = served
                    .get("/api/v1/runs?limit=1&pipeline=gated&status=running")
                    .await;
                if let Some(id) = page["runs"][0]["id"].as_str() {
                    break id.to_owned();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            let mut events = served
                .http
                .get(format!("{}/api/v1/runs/{run}/events", served.base))
                .bearer_auth(&served.key)
                .send()
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::fs::write(&gate, b"").unwrap();
            let mut received = String::new();
            let arrived = loop {
                let chunk = events.chunk().await.unwrap().expect("an event");
                received.push_str(&String::from_utf8_lossy(&chunk));
                if received.contains("\"status\":\"completed\"") && received.contains("step_run") {
                    break chrono::Utc::now();
                }
            };
            let (_, detail) = served.get(&format!("/api/v1/runs/{run}")).await;
            let ended: chrono::DateTime<chrono::Utc> =
                serde_json::from_value(detail["steps"][0]["ended_at"].clone()).unwrap();
            delays.push((arrived - ended).to_std().unwrap_or_default());
            running.join().unwrap();
        }
        println!(
            "  a status change reaches an events client in p50 {}, max {} (5 changes)",
            ms(percentile(&mut delays, 0.5)),
            ms(*delays.iter().max().unwrap())
        );

        if let Ok(driver) = std::env::var("WEFT_TEST_CHROMEDRIVER") {
            chromium(&driver, &served, &wide_run.to_string()).await;
        } else {
            println!("  (set WEFT_TEST_CHROMEDRIVER to time the run page in Chromium)");
        }
    });

    if let Ok(url) = std::env::var("WEFT_BENCH_POSTGRES_URL") {
        postgres(&url, runs);
    }
}

/// The map's run page in Chromium: from navigation to the graph drawn, and to the
/// timeline drawn.
async fn chromium(driver: &str, served: &Served, run: &str) {
    use fantoccini::{ClientBuilder, Locator};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut process = std::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1400,900", format!("--user-data-dir={}", profile.path().display())]}),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    client.goto(&format!("{}/", served.base)).await.unwrap();
    let input = client
        .wait()
        .for_element(Locator::Css("#signin input"))
        .await
        .unwrap();
    input.send_keys(&served.key).await.unwrap();
    client
        .find(Locator::Css("#signin button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("table.runs"))
        .await
        .unwrap();
    for (view, selector) in [("graph", ".node"), ("timeline", ".bar")] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            client
                .goto(&format!("{}/runs/{run}?view={view}", served.base))
                .await
                .unwrap();
            client
                .wait()
                .for_element(Locator::Css(selector))
                .await
                .unwrap();
            times.push(started.elapsed());
        }
        println!(
            "  run page of 2,001 steps drawn in Chromium ({view}): p50 {}",
            ms(percentile(&mut times, 0.5))
        );
    }
    client.close().await.unwrap();
    let _ = process.kill();
    let _ = process.wait();
}

/// The two reads on PostgreSQL: the same runs, recorded in a fresh database.
fn postgres(url: &str, runs: u64) {
    let folder = tempfile::tempdir().unwrap();
    let database = format!("weft_bench_{}", std::process::id());
    let admin = url.to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(stores) = runtime.block_on(async {
        use sqlx_core::connection::Connection as _;
        use sqlx_core::executor::Executor as _;
        let mut connection = sqlx_postgres::PgConnection::connect(&admin).await.ok()?;
        connection
            .execute(format!("CREATE DATABASE {database}").as_str())
            .await
            .ok()?;
        let (prefix, _) = admin.rsplit_once('/')?;
        let query = admin
            .split_once('?')
            .map(|(_, q)| format!("?{q}"))
            .unwrap_or_default();
        Some(weft::StoreConfig {
            metadata: format!("{prefix}/{database}{query}"),
            artifacts: format!("file://{}", folder.path().join("artifacts").display()),
            base: folder.path().to_owned(),
        })
    }) else {
        println!("  (PostgreSQL at WEFT_BENCH_POSTGRES_URL could not be used)");
        return;
    };
    println!("PostgreSQL: {runs} runs and a map of 2,000 items and its fan-in");
    let client = weft::Client::open(&stores).unwrap();
    let started = Instant::now();
    for i in 0..runs.saturating_sub(1) {
        client.run(small::args(i % 20)).unwrap();
    }
    let wide_run = client.run(wide::args(2000)).unwrap().run.id;
    println!("  filled in {:.1} s", started.elapsed().as_secs_f64());
    drop(client);
    runtime.block_on(async {
        let served = serve(&stores).await;
        served.get("/api/v1/runs").await;
        served
            .timed("GET /runs (first page of 50)", "/api/v1/runs?limit=50", 200)
            .await;
        served
            .timed(
                "GET /runs?status=completed",
                "/api/v1/runs?limit=50&status=completed",
                200,
            )
            .await;
        served
            .timed(
                "GET /runs/{run} (2,001 step runs)",
                &format!("/api/v1/runs/{wide_run}"),
                20,
            )
            .await;
    });
}
