//! Per-step cost with the artifacts on a local S3 server against local files: a chain of
//! 200 steps, each loading its predecessor's 4 KiB output and saving its own (above the
//! size kept in records, so every output is an object in the bucket), with the metadata
//! store on SQLite in both cases.
//!
//! Each chain runs in a child process with the AWS settings of the server in its
//! environment (moto, `WEFT_TEST_S3_ENDPOINT`, and SeaweedFS,
//! `WEFT_TEST_S3_STRICT_ENDPOINT`, as `scripts/s3-up.sh` starts them). Prints figures;
//! asserts nothing. `cargo bench -p weft --bench s3 --features s3`.

use std::path::Path;
use std::time::{Duration, Instant};

use weft::prelude::*;
use weft::{RunConfig, Status, StoreConfig};

const LENGTH: usize = 200;

#[step]
fn first(bytes: usize) -> Vec<u8> {
    vec![1; bytes]
}

#[step]
fn next(previous: Vec<u8>) -> Vec<u8> {
    previous.iter().map(|byte| byte.wrapping_add(1)).collect()
}

#[pipeline]
fn blobs(length: usize, bytes: usize) -> weft::Result<()> {
    let mut current = first(bytes)?;
    for _ in 1..length {
        current = next(&current)?;
    }
    Ok(())
}

/// In the child: one chain on the stores given, printing its time in microseconds.
fn child(artifacts: &str, folder: &Path) {
    let stores = StoreConfig {
        metadata: format!("sqlite://{}/weft.db", folder.display()),
        artifacts: artifacts.to_owned(),
        base: folder.to_owned(),
    };
    let client = Client::open(&stores).expect("the stores open");
    let started = Instant::now();
    let report = client
        .run_with(blobs::args(LENGTH, 4096), &RunConfig::default())
        .expect("the run starts");
    let elapsed = started.elapsed();
    assert_eq!(
        report.run.status,
        Status::Completed,
        "{:?}",
        report.run.status_reason
    );
    println!("{}", elapsed.as_micros());
}

/// One chain in a child process with `env`; its time.
fn chain(artifacts: &str, env: &[(&str, &str)]) -> Duration {
    let dir = tempfile::tempdir().expect("a folder for the stores");
    let output = std::process::Command::new(std::env::current_exe().expect("this benchmark"))
        .args(["--child", artifacts])
        .arg(dir.path())
        .envs(env.iter().copied())
        .output()
        .expect("the child starts");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let micros: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the child prints its time");
    Duration::from_micros(micros)
}

fn per_step(time: Duration) -> String {
    format!(
        "{:8.3} ms per step",
        time.as_secs_f64() * 1e3 / LENGTH as f64
    )
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if let Some(position) = arguments.iter().position(|a| a == "--child") {
        child(
            &arguments[position + 1],
            Path::new(&arguments[position + 2]),
        );
        return;
    }
    println!("weft: a {LENGTH}-step chain of 4 KiB outputs, SQLite metadata");
    let local = chain("artifacts", &[]);
    println!(
        "{:<40}{}",
        "local files (system temporary folder)",
        per_step(local)
    );
    for (server, variable, default) in [
        ("moto", "WEFT_TEST_S3_ENDPOINT", "http://127.0.0.1:9321"),
        (
            "SeaweedFS",
            "WEFT_TEST_S3_STRICT_ENDPOINT",
            "http://127.0.0.1:8333",
        ),
    ] {
        let endpoint = std::env::var(variable).unwrap_or_else(|_| default.into());
        if std::net::TcpStream::connect(endpoint.trim_start_matches("http://")).is_err() {
            println!("{server}: no server at {endpoint} (scripts/s3-up.sh starts one); skipped");
            continue;
        }
        let env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "weft"),
            ("AWS_SECRET_ACCESS_KEY", "weft-test-secret"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
        ];
        let location = format!("s3://weft-test/bench-chain-{}", std::process::id());
        let time = chain(&location, &env);
        println!(
            "{:<40}{}",
            format!("{server} at {endpoint}"),
            per_step(time)
        );
    }
}
