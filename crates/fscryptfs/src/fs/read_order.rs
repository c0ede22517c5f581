//! One open file's large reads, taken to the backing store one at a time and in offset order, on a
//! backing store whose requests are round trips (a network or FUSE filesystem).
//!
//! The kernel reads ahead of a sequential reader in requests of up to 1 MiB, several at once, and
//! the daemon's request threads serve them side by side. Where the backing store is local, that
//! is what makes reads fast. Where it is a network filesystem, its own client reads ahead only
//! while the reads it is asked for follow each other: CephFS's client starts over at any read that
//! does not begin where the last one ended, so the threads' interleaved reads of one backing file
//! turned every 128 KiB request of the kernel to `ceph-fuse` into a read from the cluster (2,048
//! for 256 MiB), where one reader's made about one per 2 MiB (docs/BENCHMARKS.md "Reads in order
//! on a network filesystem"). So there a handle's reads of [`ORDERED_MIN`] or more pass a gate
//! ([`ReadOrder`]: a per-file READ's `pread`, a per-extent READ's reads of the log). Those that
//! continue the stream the gate follows (they start within the read-ahead window after the end of
//! the last one) go one at a time, the lowest offset first, and one that would leave a gap waits
//! up to [`GRACE`] for the request before it (sent by the kernel at the same moment, still on its
//! way through another thread). Reads elsewhere in the file (a random reader's, or a new stream's
//! first), small reads and other handles' reads never wait.
//!
//! A per-extent file's log is in the order its records were appended, so the same gate, one per
//! node, also appends its large writes in the file's order: each takes its place when it arrives,
//! is sealed (encrypted, checksummed) beside the others, and appends in its turn
//! ([`ReadOrder::run_prepared`]); otherwise parallel writeback shuffles the log within a few MiB
//! and the reads above skip about it whatever order they come in.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::locks::lock;

/// Reads of this size or more are ordered: the kernel's read-ahead requests (up to 1 MiB), not a
/// random reader's pages.
const ORDERED_MIN: u32 = 128 * 1024;

/// How long a read that would leave a gap waits for the request before it to arrive.
const GRACE: Duration = Duration::from_micros(500);

/// How far past the end of the last read a read may start and still be taken for the next of the
/// same stream (the read-ahead window on a network filesystem, `fs::read_ahead`): only such a read
/// takes its turn; one further away, or behind, goes at once, beside anything under way.
const WINDOW: u64 = super::read_ahead::READ_AHEAD_KB_REMOTE * 1024;

/// Runs `read` (the backing read for a READ of `len` bytes at `off`) through `gate` when there is
/// one and the read is large enough to be ordered, else at once.
pub(super) fn in_order<T>(
    gate: Option<&ReadOrder>,
    off: u64,
    len: u32,
    read: impl FnOnce() -> T,
) -> T {
    match gate {
        Some(g) if len >= ORDERED_MIN => g.run(off, len, read),
        _ => read(),
    }
}

/// The gate of one handle.
pub(super) struct ReadOrder {
    state: Mutex<GateState>,
    turn: Condvar,
    /// [`GRACE`] (longer in tests, so that a slow machine cannot reorder what they send).
    grace: Duration,
}

impl Default for ReadOrder {
    fn default() -> Self {
        ReadOrder::with_grace(GRACE)
    }
}

#[derive(Default)]
struct GateState {
    /// Where the last read let through ended (0 before the first).
    next: u64,
    /// A read is under way.
    busy: bool,
    /// The offsets of the reads waiting, with how many wait at each.
    waiting: BTreeMap<u64, u32>,
}

impl GateState {
    /// One call waiting at `off` leaves the queue (its turn came, or it gave its place up).
    fn leave(&mut self, off: u64) {
        if let Some(n) = self.waiting.get_mut(&off) {
            *n -= 1;
            if *n == 0 {
                self.waiting.remove(&off);
            }
        }
    }
}

impl ReadOrder {
    fn with_grace(grace: Duration) -> Self {
        ReadOrder {
            state: Mutex::default(),
            turn: Condvar::new(),
            grace,
        }
    }

