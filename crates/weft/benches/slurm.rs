//! The slurm orchestrator against the same job graph submitted by hand with
//! `sbatch --dependency=afterok:..`: a chain of 20 trivial steps and a fan-out of 20 (one
//! step, then 20 that read it). Needs a running Slurm (`scripts/slurm-up.sh`); the stores are
//! under the system's temporary folder, which this single node shares with itself.
//!
//! Prints figures; asserts nothing. `cargo bench -p weft --bench slurm` (`-- --quick`: one
//! repetition instead of three). The hand-made jobs run `true`; weft's run the step host.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{chain, fan_out, median};
use weft::config::{OrchestratorKind, Stack};
use weft::prelude::*;

fn weft_run(call: weft::PipelineCall) -> Duration {
    let dir = tempfile::tempdir().expect("a folder for the stores");
    let client = Client::in_folder(dir.path()).expect("the stores open");
    let config = weft::RunConfig {
        no_cache: true,
        stack: Some(Stack {
            orchestrator: OrchestratorKind::Slurm,
            ..Stack::default()
        }),
        ..Default::default()
    };
    common::timed_run(&client, call, &config).0
}

/// Submits `jobs` (each with the indices of the jobs it waits for) running `true`, and waits
/// until every one ended.
fn by_hand(folder: &Path, jobs: &[Vec<usize>]) -> Duration {
    let script = folder.join("true.sh");
    std::fs::write(&script, "#!/bin/sh\ntrue\n").unwrap();
    let started = Instant::now();
    let mut ids: Vec<String> = Vec::new();
    for waits in jobs {
        let mut sbatch = Command::new("sbatch");
        sbatch
            .arg("--parsable")
            .arg("--job-name=weft-bench-by-hand")
            .arg(format!("--output={}/%j.out", folder.display()));
        if !waits.is_empty() {
            let after: Vec<&str> = waits.iter().map(|&index| ids[index].as_str()).collect();
            sbatch.arg(format!("--dependency=afterok:{}", after.join(":")));
        }
        let output = sbatch.arg(&script).output().expect("sbatch runs");
        assert!(output.status.success(), "{output:?}");
        ids.push(String::from_utf8_lossy(&output.stdout).trim().to_owned());
    }
    loop {
        let ended = ids.iter().all(|id| {
            let shown = Command::new("scontrol")
                .args(["-o", "show", "job", id])
                .output()
                .expect("scontrol runs");
            let text = String::from_utf8_lossy(&shown.stdout);
            [
                "JobState=COMPLETED",
                "JobState=FAILED",
                "JobState=CANCELLED",
            ]
            .iter()
            .any(|state| text.contains(state))
        });
        if ended {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("__weft-step") {
        return weft::main();
    }
    let ready = Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        eprintln!("Slurm is not running: start it with scripts/slurm-up.sh");
        return std::process::ExitCode::FAILURE;
    }
    let quick = std::env::args().any(|argument| argument == "--quick");
    let repeats = if quick { 1 } else { 3 };
    let folder = tempfile::tempdir().expect("a folder for the jobs");
    let chain_graph: Vec<Vec<usize>> = (0..20)
        .map(|index| if index == 0 { vec![] } else { vec![index - 1] })
        .collect();
    let fan_graph: Vec<Vec<usize>> = (0..21)
        .map(|index| if index == 0 { vec![] } else { vec![0] })
        .collect();
    weft_run(chain::args(2)); // warm-up
    let weft_chain = median((0..repeats).map(|_| weft_run(chain::args(20))).collect());
    let hand_chain = median(
        (0..repeats)
            .map(|_| by_hand(folder.path(), &chain_graph))
            .collect(),
    );
    let weft_fan = median((0..repeats).map(|_| weft_run(fan_out::args(20))).collect());
    let hand_fan = median(
        (0..repeats)
            .map(|_| by_hand(folder.path(), &fan_graph))
            .collect(),
    );
    let ratio = |weft: Duration, hand: Duration| weft.as_secs_f64() / hand.as_secs_f64();
    println!("weft on Slurm against sbatch --dependency by hand, median of {repeats}");
    println!("{:<32}{:>12}{:>12}{:>10}", "", "weft", "by hand", "ratio");
    for (label, weft, hand) in [
        ("chain of 20", weft_chain, hand_chain),
        ("fan-out of 20 (+1)", weft_fan, hand_fan),
    ] {
        println!(
            "{label:<32}{:>9.0} ms{:>9.0} ms{:>10.2}",
            weft.as_secs_f64() * 1e3,
            hand.as_secs_f64() * 1e3,
            ratio(weft, hand)
        );
    }
    println!();
    println!("target: weft within 20 % of the graph submitted by hand (ratio <= 1.20)");
    std::process::ExitCode::SUCCESS
}
