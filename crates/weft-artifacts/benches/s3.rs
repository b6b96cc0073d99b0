//! The artifact store on a local S3 server against the object_store crate used directly.
//!
//! - 256 MiB of bytes saved and loaded through weft (BLAKE3 hash while streaming, create-only
//!   publish, the hash checked on load) against a plain multipart upload and a download of
//!   the same bytes to the same server with object_store alone (8 MiB parts, as weft's);
//! - on each S3 server `scripts/s3-up.sh` starts that answers: moto
//!   (`WEFT_TEST_S3_ENDPOINT`, default `http://127.0.0.1:9321`) and SeaweedFS
//!   (`WEFT_TEST_S3_STRICT_ENDPOINT`, default `http://127.0.0.1:8333`).
//!
//! Prints figures and the ratio; asserts nothing. `cargo bench -p weft-artifacts --bench s3
//! --features s3` (add `-- --quick` for one repetition instead of three).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use weft_artifacts::ArtifactStore;

const MIB: usize = 1024 * 1024;
const BYTES: usize = 256 * MIB;
const PART: usize = 8 * MIB;

fn settings(endpoint: &str) -> [(&str, &str); 6] {
    [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "weft"),
        ("aws_secret_access_key", "weft-test-secret"),
        ("aws_virtual_hosted_style_request", "false"),
    ]
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn mib_per_s(time: Duration) -> f64 {
    (BYTES / MIB) as f64 / time.as_secs_f64()
}

/// A plain multipart upload and a streamed download with object_store alone.
fn direct(
    runtime: &tokio::runtime::Runtime,
    endpoint: &str,
    data: &[u8],
    key: &str,
) -> (Duration, Duration) {
    let mut builder = AmazonS3Builder::new().with_bucket_name("weft-test");
    for (key, value) in settings(endpoint) {
        builder = builder.with_config(key.parse().unwrap(), value);
    }
    let store: Arc<dyn ObjectStore> = Arc::new(builder.build().unwrap());
    let path = Path::from(key);
    runtime.block_on(async {
        let started = Instant::now();
        let upload = store.put_multipart(&path).await.unwrap();
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        for chunk in data.chunks(PART) {
            writer.wait_for_capacity(8).await.unwrap();
            writer.write(chunk);
        }
        writer.finish().await.unwrap();
        let saved = started.elapsed();
        let started = Instant::now();
        let mut read = Vec::with_capacity(data.len());
        let mut stream = store.get(&path).await.unwrap().into_stream();
        while let Some(chunk) = stream.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        let loaded = started.elapsed();
        assert_eq!(read.len(), data.len());
        store.delete(&path).await.unwrap();
        (saved, loaded)
    })
}

/// The same bytes saved and loaded as a `Vec<u8>` artifact.
fn weft(store: &ArtifactStore, data: &[u8], name: &str) -> (Duration, Duration) {
    let value = data.to_vec();
    let started = Instant::now();
    let saved = store.save(&["bench", name], &value).unwrap();
    let save = started.elapsed();
    drop(value);
    let started = Instant::now();
    let loaded: Vec<u8> = store.load(&saved.to_stored()).unwrap();
    let load = started.elapsed();
    assert_eq!(loaded.len(), data.len());
    store.delete(&saved.to_stored()).unwrap();
    (save, load)
}

fn main() {
    let quick = std::env::args().any(|argument| argument == "--quick");
    let repeats = if quick { 1 } else { 3 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut data = vec![0u8; BYTES];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("weft artifacts on S3: 256 MiB, {cores} cores");
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
        let prefix = format!("bench-{}", std::process::id());
        let store = ArtifactStore::s3(
            &format!("s3://weft-test/{prefix}"),
            settings(&endpoint),
            runtime.handle().clone(),
        )
        .unwrap();
        let (mut direct_saves, mut direct_loads, mut weft_saves, mut weft_loads) =
            (vec![], vec![], vec![], vec![]);
        for round in 0..repeats {
            let (save, load) = direct(
                &runtime,
                &endpoint,
                &data,
                &format!("{prefix}/direct-{round}"),
            );
            direct_saves.push(save);
            direct_loads.push(load);
            let (save, load) = weft(&store, &data, &round.to_string());
            weft_saves.push(save);
            weft_loads.push(load);
        }
        let (ds, dl, ws, wl) = (
            median(direct_saves),
            median(direct_loads),
            median(weft_saves),
            median(weft_loads),
        );
        println!("{server} at {endpoint}");
        for (label, time) in [
            ("  object_store: multipart upload", ds),
            ("  object_store: download", dl),
            ("  weft: save (hash, create-only publish)", ws),
            ("  weft: load (hash checked)", wl),
        ] {
            println!(
                "{label:<44}{:>10.1} ms {:>8.0} MiB/s",
                time.as_secs_f64() * 1e3,
                mib_per_s(time)
            );
        }
        println!(
            "  save + load: weft {:.1} ms, object_store {:.1} ms: {:.2}x (target <= 1.2x)",
            (ws + wl).as_secs_f64() * 1e3,
            (ds + dl).as_secs_f64() * 1e3,
            (ws + wl).as_secs_f64() / (ds + dl).as_secs_f64()
        );
    }
}
