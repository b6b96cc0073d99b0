//! The threads step bodies run on.
//!
//! A run owns a fixed set of plain threads, as many as steps may run at once. They carry no
//! async runtime context, which is the point: local file IO done by a step's materializers
//! runs right on the step's thread, without being handed to another pool and back.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads taking jobs in order. Dropping it lets running jobs finish; their
/// threads then exit.
pub(crate) struct StepThreads {
    jobs: Sender<Job>,
    queue: Arc<Mutex<Receiver<Job>>>,
    started: usize,
}

impl StepThreads {
    /// Starts `count` threads (at least one).
    pub(crate) fn new(count: usize) -> std::io::Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let mut threads = Self {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            started: 0,
        };
        for _ in 0..count.max(1) {
            threads.spawn()?;
        }
        Ok(threads)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let queue = self.queue.clone();
        std::thread::Builder::new()
            .name(format!("weft-step-{}", self.started))
            .spawn(move || work(&queue))?;
        self.started += 1;
        Ok(())
    }

    /// Adds a thread, to replace one held by a step that overran its timeout.
    pub(crate) fn add(&mut self) {
        if let Err(error) = self.spawn() {
            tracing::warn!(target: "weft", "cannot start a replacement step thread: {error}");
        }
    }

    /// Runs `job` on the next free thread.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        // The threads only stop once this sender is dropped, so sending cannot fail.
        let _ = self.jobs.send(Box::new(job));
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}
