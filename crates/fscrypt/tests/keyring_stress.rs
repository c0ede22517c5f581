//! Races key add/remove against unlock, write and writeout: fstests generic/595 at the keyring level.
//!
//! One thread adds and removes the key in a loop. Writer threads unlock fresh inodes, accept writes
//! (`prepare_write`) and write them out (`derive_extent_key`, as the per-extent layout does at
//! writeout), then either close the inode or leave it cached for the locker to lock. A reader thread
//! re-derives keys of cached inodes. Checked on every iteration:
//! - every accepted write is written out: a holder of an active reference never fails to derive,
//!   whatever happened to the key (promise 2);
//! - an unlock that ran entirely while the key was removed failed (nobody new gets the key);
//! - a removal that reported no busy files left the key absent; one that did left it incompletely
//!   removed or (if the busy files closed meanwhile) absent;
//! - at the end, with everything closed, the key is absent and the keyring is empty.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fscrypt::extent::ExtentContext;
use fscrypt::keyring::{
    ActiveRef, BusyInode, Caller, InodeId, InodeLocker, KeyStatus, Keyring, KeyringConfig,
    RemovalMode, UserQuota,
};
use fscrypt::policy::KeySpec;
use fscrypt::secret::SecretBytes;
use fscrypt::{EncryptionMode, Errno};

const CYCLES: usize = 3000;
const TIME_BUDGET: Duration = Duration::from_secs(6);
const WRITERS: usize = 2;
const USER: u32 = 1000;

fn raw() -> SecretBytes {
    SecretBytes::copy_from(&[0x5au8; 32].map(|b| b ^ 0x33))
}

/// Inodes closed but still cached: the locker locks them (drops their references).
#[derive(Default)]
struct Cache {
    idle: Mutex<HashMap<InodeId, ActiveRef>>,
}

impl InodeLocker for Cache {
    fn try_lock(&self, _spec: &KeySpec, inodes: &[InodeId]) -> Vec<BusyInode> {
        let mut idle = self.idle.lock().unwrap();
        let mut busy = Vec::new();
        for ino in inodes {
            if idle.remove(ino).is_none() {
                // Open in a writer thread.
                busy.push(BusyInode {
                    ino: *ino,
                    owner: None,
                    path: Some(format!("/stress/{ino}")),
                    pids: vec![1],
                });
            }
        }
        busy
    }
}

#[derive(Default)]
struct Stats {
    accepted: AtomicUsize,
    flushed: AtomicUsize,
    refused_writes: AtomicUsize,
    refused_opens: AtomicUsize,
    opens: AtomicUsize,
    busy_removals: AtomicUsize,
    reads: AtomicUsize,
}

fn ctx(id: [u8; 16], ino: InodeId, n: u64) -> ExtentContext {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&ino.to_le_bytes());
    nonce[8..].copy_from_slice(&n.to_le_bytes());
    ExtentContext {
        mode: EncryptionMode::Aes256Xts,
        master_key_identifier: id,
        nonce,
    }
}

/// Writes out one accepted write: derive the new extent's key and encrypt a data unit with it.
fn writeout(r: &ActiveRef, id: [u8; 16], ino: InodeId, n: u64) {
    let key = r
        .derive_extent_key(&ctx(id, ino, n))
        .unwrap_or_else(|e| panic!("acknowledged write to inode {ino} lost at writeout: {e}"));
    let mut unit = [0x61u8; 512];
    key.encrypt_units(0, 512, &mut unit).unwrap();
    key.decrypt_units(0, 512, &mut unit).unwrap();
    assert_eq!(unit, [0x61u8; 512]);
}

