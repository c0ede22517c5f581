//! Model-based tests of the keyring: random operation sequences from several threads, against a
//! reference state machine written straight from the kernel's rules (fscrypt-spec.md §1.6, §6).
//!
//! - `serialised_*`: each thread runs its own seeded sequence; every operation and the model's step
//!   run together under one lock, so each result is compared exactly with the model's, and the
//!   final state (status per user, unlocked inodes, quota usage) must match the model's too.
//! - `concurrent_*`: the same sequences with no lock around them. Results are checked against what
//!   the operation may return in any interleaving (and the soft-removal guarantee — a holder of an
//!   active reference can always derive extent keys — must hold exactly); the final state must be
//!   self-consistent, and after everything is closed and removed the keyring must be empty.
//!
//! Half the inodes unlock with `SecretNeed::Later` (per-extent files), half with `SetupOnly`
//! (per-file layout, directories): the model knows that the secret lives while the key is present or,
//! once removal started, while a `Later` reference remains, and that `SetupOnly` references cannot
//! derive extent keys (EINVAL); `Keyring::secret_retained` is checked against it after every step.
//!
//! Seeds are printed; set KEYRING_MODEL_SEED to rerun one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use fscrypt::extent::ExtentContext;
use fscrypt::keyring::{
    ActiveRef, BusyInode, Caller, InodeId, InodeLocker, KeyStatus, Keyring, KeyringConfig,
    RemovalMode, RemovalResult, SecretNeed, UserQuota,
};
use fscrypt::keysetup::key_identifier;
use fscrypt::policy::KeySpec;
use fscrypt::secret::SecretBytes;
use fscrypt::{EncryptionMode, Errno};

const V2_KEYS: usize = 3;
const KEYS: usize = V2_KEYS + 1; // the last one is a v1 key
const UIDS: [u32; 3] = [0, 1000, 1001];
const INODES: u64 = 12;
const MAX_CLAIMS: usize = 2;
const THREADS: u64 = 4;
const OPS_PER_THREAD: usize = 8000;
const V1_DESCRIPTOR: [u8; 8] = [0xd1; 8];

fn raw_bytes(key: usize) -> Vec<u8> {
    (0..64u8)
        .map(|i| i.wrapping_mul(17) ^ (key as u8).wrapping_mul(101))
        .collect()
}

fn key_of(ino: InodeId) -> usize {
    (ino % KEYS as u64) as usize
}

/// Inodes 0..4 and 8..12 are per-extent files (they keep the secret); 4..8 are not. Every key has
/// both kinds.
fn need_of(ino: InodeId) -> SecretNeed {
    if (ino / KEYS as u64).is_multiple_of(2) {
        SecretNeed::Later
    } else {
        SecretNeed::SetupOnly
    }
}

struct Keys {
    specs: Vec<KeySpec>,
    ids: Vec<[u8; 16]>,
}

