//! The dependency-order scheduler, as a pure state machine.
//!
//! A driver (an orchestrator) asks for ready invocations with [`Scheduler::pop_ready`], runs
//! them however it likes, and reports each outcome with [`Scheduler::resolve`], which returns
//! the [`Decision`]s the driver must carry out (skip an invocation that can no longer run, stop
//! a running one). The execution mode decides what a failure does. Every operation is
//! O(affected nodes); the whole schedule is O(invocations + edges).

use std::collections::VecDeque;

use crate::snapshot::{ExecutionMode, Snapshot};

/// How an invocation ended, as reported by the driver.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// Completed or cached: downstream invocations may use its outputs.
    Succeeded,
    /// Failed (after its last attempt).
    Failed,
}

/// Work the driver must do after an outcome.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decision {
    /// Record the invocation as skipped; it will never run.
    Skip {
        /// The invocation, by position in the snapshot.
        node: usize,
        /// Why.
        reason: SkipReason,
    },
    /// Stop the running invocation (fail-fast mode); its result will be ignored.
    Stop {
        /// The invocation, by position in the snapshot.
        node: usize,
        /// The failed invocation that caused it.
        failed: usize,
    },
}

/// Why an invocation is skipped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SkipReason {
    /// An invocation it depends on (directly or not) failed.
    UpstreamFailed {
        /// The failed invocation, by position.
        failed: usize,
    },
    /// The run stops starting new invocations after a failure.
    RunStopping {
        /// The failed invocation, by position.
        failed: usize,
    },
    /// A stop of the run was requested.
    RunStopped,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Waiting,
    Ready,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Stopped,
}

/// Tracks which invocations may start, given what has finished.
#[derive(Debug)]
pub struct Scheduler {
    mode: ExecutionMode,
    downstream: Vec<Vec<usize>>,
    waiting_on: Vec<usize>,
    state: Vec<State>,
    ready: VecDeque<usize>,
    running: usize,
    unresolved: usize,
    stopping: bool,
    /// For a skipped invocation: the failure it is a consequence of.
    cause: Vec<Option<usize>>,
}

impl Scheduler {
    /// A scheduler for every invocation of `snapshot`.
    ///
    /// The snapshot must be valid (compiled by [`crate::compile::Compiler`]): every upstream
    /// exists and there is no cycle.
    pub fn new(snapshot: &Snapshot) -> Self {
        let position: std::collections::HashMap<&str, usize> = snapshot
            .invocations
            .iter()
            .enumerate()
            .map(|(index, invocation)| (&*invocation.id, index))
            .collect();
        let count = snapshot.invocations.len();
        let mut downstream = vec![Vec::new(); count];
        let mut waiting_on = vec![0; count];
        for (node, invocation) in snapshot.invocations.iter().enumerate() {
            for upstream in invocation.upstream.iter() {
                downstream[position[&**upstream]].push(node);
                waiting_on[node] += 1;
            }
        }
        let ready: VecDeque<usize> = (0..count).filter(|&node| waiting_on[node] == 0).collect();
        let mut state = vec![State::Waiting; count];
        for &node in &ready {
            state[node] = State::Ready;
        }
        Self {
            mode: snapshot.execution_mode,
            downstream,
            waiting_on,
            state,
            ready,
            running: 0,
            unresolved: count,
            stopping: false,
            cause: vec![None; count],
        }
    }

    /// A scheduler with no invocation yet, for a run whose invocations are added while it
    /// goes on (a dynamic pipeline).
    pub fn empty(mode: ExecutionMode) -> Self {
        Self {
            mode,
            downstream: Vec::new(),
            waiting_on: Vec::new(),
            state: Vec::new(),
            ready: VecDeque::new(),
            running: 0,
            unresolved: 0,
            stopping: false,
            cause: Vec::new(),
        }
    }

    /// Adds an invocation that waits for the nodes in `upstream` not finished yet, and
    /// returns its node. If one of them failed, or will never run, the new invocation is
    /// skipped at once, and the decision says so.
    pub fn add(&mut self, upstream: &[usize]) -> (usize, Option<Decision>) {
        let node = self.state.len();
        self.downstream.push(Vec::new());
        self.waiting_on.push(0);
        self.state.push(State::Waiting);
        self.cause.push(None);
        self.unresolved += 1;
        let lost = upstream.iter().find_map(|&up| match self.state[up] {
            State::Failed | State::Stopped => Some(up),
            State::Skipped => Some(self.cause[up].unwrap_or(up)),
            _ => None,
        });
        if let Some(failed) = lost {
            self.mark_skipped(node);
            self.cause[node] = Some(failed);
            let reason = SkipReason::UpstreamFailed { failed };
            return (node, Some(Decision::Skip { node, reason }));
        }
        for &up in upstream {
            if self.state[up] != State::Succeeded {
                self.downstream[up].push(node);
                self.waiting_on[node] += 1;
            }
        }
        if self.waiting_on[node] == 0 {
            self.state[node] = State::Ready;
            self.ready.push_back(node);
        }
        (node, None)
    }

