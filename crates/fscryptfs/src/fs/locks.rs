//! Lock helpers that ignore poisoning (no critical section leaves state half-done at a panic
//! point), and in debug builds check the two rules that keep the daemon's threads from
//! deadlocking. The order locks may nest in is documented in `fs/mod.rs`.
//!
//! 1. **No thread takes a lock it holds**, a read lock included: std's `RwLock` makes a new reader
//!    wait behind a waiting writer, so a thread that reads a lock it already reads deadlocks as
//!    soon as another thread asks to write in between — a hang that needs a slow call inside the
//!    first read (a round trip to a network backing store) to show.
//! 2. **Two kinds of lock are always nested the same way round.** Kinds are the types the locks
//!    guard (every node's `state` is one kind); each time a thread takes a lock while holding one
//!    of another kind, the pair is remembered for the process, and taking them the other way round
//!    anywhere (directly or through other kinds) is an inversion: two threads doing both deadlock
//!    if they meet. Locks of one kind nested (two nodes' locks) are not ordered by this check.
//!
//! Debug builds (the test suite) abort with a backtrace and the places involved at the first
//! breach, so every test that passes through such a path fails at once, however the threads
//! happen to be scheduled. Release builds keep the std guards and nothing else.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// How a lock is held.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Mode {
    Mutex,
    Read,
    Write,
}

#[cfg(debug_assertions)]
use held::Mark;

/// Release builds list nothing.
#[cfg(not(debug_assertions))]
struct Mark;

#[cfg(not(debug_assertions))]
impl Mark {
    #[inline(always)]
    fn take<L>(_lock: &L, _mode: Mode) -> Mark {
        Mark
    }
}

/// A held lock: the std guard `G`, listed (in debug builds) until dropped.
pub(super) struct Guard<G> {
    guard: G,
    _held: Mark,
}

/// A held mutex (see the module comment).
pub(super) type Locked<'a, T> = Guard<MutexGuard<'a, T>>;
/// A held read lock.
pub(super) type ReadGuard<'a, T> = Guard<RwLockReadGuard<'a, T>>;
/// A held write lock.
pub(super) type WriteGuard<'a, T> = Guard<RwLockWriteGuard<'a, T>>;

/// Takes a mutex, ignoring poisoning (no critical section leaves state half-done at a panic point).
#[track_caller]
pub(super) fn lock<T>(m: &Mutex<T>) -> Locked<'_, T> {
    let _held = Mark::take(m, Mode::Mutex);
    let guard = m.lock().unwrap_or_else(|p| p.into_inner());
    Guard { guard, _held }
}

#[track_caller]
pub(super) fn rlock<T>(m: &RwLock<T>) -> ReadGuard<'_, T> {
    let _held = Mark::take(m, Mode::Read);
    let guard = m.read().unwrap_or_else(|p| p.into_inner());
    Guard { guard, _held }
}

#[track_caller]
pub(super) fn wlock<T>(m: &RwLock<T>) -> WriteGuard<'_, T> {
    let _held = Mark::take(m, Mode::Write);
    let guard = m.write().unwrap_or_else(|p| p.into_inner());
    Guard { guard, _held }
}

impl<'a, T> Locked<'a, T> {
    /// The same lock after `wait` gave its std guard back. The thread counts as holding the
    /// mutex meanwhile: it takes nothing else while it waits.
    fn waited(self, wait: impl FnOnce(MutexGuard<'a, T>) -> MutexGuard<'a, T>) -> Self {
        let Guard { guard, _held } = self;
        Guard {
            guard: wait(guard),
            _held,
        }
    }

    /// Waits on `cv` (the mutex released meanwhile).
    pub(super) fn wait(self, cv: &Condvar) -> Self {
        self.waited(|g| cv.wait(g).unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits on `cv` for at most `timeout`.
    pub(super) fn wait_timeout(self, cv: &Condvar, timeout: Duration) -> Self {
        self.waited(|g| match cv.wait_timeout(g, timeout) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        })
    }

    /// Waits on `cv` while `condition` holds, for at most `timeout`.
    pub(super) fn wait_timeout_while(
        self,
        cv: &Condvar,
        timeout: Duration,
        condition: impl FnMut(&mut T) -> bool,
    ) -> Self {
        self.waited(|g| match cv.wait_timeout_while(g, timeout, condition) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        })
    }
}

impl<G: Deref> Deref for Guard<G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Guard<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

/// A lock and the type it guards (which names its kind).
#[cfg(debug_assertions)]
trait Guarding {
    fn guards() -> &'static str;
}

#[cfg(debug_assertions)]
impl<T> Guarding for Mutex<T> {
    fn guards() -> &'static str {
        std::any::type_name::<T>()
    }
}

