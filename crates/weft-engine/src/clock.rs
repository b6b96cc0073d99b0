//! Time as the engine sees it: the current time, waiting, and the randomness of retry
//! jitter. Injected, so that retries, backoff and timeouts are tested without sleeping.

use std::fmt::Debug;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// The engine's source of time.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// Resolves once `deadline` has passed.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()>;

    /// A number in `[0, 1)`, for retry jitter.
    fn random(&self) -> f64;
}

/// The system's clock and a real random source.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let wait = (deadline - Utc::now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }

    fn random(&self) -> f64 {
        fastrand::f64()
    }
}

/// A clock that moves only when something waits on it: waiting jumps straight to the
/// deadline. Every wait is recorded, so tests can check delays without spending them.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<(DateTime<Utc>, Vec<DateTime<Utc>>)>,
    random: f64,
}

impl ManualClock {
    /// A clock starting at `start` whose jitter draws are always `random`.
    pub fn new(start: DateTime<Utc>, random: f64) -> Self {
        Self {
            state: Mutex::new((start, Vec::new())),
            random,
        }
    }

    /// Every deadline waited for, in order.
    pub fn waits(&self) -> Vec<DateTime<Utc>> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1.push(deadline);
        if deadline > state.0 {
            state.0 = deadline;
        }
        Box::pin(std::future::ready(()))
    }

    fn random(&self) -> f64 {
        self.random
    }
}
