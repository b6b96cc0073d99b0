//! Step logs: captured per step, also when steps run in parallel.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use weft::prelude::*;
use weft::{RunConfig, Status};

use crate::{fresh, steps};

/// Both chatty steps wait here until both have started, so their records interleave in time.
static STARTED: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

#[step]
fn chatty(name: String, lines: usize) -> weft::Result<usize> {
    let (started, wake) = &STARTED;
    let mut count = started.lock().unwrap();
    *count += 1;
    wake.notify_all();
    let (count, timeout) = wake
        .wait_timeout_while(count, Duration::from_secs(30), |c| *c < 2)
        .unwrap();
    weft::ensure!(!timeout.timed_out(), "the other chatty step never started");
    drop(count);
    for line in 0..lines {
        tracing::info!(line, "{name} says hello");
        if line % 50 == 0 {
            log::warn!("{name} via the log crate");
            std::thread::yield_now();
        }
    }
    Ok(lines)
}

#[pipeline]
fn chatter(lines: usize) -> weft::Result<()> {
    chatty::id("alice").call("alice".to_string(), lines)?;
    chatty::id("bob").call("bob".to_string(), lines)?;
    Ok(())
}

#[test]
fn logs_of_parallel_steps_never_mix() {
    let (_dir, client) = fresh();
    let config = RunConfig {
        max_parallelism: Some(2),
        ..Default::default()
    };
    let report = client.run_with(chatter::args(500), &config).unwrap();
    assert_unmixed(&client, &report);
}

/// The same chatter from a dynamic pipeline: two submitted steps running at once.
#[pipeline(dynamic)]
fn dynamic_chatter(lines: usize) -> weft::Result<()> {
    let alice = chatty::id("alice").submit("alice".to_string(), lines);
    let bob = chatty::id("bob").submit("bob".to_string(), lines);
    alice.wait()?;
    bob.wait()?;
    Ok(())
}

#[test]
fn logs_of_concurrent_dynamic_steps_never_mix() {
    *STARTED.0.lock().unwrap() = 0;
    let (_dir, client) = fresh();
    let config = RunConfig {
        max_parallelism: Some(2),
        ..Default::default()
    };
    let report = client
        .run_with(dynamic_chatter::args(500), &config)
        .unwrap();
    assert_unmixed(&client, &report);
}

fn assert_unmixed(client: &Client, report: &weft::RunReport) {
    assert_eq!(report.run.status, Status::Completed);
    for name in ["alice", "bob"] {
        let step_run = &steps(report)[name];
        let records = client.logs(step_run).unwrap();
        assert_eq!(
            records.len(),
            510,
            "{name}: 500 tracing records and 10 log records"
        );
        for record in &records {
            assert!(
                record.message.starts_with(name),
                "{name}'s log holds `{}`",
                record.message
            );
        }
        let info = records.iter().find(|r| r.level == "INFO").unwrap();
        assert_eq!(info.fields["line"], 0);
        assert_eq!(records.iter().filter(|r| r.level == "WARN").count(), 10);
    }
}

#[step]
fn quiet(x: u64) -> u64 {
    x
}

#[step]
fn fails_loudly(x: u64) -> weft::Result<u64> {
    tracing::info!("about to fail");
    weft::bail!("failed on {x}")
}

#[pipeline]
fn loud() -> weft::Result<()> {
    let x = quiet(1)?;
    fails_loudly(&x)?;
    Ok(())
}

#[test]
fn a_failed_step_keeps_its_log_and_a_silent_one_has_none() {
    let (_dir, client) = fresh();
    let report = client.run(loud::args()).unwrap();
    let steps = steps(&report);
    assert!(client.logs(&steps["quiet"]).unwrap().is_empty());
    let records = client.logs(&steps["fails_loudly"]).unwrap();
    let messages: Vec<&str> = records.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(messages, ["about to fail", "step failed: failed on 1"]);
    assert_eq!(records[1].level, "ERROR");
}