impl Keys {
    fn new() -> Self {
        let ids: Vec<[u8; 16]> = (0..V2_KEYS)
            .map(|k| key_identifier(&raw_bytes(k)).unwrap())
            .collect();
        let mut specs: Vec<KeySpec> = ids.iter().map(|id| KeySpec::Identifier(*id)).collect();
        specs.push(KeySpec::Descriptor(V1_DESCRIPTOR));
        Keys { specs, ids }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Add {
        uid: u32,
        privileged: bool,
        key: usize,
    },
    Remove {
        uid: u32,
        privileged: bool,
        key: usize,
        all_users: bool,
    },
    Status {
        uid: u32,
        key: usize,
    },
    Verify {
        uid: u32,
        privileged: bool,
        key: usize,
    },
    Open {
        ino: InodeId,
    },
    Close {
        ino: InodeId,
    },
    SetBusy {
        ino: InodeId,
        busy: bool,
    },
    Derive {
        ino: InodeId,
        nonce: u8,
    },
    PrepareWrite {
        ino: InodeId,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    Ok,
    Err(Errno),
    Status(KeyStatus),
    Removed(RemovalResult),
    /// The operation needs an unlocked inode and there was none.
    NoRef,
}

fn out<T>(r: fscrypt::Result<T>) -> Out {
    match r {
        Ok(_) => Out::Ok,
        Err(e) => Out::Err(e.errno()),
    }
}

/// xorshift64*: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn gen_op(rng: &mut Rng) -> Op {
    let uid = UIDS[rng.below(UIDS.len() as u64) as usize];
    // Root is always privileged; other uids sometimes hold CAP_SYS_ADMIN.
    let privileged = uid == 0 || rng.below(8) == 0;
    let key = rng.below(KEYS as u64) as usize;
    let ino = rng.below(INODES);
    match rng.below(100) {
        0..=14 => Op::Add {
            uid,
            privileged,
            key,
        },
        15..=29 => Op::Remove {
            uid,
            privileged,
            key,
            all_users: rng.below(4) == 0,
        },
        30..=39 => Op::Status { uid, key },
        40..=44 => Op::Verify {
            uid,
            privileged,
            key: key % V2_KEYS,
        },
        45..=64 => Op::Open { ino },
        65..=79 => Op::Close { ino },
        80..=87 => Op::SetBusy {
            ino,
            busy: rng.below(2) == 0,
        },
        88..=94 => Op::Derive {
            ino,
            nonce: rng.below(256) as u8,
        },
        _ => Op::PrepareWrite { ino },
    }
}

/// The filesystem side: the active references it holds per inode, and which inodes are busy.
#[derive(Default)]
struct Fs {
    inodes: Mutex<HashMap<InodeId, (Vec<ActiveRef>, bool)>>,
}

impl InodeLocker for Fs {
    fn try_lock(&self, _spec: &KeySpec, inodes: &[InodeId]) -> Vec<BusyInode> {
        let mut table = self.inodes.lock().unwrap();
        let mut busy = Vec::new();
        for ino in inodes {
            if let Some((refs, is_busy)) = table.get_mut(ino) {
                if *is_busy {
                    if !refs.is_empty() {
                        busy.push(BusyInode {
                            ino: *ino,
                            owner: None,
                            path: Some(format!("/v/{ino}")),
                            pids: vec![*ino as u32],
                        });
                    }
                } else {
                    refs.clear(); // drops the references inside the call
                }
            }
        }
        busy
    }
}

struct World {
    kr: Keyring,
    fs: Fs,
    keys: Keys,
}

impl World {
    fn new(mode: RemovalMode) -> Self {
        World {
            kr: Keyring::new(KeyringConfig {
                removal_mode: mode,
                quota: UserQuota {
                    max_keys: MAX_CLAIMS,
                    max_bytes: 20000,
                },
            }),
            fs: Fs::default(),
            keys: Keys::new(),
        }
    }

