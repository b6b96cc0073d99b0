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

mod local_folder {
    weft_artifacts::artifact_store_conformance_tests!(super::local);
}

mod object_store_in_memory {
    weft_artifacts::artifact_store_conformance_tests!(super::in_memory);
}
