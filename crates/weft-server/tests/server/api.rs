//! The REST API against a real server on loopback, over a SQLite store filled by real
//! pipeline runs: every route, its refusals (no key, a bad, revoked or expired key, too small
//! a role, a session without its anti-forgery token) and its answers to bad input.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use weft_store::model::Role;

use crate::common::fixture;

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or("<no JSON error body>")
}

#[test]
fn every_route_refuses_requests_without_a_valid_key() {
    let f = fixture();
    let (revoked_id, revoked) = f.key(Role::Editor, None);
    f.revoke(&revoked_id);
    let (_, expired) = f.key(
        Role::Editor,
        Some(chrono::Utc::now() - chrono::Duration::seconds(1)),
    );
    let forged = {
        // A real key's id with another secret.
        let (prefix, _) = f.editor.split_at(18);
        format!("{prefix}{}", "A".repeat(43))
    };
    for (method, path, body, _) in f.routes() {
        for key in [
            None,
            Some("nonsense"),
            Some(revoked.as_str()),
            Some(expired.as_str()),
            Some(forged.as_str()),
        ] {
            let (status, answer) = f.call(method.clone(), &path, key, body.clone());
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {key:?}: {answer}"
            );
            assert_eq!(error_code(&answer), "unauthorized");
        }
    }
    // The health check needs no key.
    let (status, health) = f.call(Method::GET, "/api/v1/health", None, None);
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
}

