//! Start-up: what a user waits for before anything runs.
//!
//! - Opening the stores (`Client::in_folder`): on a fresh folder (the database is created and
//!   migrated) and on a store that exists.
//! - A whole process running a one-step pipeline on a fresh store, from spawn to exit: this
//!   benchmark runs itself as the child (`--child DIR`), a binary linking weft like any
//!   pipeline binary.
//!
//! The stores live on the real disk, under `target/`. Prints medians; asserts nothing.
//! `cargo bench -p weft --bench startup` (add `-- --quick` for 5 repetitions instead of 25).

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::median;
use weft::prelude::*;

#[step]
fn hello(name: String) -> String {
    format!("hello, {name}")
}

#[pipeline]
fn one_step(name: String) -> weft::Result<()> {
    hello(name)?;
    Ok(())
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if let Some(at) = arguments.iter().position(|a| a == "--child") {
        let client =
            Client::in_folder(std::path::Path::new(&arguments[at + 1])).expect("the stores open");
        common::timed_run(
            &client,
            one_step::args("weft".into()),
            &weft::RunConfig::default(),
        );
        return;
    }
    let repeats = if arguments.iter().any(|a| a == "--quick") {
        5
    } else {
        25
    };
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let base = tempfile::tempdir_in(&target).expect("a folder for the stores");
    let mut folders = (0..).map(|n| base.path().join(format!("store-{n}")));

    let mut fresh = Vec::new();
    let mut existing = Vec::new();
    for _ in 0..repeats {
        let folder = folders.next().expect("endless");
        let started = Instant::now();
        let client = Client::in_folder(&folder).expect("the stores open");
        fresh.push(started.elapsed());
        drop(client);
        let started = Instant::now();
        let client = Client::in_folder(&folder).expect("the stores open again");
        existing.push(started.elapsed());
        drop(client);
    }

    let me = std::env::current_exe().expect("this benchmark");
    let whole: Vec<Duration> = (0..repeats)
        .map(|_| {
            let folder = folders.next().expect("endless");
            let started = Instant::now();
            let status = Command::new(&me)
                .args(["--child".as_ref(), folder.as_os_str()])
                .status()
                .expect("the benchmark runs itself");
            assert!(status.success(), "the child run failed");
            started.elapsed()
        })
        .collect();

    let ms = |times: Vec<Duration>| format!("{:8.2} ms", median(times).as_secs_f64() * 1e3);
    println!("weft start-up, stores on disk under target/, median of {repeats}");
    println!(
        "{:<56}{}",
        "open the stores, fresh folder (create + migrate)",
        ms(fresh)
    );
    println!("{:<56}{}", "open the stores, existing store", ms(existing));
    println!(
        "{:<56}{}",
        "whole process: a 1-step pipeline on a fresh store",
        ms(whole)
    );
    println!();
    println!("targets: opening the stores <= 5 ms; the whole 1-step process <= 20 ms");
}
