//! The volume-wide budget of per-extent write buffers: every buffer (`node::extent::ExtState`)
//! counts its bytes in one total; above `BUDGET_HIGH` the writeout thread
//! (`fs::contents::writeout`) is woken, above `BUDGET_HARD` a writer writes its own buffer out
//! first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::fs::locks::lock;

/// Above this many buffered bytes (all files) the writeout thread writes the largest buffers out.
pub(in crate::fs) const BUDGET_HIGH: u64 = 64 << 20;

/// ... until the total is at most this.
pub(in crate::fs) const BUDGET_LOW: u64 = 32 << 20;

/// Above this a writer writes its own buffer out before buffering more.
pub(in crate::fs) const BUDGET_HARD: u64 = 128 << 20;

/// How often the thread looks at buffer ages.
const TICK: Duration = Duration::from_millis(500);

/// The volume-wide count of buffered plaintext bytes, and the writeout thread's wake-up.
#[derive(Default)]
pub(in crate::fs) struct Budget {
    bytes: AtomicU64,
    kicked: Mutex<bool>,
    wake: Condvar,
}

impl Budget {
    /// Counts `n` more buffered bytes; wakes the thread when the total goes above the high mark.
    pub(in crate::fs) fn add(&self, n: u64) {
        let total = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        if total > BUDGET_HIGH {
            *lock(&self.kicked) = true;
            self.wake.notify_one();
        }
    }

    /// Counts `n` fewer buffered bytes.
    pub(in crate::fs) fn sub(&self, n: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
    }

    /// Buffered bytes, all files.
    pub(in crate::fs) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether a writer must write its own buffer out before adding to it.
    pub(in crate::fs) fn over_hard(&self) -> bool {
        self.bytes() > BUDGET_HARD
    }

    /// Sleeps until kicked or `TICK` passes.
    pub(in crate::fs) fn wait(&self) {
        let mut kicked = lock(&self.kicked).wait_timeout_while(&self.wake, TICK, |k| !*k);
        *kicked = false;
    }
}