fn race(mode: RemovalMode) {
    let kr = Arc::new(Keyring::new(KeyringConfig {
        removal_mode: mode,
        quota: UserQuota::default(),
    }));
    let id = kr.add_v2(Caller::user(USER), raw()).unwrap();
    let spec = KeySpec::Identifier(id);
    let cache = Arc::new(Cache::default());
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    // Even: removed (a removal has returned and no add has started). Odd: add started / present.
    let generation = Arc::new(AtomicU64::new(1));
    let next_ino = Arc::new(AtomicU64::new(1));

    let keyctl = {
        let (kr, cache, stats, stop, generation) = (
            Arc::clone(&kr),
            Arc::clone(&cache),
            Arc::clone(&stats),
            Arc::clone(&stop),
            Arc::clone(&generation),
        );
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut cycles = 0;
            while cycles < CYCLES && start.elapsed() < TIME_BUDGET {
                for _ in 0..(cycles % 7) {
                    std::thread::yield_now();
                }
                let r = kr.remove(Caller::user(USER), spec, false, &*cache).unwrap();
                generation.fetch_add(1, Ordering::SeqCst); // now even
                let st = kr.status(Caller::user(USER), spec);
                if r.files_busy {
                    stats.busy_removals.fetch_add(1, Ordering::Relaxed);
                    assert!(
                        matches!(st, KeyStatus::IncompletelyRemoved | KeyStatus::Absent),
                        "{st:?}"
                    );
                    assert!(!r.busy.is_empty());
                } else {
                    assert_eq!(st, KeyStatus::Absent, "removal without busy files");
                }
                for _ in 0..(cycles % 5) {
                    std::thread::yield_now();
                }
                generation.fetch_add(1, Ordering::SeqCst); // odd: adding
                assert_eq!(kr.add_v2(Caller::user(USER), raw()).unwrap(), id);
                cycles += 1;
            }
            stop.store(true, Ordering::SeqCst);
            cycles
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (kr, cache, stats, stop, generation, next_ino) = (
                Arc::clone(&kr),
                Arc::clone(&cache),
                Arc::clone(&stats),
                Arc::clone(&stop),
                Arc::clone(&generation),
                Arc::clone(&next_ino),
            );
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let ino = next_ino.fetch_add(1, Ordering::Relaxed);
                    let g1 = generation.load(Ordering::SeqCst);
                    let r = match kr.unlock(&spec, ino, |_| Ok(())) {
                        Ok((r, ())) => r,
                        Err(e) => {
                            assert_eq!(e.errno(), Errno::NOKEY);
                            stats.refused_opens.fetch_add(1, Ordering::Relaxed);
                            // Back off so the add/remove thread gets the CPU (2 cores).
                            std::thread::sleep(Duration::from_micros(20));
                            continue;
                        }
                    };
                    let g2 = generation.load(Ordering::SeqCst);
                    assert!(
                        !(g1 == g2 && g1 % 2 == 0),
                        "unlock succeeded while the key was removed throughout"
                    );
                    stats.opens.fetch_add(1, Ordering::Relaxed);
                    // A few writes; each accepted one must reach writeout.
                    let mut pending = Vec::new();
                    for _ in 0..(1 + (ino % 4)) {
                        match r.prepare_write() {
                            Ok(()) => {
                                stats.accepted.fetch_add(1, Ordering::Relaxed);
                                n += 1;
                                pending.push(n);
                            }
                            Err(e) => {
                                assert_eq!(mode, RemovalMode::DenyWrites);
                                assert_eq!(e.errno(), Errno::NOKEY);
                                stats.refused_writes.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                        std::thread::yield_now();
                    }
                    for n in pending {
                        writeout(&r, id, ino, n);
                        stats.flushed.fetch_add(1, Ordering::Relaxed);
                    }
                    // Close: half the inodes stay cached (lockable), the rest are evicted now.
                    if (ino + w as u64).is_multiple_of(2) {
                        cache.idle.lock().unwrap().insert(ino, r);
                    } else {
                        drop(r);
                    }
                }
            })
        })
        .collect();

    let reader = {
        let (cache, stats, stop) = (Arc::clone(&cache), Arc::clone(&stats), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                {
                    let idle = cache.idle.lock().unwrap();
                    // Reading an existing extent of a cached inode: its key must still derive.
                    if let Some((ino, r)) = idle.iter().next() {
                        writeout(r, id, *ino, 0);
                        stats.reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::yield_now();
            }
        })
    };

    let cycles = keyctl.join().unwrap();
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();

    let s = &stats;
    let (accepted, flushed) = (
        s.accepted.load(Ordering::Relaxed),
        s.flushed.load(Ordering::Relaxed),
    );
    eprintln!(
        "{mode:?}: {cycles} add/remove cycles, {} opens ({} refused), {accepted} writes accepted, \
         {flushed} written out, {} refused, {} busy removals, {} reads of cached inodes",
        s.opens.load(Ordering::Relaxed),
        s.refused_opens.load(Ordering::Relaxed),
        s.refused_writes.load(Ordering::Relaxed),
        s.busy_removals.load(Ordering::Relaxed),
        s.reads.load(Ordering::Relaxed),
    );
    assert_eq!(accepted, flushed, "every accepted write was written out");
    assert!(cycles > 0 && accepted > 0);

    // Everything closed and removed: the key is absent and the keyring empty.
    cache.idle.lock().unwrap().clear();
    assert!(kr.active_inodes(&spec).is_empty());
    let r = kr.remove(Caller::user(USER), spec, false, &*cache).unwrap();
    assert!(!r.files_busy);
    assert_eq!(kr.status(Caller::user(USER), spec), KeyStatus::Absent);
    assert_eq!(kr.quota_usage(USER).keys, 0);
    assert!(format!("{kr:?}").contains("keys: []"));
}

#[test]
fn add_remove_races_unlock_and_writeout_soft() {
    race(RemovalMode::Soft);
}

#[test]
fn add_remove_races_unlock_and_writeout_deny_writes() {
    race(RemovalMode::DenyWrites);
}