    /// Skips an invocation that has not started, because of failure `failed` (a dynamic
    /// pipeline adding work while a failure stops the run).
    pub fn skip(&mut self, node: usize, failed: usize) -> Vec<Decision> {
        if !matches!(self.state[node], State::Waiting | State::Ready) {
            return Vec::new();
        }
        self.mark_skipped(node);
        self.cause[node] = Some(failed);
        let mut decisions = vec![Decision::Skip {
            node,
            reason: SkipReason::RunStopping { failed },
        }];
        decisions.extend(self.skip_downstream(node));
        decisions
    }

    /// Starts invocations again after a failure stopped them (a dynamic pipeline whose
    /// function handled the failure). A requested stop of the run is not undone this way.
    pub fn resume_starting(&mut self) {
        self.stopping = false;
    }

    /// Whether an invocation has been resolved (succeeded, failed, skipped or stopped).
    pub fn is_resolved(&self, node: usize) -> bool {
        matches!(
            self.state[node],
            State::Succeeded | State::Failed | State::Skipped | State::Stopped
        )
    }

    /// The failure a skipped invocation is a consequence of, if any.
    pub fn cause(&self, node: usize) -> Option<usize> {
        self.cause[node]
    }

    /// How many invocations it knows.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether it knows no invocation.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// The next invocation that may start, now marked running; `None` if nothing may start now.
    pub fn pop_ready(&mut self) -> Option<usize> {
        if self.stopping {
            return None;
        }
        let node = self.ready.pop_front()?;
        self.state[node] = State::Running;
        self.running += 1;
        Some(node)
    }

    /// How many invocations are running.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Whether every invocation has been resolved (succeeded, failed, skipped or stopped).
    pub fn is_finished(&self) -> bool {
        self.unresolved == 0
    }

    /// Reports how a running invocation ended. Reports about invocations that were stopped
    /// meanwhile are ignored and return no decision.
    pub fn resolve(&mut self, node: usize, outcome: Outcome) -> Vec<Decision> {
        if self.state[node] != State::Running {
            return Vec::new();
        }
        self.running -= 1;
        self.unresolved -= 1;
        match outcome {
            Outcome::Succeeded => {
                self.state[node] = State::Succeeded;
                for index in 0..self.downstream[node].len() {
                    let next = self.downstream[node][index];
                    self.waiting_on[next] -= 1;
                    if self.waiting_on[next] == 0 && self.state[next] == State::Waiting {
                        self.state[next] = State::Ready;
                        self.ready.push_back(next);
                    }
                }
                Vec::new()
            }
            Outcome::Failed => {
                self.state[node] = State::Failed;
                match self.mode {
                    ExecutionMode::ContinueOnFailure => self.skip_downstream(node),
                    ExecutionMode::StopOnFailure => self.stop(node, false),
                    ExecutionMode::FailFast => self.stop(node, true),
                }
            }
        }
    }

    /// Resolves a ready invocation as succeeded without running it (its result was reused);
    /// its downstream invocations may become ready. Ignored for an invocation that is not
    /// ready.
    pub fn settle(&mut self, node: usize) {
        if self.state[node] != State::Ready {
            return;
        }
        self.ready.retain(|&queued| queued != node);
        self.state[node] = State::Running;
        self.running += 1;
        self.resolve(node, Outcome::Succeeded);
    }

    /// Stops starting invocations (a stop of the run was requested): every invocation that
    /// has not started is skipped. Running ones go on; report them as usual.
    pub fn stop_starting(&mut self) -> Vec<Decision> {
        self.stopping = true;
        let mut decisions = Vec::new();
        for node in 0..self.state.len() {
            if matches!(self.state[node], State::Waiting | State::Ready) {
                self.mark_skipped(node);
                decisions.push(Decision::Skip {
                    node,
                    reason: SkipReason::RunStopped,
                });
            }
        }
        decisions
    }

    /// Resolves a running invocation that will not run after all (the run stopped before it
    /// could start), without any decision about the others.
    pub fn abandon(&mut self, node: usize) {
        if self.state[node] == State::Running {
            self.state[node] = State::Skipped;
            self.running -= 1;
            self.unresolved -= 1;
        }
    }

