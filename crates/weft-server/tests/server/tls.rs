//! `weft server` speaking HTTPS with a certificate and key from files (made by the test
//! authority of `scripts/test-certificate.sh`), checked by curl against that authority; its
//! session cookies are marked Secure. A missing or malformed key file is a clear error.

use std::path::Path;
use std::process::Command;

use weft_store::model::Role;

fn curl(arguments: &[&str]) -> (bool, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(arguments)
        .output()
        .expect("curl is installed");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn the_server_speaks_https_with_its_certificate() {
    let certificates = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/test-certificate.sh");
    let made = Command::new(script)
        .arg(certificates.path())
        .arg("root")
        .status()
        .unwrap();
    assert!(made.success());
    let folder = tempfile::tempdir().unwrap();
    let stores = weft::StoreConfig::in_folder(folder.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tls = Some((
        certificates.path().join("server.crt"),
        certificates.path().join("server.key"),
    ));
    let (base, key) = runtime.block_on(async {
        let server = weft_server::Server::open(&stores, true).await.unwrap();
        let key = server
            .create_key(Role::Viewer, None, None)
            .await
            .unwrap()
            .key;
        let listen = weft_server::Listen {
            address: "127.0.0.1:0".parse().unwrap(),
            tls: tls.clone(),
        };
        let address = server.spawn(listen).await.unwrap();
        (format!("https://{address}"), key)
    });
    let authority = certificates.path().join("ca.crt");
    let authority = authority.to_str().unwrap();
    let (ok, answer) = curl(&["--cacert", authority, &format!("{base}/api/v1/health")]);
    assert!(ok && answer.contains("\"ok\""), "{answer}");
    // Not trusted without the authority; not spoken as plain HTTP.
    let (ok, answer) = curl(&[&format!("{base}/api/v1/health")]);
    assert!(!ok, "{answer}");
    let plain = base.replace("https://", "http://");
    let (_, answer) = curl(&[&format!("{plain}/api/v1/health")]);
    assert!(!answer.contains("\"ok\""), "{answer}");
    // A session made over HTTPS has a Secure cookie.
    let body = format!("{{\"key\": \"{key}\"}}");
    let (ok, answer) = curl(&[
        "--cacert",
        authority,
        "-i",
        "-H",
        "content-type: application/json",
        "-d",
        &body,
        &format!("{base}/api/v1/session"),
    ]);
    assert!(ok, "{answer}");
    let cookie = answer
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie in {answer}"));
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    // A key file that is not a key.
    let bad = certificates.path().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    let error = runtime.block_on(async {
        let server = weft_server::Server::open(&stores, true).await.unwrap();
        let listen = weft_server::Listen {
            address: "127.0.0.1:0".parse().unwrap(),
            tls: Some((certificates.path().join("server.crt"), bad.clone())),
        };
        server.spawn(listen).await.unwrap_err()
    });
    let message = format!("{error:#}");
    assert!(message.contains("bad.key"), "{message}");
}
