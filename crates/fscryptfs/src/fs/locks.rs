//! Lock helpers that ignore poisoning (no critical section leaves state half-done at a panic
//! point). The order locks may nest in is documented in `fs/mod.rs`.
//!
//! A read lock must never be taken twice by one thread: std's `RwLock` makes a new reader wait
//! behind a waiting writer, so a thread that reads a lock it already reads deadlocks as soon as
//! another thread asks to write in between — a hang that needs a slow call inside the first read
//! (a round trip to a network backing store) to show. Debug builds (the test suite) keep a list of
//! the read locks each thread holds and abort with a backtrace at the second `rlock`, or at a
//! `wlock` of a lock the thread reads, so every test that passes through such a path fails at once,
//! however the threads happen to be scheduled.

use std::ops::Deref;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Takes a mutex, ignoring poisoning (no critical section leaves state half-done at a panic point).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A read lock (see the module comment on taking one twice).
pub(super) struct ReadGuard<'a, T> {
    guard: RwLockReadGuard<'a, T>,
    #[cfg(debug_assertions)]
    _held: held::Mark,
}

impl<T> Deref for ReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

pub(super) fn rlock<T>(m: &RwLock<T>) -> ReadGuard<'_, T> {
    #[cfg(debug_assertions)]
    let mark = held::Mark::take(held::address(m));
    ReadGuard {
        guard: m.read().unwrap_or_else(|p| p.into_inner()),
        #[cfg(debug_assertions)]
        _held: mark,
    }
}

pub(super) fn wlock<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    #[cfg(debug_assertions)]
    held::refuse_if_read(held::address(m), "write-lock a lock it is reading");
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// The read locks each thread holds, in debug builds.
#[cfg(debug_assertions)]
mod held {
    use std::cell::RefCell;
    use std::sync::RwLock;

    thread_local! {
        static READ: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn address<T>(m: &RwLock<T>) -> usize {
        std::ptr::from_ref(m) as usize
    }

    /// Whether this thread holds a read lock of `lock`.
    pub(super) fn is_read(lock: usize) -> bool {
        READ.with_borrow(|read| read.contains(&lock))
    }

    /// Aborts (with a backtrace) when this thread holds a read lock of `lock`: it would deadlock.
    pub(super) fn refuse_if_read(lock: usize, what: &str) {
        if is_read(lock) {
            let thread = std::thread::current();
            eprintln!(
                "fscryptfs: lock order bug: thread {:?} tried to {what} (RwLock at {lock:#x}); this \
                 deadlocks once a writer waits in between\n{}",
                thread.name().unwrap_or("?"),
                std::backtrace::Backtrace::force_capture()
            );
            std::process::abort();
        }
    }

    /// A read lock this thread holds, listed until dropped.
    pub(super) struct Mark(usize);

    impl Mark {
        pub(super) fn take(lock: usize) -> Mark {
            refuse_if_read(lock, "read a lock it is already reading");
            READ.with_borrow_mut(|read| read.push(lock));
            Mark(lock)
        }
    }

    impl Drop for Mark {
        fn drop(&mut self) {
            READ.with_borrow_mut(|read| {
                if let Some(i) = read.iter().rposition(|&l| l == self.0) {
                    read.swap_remove(i);
                }
            });
        }
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn read_locks_are_listed_while_held_and_only_on_their_thread() {
        let a = RwLock::new(1);
        let b = RwLock::new(2);
        let (at_a, at_b) = (held::address(&a), held::address(&b));
        assert!(!held::is_read(at_a));
        {
            let ga = rlock(&a);
            // Another lock may be read inside (the order rules of fs/mod.rs apply).
            let gb = rlock(&b);
            assert_eq!(*ga + *gb, 3);
            assert!(held::is_read(at_a) && held::is_read(at_b));
            // A second rlock(&a) here would abort; another thread may read `a` freely.
            std::thread::scope(|s| {
                s.spawn(|| {
                    assert!(!held::is_read(at_a));
                    assert_eq!(*rlock(&a), 1);
                });
            });
            drop(gb);
            assert!(held::is_read(at_a) && !held::is_read(at_b));
        }
        assert!(!held::is_read(at_a));
        // Released: the same thread may now write it, and read it again.
        *wlock(&a) = 5;
        assert_eq!(*rlock(&a), 5);
        assert!(!held::is_read(at_a));
    }
}