#[cfg(debug_assertions)]
impl<T> Guarding for RwLock<T> {
    fn guards() -> &'static str {
        std::any::type_name::<T>()
    }
}

/// The locks each thread holds and the order kinds were seen nested in, in debug builds.
#[cfg(debug_assertions)]
mod held {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::panic::Location;
    use std::sync::Mutex;

    use super::Mode;

    /// One lock a thread holds.
    #[derive(Clone, Copy)]
    struct Held {
        lock: usize,
        mode: Mode,
        /// The type the lock guards: every node's `state` lock is one kind.
        guards: &'static str,
        at: &'static Location<'static>,
    }

    thread_local! {
        static HELD: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
    }

    /// (outer, inner) → where `inner` was first taken while `outer` was held.
    type Order = HashMap<(&'static str, &'static str), &'static Location<'static>>;
    static ORDER: Mutex<Option<Order>> = Mutex::new(None);

    pub(super) fn address<T: ?Sized>(m: &T) -> usize {
        std::ptr::from_ref(m).cast::<u8>() as usize
    }

    /// Whether this thread holds the lock at `lock`.
    #[cfg(test)]
    pub(super) fn holds(lock: usize) -> bool {
        HELD.with_borrow(|held| held.iter().any(|h| h.lock == lock))
    }

    fn breach(what: &str) -> ! {
        let thread = std::thread::current();
        eprintln!(
            "fscryptfs: lock order bug on thread {:?}: {what}\n{}",
            thread.name().unwrap_or("?"),
            std::backtrace::Backtrace::force_capture()
        );
        std::process::abort();
    }