    /// Runs `read` (a read of `len` bytes at `off`) when its turn comes.
    pub(super) fn run<T>(&self, off: u64, len: u32, read: impl FnOnce() -> T) -> T {
        self.run_prepared(off, u64::from(len), || (), |()| read())
    }

    /// Runs `prepare` at once, beside anything else, and then `then` with what it gave when the
    /// turn of `[off, off + len)` comes: the turn is taken where the call arrives, so a later call
    /// for a higher offset waits for this one's `prepare` and `then` too (the appends of a
    /// per-extent file's writes, sealed side by side and appended in the file's order).
    pub(super) fn run_prepared<P, T>(
        &self,
        off: u64,
        len: u64,
        prepare: impl FnOnce() -> P,
        then: impl FnOnce(P) -> T,
    ) -> T {
        let end = off.saturating_add(len);
        let mut st = lock(&self.state);
        if off < st.next || off - st.next > WINDOW {
            // Not the next of the stream the gate follows (a random reader's, or a new stream's
            // first): at once, beside anything under way; the stream goes on from here.
            st.next = end;
            drop(st);
            return then(prepare());
        }
        *st.waiting.entry(off).or_insert(0) += 1;
        let deadline = Instant::now() + self.grace;
        drop(st);
        // Its place is given up even if `prepare` panics.
        let place = Place { gate: self, off };
        let prepared = prepare();
        std::mem::forget(place);
        let mut st = lock(&self.state);
        loop {
            let lowest = st.waiting.keys().next() == Some(&off);
            let now = Instant::now();
            let gap = off > st.next && off - st.next <= WINDOW;
            if !st.busy && lowest && (!gap || now >= deadline) {
                break;
            }
            // The gate's holder and lower reads always finish, so waiting without a bound would
            // do; the bound only rechecks the grace.
            let wait = if !st.busy && lowest {
                deadline.saturating_duration_since(now)
            } else {
                self.grace
            };
            st = st.wait_timeout(&self.turn, wait);
        }
        st.leave(off);
        st.busy = true;
        drop(st);
        // Released (and the next read woken) even if `then` panics.
        let _release = Release { gate: self, end };
        then(prepared)
    }
}

/// A place in the queue given up, and the others woken, when `prepare` panics.
struct Place<'a> {
    gate: &'a ReadOrder,
    off: u64,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        lock(&self.gate.state).leave(self.off);
        self.gate.turn.notify_all();
    }
}

