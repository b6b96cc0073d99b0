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
}

impl StepThreads {
    /// Starts `count` threads (at least one).
    pub(crate) fn new(count: usize) -> std::io::Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..count.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("weft-step-{index}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Self { jobs })
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