    /// Whether `to` is reachable from `from` through remembered pairs (the graph has one node per
    /// kind of lock: a dozen).
    fn reaches(order: &Order, from: &'static str, to: &'static str) -> Option<Vec<&'static str>> {
        let mut stack = vec![vec![from]];
        let mut seen = vec![from];
        while let Some(path) = stack.pop() {
            let last = path[path.len() - 1];
            for &(outer, inner) in order.keys() {
                if outer != last || seen.contains(&inner) {
                    continue;
                }
                let mut longer = path.clone();
                longer.push(inner);
                if inner == to {
                    return Some(longer);
                }
                seen.push(inner);
                stack.push(longer);
            }
        }
        None
    }

    /// Checks both rules for taking the lock `new` now; remembers the new pairs when `record`.
    fn check(new: Held, record: bool) -> Result<(), String> {
        let held: Vec<Held> = HELD.with_borrow(|held| held.clone());
        if let Some(h) = held.iter().find(|h| h.lock == new.lock) {
            return Err(format!(
                "{:?} lock of {} at {} taken again ({:?}) at {}: it waits for itself, or for a \
                 writer queued between the two",
                h.mode, h.guards, h.at, new.mode, new.at
            ));
        }
        let outers: Vec<&Held> = held.iter().filter(|h| h.guards != new.guards).collect();
        if outers.is_empty() {
            return Ok(());
        }
        let mut order = ORDER.lock().unwrap_or_else(|p| p.into_inner());
        let order = order.get_or_insert_with(HashMap::new);
        for outer in outers {
            if order.contains_key(&(outer.guards, new.guards)) {
                continue;
            }
            if let Some(path) = reaches(order, new.guards, outer.guards) {
                let first = order.get(&(path[0], path[1])).copied();
                return Err(format!(
                    "{} taken at {} while holding {} (taken at {}), but elsewhere the nesting \
                     went {} (the first step at {})",
                    new.guards,
                    new.at,
                    outer.guards,
                    outer.at,
                    path.join(" → "),
                    first.map_or_else(|| "?".to_string(), |l| l.to_string()),
                ));
            }
            if record {
                order.insert((outer.guards, new.guards), new.at);
            }
        }
        Ok(())
    }

    /// What taking `lock` now would breach, if anything (nothing is taken or remembered).
    #[cfg(test)]
    #[track_caller]
    pub(super) fn would_breach<L: super::Guarding>(lock: &L, mode: Mode) -> Option<String> {
        let new = Held {
            lock: address(lock),
            mode,
            guards: L::guards(),
            at: Location::caller(),
        };
        check(new, false).err()
    }

    /// A lock this thread holds, listed until dropped.
    pub(in crate::fs) struct Mark(usize);

    impl Mark {
        /// Checks and lists `lock` (a `Mutex<T>` or `RwLock<T>`) as about to be taken.
        #[track_caller]
        pub(in crate::fs) fn take<L: super::Guarding>(lock: &L, mode: Mode) -> Mark {
            let new = Held {
                lock: address(lock),
                mode,
                guards: L::guards(),
                at: Location::caller(),
            };
            if let Err(why) = check(new, true) {
                breach(&why);
            }
            HELD.with_borrow_mut(|held| held.push(new));
            Mark(new.lock)
        }
    }

    impl Drop for Mark {
        fn drop(&mut self) {
            HELD.with_borrow_mut(|held| {
                if let Some(i) = held.iter().rposition(|h| h.lock == self.0) {
                    held.remove(i);
                }
            });
        }
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn held_locks_are_listed_while_held_and_only_on_their_thread() {
        let a = RwLock::new(1);
        let b = Mutex::new(2);
        let (at_a, at_b) = (held::address(&a), held::address(&b));
        assert!(!held::holds(at_a));
        {
            let ga = rlock(&a);
            // A lock of another kind may be taken inside (the order rules of fs/mod.rs apply).
            let gb = lock(&b);
            assert_eq!(*ga + *gb, 3);
            assert!(held::holds(at_a) && held::holds(at_b));
            // A second rlock(&a) here would abort; another thread may read `a` freely.
            std::thread::scope(|s| {
                s.spawn(|| {
                    assert!(!held::holds(at_a));
                    assert_eq!(*rlock(&a), 1);
                });
            });
            drop(gb);
            assert!(held::holds(at_a) && !held::holds(at_b));
        }
        assert!(!held::holds(at_a));
        // Released: the same thread may now write it, and read it again.
        *wlock(&a) = 5;
        assert_eq!(*rlock(&a), 5);
        assert!(!held::holds(at_a));
    }

    // Kinds of their own, so that the order these tests record meets no other test's.
    struct First;
    struct Second;
    struct Third;

    #[test]
    fn taking_a_held_lock_again_is_refused_in_any_mode() {
        let a = RwLock::new(First);
        let m = Mutex::new(Second);
        let _r = rlock(&a);
        let _l = lock(&m);
        for mode in [Mode::Read, Mode::Write] {
            let why = held::would_breach(&a, mode).expect("a lock read twice");
            assert!(why.contains("taken again"), "{why}");
        }
        assert!(held::would_breach(&m, Mode::Mutex).is_some());
    }

    #[test]
    fn kinds_nested_both_ways_round_are_an_inversion_even_through_a_third() {
        let (a, b, c) = (Mutex::new(First), RwLock::new(Second), Mutex::new(Third));
        {
            let _a = lock(&a);
            let _b = rlock(&b); // First, then Second
        }
        {
            let _b = wlock(&b);
            let _c = lock(&c); // Second, then Third
        }
        // The same way round again is fine; so is each alone.
        {
            let _a = lock(&a);
            assert!(held::would_breach(&b, Mode::Write).is_none());
        }
        let _c = lock(&c);
        let why = held::would_breach(&a, Mode::Mutex).expect("Third, then First closes a cycle");
        assert!(why.contains("First") && why.contains("Third"), "{why}");
        // Second inside Third goes against Second → Third.
        assert!(held::would_breach(&b, Mode::Read).is_some());
    }

    #[test]
    fn a_waiting_guard_is_still_listed_and_comes_back_whole() {
        let m = Mutex::new(0u32);
        let cv = Condvar::new();
        let g = lock(&m).wait_timeout(&cv, Duration::from_millis(1));
        assert!(held::holds(held::address(&m)));
        let mut g = g.wait_timeout_while(&cv, Duration::from_millis(1), |v| *v == 0);
        *g += 1;
        drop(g);
        assert!(!held::holds(held::address(&m)));
        assert_eq!(*lock(&m), 1);
    }
}
