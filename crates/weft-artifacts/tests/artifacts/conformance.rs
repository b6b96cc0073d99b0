//! The artifact store conformance suite against a local folder, an `object_store` backend
//! held in memory (the path every remote store takes: single puts and multipart uploads,
//! entity tags from the backend), and, with the `s3` feature, two S3 servers: moto and
//! SeaweedFS (which checks request signatures and stores on disk).

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

/// The endpoint of one of the S3 servers `scripts/s3-up.sh` starts: moto (`variable`
/// `WEFT_TEST_S3_ENDPOINT`), or SeaweedFS, which checks request signatures and stores on
/// disk (`WEFT_TEST_S3_STRICT_ENDPOINT`).
#[cfg(feature = "s3")]
fn endpoint(variable: &str, default: &str) -> String {
    let endpoint = std::env::var(variable).unwrap_or_else(|_| default.into());
    let address = endpoint.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(address).is_ok(),
        "no S3 server at {endpoint} (start it with scripts/s3-up.sh)"
    );
    endpoint
}

/// A prefix of its own in the bucket `weft-test` of the server at `endpoint`.
#[cfg(feature = "s3")]
fn s3_at(endpoint: &str, secret: &str) -> weft_artifacts::Result<(ArtifactStore, Box<dyn Any>)> {
    let runtime = runtime();
    let location = format!("s3://weft-test/conformance-{}", uuid::Uuid::now_v7());
    let settings = [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "weft"),
        ("aws_secret_access_key", secret),
        ("aws_virtual_hosted_style_request", "false"),
    ];
    let store = ArtifactStore::s3(&location, settings, runtime.handle().clone())?;
    Ok((store, Box::new(runtime)))
}

#[cfg(feature = "s3")]
fn moto() -> (ArtifactStore, Box<dyn Any>) {
    let endpoint = endpoint("WEFT_TEST_S3_ENDPOINT", "http://127.0.0.1:9321");
    s3_at(&endpoint, "weft-test-secret").unwrap()
}

#[cfg(feature = "s3")]
fn seaweedfs() -> (ArtifactStore, Box<dyn Any>) {
    let endpoint = endpoint("WEFT_TEST_S3_STRICT_ENDPOINT", "http://127.0.0.1:8333");
    s3_at(&endpoint, "weft-test-secret").unwrap()
}

#[cfg(feature = "s3")]
mod s3_on_moto {
    weft_artifacts::artifact_store_conformance_tests!(super::moto);
}

#[cfg(feature = "s3")]
mod s3_on_seaweedfs {
    weft_artifacts::artifact_store_conformance_tests!(super::seaweedfs);
}

/// Wrong credentials are refused when the store opens, by the server that checks them.
#[cfg(feature = "s3")]
#[test]
fn wrong_credentials_are_refused_when_the_store_opens() {
    let endpoint = endpoint("WEFT_TEST_S3_STRICT_ENDPOINT", "http://127.0.0.1:8333");
    let Err(error) = s3_at(&endpoint, "not-the-secret") else {
        panic!("a store opened with the wrong secret")
    };
    let error = error.to_string();
    assert!(
        error.starts_with("cannot open the artifact store at s3://weft-test/")
            && error.contains("SignatureDoesNotMatch"),
        "{error}"
    );
}

mod local_folder {
    weft_artifacts::artifact_store_conformance_tests!(super::local);
}

mod object_store_in_memory {
    weft_artifacts::artifact_store_conformance_tests!(super::in_memory);
}
