//! A project whose artifacts live only in an S3 bucket (the server `scripts/s3-up.sh`
//! starts, or `WEFT_TEST_S3_ENDPOINT`): runs, isolated steps, logs, verification and
//! exports through the binaries, configured by the standard AWS variables.

use crate::common::Project;

/// The AWS settings of the test server, and an artifact store URL of its own in its bucket.
pub(crate) fn s3_environment() -> Vec<(&'static str, String)> {
    let endpoint =
        std::env::var("WEFT_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9321".into());
    assert!(
        std::net::TcpStream::connect(endpoint.trim_start_matches("http://")).is_ok(),
        "no S3 server at {endpoint} (start one with scripts/s3-up.sh)"
    );
    let prefix = format!("e2e-{}-{}", std::process::id(), fastrand::u64(..));
    vec![
        ("WEFT_ARTIFACTS", format!("s3://weft-test/{prefix}")),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "weft".into()),
        ("AWS_SECRET_ACCESS_KEY", "weft-test-secret".into()),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
    ]
}

#[test]
fn a_project_with_its_artifacts_on_s3_runs_verifies_and_exports() {
    let project = Project::new();
    let env = s3_environment();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let pipelines = |args: &[&str]| project.run(crate::common::PIPELINES, args, &env);
    let weft = |args: &[&str]| project.run(crate::common::WEFT, args, &env);

    // 100,000 numbers (800 KB, a file in the bucket) and small values kept in records.
    let run = pipelines(&["run", "fragile", "--param", "size=100000"]);
    assert_eq!(run.code, 0, "{run:?}");
    // Isolated steps: each child reads and writes the bucket itself.
    let run = pipelines(&["run", "isolated_fan", "-p", "width=4"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = pipelines(&["run", "training", "--param", "epochs=50"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        !project.path().join(".weft/artifacts").exists(),
        "nothing is stored on the local disk"
    );

    let verified = weft(&["artifacts", "verify"]);
    assert_eq!(verified.code, 0, "{verified:?}");
    assert!(verified.stdout.contains("intact"), "{verified:?}");
    let shown = weft(&["artifacts", "show", "fragile::prepare::output:latest"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(shown.stdout.contains("s3://weft-test/"), "{shown:?}");
    let logs = weft(&["logs", "latest", "train_softmax"]);
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(logs.stdout.contains("training"), "{logs:?}");

    let out = project.path().join("exported");
    let exported = weft(&[
        "artifacts",
        "export",
        "fragile::prepare::output:latest",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(exported.code, 0, "{exported:?}");
    let npy = std::fs::read(out.join("data.npy")).unwrap();
    assert!(npy.starts_with(b"\x93NUMPY"), "a NumPy file");
    assert_eq!(npy.len(), 128 + 800_000);

    // A cached rerun checks the bucket's objects (HEAD) instead of reading them.
    let rerun = pipelines(&["run", "fragile", "--param", "size=100000"]);
    assert_eq!(rerun.code, 0, "{rerun:?}");
    let shown = project.json_with(&["runs", "show", "latest", "--json"], &env);
    assert!(
        shown["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|step| step["status"] == "cached"),
        "{shown}"
    );
}

/// Runs `fragile` with the S3 environment changed by `change`; what it printed.
fn run_with(
    project: &Project,
    change: impl FnOnce(&mut Vec<(&'static str, String)>),
) -> crate::common::Finished {
    let mut env = s3_environment();
    change(&mut env);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    project.run(crate::common::PIPELINES, &["run", "fragile"], &env)
}

#[test]
fn a_store_that_cannot_be_reached_is_refused_before_the_run_starts() {
    let project = Project::new();
    let no_bucket = run_with(&project, |env| env[0].1 = "s3://".into());
    assert!(
        no_bucket.stderr.contains("no bucket is named"),
        "{no_bucket:?}"
    );
    let missing = run_with(&project, |env| {
        env[0].1 = "s3://no-such-bucket-here/x".into()
    });
    assert!(
        missing.stderr.contains("s3://no-such-bucket-here/x")
            && missing.stderr.contains("NoSuchBucket"),
        "{missing:?}"
    );
    let unreachable = run_with(&project, |env| {
        env[1].1 = "http://127.0.0.1:1".into();
    });
    assert!(
        unreachable
            .stderr
            .contains("cannot open the artifact store")
            && unreachable.stderr.contains("Connection refused"),
        "{unreachable:?}"
    );
    for refused in [&no_bucket, &missing, &unreachable] {
        assert_ne!(refused.code, 0, "{refused:?}");
        assert!(
            !refused.stdout.contains("started"),
            "no run starts: {refused:?}"
        );
    }
    let runs = project.weft(&["runs", "list", "--json"]);
    assert!(
        runs.code != 0 || runs.stdout.trim() == "[]",
        "nothing was recorded: {runs:?}"
    );
}

#[test]
fn versions_of_a_previous_artifact_store_stay_readable() {
    let project = Project::new();
    // First on local files...
    let run = project.pipelines(&["run", "fragile", "--param", "size=5000"]);
    assert_eq!(run.code, 0, "{run:?}");
    // ...then the project moves its artifacts to a bucket.
    let env = s3_environment();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let weft = |args: &[&str]| project.run(crate::common::WEFT, args, &env);
    let verified = weft(&["artifacts", "verify"]);
    assert_eq!(verified.code, 0, "{verified:?}");
    let exported = weft(&[
        "artifacts",
        "export",
        "fragile::prepare::output:1",
        "--out",
        project.path().join("old").to_str().unwrap(),
    ]);
    assert_eq!(exported.code, 0, "{exported:?}");
    // New results go to the bucket (a cache key names its artifact store: results in the old
    // one are not reused, though they stay readable).
    let rerun = project.run(
        crate::common::PIPELINES,
        &["run", "fragile", "--param", "size=5000"],
        &env,
    );
    assert_eq!(rerun.code, 0, "{rerun:?}");
    let changed = project.run(
        crate::common::PIPELINES,
        &["run", "fragile", "--param", "size=6000"],
        &env,
    );
    assert_eq!(changed.code, 0, "{changed:?}");
    let shown = project.json_with(
        &[
            "artifacts",
            "show",
            "fragile::prepare::output:latest",
            "--json",
        ],
        &env,
    );
    assert!(
        shown["uri"]
            .as_str()
            .unwrap()
            .starts_with("s3://weft-test/"),
        "{shown}"
    );
    let verified = weft(&["artifacts", "verify"]);
    assert_eq!(verified.code, 0, "{verified:?}");
}

#[test]
fn following_a_running_steps_log_on_s3_says_when_it_will_show() {
    use std::io::BufRead as _;

    let project = Project::new();
    let env = s3_environment();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut run, gate) = project.start_gated_talk(&pairs);
    let mut follow = project
        .command(
            crate::common::WEFT,
            &["logs", "latest", "talkative", "--follow"],
        )
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let said = std::io::BufReader::new(follow.stderr.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(
        said.contains("is not a local folder") && said.contains("when the step ends"),
        "{said}"
    );
    std::fs::write(&gate, "").unwrap();
    let lines: Vec<String> = std::io::BufReader::new(follow.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(follow.wait().unwrap().success());
    assert_eq!(run.wait().unwrap().code(), Some(0));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("before the gate") && lines[1].contains("after the gate"));
}

/// `weft server` over a project whose artifacts are in the bucket: a step's log is paged and
/// searched, and a version's file downloaded, read from the bucket in ranges.
#[test]
fn the_server_reads_logs_and_files_from_the_bucket() {
    let project = Project::new();
    let env = s3_environment();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = project.run(
        crate::common::PIPELINES,
        &["run", "training", "--param", "epochs=50"],
        &env,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let key = project.run(
        crate::common::WEFT,
        &["server", "keys", "create", "--role", "viewer"],
        &env,
    );
    assert_eq!(key.code, 0, "{key:?}");
    let key = key.stdout.trim().to_owned();
    let mut server = project
        .command(crate::common::WEFT, &["server", "--address", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line}"))
        .to_owned();
    let get = |path: &str| -> serde_json::Value {
        let output = std::process::Command::new("curl")
            .args([
                "-fsS",
                "-H",
                &format!("Authorization: Bearer {key}"),
                &format!("{base}{path}"),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let detail = get("/api/v1/runs/latest");
    let train = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["invocation"] == "train_softmax")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = get(&format!("/api/v1/step-runs/{train}/logs?q=training"));
    assert!(!log["lines"].as_array().unwrap().is_empty(), "{log}");
    let second = get(&format!("/api/v1/step-runs/{train}/logs?offset=1&limit=1"));
    assert_eq!(second["lines"][0]["line"], 1, "{second}");
    let output = detail["outputs"][0]["artifact_version"]
        .as_str()
        .unwrap()
        .to_owned();
    let version = get(&format!("/api/v1/artifact-versions/{output}"));
    assert!(
        version["version"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("s3://"),
        "{version}"
    );
    let name = version["version"]["files"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let size = version["version"]["files"][0]["size"].as_u64().unwrap();
    let file = std::process::Command::new("curl")
        .args(["-fsS", "-H", &format!("Authorization: Bearer {key}")])
        .arg(format!(
            "{base}/api/v1/artifact-versions/{output}/files/{name}"
        ))
        .output()
        .unwrap();
    assert!(file.status.success());
    assert_eq!(file.stdout.len() as u64, size);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(server.wait().unwrap().success());
}

#[test]
fn credentials_region_and_endpoint_come_from_an_aws_profile() {
    let project = Project::new();
    let settings = s3_environment();
    let setting = |name: &str| {
        settings
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
            .unwrap()
    };
    let aws = project.path().join("aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n\
         [weft-test]\naws_access_key_id = weft\naws_secret_access_key = weft-test-secret\n",
    )
    .unwrap();
    std::fs::write(
        aws.join("config"),
        format!(
            "[profile weft-test]\nregion = us-east-1\nendpoint_url = {}\n",
            setting("AWS_ENDPOINT_URL")
        ),
    )
    .unwrap();
    let run = |profile: &str, args: &[&str]| {
        let mut command = project.command(crate::common::PIPELINES, args);
        for variable in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
        ] {
            command.env_remove(variable);
        }
        let output = command
            .env("WEFT_ARTIFACTS", setting("WEFT_ARTIFACTS"))
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false")
            .env("AWS_SHARED_CREDENTIALS_FILE", aws.join("credentials"))
            .env("AWS_CONFIG_FILE", aws.join("config"))
            .env("AWS_PROFILE", profile)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let (code, output) = run("weft-test", &["run", "fragile", "--param", "size=100000"]);
    assert_eq!(code, Some(0), "{output}");
    assert!(!project.path().join(".weft/artifacts").exists());

    // A profile the files do not have is refused before anything runs, naming both files;
    // no secret is shown.
    let (code, output) = run("nobody", &["run", "fragile"]);
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("`nobody`") && output.contains("credentials") && output.contains("config"),
        "{output}"
    );
    assert!(!output.contains("weft-test-secret"), "{output}");
    // The default profile (wrong keys, and no endpoint: AWS itself, unreachable here) is
    // refused when the store opens, before any step runs.
    let (code, output) = run("default", &["run", "fragile"]);
    assert_eq!(code, Some(2), "{output}");
    assert!(!output.contains("step `"), "{output}");
}

/// Creates the bucket `weft-test` at the endpoint given, as soon as the server answers.
const CREATE_BUCKET: &str = r#"
import sys, time, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="weft", aws_secret_access_key="weft-test-secret",
                  config=Config(s3={"addressing_style": "path"}))
for attempt in range(300):
    try:
        s3.create_bucket(Bucket="weft-test")
        break
    except Exception:
        time.sleep(0.1)
else:
    sys.exit(1)
"#;

/// The `endurance` pipeline with a first output of 400 MB: uploaded in parts for seconds.
fn large_upload(project: &Project, journal: &std::path::Path) -> std::process::Command {
    project.command(
        crate::common::PIPELINES,
        &[
            "run",
            "endurance",
            "-p",
            &format!("journal={}", journal.display()),
            "-p",
            "pause_ms=0",
            "-p",
            "bytes=400000000",
        ],
    )
}

/// A moto server of this test's own, on a free port, with the bucket `weft-test`; killed
/// when dropped.
struct OwnServer {
    child: std::process::Child,
    endpoint: String,
    log: std::path::PathBuf,
}

impl OwnServer {
    fn start(folder: &std::path::Path) -> Self {
        let venv = std::path::PathBuf::from(
            std::env::var("WEFT_S3_DIR").unwrap_or_else(|_| "/tmp/weft-s3".into()),
        )
        .join("venv/bin");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = folder.join(format!("moto-{port}.log"));
        let child = std::process::Command::new(venv.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "moto from scripts/s3-up.sh's venv ({}): {e}",
                    venv.display()
                )
            });
        let endpoint = format!("http://127.0.0.1:{port}");
        let created = std::process::Command::new(venv.join("python"))
            .args(["-c", CREATE_BUCKET, &endpoint])
            .status()
            .unwrap();
        assert!(
            created.success(),
            "moto did not start: see {}",
            log.display()
        );
        Self {
            child,
            endpoint,
            log,
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_server_dying_during_an_upload_fails_the_step_and_registers_nothing() {
    let project = Project::new();
    let mut server = OwnServer::start(project.path());
    let journal = project.path().join("journal.txt");
    let env = [
        ("WEFT_ARTIFACTS", "s3://weft-test/dying".to_owned()),
        ("AWS_ENDPOINT_URL", server.endpoint.clone()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "weft".into()),
        ("AWS_SECRET_ACCESS_KEY", "weft-test-secret".into()),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
    ];
    let pipeline = large_upload(&project, &journal)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The server dies once the upload of the 400 MB output is sending its parts.
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&server.log).is_ok_and(|log| log.contains("partNumber=")) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no upload in parts began: {}",
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let output = pipeline.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(printed.contains("step `origin` failed"), "{printed}");

    // What was recorded (the metadata store is local): the step failed with the store's
    // reason, and no version was registered.
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let shown = project.run(
        crate::common::WEFT,
        &["runs", "show", "latest", "--json"],
        &[],
    );
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["status"], "failed", "{shown}");
    let origin = crate::common::step(&shown, "origin");
    assert_eq!(origin["status"], "failed", "{origin}");
    let message = origin["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("cannot write artifact file s3://weft-test/dying/endurance/origin/")
            && message.contains("retries"),
        "{message}"
    );
    assert!(
        origin["outputs"]
            .as_object()
            .is_none_or(|outputs| outputs.is_empty()),
        "{origin}"
    );
    let listed = project.run(crate::common::WEFT, &["artifacts", "list", "--json"], &env);
    assert!(!listed.stdout.contains("origin"), "{listed:?}");
}

/// Counts, under a prefix of the bucket `weft-test`, the uploads in parts left unfinished
/// (and of them, those holding parts) and the objects: `uploads with-parts objects`, then
/// the objects' keys.
const COUNT_UPLOADS: &str = r#"
import sys, boto3
from botocore.config import Config
endpoint, prefix = sys.argv[1:3]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="weft", aws_secret_access_key="weft-test-secret",
                  config=Config(s3={"addressing_style": "path"}))
uploads = [u for u in s3.list_multipart_uploads(Bucket="weft-test").get("Uploads", [])
           if u["Key"].startswith(prefix)]
with_parts = [u for u in uploads
              if s3.list_parts(Bucket="weft-test", Key=u["Key"], UploadId=u["UploadId"]).get("Parts")]
objects = [o["Key"] for o in s3.list_objects_v2(Bucket="weft-test", Prefix=prefix).get("Contents", [])]
print(len(uploads), len(with_parts), len(objects), *objects)
"#;

#[test]
fn an_upload_left_by_a_killed_process_is_aborted_when_its_run_is_reconciled() {
    let project = Project::new();
    let env = s3_environment();
    let endpoint = env[1].1.clone();
    let prefix = env[0].1.trim_start_matches("s3://weft-test/").to_owned() + "/";
    let python = std::path::PathBuf::from(
        std::env::var("WEFT_S3_DIR").unwrap_or_else(|_| "/tmp/weft-s3".into()),
    )
    .join("venv/bin/python");
    let count = || {
        let output = std::process::Command::new(&python)
            .args(["-c", COUNT_UPLOADS, &endpoint, &prefix])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let printed = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut words = printed.split_whitespace();
        let mut number = || words.next().unwrap().parse::<usize>().unwrap();
        let counts = (number(), number(), number());
        let keys: Vec<String> = words.map(str::to_owned).collect();
        (counts.0, counts.1, counts.2, keys)
    };
    let journal = project.path().join("journal.txt");
    let mut pipeline = large_upload(&project, &journal)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the 400 MB output's upload holds parts on the server.
    let started = std::time::Instant::now();
    while count().1 == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no upload in parts began"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    pipeline.kill().unwrap();
    pipeline.wait().unwrap();
    let (uploads, _, objects, _) = count();
    assert_eq!(uploads, 1, "the killed process left its upload");
    assert!(objects > 0, "the claim and the marker are there");

    // The next command finds the run's process dead, fails the run and removes what its
    // step left, the upload's parts included.
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let listed = project.run(crate::common::WEFT, &["runs", "list"], &env);
    assert!(listed.stdout.contains("failed"), "{listed:?}");
    let (uploads, _, _, keys) = count();
    assert_eq!(uploads, 0, "the upload was aborted");
    // A step may have completed between the look at the uploads and the kill (on a busy
    // machine the look takes a second): its registered output and its log stay, and nothing
    // else does.
    let shown = project.json_with(&["runs", "show", "latest", "--json"], &env);
    let completed: Vec<String> = shown["steps"]
        .as_array()
        .expect("a run's steps")
        .iter()
        .filter(|step| step["status"] == "completed")
        .flat_map(|step| {
            [
                format!("/endurance/{}/", step["name"].as_str().unwrap()),
                format!("/{}.jsonl", step["step_run_id"].as_str().unwrap()),
            ]
        })
        .collect();
    let left: Vec<&String> = keys
        .iter()
        .filter(|key| !completed.iter().any(|folder| key.contains(folder.as_str())))
        .collect();
    assert!(
        left.is_empty(),
        "nothing but completed outputs is left under {prefix}: {left:?} (completed: {completed:?})"
    );
}
