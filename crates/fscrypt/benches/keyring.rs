//! Costs of the master keyring's operations, as the filesystem pays them.
//!
//! - add: a new v2 key, and re-adding a key the caller already claims (both dominated by
//!   HKDF-Extract and the identifier);
//! - remove: a key with nothing unlocked, and with 10,000 unlocked inodes that are not busy, which
//!   the locker drops inside the call (the brief's bar: well under a second), or that are all busy;
//! - status, unlock (+ drop of the active reference), derive_extent_key and prepare_write.
//!
//! Run: `cargo bench -j2 -p fscrypt --bench keyring`.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use fscrypt::context::Context;
use fscrypt::extent::ExtentContext;
use fscrypt::keyring::{
    ActiveRef, BusyInode, Caller, InodeId, InodeLocker, Keyring, KeyringConfig, RemovalMode,
};
use fscrypt::keysetup::{InodeKey, InodeKind, InodeParams};
use fscrypt::policy::{FsParams, KeySpec, Policy, PolicyV2};
use fscrypt::secret::SecretBytes;
use fscrypt::EncryptionMode;

const USER: Caller = Caller {
    uid: 1000,
    privileged: false,
};

fn raw(seed: u64) -> SecretBytes {
    let mut b = [0x3cu8; 64];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    SecretBytes::copy_from(&b)
}

/// An inode cache whose entries are all idle (`busy == false`) or all open.
struct Cache {
    refs: Mutex<Vec<ActiveRef>>,
    busy: bool,
}

impl InodeLocker for Cache {
    fn try_lock(&self, _spec: &KeySpec, inodes: &[InodeId]) -> Vec<BusyInode> {
        if self.busy {
            return inodes
                .iter()
                .map(|&ino| BusyInode {
                    ino,
                    owner: None,
                    path: None,
                    pids: vec![],
                })
                .collect();
        }
        let dropped = std::mem::take(&mut *self.refs.lock().unwrap_or_else(|e| e.into_inner()));
        drop(dropped);
        Vec::new()
    }
}

fn with_inodes(n: u64, busy: bool) -> (Keyring, KeySpec, Cache) {
    with_config(KeyringConfig::default(), n, busy)
}

fn with_config(config: KeyringConfig, n: u64, busy: bool) -> (Keyring, KeySpec, Cache) {
    let kr = Keyring::new(config);
    let spec = KeySpec::Identifier(kr.add_v2(USER, raw(1)).expect("add"));
    let refs = (0..n)
        .map(|ino| kr.unlock(&spec, ino, |_| Ok(())).expect("unlock").0)
        .collect();
    (
        kr,
        spec,
        Cache {
            refs: Mutex::new(refs),
            busy,
        },
    )
}

fn add(c: &mut Criterion) {
    let mut g = c.benchmark_group("keyring/add");
    let mut seed = 0u64;
    g.bench_function("new v2 key", |b| {
        b.iter_batched(
            || {
                seed += 1;
                (Keyring::new(KeyringConfig::default()), raw(seed))
            },
            |(kr, raw)| {
                kr.add_v2(USER, raw).expect("add");
                kr
            },
            BatchSize::SmallInput,
        )
    });
    let kr = Keyring::new(KeyringConfig::default());
    kr.add_v2(USER, raw(1)).expect("add");
    g.bench_function("existing claim (no-op)", |b| {
        b.iter_batched(
            || raw(1),
            |raw| kr.add_v2(USER, raw).expect("add"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn remove(c: &mut Criterion) {
    let mut g = c.benchmark_group("keyring/remove");
    g.bench_function("nothing unlocked", |b| {
        b.iter_batched(
            || with_inodes(0, false),
            |(kr, spec, cache)| {
                let r = kr.remove(USER, spec, false, &cache).expect("remove");
                assert!(!r.files_busy);
                (kr, cache)
            },
            BatchSize::SmallInput,
        )
    });
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("10000 idle inodes", |b| {
        b.iter_batched(
            || with_inodes(10_000, false),
            |(kr, spec, cache)| {
                let r = kr.remove(USER, spec, false, &cache).expect("remove");
                assert!(!r.files_busy);
                (kr, cache)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("10000 busy inodes", |b| {
        b.iter_batched(
            || with_inodes(10_000, true),
            |(kr, spec, cache)| {
                let r = kr.remove(USER, spec, false, &cache).expect("remove");
                assert_eq!(r.busy.len(), 10_000);
                (kr, cache, r)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn hot_paths(c: &mut Criterion) {
    let mut g = c.benchmark_group("keyring");
    // Deny-writes, so prepare_write really checks the key's state.
    let config = KeyringConfig {
        removal_mode: RemovalMode::DenyWrites,
        ..KeyringConfig::default()
    };
    let (kr, spec, _cache) = with_config(config, 1000, false);
    let id = fscrypt::keysetup::key_identifier(raw(1).as_ref()).expect("identifier");
    g.bench_function("status", |b| b.iter(|| kr.status(USER, black_box(spec))));
    g.bench_function("unlock + drop (no key setup)", |b| {
        b.iter(|| {
            kr.unlock(&spec, black_box(5000), |_| Ok(()))
                .expect("unlock")
        })
    });
    let policy = Policy::V2(PolicyV2 {
        contents_mode: EncryptionMode::Aes256Xts,
        filenames_mode: EncryptionMode::Aes256Cts,
        flags: 0x03,
        log2_data_unit_size: 0,
        master_key_identifier: id,
    });
    let ctx = Context::new(policy, [7; 16]);
    let params = InodeParams {
        kind: InodeKind::Regular,
        ino: 5000,
        fs_uuid: [0; 16],
    };
    let fs = FsParams::ext4(12, true);
    g.bench_function("unlock + InodeKey::setup (AES-256-XTS) + drop", |b| {
        b.iter(|| {
            kr.unlock(&spec, 5000, |s| InodeKey::setup(s, &ctx, &params, &fs))
                .expect("unlock")
        })
    });
    let (active, ()) = kr.unlock(&spec, 5001, |_| Ok(())).expect("unlock");
    let ext = ExtentContext {
        mode: EncryptionMode::Aes256Xts,
        master_key_identifier: id,
        nonce: [9; 16],
    };
    g.bench_function("derive_extent_key (AES-256-XTS)", |b| {
        b.iter(|| active.derive_extent_key(black_box(&ext)).expect("derive"))
    });
    g.bench_function("prepare_write", |b| b.iter(|| active.prepare_write()));
    g.finish();
}

criterion_group!(benches, add, remove, hot_paths);
criterion_main!(benches);
