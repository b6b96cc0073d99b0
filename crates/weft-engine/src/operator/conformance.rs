//! What every [`StepOperator`] guarantees, as cases one macro runs against an
//! implementation: `step_operator_conformance_tests!(make)`, where `make` is a function
//! returning the operator under test. The hosts are small shell scripts (`/bin/sh`), so the
//! cases check the operator alone: starting, environment, output, exit, crash, cancelling a
//! host and what it started, and a program that cannot start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_core::StepRunId;

use super::{HostEnd, Launch, Launched, StepOperator};

/// Generates one `#[test]` per conformance case, each on the operator `$make()` returns.
#[macro_export]
macro_rules! step_operator_conformance_tests {
    ($make:path) => {
        $crate::step_operator_conformance_tests!(@cases $make;
            a_host_that_succeeds_hands_back_its_output_environment_and_files,
            a_host_that_fails_says_how,
            a_host_that_crashes_says_so,
            a_cancelled_host_ends_with_everything_it_started,
            a_host_cancelled_at_once_never_runs_on,
            large_output_comes_back_whole,
            a_program_that_cannot_start_is_a_clear_failure,
            exchange_folders_are_unique_and_removed,
            output_is_handed_back_by_the_upload_where_the_host_ran,
            a_failed_upload_is_not_a_success,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let operator: std::sync::Arc<dyn $crate::operator::StepOperator> =
                    std::sync::Arc::new($make());
                $crate::operator::conformance::$case(operator);
            }
        )*
    };
}

type Operator = Arc<dyn StepOperator>;

/// How long a case waits for something a host should do soon.
const PATIENCE: Duration = Duration::from_secs(60);

/// A launch of `/bin/sh -c script` with `arguments` after it (`$1`, `$2`, ...), in a fresh
/// project folder; the folder handles must outlive the host.
struct Case {
    project: tempfile::TempDir,
    folder: tempfile::TempDir,
    launch: Launch,
}

fn case(operator: &Operator, script: &str, arguments: &[&str]) -> Case {
    let project = tempfile::tempdir().expect("a project folder");
    let step_run = StepRunId::new();
    let folder = operator
        .exchange_folder(project.path(), step_run)
        .expect("an exchange folder");
    let mut all = vec!["-c".into(), script.into(), "sh".into()];
    all.extend(arguments.iter().map(Into::into));
    let launch = Launch {
        program: PathBuf::from("/bin/sh"),
        arguments: all,
        env: BTreeMap::new(),
        secret_env: BTreeMap::new(),
        workdir: project.path().to_owned(),
        folder: folder.path().to_owned(),
        capture: super::Capture::Folder,
        name: "conformance".into(),
        step_run,
    };
    Case {
        project,
        folder,
        launch,
    }
}

fn start(operator: &Operator, launch: &Launch) -> Arc<dyn Launched> {
    Arc::from(
        operator
            .launch(launch)
            .unwrap_or_else(|e| panic!("{} cannot launch: {e}", operator.name())),
    )
}

