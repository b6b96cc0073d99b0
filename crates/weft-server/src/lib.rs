//! The weft server: a REST API over the metadata and artifact stores, with API keys and
//! roles, and the web dashboard, from one binary (`weft server`, `weft ui`).
//!
//! The API lives under `/api/v1` (see [`api`](crate) routes and the generated OpenAPI
//! document at `/api/v1/openapi.json`); the dashboard is every other path, its assets built
//! into the binary.

mod api;
mod auth;
pub mod cli;
mod dashboard;
mod error;
mod logs;
mod openapi;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use weft::StoreConfig;
use weft_artifacts::ArtifactStore;
use weft_store::MetadataStore;

pub use auth::{CreatedKey, create_key};
pub use error::ApiError;

/// How often the server fails runs whose orchestrator died (as every `weft` command does
/// when it opens the stores), so that no run shows as running for ever.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);
/// How long a run may go without a heartbeat from another host before it is failed.
const RECONCILE_GRACE: Duration = Duration::from_secs(30);

/// Where and how the server listens.
#[derive(Clone, Debug)]
pub struct Listen {
    /// The address (default `127.0.0.1:8765`).
    pub address: SocketAddr,
    /// A certificate chain and its private key (PEM), to speak HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A server over one metadata store and one artifact store.
pub struct Server {
    state: Arc<api::AppState>,
    stores: StoreConfig,
}

impl Server {
    /// Opens the stores of `stores` (created if needed).
    pub async fn open(stores: &StoreConfig, secure_cookies: bool) -> anyhow::Result<Self> {
        let metadata = weft_store::open(&stores.metadata, &stores.base).await?;
        let runtime = tokio::runtime::Handle::current();
        let (location, base) = (stores.artifacts.clone(), stores.base.clone());
        let artifacts =
            tokio::task::spawn_blocking(move || ArtifactStore::open(&location, &base, runtime))
                .await??;
        Ok(Self::with_stores(
            metadata,
            artifacts,
            stores.clone(),
            secure_cookies,
        ))
    }

    /// A server over stores already open.
    pub fn with_stores(
        metadata: Arc<dyn MetadataStore>,
        artifacts: ArtifactStore,
        stores: StoreConfig,
        secure_cookies: bool,
    ) -> Self {
        let auth = Arc::new(auth::Auth::new(metadata.clone(), secure_cookies));
        Self {
            state: Arc::new(api::AppState {
                metadata,
                artifacts,
                auth,
                parameters: Default::default(),
                watchers: Default::default(),
            }),
            stores,
        }
    }

    /// Every route: the API under `/api/v1`, the dashboard elsewhere.
    pub fn router(&self) -> Router {
        Router::new()
            .nest("/api/v1", api::routes(self.state.clone()))
            .merge(dashboard::routes(self.state.clone()))
            .layer(compression())
    }

    /// A link's token that signs a browser in once, as an editor, within 15 minutes (what
    /// `weft ui` prints).
    pub fn one_time_token(&self) -> String {
        self.state.auth.one_time_token()
    }

