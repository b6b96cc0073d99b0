//! Whether the record of a step run that started before it was written (see `local`) is
//! written yet. Its body waits for it before it stores a file: every stored file then
//! belongs to a recorded step run, and reconciling a dead run finds all of them.

use std::sync::{Condvar, Mutex};

use tokio::sync::mpsc;

/// The record of one started step run: waiting, written, or lost with the reason.
#[derive(Debug)]
pub struct Recorded {
    state: Mutex<State>,
    changed: Condvar,
    /// Asks the orchestrator to write what waits, instead of waiting for its next commit.
    ask: mpsc::UnboundedSender<()>,
}

#[derive(Debug)]
enum State {
    Waiting { asked: bool },
    Written,
    Lost(String),
}

impl Recorded {
    pub(crate) fn new(ask: mpsc::UnboundedSender<()>) -> Self {
        Self {
            state: Mutex::new(State::Waiting { asked: false }),
            changed: Condvar::new(),
            ask,
        }
    }

    /// Blocks until the record is written (asking for it once), or says why it never will
    /// be.
    pub fn wait(&self) -> Result<(), String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &mut *state {
                State::Written => return Ok(()),
                State::Lost(reason) => return Err(reason.clone()),
                State::Waiting { asked } => {
                    if !*asked {
                        *asked = true;
                        // A closed channel means the orchestrator is gone: it marks every
                        // record it still held lost before it goes.
                        let _ = self.ask.send(());
                    }
                    state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }

    /// The record is written.
    pub(crate) fn written(&self) {
        self.settle(State::Written);
    }

    /// The record will never be written.
    pub(crate) fn lost(&self, reason: &str) {
        self.settle(State::Lost(format!(
            "the step run could not be recorded: {reason}"
        )));
    }

    fn settle(&self, settled: State) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, State::Waiting { .. }) {
            *state = settled;
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_waiting_body_asks_once_and_wakes_when_written_or_lost() {
        let (ask, mut asked) = mpsc::unbounded_channel();
        let recorded = Arc::new(Recorded::new(ask));
        let waiter = std::thread::spawn({
            let recorded = recorded.clone();
            move || (recorded.wait(), recorded.wait())
        });
        asked.blocking_recv().expect("the body asks");
        recorded.written();
        assert_eq!(waiter.join().unwrap(), (Ok(()), Ok(())));
        assert!(asked.try_recv().is_err(), "asked once");

        let (ask, mut asked) = mpsc::unbounded_channel();
        let recorded = Arc::new(Recorded::new(ask));
        let waiter = std::thread::spawn({
            let recorded = recorded.clone();
            move || recorded.wait()
        });
        asked.blocking_recv().expect("the body asks");
        recorded.lost("the disk is full");
        recorded.written();
        let reason = waiter.join().unwrap().unwrap_err();
        assert!(reason.contains("the disk is full"), "{reason}");
    }
}
