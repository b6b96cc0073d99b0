//! A metadata store that goes away while the server runs: requests get a clear 503 (the
//! health check too), and the server answers again once the store is back, without a
//! restart. The store is a PostgreSQL cluster of the test's own (started and stopped with
//! `scripts/postgres-up.sh` and `-down.sh`), so the other tests' server is not disturbed.
#![cfg(feature = "postgres")]

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;
use weft_store::model::Role;

struct Cluster {
    dir: PathBuf,
    port: u16,
}

impl Cluster {
    fn script(&self, name: &str) -> std::process::Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts")
            .join(name);
        Command::new(script)
            .env("WEFT_POSTGRES_DIR", &self.dir)
            .env("WEFT_POSTGRES_PORT", self.port.to_string())
            .output()
            .unwrap()
    }

    fn up(&self) -> String {
        let output = self.script("postgres-up.sh");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn down(&self) {
        assert!(self.script("postgres-down.sh").status.success());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_store_that_goes_away_is_a_503_until_it_is_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cluster = Cluster {
        dir: std::env::temp_dir().join(format!("weft-outage-{}", std::process::id())),
        port,
    };
    let url = cluster.up();
    let folder = tempfile::tempdir().unwrap();
    let stores = weft::StoreConfig {
        metadata: url,
        artifacts: format!("file://{}", folder.path().join("artifacts").display()),
        base: folder.path().to_owned(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (base, key) = runtime.block_on(async {
        let server = weft_server::Server::open(&stores, false).await.unwrap();
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
        (format!("http://{address}"), key)
    });
    let http = reqwest::Client::new();
    let get = |path: &str| {
        runtime.block_on(async {
            let response = http
                .get(format!("{base}{path}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    assert_eq!(get("/api/v1/runs").0, StatusCode::OK);

    cluster.down();
    for path in ["/api/v1/runs", "/api/v1/health"] {
        let (status, body) = get(path);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        if path == "/api/v1/runs" {
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
        } else {
            assert_eq!(body["status"], "unavailable", "{body}");
        }
    }

    cluster.up();
    let (status, body) = get("/api/v1/runs");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(get("/api/v1/health").0, StatusCode::OK);
}
