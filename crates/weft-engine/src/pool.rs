//! The threads step bodies run on.
//!
//! A run owns plain threads, at most as many as steps may run at once, started as steps
//! need them: a run of three steps with `max_parallelism` 1,000 starts three. They carry no
//! async runtime context, which is the point: local file IO done by a step's materializers
//! runs right on the step's thread, without being handed to another pool and back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Threads taking jobs in order, started when a job finds none idle, up to a limit. Dropping
/// it lets running jobs finish; their threads then exit.
pub(crate) struct StepThreads {
    jobs: Sender<Job>,
    queue: Arc<Mutex<Receiver<Job>>>,
    /// Threads waiting for a job.
    idle: Arc<AtomicUsize>,
    /// Jobs sent and not taken yet: an idle thread may be about to take one of them, so it
    /// is free for a new job only if there are more idle threads than such jobs.
    queued: Arc<AtomicUsize>,
    started: usize,
    limit: usize,
}

impl StepThreads {
    /// Threads for at most `limit` jobs at once (at least one); none is started yet.
    pub(crate) fn new(limit: usize) -> Self {
        let (jobs, queue) = channel::<Job>();
        Self {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            idle: Arc::new(AtomicUsize::new(0)),
            queued: Arc::new(AtomicUsize::new(0)),
            started: 0,
            limit: limit.max(1),
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let (queue, idle, queued) = (self.queue.clone(), self.idle.clone(), self.queued.clone());
        std::thread::Builder::new()
            .name(format!("weft-step-{}", self.started))
            .spawn(move || work(&queue, &idle, &queued))?;
        self.started += 1;
        Ok(())
    }

    /// Allows one more thread, to replace one held by a step that overran its timeout.
    pub(crate) fn add(&mut self) {
        self.limit += 1;
    }

    /// Runs `job` on the next free thread, starting one if none is idle and the limit allows.
    /// The caller runs at most `limit` jobs at once, so a job never waits for long.
    pub(crate) fn run(&mut self, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        // Counting the idle threads alone is not enough: one that is idle now may be about
        // to take a job sent before this one, and this job would then wait for it to end.
        let queued = self.queued.fetch_add(1, Ordering::AcqRel) + 1;
        if self.idle.load(Ordering::Acquire) < queued && self.started < self.limit {
            // With none started yet a job has nowhere to go: that failure is the caller's.
            // Later, the threads already started take it.
            if let Err(error) = self.spawn() {
                if self.started == 0 {
                    return Err(error);
                }
                tracing::warn!(target: "weft", "cannot start another step thread: {error}");
            }
        }
        // The threads only stop once this sender is dropped, so sending cannot fail.
        let _ = self.jobs.send(Box::new(job));
        Ok(())
    }
}

fn work(queue: &Mutex<Receiver<Job>>, idle: &AtomicUsize, queued: &AtomicUsize) {
    loop {
        idle.fetch_add(1, Ordering::AcqRel);
        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        idle.fetch_sub(1, Ordering::AcqRel);
        match next {
            Ok(job) => {
                queued.fetch_sub(1, Ordering::AcqRel);
                job()
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_start_as_jobs_need_them_and_never_past_the_limit() {
        let mut threads = StepThreads::new(usize::MAX);
        let (done, finished) = channel();
        for _ in 0..3 {
            let done = done.clone();
            threads.run(move || done.send(()).unwrap()).unwrap();
            finished.recv().unwrap();
            // Until the thread is back waiting, the next job would rightly start another.
            while threads.idle.load(Ordering::Acquire) == 0 {
                std::thread::yield_now();
            }
        }
        assert_eq!(threads.started, 1, "an idle thread takes the next job");

        let mut threads = StepThreads::new(2);
        let (release, gate) = std::sync::mpsc::sync_channel::<()>(0);
        let gate = Arc::new(Mutex::new(gate));
        for _ in 0..5 {
            let gate = gate.clone();
            threads
                .run(move || {
                    let _ = gate.lock().unwrap().recv();
                })
                .unwrap();
        }
        assert!(
            threads.started <= 2,
            "{} threads for a limit of 2",
            threads.started
        );
        for _ in 0..5 {
            release.send(()).unwrap();
        }
    }

    /// A job sent while the only thread is idle but about to take an earlier job gets a
    /// thread of its own: it does not wait for the earlier one to end (fail_fast relies on
    /// the failing step running while a slow one blocks).
    #[test]
    fn a_job_never_waits_behind_one_an_idle_thread_is_about_to_take() {
        for _ in 0..50 {
            let mut threads = StepThreads::new(2);
            threads.run(|| {}).unwrap();
            while threads.idle.load(Ordering::Acquire) == 0
                || threads.queued.load(Ordering::Acquire) > 0
            {
                std::thread::yield_now();
            }
            let (release, gate) = channel::<()>();
            let (done, finished) = channel::<()>();
            threads
                .run(move || {
                    let _ = gate.recv();
                })
                .unwrap();
            threads.run(move || done.send(()).unwrap()).unwrap();
            finished
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("the second job ran while the first one blocked");
            release.send(()).unwrap();
        }
    }
}