fn wait(host: &Arc<dyn Launched>) -> HostEnd {
    host.wait()
        .unwrap_or_else(|e| panic!("{}: cannot wait: {e}", host.id()))
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < PATIENCE, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` still runs (a zombie has ended).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A host gets its arguments (quotes and spaces intact), its environment (plain and secret)
/// and its working folder; what it prints comes back in `stdout` and `stderr`, and what it
/// writes to the exchange folder is there once it ended; the end is a success.
pub fn a_host_that_succeeds_hands_back_its_output_environment_and_files(operator: Operator) {
    let mut c = case(
        &operator,
        r#"printf 'out:%s\n' "$2"; echo 'err line' >&2; printf '%s|%s|%s' "$WEFT_CONFORMANCE_PLAIN" "$WEFT_CONFORMANCE_SECRET" "$(pwd)" > "$1""#,
        &[],
    );
    let result = c.folder.path().join("result");
    let argument = r#"it's "quoted" $HOME `x` a b"#;
    c.launch.arguments.push(result.clone().into());
    c.launch.arguments.push(argument.into());
    c.launch
        .env
        .insert("WEFT_CONFORMANCE_PLAIN".into(), "a b 'c' $d".into());
    c.launch
        .secret_env
        .insert("WEFT_CONFORMANCE_SECRET".into(), "s3cr3t".into());
    let host = start(&operator, &c.launch);
    assert!(!host.id().is_empty());
    let end = wait(&host);
    assert!(end.success, "{end:?}");
    assert_eq!(read(&c.launch.stdout()), format!("out:{argument}\n"));
    assert!(read(&c.launch.stderr()).contains("err line"));
    let workdir = std::fs::canonicalize(c.project.path()).unwrap();
    assert_eq!(
        read(&result),
        format!("a b 'c' $d|s3cr3t|{}", workdir.display())
    );
    // The secret was handed over in the environment only, never in a file of the folder.
    for entry in std::fs::read_dir(c.folder.path()).unwrap() {
        let path = entry.unwrap().path();
        if path != result {
            assert!(
                !read(&path).contains("s3cr3t"),
                "{} holds the secret",
                path.display()
            );
        }
    }
    // Ending an ended host does nothing.
    host.cancel();
}

/// A host that exits with a failure status is not a success, and the description says the
/// status.
pub fn a_host_that_fails_says_how(operator: Operator) {
    let c = case(&operator, "echo 'about to fail' >&2; exit 3", &[]);
    let end = wait(&start(&operator, &c.launch));
    assert!(!end.success, "{end:?}");
    assert!(end.description.contains('3'), "{end:?}");
    assert!(read(&c.launch.stderr()).contains("about to fail"));
}

/// A host killed by a signal is not a success, and the description names the signal.
pub fn a_host_that_crashes_says_so(operator: Operator) {
    let c = case(&operator, "echo before; kill -9 $$", &[]);
    let end = wait(&start(&operator, &c.launch));
    assert!(!end.success, "{end:?}");
    assert!(end.description.contains('9'), "{end:?}");
    assert!(read(&c.launch.stdout()).contains("before"));
}

/// Cancelling a running host (a timeout, a stop) makes a `wait` in progress return soon, not
/// a success, and ends what the host started too.
pub fn a_cancelled_host_ends_with_everything_it_started(operator: Operator) {
    let c = case(&operator, r#"sleep 300 & echo $! > "$1"; wait"#, &[]);
    let pid_file = c.folder.path().join("pid");
    let mut launch = c.launch.clone();
    launch.arguments.push(pid_file.clone().into());
    let host = start(&operator, &launch);
    let waiting = {
        let host = host.clone();
        std::thread::spawn(move || wait(&host))
    };
    until("the host to start its child", || {
        read(&pid_file).trim().parse::<i32>().is_ok()
    });
    let child: i32 = read(&pid_file).trim().parse().unwrap();
    assert!(alive(child));
    let cancelled = Instant::now();
    host.cancel();
    host.cancel();
    let end = waiting.join().unwrap();
    assert!(!end.success, "{end:?}");
    assert!(
        cancelled.elapsed() < Duration::from_secs(30),
        "wait returned {:?} after the cancel",
        cancelled.elapsed()
    );
    until("the host's child to end", || !alive(child));
}

/// A host cancelled right after its launch (before it may even have started) never does
/// what it was about to do.
pub fn a_host_cancelled_at_once_never_runs_on(operator: Operator) {
    let c = case(&operator, r#"sleep 2; echo ran > "$1""#, &[]);
    let marker = c.folder.path().join("marker");
    let mut launch = c.launch.clone();
    launch.arguments.push(marker.clone().into());
    let host = start(&operator, &launch);
    host.cancel();
    let end = wait(&host);
    assert!(!end.success, "{end:?}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(!marker.exists(), "the cancelled host ran on");
}

/// Output far larger than a pipe's buffer comes back whole. (Standard error may hold lines
/// of the operator's own, such as a Slurm daemon's warnings, beside the host's.)
pub fn large_output_comes_back_whole(operator: Operator) {
    let c = case(
        &operator,
        "head -c 3000000 /dev/zero | tr '\\0' x; head -c 100000 /dev/zero | tr '\\0' y >&2",
        &[],
    );
    let end = wait(&start(&operator, &c.launch));
    assert!(end.success, "{end:?}");
    let stdout = std::fs::read(c.launch.stdout()).unwrap();
    assert_eq!(stdout.len(), 3_000_000);
    assert!(stdout.iter().all(|&b| b == b'x'));
    let stderr = std::fs::read(c.launch.stderr()).unwrap();
    let longest_run = stderr
        .split(|&b| b != b'y')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&stderr);
    assert_eq!(
        longest_run,
        100_000,
        "the host's error output, beside: {:?}",
        text.replace(&"y".repeat(longest_run.max(1)), "<host>")
    );
}

/// A program that does not exist is refused at launch, or ends as a failure that says so:
/// never a success, never a hang.
pub fn a_program_that_cannot_start_is_a_clear_failure(operator: Operator) {
    let mut c = case(&operator, "", &[]);
    c.launch.program = c.project.path().join("no-such-program");
    match operator.launch(&c.launch) {
        Err(message) => assert!(message.contains("no-such-program"), "{message}"),
        Ok(host) => {
            let end = host.wait().expect("an end");
            assert!(!end.success, "{end:?}");
            assert!(!end.description.is_empty());
        }
    }
}

/// Each step run gets a new, empty exchange folder, which is removed with its handle.
pub fn exchange_folders_are_unique_and_removed(operator: Operator) {
    let project = tempfile::tempdir().unwrap();
    let step_run = StepRunId::new();
    let first = operator.exchange_folder(project.path(), step_run).unwrap();
    let second = operator.exchange_folder(project.path(), step_run).unwrap();
    assert_ne!(first.path(), second.path());
    assert_eq!(std::fs::read_dir(first.path()).unwrap().count(), 0);
    let path = first.path().to_owned();
    drop(first);
    assert!(!path.exists());
}

/// With [`super::Capture::Upload`], the host's output is handed back by the upload program,
/// run after the host with the two captured files (here a copy into a folder that stands
/// for the artifact store), and the host's own end is still what `wait` says.
pub fn output_is_handed_back_by_the_upload_where_the_host_ran(operator: Operator) {
    let mut c = case(
        &operator,
        "echo 'to stdout'; echo 'to stderr' >&2; exit 4",
        &[],
    );
    let bucket = tempfile::tempdir().unwrap();
    c.launch.capture = super::Capture::Upload {
        program: PathBuf::from("/bin/sh"),
        arguments: vec![
            "-c".into(),
            r#"cp "$1" "$0/stdout" && cp "$2" "$0/stderr""#.into(),
            bucket.path().into(),
        ],
    };
    let end = wait(&start(&operator, &c.launch));
    assert!(!end.success, "{end:?}");
    assert!(end.description.contains('4'), "{end:?}");
    assert_eq!(read(&bucket.path().join("stdout")), "to stdout\n");
    assert_eq!(read(&bucket.path().join("stderr")), "to stderr\n");
}

/// An upload that fails makes the host's end a failure (or an error), never a success: the
/// orchestrator would otherwise look for output that is not there.
pub fn a_failed_upload_is_not_a_success(operator: Operator) {
    let mut c = case(&operator, "echo fine", &[]);
    c.launch.capture = super::Capture::Upload {
        program: PathBuf::from("/bin/sh"),
        arguments: vec!["-c".into(), "exit 1".into(), "sh".into()],
    };
    let host = start(&operator, &c.launch);
    match host.wait() {
        Ok(end) => assert!(!end.success, "{end:?}"),
        Err(message) => assert!(message.contains("handed back"), "{message}"),
    }
}