/// Opens the gate again when the read it let through is done.
struct Release<'a> {
    gate: &'a ReadOrder,
    end: u64,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.gate.state);
        st.busy = false;
        st.next = self.end;
        drop(st);
        self.gate.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    const M: u64 = 1 << 20;

    /// Runs reads of 1 MiB at `offsets` (each on its own thread, started in that order a little
    /// apart) through one gate; returns the order in which they ran, and checks that no two ran at
    /// once.
    fn order_of(offsets: &[u64], start_gap: Duration) -> Vec<u64> {
        let gate = Arc::new(ReadOrder::with_grace(Duration::from_secs(30)));
        let ran = Arc::new(Mutex::new(Vec::new()));
        let inside = Arc::new(AtomicU32::new(0));
        let mut threads = Vec::new();
        for &off in offsets {
            let (gate, ran, inside) = (Arc::clone(&gate), Arc::clone(&ran), Arc::clone(&inside));
            threads.push(std::thread::spawn(move || {
                gate.run(off, 1 << 20, || {
                    assert_eq!(
                        inside.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two reads at once"
                    );
                    lock(&ran).push(off);
                    std::thread::sleep(Duration::from_millis(2));
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            }));
            std::thread::sleep(start_gap);
        }
        for t in threads {
            t.join().expect("reader");
        }
        assert!(lock(&gate.state).waiting.is_empty());
        Arc::try_unwrap(ran)
            .expect("ran")
            .into_inner()
            .expect("ran")
    }

    #[test]
    fn reads_that_arrive_out_of_order_reach_the_backing_store_in_order() {
        // The second request arrives before the first.
        assert_eq!(
            order_of(&[M, 0, 3 * M, 2 * M], Duration::from_micros(50)),
            vec![0, M, 2 * M, 3 * M]
        );
        // All at once.
        assert_eq!(
            order_of(&[2 * M, 3 * M, M, 0], Duration::ZERO),
            vec![0, M, 2 * M, 3 * M]
        );
    }

    /// Appends prepared side by side (sealing), the first to arrive the slowest to prepare: each
    /// runs when the ones that arrived at lower offsets have run, one at a time; a prepare that
    /// panics gives its place up.
    #[test]
    fn prepared_work_runs_in_the_order_of_arrival_not_of_preparation() {
        let gate = Arc::new(ReadOrder::with_grace(Duration::from_secs(30)));
        let ran = Arc::new(Mutex::new(Vec::new()));
        let inside = Arc::new(AtomicU32::new(0));
        let mut threads = Vec::new();
        for k in 0..4u64 {
            let (gate, ran, inside) = (Arc::clone(&gate), Arc::clone(&ran), Arc::clone(&inside));
            threads.push(std::thread::spawn(move || {
                gate.run_prepared(
                    k * M,
                    M,
                    // The first to arrive prepares longest.
                    || std::thread::sleep(Duration::from_millis(40 - 10 * k)),
                    |()| {
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two at once");
                        lock(&ran).push(k * M);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    },
                )
            }));
            std::thread::sleep(Duration::from_millis(2));
        }
        for t in threads {
            t.join().expect("appender");
        }
        assert_eq!(*lock(&ran), vec![0, M, 2 * M, 3 * M]);

        // A prepare that panics gives its place up.
        let next = lock(&gate.state).next;
        let g = Arc::clone(&gate);
        let failed = std::thread::spawn(move || {
            g.run_prepared(
                next,
                M,
                || -> () { panic!("sealing failed") },
                |()| unreachable!(),
            )
        });
        assert!(failed.join().is_err());
        assert!(lock(&gate.state).waiting.is_empty(), "its place given up");
        // The write again (the kernel retries a failed writeback) is not held up by it.
        let t0 = Instant::now();
        gate.run_prepared(next, M, || (), |()| ());
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "waited for a place given up"
        );
    }

    #[test]
    fn a_read_whose_predecessor_never_comes_waits_only_the_grace() {
        let gate = ReadOrder::default();
        gate.run(0, 1 << 20, || ());
        let t = Instant::now();
        // A gap of 1 MiB after the last read: waits for the read that would fill it, then goes.
        gate.run(2 * M, 1 << 20, || ());
        let waited = t.elapsed();
        assert!(waited >= gate.grace, "{waited:?}");
        // In order, behind, or far ahead: nothing to wait for.
        for off in [3 * M, 0, 100 * M] {
            gate.run(off, 1 << 20, || ());
        }
        assert!(lock(&gate.state).waiting.is_empty());
    }

    #[test]
    fn a_read_elsewhere_in_the_file_does_not_wait_for_the_stream() {
        let gate = Arc::new(ReadOrder::default());
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let g = Arc::clone(&gate);
        let holder = std::thread::spawn(move || {
            g.run(0, 1 << 20, || {
                started_tx.send(()).expect("send");
                released.recv().expect("recv");
            })
        });
        started.recv().expect("the stream's read started");
        // While the stream's read holds the gate, a read far ahead and one behind run (were they
        // to wait for it, this thread would never release it).
        gate.run(64 * M, 1 << 20, || ());
        gate.run(0, 4096, || ());
        release.send(()).expect("send");
        holder.join().expect("holder");
    }

    #[test]
    fn every_read_runs_whatever_the_mix() {
        let gate = Arc::new(ReadOrder::default());
        let done = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|i| {
                let (gate, done) = (Arc::clone(&gate), Arc::clone(&done));
                std::thread::spawn(move || {
                    for k in 0..50u64 {
                        // A stream read by several threads, one read backwards, and strays.
                        let off = match i % 4 {
                            0 | 1 => (k * 2 + i) * M,
                            2 => (60 - k) * M,
                            _ => ((k * 37 + i * 11) % 97) * M + 4096,
                        };
                        gate.run(off, 1 << 20, || {
                            done.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("reader");
        }
        assert_eq!(done.load(Ordering::SeqCst), 8 * 50);
        let st = lock(&gate.state);
        assert!(st.waiting.is_empty() && !st.busy);
    }
}