    /// Whether no new invocation will start.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    fn skip_downstream(&mut self, failed: usize) -> Vec<Decision> {
        let mut decisions = Vec::new();
        let mut stack = self.downstream[failed].clone();
        while let Some(node) = stack.pop() {
            if matches!(self.state[node], State::Waiting | State::Ready) {
                self.mark_skipped(node);
                let root = self.cause[failed].unwrap_or(failed);
                self.cause[node] = Some(root);
                decisions.push(Decision::Skip {
                    node,
                    reason: SkipReason::UpstreamFailed { failed: root },
                });
                stack.extend_from_slice(&self.downstream[node]);
            }
        }
        decisions.sort_by_key(|decision| match decision {
            Decision::Skip { node, .. } | Decision::Stop { node, .. } => *node,
        });
        decisions
    }

    fn stop(&mut self, failed: usize, stop_running: bool) -> Vec<Decision> {
        self.stopping = true;
        let mut decisions = Vec::new();
        for node in 0..self.state.len() {
            match self.state[node] {
                State::Waiting | State::Ready => {
                    self.mark_skipped(node);
                    self.cause[node] = Some(failed);
                    decisions.push(Decision::Skip {
                        node,
                        reason: SkipReason::RunStopping { failed },
                    });
                }
                State::Running if stop_running => {
                    self.state[node] = State::Stopped;
                    self.running -= 1;
                    self.unresolved -= 1;
                    decisions.push(Decision::Stop { node, failed });
                }
                _ => {}
            }
        }
        decisions
    }

    fn mark_skipped(&mut self, node: usize) {
        if self.state[node] == State::Ready {
            self.ready.retain(|&queued| queued != node);
        }
        self.state[node] = State::Skipped;
        self.unresolved -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::snapshot::{Invocation, StepConfig};

    /// `edges` lists `(node, upstreams)`; node ids are single letters.
    fn snapshot(mode: ExecutionMode, edges: &[(&str, &[&str])]) -> Snapshot {
        Snapshot {
            format_version: 1,
            pipeline: "p".into(),
            parameters: BTreeMap::new(),
            execution_mode: mode,
            invocations: edges
                .iter()
                .map(|(id, upstream)| Invocation {
                    id: (*id).into(),
                    step: (*id).into(),
                    code_hash: "".into(),
                    parameters: Default::default(),
                    inputs: Default::default(),
                    after: Vec::new(),
                    upstream: upstream.iter().map(|&u| u.into()).collect(),
                    outputs: Vec::new().into(),
                    config: StepConfig::default().into(),
                })
                .collect(),
            dynamic: false,
        }
    }

    /// a -> b -> d, a -> c -> d, e independent.
    const DIAMOND: &[(&str, &[&str])] = &[
        ("a", &[]),
        ("b", &["a"]),
        ("c", &["a"]),
        ("d", &["b", "c"]),
        ("e", &[]),
    ];

    fn drain(scheduler: &mut Scheduler) -> Vec<usize> {
        std::iter::from_fn(|| scheduler.pop_ready()).collect()
    }

    #[test]
    fn runs_in_dependency_order_with_independent_nodes_together() {
        let mut scheduler = Scheduler::new(&snapshot(ExecutionMode::default(), DIAMOND));
        assert_eq!(drain(&mut scheduler), [0, 4]);
        assert!(scheduler.resolve(0, Outcome::Succeeded).is_empty());
        assert_eq!(drain(&mut scheduler), [1, 2]);
        scheduler.resolve(1, Outcome::Succeeded);
        assert!(drain(&mut scheduler).is_empty());
        scheduler.resolve(2, Outcome::Succeeded);
        assert_eq!(drain(&mut scheduler), [3]);
        scheduler.resolve(3, Outcome::Succeeded);
        assert!(!scheduler.is_finished());
        scheduler.resolve(4, Outcome::Succeeded);
        assert!(scheduler.is_finished());
        assert_eq!(scheduler.running(), 0);
    }

    #[test]
    fn continue_on_failure_skips_only_downstream() {
        let mut scheduler = Scheduler::new(&snapshot(ExecutionMode::ContinueOnFailure, DIAMOND));
        drain(&mut scheduler);
        scheduler.resolve(0, Outcome::Succeeded);
        drain(&mut scheduler);
        let decisions = scheduler.resolve(1, Outcome::Failed);
        assert_eq!(
            decisions,
            [Decision::Skip {
                node: 3,
                reason: SkipReason::UpstreamFailed { failed: 1 }
            }]
        );
        scheduler.resolve(2, Outcome::Succeeded);
        assert!(drain(&mut scheduler).is_empty());
        scheduler.resolve(4, Outcome::Succeeded);
        assert!(scheduler.is_finished());
    }

    #[test]
    fn stop_on_failure_starts_nothing_new_but_lets_running_finish() {
        let mut scheduler = Scheduler::new(&snapshot(ExecutionMode::StopOnFailure, DIAMOND));
        assert_eq!(drain(&mut scheduler), [0, 4]);
        let decisions = scheduler.resolve(0, Outcome::Failed);
        let skipped: Vec<usize> = decisions
            .iter()
            .map(|d| match d {
                Decision::Skip {
                    node,
                    reason: SkipReason::RunStopping { failed: 0 },
                } => *node,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(skipped, [1, 2, 3]);
        assert!(!scheduler.is_finished());
        scheduler.resolve(4, Outcome::Succeeded);
        assert!(scheduler.is_finished());
    }

    #[test]
    fn fail_fast_also_stops_running_nodes_and_ignores_their_late_results() {
        let mut scheduler = Scheduler::new(&snapshot(ExecutionMode::FailFast, DIAMOND));
        assert_eq!(drain(&mut scheduler), [0, 4]);
        let decisions = scheduler.resolve(0, Outcome::Failed);
        assert!(decisions.contains(&Decision::Stop { node: 4, failed: 0 }));
        assert!(scheduler.is_finished());
        assert!(scheduler.resolve(4, Outcome::Succeeded).is_empty());
        assert!(drain(&mut scheduler).is_empty());
    }

    #[test]
    fn settled_nodes_release_their_downstream_without_running() {
        let mut scheduler = Scheduler::new(&snapshot(ExecutionMode::default(), DIAMOND));
        scheduler.settle(0);
        scheduler.settle(3); // not ready: ignored
        assert_eq!(drain(&mut scheduler), [4, 1, 2]);
        assert_eq!(scheduler.running(), 3);
    }

    #[test]
    fn a_stop_request_skips_everything_not_started() {
        let mut scheduler = Scheduler::new(&snapshot(ExecutionMode::default(), DIAMOND));
        assert_eq!(scheduler.pop_ready(), Some(0));
        let decisions = scheduler.stop_starting();
        assert_eq!(decisions.len(), 4);
        assert!(decisions.iter().all(|d| matches!(
            d,
            Decision::Skip {
                reason: SkipReason::RunStopped,
                ..
            }
        )));
        assert!(scheduler.is_stopping() && !scheduler.is_finished());
        scheduler.resolve(0, Outcome::Succeeded);
        assert!(scheduler.is_finished());
        let mut other = Scheduler::new(&snapshot(ExecutionMode::default(), DIAMOND));
        let node = other.pop_ready().unwrap();
        other.abandon(node);
        assert_eq!(other.running(), 0);
    }

    #[test]
    fn ready_but_unstarted_nodes_are_skipped_too() {
        let mut scheduler = Scheduler::new(&snapshot(ExecutionMode::StopOnFailure, DIAMOND));
        assert_eq!(scheduler.pop_ready(), Some(0));
        // `e` is ready but not started when `a` fails.
        let decisions = scheduler.resolve(0, Outcome::Failed);
        assert!(
            decisions
                .iter()
                .any(|d| matches!(d, Decision::Skip { node: 4, .. }))
        );
        assert!(scheduler.is_finished());
        assert_eq!(scheduler.pop_ready(), None);
    }

    #[test]
    fn invocations_added_while_running_wait_for_what_has_not_finished() {
        let mut scheduler = Scheduler::empty(ExecutionMode::StopOnFailure);
        assert!(scheduler.is_finished() && scheduler.is_empty());
        let (a, skip) = scheduler.add(&[]);
        assert_eq!(skip, None);
        assert_eq!(drain(&mut scheduler), [a]);
        let (b, _) = scheduler.add(&[a]);
        assert!(drain(&mut scheduler).is_empty(), "b waits for a");
        scheduler.resolve(a, Outcome::Succeeded);
        assert_eq!(drain(&mut scheduler), [b]);
        let (c, _) = scheduler.add(&[a]);
        assert_eq!(drain(&mut scheduler), [c], "a has already succeeded");
        let (d, _) = scheduler.add(&[b]);
        let decisions = scheduler.resolve(b, Outcome::Failed);
        assert_eq!(
            decisions,
            [Decision::Skip {
                node: d,
                reason: SkipReason::RunStopping { failed: b }
            }]
        );
        assert!(scheduler.is_stopping());
        let (e, skip) = scheduler.add(&[d]);
        assert_eq!(
            skip,
            Some(Decision::Skip {
                node: e,
                reason: SkipReason::UpstreamFailed { failed: b }
            }),
            "the cause of a skip is the failure behind it"
        );
        scheduler.resume_starting();
        let (f, _) = scheduler.add(&[c]);
        scheduler.resolve(c, Outcome::Succeeded);
        assert_eq!(drain(&mut scheduler), [f]);
        let (g, _) = scheduler.add(&[]);
        assert_eq!(
            scheduler.skip(g, b),
            [Decision::Skip {
                node: g,
                reason: SkipReason::RunStopping { failed: b }
            }]
        );
        scheduler.resolve(f, Outcome::Succeeded);
        assert!(scheduler.is_finished());
        assert_eq!(scheduler.len(), 7);
    }
}