    fn apply(&self, op: Op) -> Out {
        let kr = &self.kr;
        match op {
            Op::Add {
                uid,
                privileged,
                key,
            } => {
                let caller = Caller { uid, privileged };
                let raw = SecretBytes::copy_from(&raw_bytes(key));
                if key < V2_KEYS {
                    match kr.add_v2(caller, raw) {
                        Ok(id) => {
                            assert_eq!(id, self.keys.ids[key], "identifier of key {key}");
                            Out::Ok
                        }
                        Err(e) => Out::Err(e.errno()),
                    }
                } else {
                    out(kr.add_v1(caller, V1_DESCRIPTOR, raw))
                }
            }
            Op::Remove {
                uid,
                privileged,
                key,
                all_users,
            } => match kr.remove(
                Caller { uid, privileged },
                self.keys.specs[key],
                all_users,
                &self.fs,
            ) {
                Ok(r) => Out::Removed(r),
                Err(e) => Out::Err(e.errno()),
            },
            Op::Status { uid, key } => {
                Out::Status(kr.status(Caller::user(uid), self.keys.specs[key]))
            }
            Op::Verify {
                uid,
                privileged,
                key,
            } => out(kr.verify_key_added(Caller { uid, privileged }, &self.keys.ids[key])),
            Op::Open { ino } => {
                let k = key_of(ino);
                match kr.unlock_with(&self.keys.specs[k], ino, need_of(ino), |s| {
                    Ok(s.identifier())
                }) {
                    Ok((r, id)) => {
                        assert_eq!(id, self.keys.ids.get(k).copied(), "secret handed to f");
                        let mut t = self.fs.inodes.lock().unwrap();
                        t.entry(ino).or_default().0.push(r);
                        Out::Ok
                    }
                    Err(e) => Out::Err(e.errno()),
                }
            }
            Op::Close { ino } => {
                // Drop outside the table lock this time (the locker drops inside it).
                let r = self
                    .fs
                    .inodes
                    .lock()
                    .unwrap()
                    .get_mut(&ino)
                    .and_then(|(refs, _)| refs.pop());
                match r {
                    Some(r) => {
                        drop(r);
                        Out::Ok
                    }
                    None => Out::NoRef,
                }
            }
            Op::SetBusy { ino, busy } => {
                self.fs.inodes.lock().unwrap().entry(ino).or_default().1 = busy;
                Out::Ok
            }
            Op::Derive { ino, nonce } => {
                let t = self.fs.inodes.lock().unwrap();
                let Some(r) = t.get(&ino).and_then(|(refs, _)| refs.first()) else {
                    return Out::NoRef;
                };
                let k = key_of(ino);
                let ctx = ExtentContext {
                    mode: EncryptionMode::Aes256Xts,
                    master_key_identifier: self.keys.ids.get(k).copied().unwrap_or([0xd1; 16]),
                    nonce: [nonce; 16],
                };
                out(r.derive_extent_key(&ctx))
            }
            Op::PrepareWrite { ino } => {
                let t = self.fs.inodes.lock().unwrap();
                match t.get(&ino).and_then(|(refs, _)| refs.first()) {
                    Some(r) => out(r.prepare_write()),
                    None => Out::NoRef,
                }
            }
        }
    }

