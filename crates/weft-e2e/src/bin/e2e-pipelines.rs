//! A pipeline binary for the end-to-end tests: the quickstart pipeline, and pipelines that
//! fail, race each other, or take typed parameters.

#[path = "../../../../examples/quickstart/pipeline.rs"]
mod quickstart;

use weft::prelude::*;

#[step(outputs(value = "shared"))]
fn contribute(index: usize) -> usize {
    index
}

/// Many steps writing versions of one artifact at once.
#[pipeline]
fn shared(width: usize) -> weft::Result<()> {
    for index in 0..width {
        contribute(index)?;
    }
    Ok(())
}

#[step]
fn prepare(size: usize) -> Vec<u64> {
    (0..size as u64).collect()
}

#[step]
fn divide(values: Vec<u64>, by: u64) -> weft::Result<Vec<u64>> {
    weft::ensure!(by != 0, "cannot divide {} values by zero", values.len());
    Ok(values.iter().map(|v| v / by).collect())
}

#[step]
fn crash(values: Vec<u64>) -> u64 {
    let index = values.len() + 1;
    values[index]
}

/// Fails in `divide` when `by` is 0, and panics in `crash` when `panic` is set.
#[pipeline]
fn fragile(
    #[default(10)] size: usize,
    #[default(1)] by: u64,
    #[default(false)] panic: bool,
) -> weft::Result<()> {
    let values = prepare(size)?;
    divide(&values, by)?;
    if panic {
        crash(&values)?;
    }
    Ok(())
}

/// Appends the running invocation's id to `journal`, so that a test can count how often
/// each invocation computed, and pauses like a step doing real work.
fn record(journal: &str, pause_ms: u64) -> weft::Result<()> {
    use std::io::Write as _;
    let context = weft::context().expect("called inside a step");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal)?;
    // One write per line: with O_APPEND, parallel steps' lines never interleave.
    file.write_all(format!("{}\n", context.invocation).as_bytes())?;
    // A log for every step: the crash test checks that none outlives an unfinished step.
    tracing::info!(pause_ms, "computing");
    std::thread::sleep(std::time::Duration::from_millis(pause_ms));
    Ok(())
}

#[step]
fn origin(journal: String, pause_ms: u64, bytes: usize) -> weft::Result<Vec<u8>> {
    record(&journal, pause_ms)?;
    Ok((0..bytes).map(|i| (i % 251) as u8).collect())
}

#[step]
fn transform(journal: String, pause_ms: u64, input: Vec<u8>) -> weft::Result<Vec<u8>> {
    record(&journal, pause_ms)?;
    Ok(input
        .iter()
        .map(|b| b.wrapping_mul(3).wrapping_add(1))
        .collect())
}

#[step]
fn combine(journal: String, pause_ms: u64, inputs: Vec<Vec<u8>>) -> weft::Result<Vec<u8>> {
    record(&journal, pause_ms)?;
    Ok(inputs.concat())
}

/// Twelve steps that each take `pause_ms` and write `bytes`-sized artifacts: three parallel
/// branches of three between an origin and two joins. The crash test kills it anywhere.
#[pipeline]
fn endurance(
    journal: String,
    #[default(30)] pause_ms: u64,
    #[default(262_144)] bytes: usize,
) -> weft::Result<()> {
    let seed = origin(journal.clone(), pause_ms, bytes)?;
    let mut tails = Vec::new();
    for _ in 0..3 {
        let first = transform(journal.clone(), pause_ms, &seed)?;
        let second = transform(journal.clone(), pause_ms, &first)?;
        tails.push(transform(journal.clone(), pause_ms, &second)?);
    }
    let joined = combine(journal.clone(), pause_ms, tails)?;
    transform(journal, pause_ms, &joined)?;
    Ok(())
}

/// One link of `long_chain`: logs, and passes on `bytes` bytes (kept in the record when
/// small, a file when not).
#[step]
fn link(bytes: usize, input: Vec<u8>) -> Vec<u8> {
    tracing::info!(bytes, "linking");
    let mut next = input;
    next.resize(bytes, 0);
    next[0] = next[0].wrapping_add(1);
    next
}

/// `length` fast steps in a row: most of them start before their records are written.
#[pipeline]
fn long_chain(length: usize, bytes: usize) -> weft::Result<()> {
    let mut last = link(bytes, vec![0u8; bytes])?;
    for _ in 1..length {
        last = link(bytes, &last)?;
    }
    Ok(())
}

/// `endurance` as a dynamic pipeline: the same invocations (and ids), the branches submitted
/// so that they run while the function goes on.
#[pipeline(dynamic)]
fn endurance_dynamic(
    journal: String,
    #[default(30)] pause_ms: u64,
    #[default(262_144)] bytes: usize,
) -> weft::Result<()> {
    let seed = origin(journal.clone(), pause_ms, bytes)?;
    let mut tails = Vec::new();
    for _ in 0..3 {
        let first = transform::submit(journal.clone(), pause_ms, &seed);
        let second = transform::submit(journal.clone(), pause_ms, &first);
        tails.push(transform::submit(journal.clone(), pause_ms, &second));
    }
    let joined = combine(journal.clone(), pause_ms, tails)?;
    transform(journal, pause_ms, &joined)?;
    Ok(())
}