    /// Creates an API key in this server's metadata store (see [`create_key`]).
    pub async fn create_key(
        &self,
        role: weft_store::model::Role,
        name: Option<String>,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> anyhow::Result<CreatedKey> {
        create_key(self.state.metadata.as_ref(), role, name, expires_at).await
    }

    /// Serves in a task of the current runtime, for as long as the runtime lives; returns the
    /// address it listens on once it does (to embed a server, or test one on port 0).
    pub async fn spawn(self, listen: Listen) -> anyhow::Result<SocketAddr> {
        let bound = bind(&listen).await?;
        let address = bound.address;
        tokio::spawn(async move {
            if let Err(error) = self.run(bound, std::future::pending()).await {
                tracing::error!(target: "weft::server", "the server stopped: {error:#}");
            }
        });
        Ok(address)
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish (up to 10 s).
    pub async fn serve(
        self,
        listen: &Listen,
        ready: impl FnOnce(SocketAddr) + Send,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let bound = bind(listen).await?;
        ready(bound.address);
        self.run(bound, shutdown).await
    }

    async fn run(
        self,
        bound: Bound,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.graceful_shutdown(Some(Duration::from_secs(10)));
        });
        let reconciler = tokio::spawn(reconcile_forever(
            self.state.metadata.clone(),
            self.state.artifacts.clone(),
            self.stores.base.clone(),
        ));
        let service = self.router().into_make_service();
        // Without `TCP_NODELAY`, the last small segment of an answer written in blocks waits
        // for the client's delayed acknowledgement: 40 ms added to one request in several.
        let no_delay = axum_server::accept::NoDelayAcceptor::new();
        let served = match bound.tls {
            None => {
                axum_server::from_tcp(bound.listener)
                    .acceptor(no_delay)
                    .handle(handle)
                    .serve(service)
                    .await
            }
            Some(config) => {
                let tls = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(no_delay);
                axum_server::from_tcp(bound.listener)
                    .acceptor(tls)
                    .handle(handle)
                    .serve(service)
                    .await
            }
        };
        reconciler.abort();
        served.context("the server stopped")
    }
}

/// Marks a response served as stored, never compressed (an artifact's file).
#[derive(Clone, Copy)]
pub(crate) struct AsStored;

/// Gzip, at the fastest level, for the answers that shrink most for the least work: JSON,
/// the page, its script and style, above 1 KiB, when the client accepts it. A run of
/// 100,000 steps is 31 MB of JSON and a tenth of that compressed, worth it on any network
/// slower than a few hundred Mbit/s; event streams and artifacts' files are left alone.
fn compression() -> tower_http::compression::CompressionLayer<impl Predicate> {
    fn compressible(
        _: axum::http::StatusCode,
        _: axum::http::Version,
        headers: &axum::http::HeaderMap,
        extensions: &axum::http::Extensions,
    ) -> bool {
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        extensions.get::<AsStored>().is_none()
            && [
                "application/json",
                "text/html",
                "text/javascript",
                "text/css",
            ]
            .iter()
            .any(|kind| content_type.starts_with(kind))
    }
    tower_http::compression::CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Fastest)
        .compress_when(SizeAbove::new(1024).and(compressible))
}

/// A socket listening, and the TLS configuration to speak on it.
struct Bound {
    listener: std::net::TcpListener,
    address: SocketAddr,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
}

/// Reads the certificate (if any) and listens: a bad file or a taken address is an error
/// before anything is announced, not at the first connection.
async fn bind(listen: &Listen) -> anyhow::Result<Bound> {
    let tls = match &listen.tls {
        None => None,
        Some((certificate, key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(certificate, key)
                .await
                .with_context(|| {
                    format!(
                        "cannot read the TLS certificate {} and key {}",
                        certificate.display(),
                        key.display()
                    )
                })?;
            Some(config)
        }
    };
    let listener = std::net::TcpListener::bind(listen.address)
        .with_context(|| format!("cannot listen on {}", listen.address))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    Ok(Bound {
        listener,
        address,
        tls,
    })
}

/// Fails the runs whose orchestrator is gone, now and then.
async fn reconcile_forever(
    metadata: Arc<dyn MetadataStore>,
    artifacts: ArtifactStore,
    base: PathBuf,
) {
    let engine = weft_engine::Engine::new(
        metadata,
        artifacts,
        Arc::new(weft_engine::step::Registry::default()),
    );
    let runtime = tokio::runtime::Handle::current();
    loop {
        // As the `weft` command does it: from a thread of its own, since failing a run
        // removes the files its steps were writing through the artifact store's blocking
        // calls.
        let (engine, base, runtime) = (engine.clone(), base.clone(), runtime.clone());
        let reconciled = tokio::task::spawn_blocking(move || {
            runtime.block_on(engine.reconcile(RECONCILE_GRACE, &base))
        })
        .await;
        let Ok(reconciled) = reconciled else {
            tokio::time::sleep(RECONCILE_EVERY).await;
            continue;
        };
        match reconciled {
            Ok(reconciled) if !reconciled.is_empty() => {
                tracing::info!(target: "weft::server", "failed {} run(s) whose orchestrator died", reconciled.len());
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(target: "weft::server", "cannot reconcile runs: {error}");
            }
        }
        tokio::time::sleep(RECONCILE_EVERY).await;
    }
}