    fn refs(&self, ino: InodeId) -> usize {
        self.fs
            .inodes
            .lock()
            .unwrap()
            .get(&ino)
            .map_or(0, |(r, _)| r.len())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MState {
    Absent,
    Present,
    IncompletelyRemoved,
}

#[derive(Clone, Debug)]
struct MKey {
    state: MState,
    claims: BTreeSet<u32>,
}

/// The reference state machine.
struct Model {
    mode: RemovalMode,
    keys: Vec<MKey>,
    usage: HashMap<u32, usize>,
    refs: HashMap<InodeId, usize>,
    busy: HashSet<InodeId>,
    cases: HashMap<&'static str, usize>,
}

impl Model {
    fn new(mode: RemovalMode) -> Self {
        Model {
            mode,
            keys: vec![
                MKey {
                    state: MState::Absent,
                    claims: BTreeSet::new()
                };
                KEYS
            ],
            usage: HashMap::new(),
            refs: HashMap::new(),
            busy: HashSet::new(),
            cases: HashMap::new(),
        }
    }

    /// Tallies the interesting cases, so the test can show it reached them.
    fn count(&mut self, op: Op, got: &Out, before: &[MState]) {
        let wiped_key = match op {
            Op::Remove { key, .. } => Some(key),
            Op::Close { ino } => Some(key_of(ino)),
            _ => None,
        }
        .filter(|k| before[*k] != MState::Absent);
        let case = match (op, got) {
            (Op::Remove { .. }, Out::Removed(r)) if r.files_busy => "remove: files busy",
            (Op::Remove { .. }, Out::Removed(r)) if r.other_users => "remove: other users",
            (Op::Remove { key, .. }, Out::Removed(_))
                if before[key] == MState::IncompletelyRemoved =>
            {
                "remove: retry completed"
            }
            (Op::Remove { .. }, Out::Err(Errno::NOKEY)) => "remove: ENOKEY",
            (Op::Add { .. }, Out::Err(Errno::DQUOT)) => "add: EDQUOT",
            (Op::Add { key, .. }, Out::Ok) if before[key] == MState::IncompletelyRemoved => {
                "add: re-added while incompletely removed"
            }
            (Op::Open { ino }, Out::Err(_))
                if before[key_of(ino)] == MState::IncompletelyRemoved =>
            {
                "open: ENOKEY while incompletely removed"
            }
            (Op::Derive { ino, .. }, Out::Ok)
                if before[key_of(ino)] == MState::IncompletelyRemoved =>
            {
                "derive: ok while incompletely removed"
            }
            (Op::Close { ino }, Out::Ok)
                if before[key_of(ino)] == MState::IncompletelyRemoved
                    && self.keys[key_of(ino)].state == MState::Absent =>
            {
                "close: last reference made the key absent"
            }
            (Op::PrepareWrite { .. }, Out::Err(_)) => "prepare_write: ENOKEY",
            (Op::Derive { .. }, Out::Err(Errno::INVAL)) => "derive: EINVAL through setup-only",
            (Op::Remove { .. } | Op::Close { .. }, _)
                if wiped_key.is_some_and(|k| {
                    self.keys[k].state == MState::IncompletelyRemoved && !self.secret_alive(k)
                }) =>
            {
                "secret wiped while incompletely removed"
            }
            _ => return,
        };
        *self.cases.entry(case).or_default() += 1;
    }

    fn key_refs(&self, k: usize) -> usize {
        self.refs
            .iter()
            .filter(|(ino, _)| key_of(**ino) == k)
            .map(|(_, n)| n)
            .sum()
    }

    /// The new rule: the secret lives while the key is present, and after removal started only
    /// while some inode holds a `Later` reference.
    fn secret_alive(&self, k: usize) -> bool {
        match self.keys[k].state {
            MState::Present => true,
            MState::Absent => false,
            MState::IncompletelyRemoved => self
                .refs
                .iter()
                .any(|(ino, n)| key_of(*ino) == k && *n > 0 && need_of(*ino) == SecretNeed::Later),
        }
    }

    fn status(&self, uid: u32, k: usize) -> KeyStatus {
        let key = &self.keys[k];
        match key.state {
            MState::Absent => KeyStatus::Absent,
            MState::IncompletelyRemoved => KeyStatus::IncompletelyRemoved,
            MState::Present => KeyStatus::Present {
                user_count: key.claims.len() as u32,
                added_by_self: key.claims.contains(&uid),
            },
        }
    }

    fn apply(&mut self, op: Op) -> Out {
        match op {
            Op::Add {
                uid,
                privileged,
                key,
            } => {
                if key < V2_KEYS {
                    if !self.keys[key].claims.contains(&uid) {
                        let used = self.usage.get(&uid).copied().unwrap_or(0);
                        if uid != 0 && used >= MAX_CLAIMS {
                            return Out::Err(Errno::DQUOT);
                        }
                        *self.usage.entry(uid).or_default() += 1;
                        self.keys[key].claims.insert(uid);
                    }
                } else if !privileged {
                    return Out::Err(Errno::ACCESS);
                }
                self.keys[key].state = MState::Present;
                Out::Ok
            }
            Op::Remove {
                uid,
                privileged,
                key,
                all_users,
            } => {
                if (all_users || key >= V2_KEYS) && !privileged {
                    return Out::Err(Errno::ACCESS);
                }
                if self.keys[key].state == MState::Absent {
                    return Out::Err(Errno::NOKEY);
                }
                let claims = &mut self.keys[key].claims;
                if !claims.is_empty() {
                    let released: Vec<u32> = if all_users {
                        std::mem::take(claims).into_iter().collect()
                    } else if claims.remove(&uid) {
                        vec![uid]
                    } else {
                        return Out::Err(Errno::NOKEY);
                    };
                    let others = !claims.is_empty();
                    for u in released {
                        *self.usage.entry(u).or_default() -= 1;
                    }
                    if others {
                        return Out::Removed(RemovalResult {
                            other_users: true,
                            ..Default::default()
                        });
                    }
                }
                self.keys[key].state = MState::IncompletelyRemoved;
                // try_to_lock: every unlocked inode that is not busy is locked.
                let mut still = Vec::new();
                for (ino, n) in self.refs.iter_mut() {
                    if key_of(*ino) != key || *n == 0 {
                        continue;
                    }
                    if self.busy.contains(ino) {
                        still.push(*ino);
                    } else {
                        *n = 0;
                    }
                }
                if still.is_empty() {
                    self.keys[key].state = MState::Absent;
                    return Out::Removed(RemovalResult::default());
                }
                still.sort_unstable();
                Out::Removed(RemovalResult {
                    files_busy: true,
                    other_users: false,
                    busy: still
                        .into_iter()
                        .map(|ino| BusyInode {
                            ino,
                            owner: None,
                            path: Some(format!("/v/{ino}")),
                            pids: vec![ino as u32],
                        })
                        .collect(),
                })
            }
            Op::Status { uid, key } => Out::Status(self.status(uid, key)),
            Op::Verify {
                uid,
                privileged,
                key,
            } => {
                if privileged || self.keys[key].claims.contains(&uid) {
                    Out::Ok
                } else {
                    Out::Err(Errno::NOKEY)
                }
            }
            Op::Open { ino } => {
                if self.keys[key_of(ino)].state == MState::Present {
                    *self.refs.entry(ino).or_default() += 1;
                    Out::Ok
                } else {
                    Out::Err(Errno::NOKEY)
                }
            }
            Op::Close { ino } => {
                let n = self.refs.entry(ino).or_default();
                if *n == 0 {
                    return Out::NoRef;
                }
                *n -= 1;
                let k = key_of(ino);
                if self.keys[k].state == MState::IncompletelyRemoved && self.key_refs(k) == 0 {
                    self.keys[k].state = MState::Absent;
                }
                Out::Ok
            }
            Op::SetBusy { ino, busy } => {
                if busy {
                    self.busy.insert(ino);
                } else {
                    self.busy.remove(&ino);
                }
                Out::Ok
            }
            Op::Derive { ino, .. } => {
                if self.refs.get(&ino).copied().unwrap_or(0) == 0 {
                    Out::NoRef
                } else if need_of(ino) == SecretNeed::SetupOnly {
                    Out::Err(Errno::INVAL)
                } else if key_of(ino) < V2_KEYS {
                    Out::Ok
                } else {
                    Out::Err(Errno::NOKEY)
                }
            }
            Op::PrepareWrite { ino } => {
                if self.refs.get(&ino).copied().unwrap_or(0) == 0 {
                    Out::NoRef
                } else if self.mode == RemovalMode::Soft
                    || self.keys[key_of(ino)].state == MState::Present
                {
                    Out::Ok
                } else {
                    Out::Err(Errno::NOKEY)
                }
            }
        }
    }
}

fn base_seed() -> u64 {
    let seed = std::env::var("KEYRING_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    eprintln!("KEYRING_MODEL_SEED={seed}");
    seed
}

fn thread_ops(seed: u64, t: u64) -> Vec<Op> {
    let mut rng = Rng(seed.wrapping_add(t.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1);
    (0..OPS_PER_THREAD).map(|_| gen_op(&mut rng)).collect()
}

fn serialised(mode: RemovalMode) {
    let seed = base_seed();
    let world = Arc::new(World::new(mode));
    let model = Arc::new(Mutex::new(Model::new(mode)));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let world = Arc::clone(&world);
            let model = Arc::clone(&model);
            std::thread::spawn(move || {
                for (i, op) in thread_ops(seed, t).into_iter().enumerate() {
                    let mut m = model.lock().unwrap();
                    let got = world.apply(op);
                    let before = m.keys.iter().map(|k| k.state).collect::<Vec<_>>();
                    let want = m.apply(op);
                    assert_eq!(got, want, "seed {seed} thread {t} op {i}: {op:?}");
                    for k in 0..KEYS {
                        assert_eq!(
                            world.kr.secret_retained(&world.keys.specs[k]),
                            m.secret_alive(k),
                            "seed {seed} thread {t} op {i}: {op:?}: secret of key {k}"
                        );
                    }
                    m.count(op, &got, &before);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let m = model.lock().unwrap();
    let mut cases: Vec<_> = m.cases.iter().collect();
    cases.sort();
    eprintln!("{mode:?}: {cases:?}");
    let expected = 11 + usize::from(mode == RemovalMode::DenyWrites);
    assert_eq!(
        cases.len(),
        expected,
        "seed {seed}: some cases never happened"
    );
    // The final state is the model's.
    for k in 0..KEYS {
        let spec = world.keys.specs[k];
        for uid in UIDS.into_iter().chain([4242]) {
            assert_eq!(
                world.kr.status(Caller::user(uid), spec),
                m.status(uid, k),
                "key {k} uid {uid}"
            );
        }
        let mut want: Vec<InodeId> = m
            .refs
            .iter()
            .filter(|(ino, n)| key_of(**ino) == k && **n > 0)
            .map(|(ino, _)| *ino)
            .collect();
        want.sort_unstable();
        assert_eq!(world.kr.active_inodes(&spec), want, "key {k}");
    }
    for ino in 0..INODES {
        assert_eq!(world.refs(ino), m.refs.get(&ino).copied().unwrap_or(0));
    }
    for uid in UIDS {
        assert_eq!(
            world.kr.quota_usage(uid).keys,
            m.usage.get(&uid).copied().unwrap_or(0),
            "uid {uid}"
        );
    }
    drop(m);
    drain(&world);
}

/// Which results an operation may have in some interleaving; panics otherwise.
fn check_allowed(mode: RemovalMode, op: Op, got: &Out) {
    let ok = match (op, got) {
        (Op::Add { key, .. }, Out::Ok) => key < KEYS,
        (Op::Add { key, .. }, Out::Err(Errno::DQUOT)) => key < V2_KEYS,
        (
            Op::Add {
                key, privileged, ..
            },
            Out::Err(Errno::ACCESS),
        ) => key >= V2_KEYS && !privileged,
        (
            Op::Remove {
                privileged,
                key,
                all_users,
                ..
            },
            Out::Err(Errno::ACCESS),
        ) => !privileged && (all_users || key >= V2_KEYS),
        (Op::Remove { .. }, Out::Err(Errno::NOKEY)) => true,
        (Op::Remove { .. }, Out::Removed(r)) => {
            !(r.files_busy && r.other_users) && r.files_busy != r.busy.is_empty()
        }
        (Op::Status { .. }, Out::Status(_)) => true,
        (Op::Verify { privileged, .. }, Out::Err(Errno::NOKEY)) => !privileged,
        (Op::Verify { .. }, Out::Ok) => true,
        (Op::Open { .. }, Out::Ok | Out::Err(Errno::NOKEY)) => true,
        (Op::Close { .. } | Op::SetBusy { .. }, Out::Ok | Out::NoRef) => true,
        // Soft removal's promise: whoever holds a `Later` active reference can always derive.
        (Op::Derive { ino, .. }, Out::Ok) => {
            key_of(ino) < V2_KEYS && need_of(ino) == SecretNeed::Later
        }
        (Op::Derive { ino, .. }, Out::Err(Errno::NOKEY)) => {
            key_of(ino) >= V2_KEYS && need_of(ino) == SecretNeed::Later
        }
        (Op::Derive { ino, .. }, Out::Err(Errno::INVAL)) => need_of(ino) == SecretNeed::SetupOnly,
        (Op::Derive { .. } | Op::PrepareWrite { .. }, Out::NoRef) => true,
        (Op::PrepareWrite { .. }, Out::Ok) => true,
        (Op::PrepareWrite { .. }, Out::Err(Errno::NOKEY)) => mode == RemovalMode::DenyWrites,
        _ => false,
    };
    assert!(ok, "{op:?} returned {got:?}");
}

fn concurrent(mode: RemovalMode) {
    let seed = base_seed();
    let world = Arc::new(World::new(mode));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let world = Arc::clone(&world);
            std::thread::spawn(move || {
                for op in thread_ops(seed, t) {
                    let got = world.apply(op);
                    check_allowed(mode, op, &got);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Self-consistency of the final state.
    let mut claims_per_uid: HashMap<u32, usize> = HashMap::new();
    for k in 0..KEYS {
        let spec = world.keys.specs[k];
        let mut held: Vec<InodeId> = (0..INODES)
            .filter(|ino| key_of(*ino) == k && world.refs(*ino) > 0)
            .collect();
        held.sort_unstable();
        assert_eq!(world.kr.active_inodes(&spec), held, "seed {seed} key {k}");
        let st = world.kr.status(Caller::user(4242), spec);
        match st {
            KeyStatus::Absent => assert!(held.is_empty(), "seed {seed} key {k}: absent but held"),
            KeyStatus::IncompletelyRemoved => {
                assert!(!held.is_empty(), "seed {seed} key {k}");
                let later = held.iter().any(|i| need_of(*i) == SecretNeed::Later);
                assert_eq!(
                    world.kr.secret_retained(&spec),
                    later,
                    "seed {seed} key {k}: the secret lives exactly while a Later reference does"
                );
            }
            KeyStatus::Present { user_count, .. } => {
                let mut n = 0;
                for uid in UIDS {
                    if let KeyStatus::Present {
                        added_by_self: true,
                        ..
                    } = world.kr.status(Caller::user(uid), spec)
                    {
                        n += 1;
                        *claims_per_uid.entry(uid).or_default() += 1;
                    }
                }
                assert_eq!(user_count, n, "seed {seed} key {k}");
                if k < V2_KEYS {
                    assert!(user_count > 0, "seed {seed}: a present v2 key has a claim");
                } else {
                    assert_eq!(user_count, 0);
                }
            }
        }
    }
    for uid in UIDS {
        let want = claims_per_uid.get(&uid).copied().unwrap_or(0);
        assert_eq!(
            world.kr.quota_usage(uid).keys,
            want,
            "seed {seed} uid {uid}"
        );
        if uid != 0 {
            assert!(want <= MAX_CLAIMS);
        }
    }
    drain(&world);
}

/// Closes everything, removes every key for all users, and checks nothing is left.
fn drain(world: &World) {
    let held: Vec<(Vec<ActiveRef>, bool)> = world
        .fs
        .inodes
        .lock()
        .unwrap()
        .drain()
        .map(|(_, v)| v)
        .collect();
    drop(held);
    for (k, spec) in world.keys.specs.iter().enumerate() {
        let st = world.kr.status(Caller::root(), *spec);
        assert_ne!(
            st,
            KeyStatus::IncompletelyRemoved,
            "key {k} with nothing open"
        );
        if st != KeyStatus::Absent {
            let r = world
                .kr
                .remove(Caller::root(), *spec, true, &world.fs)
                .unwrap();
            assert_eq!(r, RemovalResult::default());
        }
        assert_eq!(world.kr.status(Caller::root(), *spec), KeyStatus::Absent);
    }
    for uid in UIDS {
        assert_eq!(world.kr.quota_usage(uid).keys, 0);
    }
    let dbg = format!("{:?}", world.kr);
    assert!(dbg.contains("keys: []"), "{dbg}");
}

#[test]
fn serialised_soft() {
    serialised(RemovalMode::Soft);
}

#[test]
fn serialised_deny_writes() {
    serialised(RemovalMode::DenyWrites);
}

#[test]
fn concurrent_soft() {
    concurrent(RemovalMode::Soft);
}

#[test]
fn concurrent_deny_writes() {
    concurrent(RemovalMode::DenyWrites);
}