/// Runs in a process of its own; says which, on every channel.
#[step(isolated)]
fn elsewhere(x: u64) -> u64 {
    println!("printed by process {}", std::process::id());
    eprintln!("written to standard error");
    tracing::info!(x, "traced in the isolated step");
    std::process::id() as u64
}

#[step(cache = false)]
fn here() -> u64 {
    std::process::id() as u64
}

#[step]
fn apart(isolated: u64, inline: u64) -> weft::Result<u64> {
    weft::ensure!(isolated != inline, "both ran in process {inline}");
    Ok(isolated)
}

/// An isolated step feeding an inline one.
#[pipeline]
fn isolation() -> weft::Result<()> {
    let isolated = elsewhere(1)?;
    let inline = here()?;
    apart(&isolated, &inline)?;
    Ok(())
}

#[step]
fn distinct(pids: Vec<u64>) -> weft::Result<u64> {
    let mut unique = pids.clone();
    unique.sort_unstable();
    unique.dedup();
    weft::ensure!(unique.len() == pids.len(), "two steps shared a process");
    Ok(unique.len() as u64)
}

/// `width` isolated steps at once, gathered by an inline one.
#[pipeline]
fn isolated_fan(width: u64) -> weft::Result<()> {
    let mut pids = Vec::new();
    for x in 0..width {
        pids.push(elsewhere(x)?);
    }
    distinct(pids)?;
    Ok(())
}

/// Logs, waits until the file `gate` exists, logs again.
#[step(cache = false)]
fn talkative(gate: String) -> weft::Result<()> {
    tracing::info!("before the gate");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::path::Path::new(&gate).exists() {
        weft::ensure!(
            std::time::Instant::now() < deadline,
            "the gate never opened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tracing::info!("after the gate");
    Ok(())
}

#[pipeline]
fn gated_talk(gate: String) -> weft::Result<()> {
    talkative(gate)?;
    Ok(())
}

/// Two calls of an inline step: on the `local_process` orchestrator, two processes.
#[pipeline]
fn processes() -> weft::Result<()> {
    let first = here()?;
    let second = here()?;
    apart(&first, &second)?;
    Ok(())
}

#[step]
fn greeting(expected: String) -> weft::Result<String> {
    let found = std::env::var("GREETING").unwrap_or_default();
    weft::ensure!(found == expected, "GREETING is `{found}`, not `{expected}`");
    Ok(found)
}

#[pipeline]
fn greeted(expected: String) -> weft::Result<()> {
    greeting(expected)?;
    Ok(())
}

/// Sleeps; isolated, so that a stack can send it to Slurm.
#[step(isolated, cache = false)]
fn sleeping(seconds: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    seconds
}

#[pipeline]
fn slumber(seconds: u64) -> weft::Result<()> {
    sleeping(seconds)?;
    Ok(())
}

/// Ends its process in the way `how` says.
#[step(isolated)]
fn crashing(how: String) -> weft::Result<u64> {
    eprintln!("about to {how}");
    match how.as_str() {
        "exit" => std::process::exit(7),
        "abort" => std::process::abort(),
        "kill" => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &std::process::id().to_string()])
                .status();
            std::thread::sleep(std::time::Duration::from_secs(30));
            Ok(0)
        }
        "panic" => panic!("the isolated step panicked"),
        "error" => weft::bail!("the isolated step failed"),
        _ => Ok(1),
    }
}

#[pipeline]
fn isolation_crash(how: String) -> weft::Result<()> {
    crashing(how)?;
    Ok(())
}

#[step(isolated, timeout = "1s")]
fn overrunning() -> u64 {
    std::thread::sleep(std::time::Duration::from_secs(60));
    0
}

#[pipeline]
fn isolation_timeout() -> weft::Result<()> {
    overrunning()?;
    Ok(())
}

/// Isolated steps called synchronously and submitted from a dynamic pipeline.
#[pipeline(dynamic)]
fn isolation_dynamic() -> weft::Result<()> {
    let inline = here()?.load()?;
    let synchronous = elsewhere(1)?.load()?;
    let submitted = elsewhere::submit(2).load()?;
    let asked = here::with(weft::Isolated).call()?.load()?;
    weft::ensure!(
        synchronous != inline && submitted != inline && submitted != synchronous,
        "each isolated call had a process of its own"
    );
    weft::ensure!(asked != inline, "a call can ask for a process of its own");
    // Each process reads its own item of a collection stored as a file.
    let words = long_words()?;
    let lengths = word_length::with(weft::Isolated).map(&words)?.load()?;
    weft::ensure!(
        lengths == [500, 1000, 1500],
        "the items' lengths: {lengths:?}"
    );
    Ok(())
}

#[step]
fn long_words() -> Vec<String> {
    (1..=3).map(|i| i.to_string().repeat(500 * i)).collect()
}

#[step]
fn word_length(word: String) -> u64 {
    word.len() as u64
}

/// One call of an inline step isolated by its call.
#[pipeline]
fn isolated_call() -> weft::Result<()> {
    let inline = here()?;
    let isolated = here::with(StepOptions::new().isolated()).call()?;
    apart(&isolated, &inline)?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    weft::main()
}