#[test]
fn actions_need_an_editor() {
    let f = fixture();
    for (method, path, body, editor_only) in f.routes() {
        let (status, answer) = f.call(method.clone(), &path, Some(&f.viewer), body.clone());
        if editor_only {
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
            assert_eq!(error_code(&answer), "forbidden");
        } else {
            assert_eq!(status, StatusCode::OK, "{method} {path}: {answer}");
        }
    }
    for (method, path, body, _) in f.routes() {
        let (status, answer) = f.call(method.clone(), &path, Some(&f.editor), body);
        // Stopping a finished run is a conflict; everything else succeeds.
        let expected = if path.ends_with("/stop") {
            StatusCode::CONFLICT
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }
}

#[test]
fn runs_are_listed_in_pages_and_filtered() {
    let f = fixture();
    let all = f.get("/api/v1/runs");
    let runs = all["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[1]["id"], f.bad_run.as_str(), "newest first");
    assert_eq!(runs[0]["pipeline"], "hostile");
    assert!(all["next_cursor"].is_null());
    assert!(runs[0]["duration_ms"].as_i64().unwrap() >= 0);

    let first = f.get("/api/v1/runs?limit=2");
    assert_eq!(first["runs"][1]["id"], f.bad_run.as_str());
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = f.get(&format!("/api/v1/runs?limit=2&cursor={cursor}"));
    assert_eq!(second["runs"][0]["id"], f.good_run.as_str());
    assert_eq!(second["runs"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());

    let failed = f.get("/api/v1/runs?status=failed");
    assert_eq!(failed["runs"].as_array().unwrap().len(), 1);
    let good = f.get("/api/v1/runs?pipeline=good&order=oldest");
    assert_eq!(good["runs"][0]["id"], f.good_run.as_str());
    let future = f.get("/api/v1/runs?from=2999-01-01T00:00:00Z");
    assert!(future["runs"].as_array().unwrap().is_empty());
    let past = f.get("/api/v1/runs?before=2000-01-01T00:00:00Z");
    assert!(past["runs"].as_array().unwrap().is_empty());
    // Page sizes out of range are capped, not refused.
    assert_eq!(
        f.get("/api/v1/runs?limit=1000000")["runs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        f.get("/api/v1/runs?limit=0")["runs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    for bad in [
        "status=exploded",
        "from=yesterday",
        "before=2026-13-45",
        "cursor=not-a-cursor",
        "order=sideways",
        "limit=-1",
        "limit=ten",
    ] {
        let (status, body) = f.call(
            Method::GET,
            &format!("/api/v1/runs?{bad}"),
            Some(&f.viewer),
            None,
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(error_code(&body), "bad_request");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10);
    }
}

#[test]
fn runs_are_tagged_and_filtered_by_tag() {
    let f = fixture();
    let ids = |page: &Value| -> Vec<String> {
        page["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| run["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let nightly = f.get("/api/v1/runs?tag=nightly");
    assert_eq!(nightly["runs"].as_array().unwrap().len(), 2);
    assert!(!ids(&nightly).contains(&f.bad_run));
    assert_eq!(nightly["runs"][1]["tags"], json!(["nightly"]));
    assert!(
        f.get("/api/v1/runs?tag=night")["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // An empty tag filters nothing.
    assert_eq!(
        f.get("/api/v1/runs?tag=")["runs"].as_array().unwrap().len(),
        3
    );
    let paged = f.get("/api/v1/runs?tag=nightly&limit=1");
    let cursor = paged["next_cursor"].as_str().unwrap();
    let rest = f.get(&format!("/api/v1/runs?tag=nightly&limit=1&cursor={cursor}"));
    assert_eq!(ids(&rest), std::slice::from_ref(&f.good_run));

    let path = format!("/api/v1/runs/{}/tags", f.bad_run);
    let (status, answer) = f.call(
        Method::POST,
        &path,
        Some(&f.editor),
        Some(json!({"tags": ["flaky", "nightly"]})),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["tags"], json!(["flaky", "nightly"]));
    assert_eq!(
        f.get(&format!("/api/v1/runs/{}", f.bad_run))["run"]["tags"],
        json!(["flaky", "nightly"])
    );
    assert_eq!(
        f.get("/api/v1/runs?tag=nightly")["runs"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (status, answer) = f.call(
        Method::DELETE,
        &path,
        Some(&f.editor),
        Some(json!({"tags": ["nightly", "never-there"]})),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["tags"], json!(["flaky"]));
    // By name and `latest` too, as every run route.
    let (status, answer) = f.call(
        Method::POST,
        "/api/v1/runs/latest/tags",
        Some(&f.editor),
        Some(json!({"tags": ["newest"]})),
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        f.get("/api/v1/runs?tag=newest")["runs"][0]["pipeline"],
        "hostile"
    );

    for (body, expected) in [
        (json!({"tags": []}), StatusCode::BAD_REQUEST),
        (json!({"tags": ["  "]}), StatusCode::BAD_REQUEST),
        (json!({"tags": ["a\u{1f}b"]}), StatusCode::BAD_REQUEST),
        (json!({"tags": ["line\nbreak"]}), StatusCode::BAD_REQUEST),
        (json!({"tags": vec!["t"; 101]}), StatusCode::BAD_REQUEST),
        (json!({"tags": "nightly"}), StatusCode::BAD_REQUEST),
        (json!({"tag": ["x"]}), StatusCode::BAD_REQUEST),
        (json!({"tags": ["t".repeat(1000)]}), StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) = f.call(Method::POST, &path, Some(&f.editor), Some(body.clone()));
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().len() > 10);
    }
    assert_eq!(
        f.get(&format!("/api/v1/runs/{}", f.bad_run))["run"]["tags"],
        json!(["flaky"]),
        "refused requests changed nothing"
    );
    for unknown in ["0190f2a4-0000-7000-8000-000000000000", "no-such-run"] {
        let (status, answer) = f.call(
            Method::POST,
            &format!("/api/v1/runs/{unknown}/tags"),
            Some(&f.editor),
            Some(json!({"tags": ["x"]})),
        );
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}: {answer}");
    }
}

#[test]
fn a_run_comes_with_its_steps_and_edges() {
    let f = fixture();
    let run = f.get(&format!("/api/v1/runs/{}", f.bad_run));
    assert_eq!(run["run"]["status"], "failed");
    let steps = run["steps"].as_array().unwrap();
    let status_of = |invocation: &str| {
        steps
            .iter()
            .find(|step| step["invocation"] == invocation)
            .map(|step| step["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status_of("numbers").as_deref(), Some("completed"));
    assert_eq!(status_of("broken").as_deref(), Some("failed"));
    assert_eq!(
        run["edges"].as_array().unwrap().len(),
        2,
        "numbers → total → broken"
    );
    assert!(!run["outputs"].as_array().unwrap().is_empty());
    // Brief: what a picture of the run needs, the same steps and edges, no inputs or outputs.
    let brief = f.get(&format!("/api/v1/runs/{}?steps=brief", f.bad_run));
    let keys = |step: &Value| {
        let mut keys: Vec<String> = step.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let brief_steps = brief["steps"].as_array().unwrap();
    assert_eq!(
        keys(&brief_steps[0]),
        [
            "attempt",
            "ended_at",
            "group",
            "id",
            "invocation",
            "started_at",
            "status",
            "status_reason"
        ]
    );
    assert_eq!(
        brief_steps
            .iter()
            .map(|step| (&step["id"], &step["status"]))
            .collect::<Vec<_>>(),
        steps
            .iter()
            .map(|step| (&step["id"], &step["status"]))
            .collect::<Vec<_>>()
    );
    assert!(
        keys(&steps[0]).contains(&"parameters".to_owned()),
        "{:?}",
        keys(&steps[0])
    );
    assert_eq!(brief["edges"], run["edges"]);
    assert!(
        brief.get("inputs").is_none() && brief.get("outputs").is_none(),
        "{brief}"
    );
    assert_eq!(
        f.get(&format!("/api/v1/runs/{}?steps=whole", f.bad_run)),
        run
    );
    let (status, body) = f.call(
        Method::GET,
        &format!("/api/v1/runs/{}?steps=some", f.bad_run),
        Some(&f.viewer),
        None,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // `latest` and names find runs too.
    assert_eq!(f.get("/api/v1/runs/latest")["run"]["pipeline"], "hostile");
    let name = run["run"]["name"].as_str().unwrap();
    assert_eq!(
        f.get(&format!("/api/v1/runs/{name}"))["run"]["id"],
        f.bad_run.as_str()
    );

    let (status, body) = f.call(
        Method::GET,
        "/api/v1/runs/no-such-run",
        Some(&f.viewer),
        None,
    );
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[test]
fn a_runs_steps_come_a_page_at_a_time() {
    let f = fixture();
    let run = f.run_mapped(25);
    let whole = f.get(&format!("/api/v1/runs/{run}"));
    let ids = |steps: &Value| -> Vec<String> {
        steps
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut expected = ids(&whole["steps"]);
    assert!(expected.len() > 25, "{}", expected.len());

    // Seven at a time, whole: every step once, each page with the links of its own steps.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => format!("/api/v1/runs/{run}/steps?limit=7"),
            Some(cursor) => format!("/api/v1/runs/{run}/steps?limit=7&cursor={cursor}"),
        };
        let page = f.get(&path);
        pages += 1;
        let mine = ids(&page["steps"]);
        assert!(mine.len() <= 7 && !mine.is_empty(), "{page}");
        assert!(page["steps"][0].get("parameters").is_some(), "{page}");
        for edge in page["edges"].as_array().unwrap() {
            assert!(
                mine.contains(&edge[1].as_str().unwrap().to_owned()),
                "{edge}"
            );
        }
        for link in page["inputs"].as_array().unwrap() {
            assert!(mine.contains(&link["step_run"].as_str().unwrap().to_owned()));
        }
        assert!(!page["outputs"].as_array().unwrap().is_empty());
        paged.extend(mine);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, expected.len().div_ceil(7));
    let in_page_order = paged.clone();
    paged.sort();
    expected.sort();
    assert_eq!(paged, expected);
    let edges = |page: &Value| page["edges"].as_array().unwrap().len();
    let everything = f.get(&format!("/api/v1/runs/{run}/steps?limit=100000"));
    assert_eq!(ids(&everything["steps"]), in_page_order);
    assert_eq!(edges(&everything), edges(&whole));
    assert!(everything["next_cursor"].is_null());

    // Brief pages: no inputs or outputs; a status filter.
    let brief = f.get(&format!("/api/v1/runs/{run}/steps?steps=brief&limit=3"));
    assert!(brief.get("inputs").is_none() && brief.get("outputs").is_none());
    assert!(brief["steps"][0].get("parameters").is_none());
    assert_eq!(brief["steps"][0]["group"], "square");
    let failed = f.get(&format!("/api/v1/runs/{}/steps?status=failed", f.bad_run));
    let failed: Vec<&str> = failed["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["invocation"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["broken"]);
    assert!(ids(&f.get(&format!("/api/v1/runs/{run}/steps?status=failed"))["steps"]).is_empty());

    // Wrong input: a 400 that says what; an unknown run: a 404.
    let other_runs_step =
        ids(&f.get(&format!("/api/v1/runs/{}/steps", f.bad_run))["steps"])[0].clone();
    for (query, named) in [
        ("limit=many", "limit"),
        ("limit=-1", "limit"),
        ("status=sideways", "sideways"),
        ("cursor=nope", "nope"),
        ("steps=some", "steps"),
        (&*format!("cursor={other_runs_step}"), "no step run of run"),
    ] {
        let (status, body) = f.call(
            Method::GET,
            &format!("/api/v1/runs/{run}/steps?{query}"),
            Some(&f.viewer),
            None,
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{query}: {message}");
    }
    let (status, body) = f.call(
        Method::GET,
        "/api/v1/runs/no-such-run/steps",
        Some(&f.viewer),
        None,
    );
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = f.call(
        Method::GET,
        &format!("/api/v1/runs/{run}/steps"),
        None,
        None,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A GET with `Accept-Encoding: gzip`: the status, the `Content-Encoding` (if any), the
/// body as sent.
fn get_gzip(f: &crate::common::Fixture, path: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    f.runtime.block_on(async {
        let response = f
            .http
            .get(format!("{}{path}", f.base))
            .bearer_auth(&f.viewer)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        let encoding = response
            .headers()
            .get("content-encoding")
            .map(|value| value.to_str().unwrap().to_owned());
        (
            response.status(),
            encoding,
            response.bytes().await.unwrap().to_vec(),
        )
    })
}

#[test]
fn json_and_the_page_are_gzipped_for_clients_that_accept_it_and_files_are_not() {
    let f = fixture();
    let path = format!("/api/v1/runs/{}", f.good_run);
    let (status, encoding, body) = get_gzip(&f, &path);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain).unwrap();
    assert!(
        body.len() < plain.len(),
        "{} >= {}",
        body.len(),
        plain.len()
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&plain).unwrap(),
        f.get(&path)
    );
    // The page's script too; a client that does not ask gets it as is.
    let (_, encoding, _) = get_gzip(&f, "/assets/app.js");
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let plain_script = f.runtime.block_on(async {
        let response = f
            .http
            .get(format!("{}/assets/app.js", f.base))
            .send()
            .await
            .unwrap();
        assert!(response.headers().get("content-encoding").is_none());
        response.text().await.unwrap()
    });
    assert!(
        plain_script.contains("function"),
        "{}",
        &plain_script[..100]
    );
    // Small answers are not worth it.
    let (_, encoding, _) = get_gzip(&f, "/api/v1/health");
    assert_eq!(encoding, None);
    // An artifact's file is served as stored, even HTML of several KiB.
    let report = f.run_report(&"a long note. ".repeat(400));
    let version = f.get(&format!("/api/v1/artifact-versions/{report}"));
    let name = version["version"]["files"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, encoding, body) = get_gzip(
        &f,
        &format!("/api/v1/artifact-versions/{report}/files/{name}"),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(encoding, None, "{name}");
    assert!(body.len() > 4000 && String::from_utf8(body).unwrap().contains("a long note."));
    // Event streams are not held back by an encoder.
    let (status, encoding, body) = get_gzip(&f, &format!("/api/v1/runs/{}/events", f.good_run));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(encoding, None);
    assert!(String::from_utf8(body).unwrap().contains("event: end"));
}

#[test]
fn a_failed_step_shows_its_error_attempts_and_log() {
    let f = fixture();
    let step = f.get(&format!("/api/v1/step-runs/{}", f.failed_step));
    assert_eq!(step["step_run"]["status"], "failed");
    assert!(
        step["step_run"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broken on 3")
    );
    assert_eq!(step["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(step["inputs"].as_array().unwrap().len(), 1);
    assert!(step["has_log"].as_bool().unwrap());
    assert!(step["cache"].as_str().unwrap().starts_with("computed"));
    let runs_on = step["runs_on"].as_str().unwrap();
    assert!(
        runs_on.starts_with("inline, in the orchestrator on "),
        "{runs_on}"
    );
    assert!(
        runs_on.contains(&format!("(process {})", std::process::id())),
        "{runs_on}"
    );

    let log = f.get(&format!("/api/v1/step-runs/{}/logs", f.failed_step));
    let lines = log["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "about to fail on 3"),
        "{log}"
    );
    assert!(log["next_offset"].is_null());
    assert_eq!(log["live"], false);

    // The producer's log: filtered by level and searched.
    let run = f.get(&format!("/api/v1/runs/{}", f.good_run));
    let numbers = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["invocation"] == "numbers")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let warnings = f.get(&format!("/api/v1/step-runs/{numbers}/logs?level=warn"));
    let warnings = warnings["lines"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("<script>")
    );
    let found = f.get(&format!("/api/v1/step-runs/{numbers}/logs?q=MAKING"));
    assert_eq!(found["lines"][0]["message"], "making 100 numbers");
    let paged = f.get(&format!("/api/v1/step-runs/{numbers}/logs?limit=1"));
    assert_eq!(paged["lines"].as_array().unwrap().len(), 1);
    let next = paged["next_offset"].as_u64().unwrap();
    let rest = f.get(&format!("/api/v1/step-runs/{numbers}/logs?offset={next}"));
    assert_ne!(rest["lines"][0]["line"], paged["lines"][0]["line"]);

    for bad in [
        format!("/api/v1/step-runs/{}/logs?level=loud", f.failed_step),
        format!("/api/v1/step-runs/{}/logs?offset=-3", f.failed_step),
        "/api/v1/step-runs/not-a-uuid".into(),
        "/api/v1/step-runs/not-a-uuid/logs".into(),
    ] {
        let (status, body) = f.call(Method::GET, &bad, Some(&f.viewer), None);
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }
    let unknown = weft_core::StepRunId::new();
    let (status, body) = f.call(
        Method::GET,
        &format!("/api/v1/step-runs/{unknown}"),
        Some(&f.viewer),
        None,
    );
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[test]
fn versions_show_metadata_files_lineage_and_tags() {
    let f = fixture();
    let artifacts = f.get("/api/v1/artifacts");
    assert!(
        artifacts["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "good::numbers::output")
    );
    let versions = f.get("/api/v1/artifacts/good::numbers::output/versions");
    assert_eq!(versions["versions"][0]["id"], f.version.as_str());
    let version = f.get(&format!("/api/v1/artifact-versions/{}", f.version));
    assert_eq!(version["version"]["materializer"], "weft.npy");
    assert!(
        version["metadata"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["key"] == "shape"),
        "{version}"
    );
    assert!(!version["visualizations"].as_array().unwrap().is_empty());
    assert!(
        version["load"]["rust"]
            .as_str()
            .unwrap()
            .contains(&f.version)
    );
    assert!(
        version["load"]["python"]
            .as_str()
            .unwrap()
            .contains("numpy.load")
    );
    // Small enough to be kept in the metadata store: the Python line writes it out first.
    let id = &f.version;
    assert_eq!(
        version["load"]["python"],
        format!(
            "import subprocess; subprocess.run([\"weft\", \"artifacts\", \"export\", \"{id}\", \"--out\", \"weft-export/{id}\"], check=True); import numpy; value = numpy.load(\"weft-export/{id}/data.npy\")"
        ),
    );
    assert_eq!(version["producer"]["invocation"], "numbers");
    assert_eq!(version["consumers"][0]["invocation"], "total");
    // The same for a JSON value.
    let output = f.output_of(&f.good_run, "total");
    let small = f.get(&format!("/api/v1/artifact-versions/{output}"));
    assert_eq!(
        small["load"]["python"],
        format!(
            "import subprocess; subprocess.run([\"weft\", \"artifacts\", \"export\", \"{output}\", \"--out\", \"weft-export/{output}\"], check=True); import json; value = json.load(open(\"weft-export/{output}/data.json\"))"
        ),
        "{small}"
    );

    // The file as written, with its type.
    let (status, bytes, kind) = f.runtime.block_on(async {
        let response = f
            .http
            .get(format!(
                "{}/api/v1/artifact-versions/{}/files/data.npy",
                f.base, f.version
            ))
            .bearer_auth(&f.viewer)
            .send()
            .await
            .unwrap();
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        (response.status(), response.bytes().await.unwrap(), kind)
    });
    assert_eq!(status, StatusCode::OK);
    assert!(bytes.starts_with(b"\x93NUMPY"));
    assert_eq!(kind, "application/octet-stream");

    let lineage = f.get(&format!(
        "/api/v1/artifact-versions/{}/lineage?direction=downstream",
        f.version
    ));
    assert!(lineage["upstream"].is_null() && lineage["downstream"].is_object());
    // The numbers are read by `total`, which made one version: two records downstream.
    let downstream = |limit: &str| {
        f.get(&format!(
            "/api/v1/artifact-versions/{}/lineage?direction=downstream{limit}",
            f.version
        ))["downstream"]
            .clone()
    };
    let whole = downstream("");
    assert_eq!(whole["truncated"], json!(false), "{whole}");
    assert_eq!(
        (
            whole["step_runs"].as_array().unwrap().len(),
            whole["artifact_versions"].as_array().unwrap().len()
        ),
        (1, 1)
    );
    assert_eq!(downstream("&limit=2"), whole);
    let cut = downstream("&limit=1");
    assert_eq!(cut["truncated"], json!(true), "{cut}");
    assert_eq!(cut["artifact_versions"], json!([]), "{cut}");
    for bad in ["0", "-1", "many", "100001", "1e3"] {
        let (status, body) = f.call(
            Method::GET,
            &format!(
                "/api/v1/artifact-versions/{}/lineage?limit={bad}",
                f.version
            ),
            Some(&f.viewer),
            None,
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("limit"),
            "{body}"
        );
    }

    let tag = |method: Method, tags: Value| {
        f.call(
            method,
            &format!("/api/v1/artifact-versions/{}/tags", f.version),
            Some(&f.editor),
            Some(json!({"tags": tags})),
        )
    };
    let (status, tagged) = tag(Method::POST, json!(["gold", "<b>bold</b>"]));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tagged["tags"], json!(["<b>bold</b>", "gold"]));
    let (_, untagged) = tag(Method::DELETE, json!(["gold"]));
    assert_eq!(untagged["tags"], json!(["<b>bold</b>"]));
    for bad in [json!([]), json!([""]), json!("gold")] {
        let (status, body) = tag(Method::POST, bad.clone());
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }
}

#[test]
fn downloads_never_leave_the_version() {
    let f = fixture();
    let v = &f.version;
    for name in [
        "..%2F..%2Fweft.db",
        "%2e%2e",
        "..",
        "data.npy%00",
        "..%5Cweft.db",
        "weft.db",
        "%2Fetc%2Fpasswd",
    ] {
        let path = format!("/api/v1/artifact-versions/{v}/files/{name}");
        let (status, body) = f.call(Method::GET, &path, Some(&f.viewer), None);
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{path}: {status} {body}"
        );
        assert!(
            matches!(error_code(&body), "bad_request" | "not_found"),
            "{path}: {body}"
        );
    }
    // Dot segments a client sends as they are reach another route, or none.
    let (status, body) = f.call(
        Method::GET,
        &format!("/api/v1/artifact-versions/{v}/files/../../weft.db"),
        Some(&f.viewer),
        None,
    );
    assert!(
        matches!(error_code(&body), "bad_request" | "not_found"),
        "{status} {body}"
    );
}

#[test]
fn bodies_that_are_too_large_or_malformed_are_refused() {
    let f = fixture();
    let path = format!("/api/v1/artifact-versions/{}/tags", f.version);
    // Announced as too large: refused before the body is read (a client sending it all
    // may see the connection closed first, so this one only announces it).
    let answer = f.runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = f.base.strip_prefix("http://").unwrap();
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n{{\"tags\": [",
            f.editor
        );
        socket.write_all(request.as_bytes()).await.unwrap();
        // Read the answer (the server need not close the connection after it).
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !String::from_utf8_lossy(&answer).contains("too_large") {
            match tokio::time::timeout_at(deadline, socket.read(&mut buffer)).await {
                Ok(Ok(read)) if read > 0 => answer.extend_from_slice(&buffer[..read]),
                _ => break,
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"too_large\""), "{answer}");
    // Sent without a length, it is cut off at the limit.
    let huge = json!({"tags": ["x".repeat(100_000)]});
    let (status, body) = f.runtime.block_on(async {
        let chunks = futures::stream::iter(
            serde_json::to_vec(&huge)
                .unwrap()
                .chunks(8192)
                .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
                .collect::<Vec<_>>(),
        );
        let response = f
            .http
            .post(format!("{}{path}", f.base))
            .bearer_auth(&f.editor)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await;
        match response {
            Ok(response) => (response.status(), response.json::<Value>().await.unwrap()),
            // The server may close the connection before the client sent everything.
            Err(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": {"code": "too_large"}}),
            ),
        }
    });
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    let (status, body) = f.call(
        Method::POST,
        &path,
        Some(&f.editor),
        Some(json!({"tags": ["a"], "extra": 1})),
    );
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (status, body) = f.call(
        Method::POST,
        "/api/v1/cache/expire",
        Some(&f.editor),
        Some(json!({"step": "x", "all": true})),
    );
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (status, body) = f.call(Method::GET, "/api/v1/no/such/route", Some(&f.viewer), None);
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[test]
fn sessions_need_their_token_to_change_anything_and_end_with_their_key() {
    let f = fixture();
    let (id, key) = f.key(Role::Editor, None);
    f.runtime.block_on(async {
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let url = |path: &str| format!("{}{path}", f.base);
        let refused = browser
            .post(url("/api/v1/session"))
            .json(&json!({"key": "weft_000000000000_nope"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let signed_in = browser
            .post(url("/api/v1/session"))
            .json(&json!({"key": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.status(), StatusCode::OK);
        let cookie = signed_in.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let session: Value = signed_in.json().await.unwrap();
        let csrf = session["csrf"].as_str().unwrap().to_owned();
        assert_eq!(session["role"], "editor");

        // Reading needs only the cookie.
        let runs = browser.get(url("/api/v1/runs")).send().await.unwrap();
        assert_eq!(runs.status(), StatusCode::OK);
        // Changing something needs the token too.
        let tags = url(&format!("/api/v1/artifact-versions/{}/tags", f.version));
        let forged = browser
            .post(&tags)
            .json(&json!({"tags": ["x"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        let wrong = browser
            .post(&tags)
            .header("x-weft-csrf", "guess")
            .json(&json!({"tags": ["x"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
        let allowed = browser
            .post(&tags)
            .header("x-weft-csrf", &csrf)
            .json(&json!({"tags": ["x"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(allowed.status(), StatusCode::OK);
    });
    // Revoking the key ends its sessions.
    f.revoke(&id);
    f.runtime.block_on(async {
        let browser = reqwest::Client::new();
        let current = browser
            .get(format!("{}/api/v1/session", f.base))
            .header("cookie", "weft_session=made-up")
            .send()
            .await
            .unwrap();
        assert_eq!(current.status(), StatusCode::UNAUTHORIZED);
    });
}

#[test]
fn the_openapi_document_lists_every_route() {
    let f = fixture();
    let (status, document) = f.call(Method::GET, "/api/v1/openapi.json", None, None);
    assert_eq!(status, StatusCode::OK);
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/api/v1/runs",
        "/api/v1/runs/{run}",
        "/api/v1/runs/{run}/events",
        "/api/v1/runs/{run}/stop",
        "/api/v1/runs/{run}/tags",
        "/api/v1/step-runs/{id}",
        "/api/v1/step-runs/{id}/logs",
        "/api/v1/step-runs/{id}/logs/tail",
        "/api/v1/artifacts",
        "/api/v1/artifacts/{name}/versions",
        "/api/v1/artifact-versions/{id}",
        "/api/v1/artifact-versions/{id}/files/{name}",
        "/api/v1/artifact-versions/{id}/lineage",
        "/api/v1/artifact-versions/{id}/tags",
        "/api/v1/cache/expire",
        "/api/v1/session",
        "/api/v1/health",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys()
        );
    }
}

#[test]
fn a_log_is_tailed_as_events_until_its_step_ended() {
    let f = fixture();
    let body = f.runtime.block_on(async {
        let response = f
            .http
            .get(format!(
                "{}/api/v1/step-runs/{}/logs/tail",
                f.base, f.failed_step
            ))
            .bearer_auth(&f.viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        // The step ended: the stream sends its lines, then `end`, and closes.
        tokio::time::timeout(std::time::Duration::from_secs(10), response.text())
            .await
            .expect("the stream ends")
            .unwrap()
    });
    let lines = body.find("event: lines").expect("lines");
    let end = body.find("event: end").expect("end");
    assert!(lines < end && body.contains("about to fail on 3"), "{body}");
    let (status, error) = f.call(
        Method::GET,
        &format!("/api/v1/step-runs/{}/logs/tail?level=loud", f.failed_step),
        Some(&f.viewer),
        None,
    );
    assert_eq!(
        (status, error_code(&error)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (status, _) = f.call(
        Method::GET,
        &format!("/api/v1/step-runs/{}/logs/tail", f.failed_step),
        None,
        None,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn every_follower_of_a_running_run_gets_its_changes_then_its_end() {
    let f = fixture();
    let (run, gate, running) = f.start_watched();
    let bodies = f.runtime.block_on(async {
        let follow = || async {
            let response = f
                .http
                .get(format!("{}/api/v1/runs/{run}/events", f.base))
                .bearer_auth(&f.viewer)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response
        };
        let (first, second) = (follow().await, follow().await);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        std::fs::write(&gate, b"").unwrap();
        let read = |response: reqwest::Response| async move {
            tokio::time::timeout(std::time::Duration::from_secs(30), response.text())
                .await
                .expect("the stream ends with the run")
                .unwrap()
        };
        (read(first).await, read(second).await)
    });
    running.join().unwrap();
    for body in [&bodies.0, &bodies.1] {
        assert!(
            body.contains("\"invocation\":\"gated\",\"status\":\"completed\""),
            "{body}"
        );
        assert!(body.contains("\"kind\":\"run\",\"id\""), "{body}");
        assert!(
            body.trim_end().ends_with("event: end\ndata: completed"),
            "{body}"
        );
    }
    // A finished run's events end at once.
    let ended = f.runtime.block_on(async {
        let response = f
            .http
            .get(format!("{}/api/v1/runs/{}/events", f.base, f.good_run))
            .bearer_auth(&f.viewer)
            .send()
            .await
            .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), response.text())
            .await
            .expect("the stream ends")
            .unwrap()
    });
    assert_eq!(ended.trim(), "event: end\ndata: completed");
}
