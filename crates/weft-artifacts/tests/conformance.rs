//! The artifact store conformance suite against a local folder and against an
//! `object_store` backend held in memory (the path every remote store takes: single puts
//! and multipart uploads, entity tags from the backend).

use std::any::Any;
use std::sync::Arc;

use weft_artifacts::ArtifactStore;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn local() -> (ArtifactStore, Box<dyn Any>) {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store =
        ArtifactStore::local(&dir.path().join("artifacts"), runtime.handle().clone()).unwrap();
    (store, Box::new((dir, runtime)))
}

fn in_memory() -> (ArtifactStore, Box<dyn Any>) {
    let runtime = runtime();
    let objects = Arc::new(object_store::memory::InMemory::new());
    let store = ArtifactStore::from_object_store(
        objects,
        "memory://conformance/".into(),
        runtime.handle().clone(),
    );
    (store, Box::new(runtime))
}

/// A prefix of its own in the bucket of the S3 server `scripts/s3-up.sh` starts (moto), or
/// the one `WEFT_TEST_S3_ENDPOINT` names.
#[cfg(feature = "s3")]
fn s3() -> (ArtifactStore, Box<dyn Any>) {
    let runtime = runtime();
    let endpoint =
        std::env::var("WEFT_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9321".into());
    let address = endpoint.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(address).is_ok(),
        "no S3 server at {endpoint} (start one with scripts/s3-up.sh)"
    );
    let location = format!("s3://weft-test/conformance-{}", uuid::Uuid::now_v7());
    let settings = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "weft"),
        ("aws_secret_access_key", "weft-test-secret"),
        ("aws_virtual_hosted_style_request", "false"),
    ];
    let store = ArtifactStore::s3(&location, settings, runtime.handle().clone()).unwrap();
    (store, Box::new(runtime))
}

#[cfg(feature = "s3")]
mod s3_on_moto {
    weft_artifacts::artifact_store_conformance_tests!(super::s3);
}

mod local_folder {
    weft_artifacts::artifact_store_conformance_tests!(super::local);
}

mod object_store_in_memory {
    weft_artifacts::artifact_store_conformance_tests!(super::in_memory);
}
