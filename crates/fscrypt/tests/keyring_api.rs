//! The keyring's kernel semantics, one behaviour per test (fscrypt-spec.md §1.6 and §6; the issue's
//! points 1–5): add and claims, quotas, v1 keys, remove and its flags, status, busy inodes, soft
//! removal and deny-writes, re-adding, verify_key_added, and what the filesystem sees through
//! `unlock`, `ActiveRef` and `InodeLocker`.

use std::sync::{Arc, Mutex};

use fscrypt::context::Context;
use fscrypt::extent::{ExtentContext, ExtentKey};
use fscrypt::keyring::{
    uapi, ActiveRef, BusyInode, BusyReport, Caller, InodeId, InodeLocker, KeyStatus, Keyring,
    KeyringConfig, ProcessUids, QuotaUsage, RemovalMode, RemovalResult, SecretNeed, ShownBusy,
    UserQuota, CLAIM_QUOTA_BYTES,
};
use fscrypt::keysetup::{key_identifier, InodeKey, InodeKind, InodeParams, MasterSecret};
use fscrypt::policy::{FsParams, KeySpec, Policy, PolicyV2};
use fscrypt::secret::SecretBytes;
use fscrypt::{EncryptionMode, Errno};

const ALICE: u32 = 1000;
const BOB: u32 = 1001;

fn raw_bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8).wrapping_mul(13) ^ seed)
        .collect()
}

fn raw(seed: u8) -> SecretBytes {
    SecretBytes::copy_from(&raw_bytes(seed, 64))
}

fn id_of(seed: u8) -> [u8; 16] {
    key_identifier(&raw_bytes(seed, 64)).unwrap()
}

fn keyring(mode: RemovalMode) -> Keyring {
    Keyring::new(KeyringConfig {
        removal_mode: mode,
        quota: UserQuota::default(),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A toy filesystem inode cache: the refs it holds, and which inodes are open (busy).
#[derive(Default)]
struct Fs {
    inodes: Mutex<Vec<(InodeId, ActiveRef, bool)>>,
}

impl Fs {
    fn open(&self, kr: &Keyring, spec: KeySpec, ino: InodeId, busy: bool) {
        let (r, ()) = kr.unlock(&spec, ino, |_| Ok(())).unwrap();
        self.inodes.lock().unwrap().push((ino, r, busy));
    }
    fn close_all(&self, ino: InodeId) {
        self.inodes.lock().unwrap().retain(|(i, _, _)| *i != ino);
    }
    fn set_busy(&self, ino: InodeId, busy: bool) {
        for e in self
            .inodes
            .lock()
            .unwrap()
            .iter_mut()
            .filter(|e| e.0 == ino)
        {
            e.2 = busy;
        }
    }
}

impl InodeLocker for Fs {
    /// Drops (synchronously, inside the call) the refs of every listed inode that is not busy.
    fn try_lock(&self, _spec: &KeySpec, inodes: &[InodeId]) -> Vec<BusyInode> {
        let mut table = self.inodes.lock().unwrap();
        table.retain(|(ino, _, busy)| *busy || !inodes.contains(ino));
        let mut busy: Vec<BusyInode> = table
            .iter()
            .filter(|(ino, _, _)| inodes.contains(ino))
            .map(|(ino, _, _)| BusyInode {
                ino: *ino,
                owner: None,
                path: Some(format!("/mnt/dir/file{ino}")),
                pids: vec![4000 + *ino as u32],
            })
            .collect();
        busy.dedup_by_key(|b| b.ino);
        busy
    }
}

fn nothing_to_lock(_: &KeySpec, _: &[InodeId]) -> Vec<BusyInode> {
    Vec::new()
}

fn present(user_count: u32, added_by_self: bool) -> KeyStatus {
    KeyStatus::Present {
        user_count,
        added_by_self,
    }
}

fn extent_ctx(id: [u8; 16], nonce: u8) -> ExtentContext {
    ExtentContext {
        mode: EncryptionMode::Aes256Xts,
        master_key_identifier: id,
        nonce: [nonce; 16],
    }
}

#[test]
fn add_v2_computes_the_kernel_identifier() {
    let kr = keyring(RemovalMode::Soft);
    let key: Vec<u8> = (0u8..64).collect();
    let id = kr
        .add_v2(Caller::user(ALICE), SecretBytes::copy_from(&key))
        .unwrap();
    // fscrypt-spec.md §3.1, verified on Linux 6.18.
    assert_eq!(hex(&id), "8699c2c53707405da5aba5ae4d8583c0");
    let spec = KeySpec::Identifier(id);
    assert_eq!(kr.status(Caller::user(ALICE), spec), present(1, true));
    assert_eq!(kr.status(Caller::user(BOB), spec), present(1, false));
    assert_eq!(kr.status(Caller::root(), spec), present(1, false));
}

#[test]
fn add_v2_refuses_bad_sizes_with_einval() {
    let kr = keyring(RemovalMode::Soft);
    for len in [0, 15, 65, 128] {
        let err = kr
            .add_v2(Caller::root(), SecretBytes::copy_from(&raw_bytes(1, len)))
            .unwrap_err();
        assert_eq!(err.errno(), Errno::INVAL, "{len} bytes");
    }
    for len in [16, 64] {
        let id = kr
            .add_v2(Caller::root(), SecretBytes::copy_from(&raw_bytes(1, len)))
            .unwrap();
        assert_eq!(id, key_identifier(&raw_bytes(1, len)).unwrap());
    }
    assert_eq!(kr.quota_usage(0).keys, 2);
}

#[test]
fn adding_again_is_a_no_op_and_other_users_get_their_own_claims() {
    let kr = keyring(RemovalMode::Soft);
    let id = kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    assert_eq!(kr.add_v2(Caller::user(ALICE), raw(1)).unwrap(), id);
    let one = QuotaUsage {
        keys: 1,
        bytes: CLAIM_QUOTA_BYTES,
    };
    assert_eq!(kr.quota_usage(ALICE), one);
    kr.add_v2(Caller::user(BOB), raw(1)).unwrap();
    let spec = KeySpec::Identifier(id);
    assert_eq!(kr.status(Caller::user(ALICE), spec), present(2, true));
    assert_eq!(kr.status(Caller::user(BOB), spec), present(2, true));
    assert_eq!(kr.status(Caller::user(7), spec), present(2, false));
    assert_eq!(kr.quota_usage(BOB), one);
}

#[test]
fn default_quota_is_200_claims_per_user_and_root_is_unlimited() {
    let kr = keyring(RemovalMode::Soft);
    let key = |i: u32| {
        let mut b = raw_bytes(3, 32);
        b[..4].copy_from_slice(&i.to_le_bytes());
        SecretBytes::copy_from(&b)
    };
    for i in 0..200 {
        kr.add_v2(Caller::user(ALICE), key(i)).unwrap();
    }
    assert_eq!(
        kr.quota_usage(ALICE),
        QuotaUsage {
            keys: 200,
            bytes: 200 * 64
        }
    );
    let err = kr.add_v2(Caller::user(ALICE), key(200)).unwrap_err();
    assert_eq!(err.errno(), Errno::DQUOT);
    // Re-adding a key already claimed charges nothing, so it still works at the limit.
    kr.add_v2(Caller::user(ALICE), key(5)).unwrap();
    // A privileged non-root caller is still charged by uid; another user is not affected.
    let err = kr
        .add_v2(
            Caller {
                uid: ALICE,
                privileged: true,
            },
            key(201),
        )
        .unwrap_err();
    assert_eq!(err.errno(), Errno::DQUOT);
    kr.add_v2(Caller::user(BOB), key(200)).unwrap();
    for i in 0..300 {
        kr.add_v2(Caller::root(), key(1000 + i)).unwrap();
    }
    // Removing a claim gives quota back.
    let spec = KeySpec::Identifier(key_identifier(key(7).as_ref()).unwrap());
    kr.remove(Caller::user(ALICE), spec, false, &nothing_to_lock)
        .unwrap();
    kr.add_v2(Caller::user(ALICE), key(200)).unwrap();
}

#[test]
fn byte_quota_is_configurable_and_each_claim_costs_64_bytes() {
    let kr = Keyring::new(KeyringConfig {
        removal_mode: RemovalMode::Soft,
        quota: UserQuota {
            max_keys: 1000,
            max_bytes: 3 * 64 + 63,
        },
    });
    for seed in 0..3 {
        kr.add_v2(Caller::user(ALICE), raw(seed)).unwrap();
    }
    let err = kr.add_v2(Caller::user(ALICE), raw(3)).unwrap_err();
    assert_eq!(err.errno(), Errno::DQUOT);
    // The failed add left nothing behind.
    assert_eq!(
        kr.status(Caller::root(), KeySpec::Identifier(id_of(3))),
        KeyStatus::Absent
    );
    let unlimited = Keyring::new(KeyringConfig {
        removal_mode: RemovalMode::Soft,
        quota: UserQuota::UNLIMITED,
    });
    for seed in 0..10 {
        unlimited.add_v2(Caller::user(ALICE), raw(seed)).unwrap();
    }
}

#[test]
fn v1_keys_need_root_have_no_claims_and_report_user_count_zero() {
    let kr = keyring(RemovalMode::Soft);
    let desc = [0x11u8; 8];
    let spec = KeySpec::Descriptor(desc);
    let err = kr.add_v1(Caller::user(ALICE), desc, raw(1)).unwrap_err();
    assert_eq!(err.errno(), Errno::ACCESS);
    // EACCES is checked before the size, as in the kernel.
    let err = kr
        .add_v1(Caller::user(ALICE), desc, SecretBytes::copy_from(&[1; 8]))
        .unwrap_err();
    assert_eq!(err.errno(), Errno::ACCESS);
    let err = kr
        .add_v1(Caller::root(), desc, SecretBytes::copy_from(&[1; 8]))
        .unwrap_err();
    assert_eq!(err.errno(), Errno::INVAL);
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
    kr.add_v1(Caller::root(), desc, raw(1)).unwrap();
    kr.add_v1(Caller::root(), desc, raw(1)).unwrap();
    let st = kr.status(Caller::root(), spec);
    assert_eq!(st, present(0, false));
    assert_eq!(
        (st.status_code(), st.status_flags(), st.user_count()),
        (2, 0, 0)
    );
    assert_eq!(kr.quota_usage(0), QuotaUsage::default());
    // Removing a v1 key needs root, even for all users.
    for all in [false, true] {
        let err = kr
            .remove(Caller::user(ALICE), spec, all, &nothing_to_lock)
            .unwrap_err();
        assert_eq!(err.errno(), Errno::ACCESS);
    }
    let r = kr
        .remove(Caller::root(), spec, false, &nothing_to_lock)
        .unwrap();
    assert_eq!(r, RemovalResult::default());
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
    let err = kr
        .remove(Caller::root(), spec, false, &nothing_to_lock)
        .unwrap_err();
    assert_eq!(err.errno(), Errno::NOKEY);
}

#[test]
fn remove_follows_the_kernels_claim_rules() {
    let kr = keyring(RemovalMode::Soft);
    let spec = KeySpec::Identifier(kr.add_v2(Caller::user(ALICE), raw(1)).unwrap());
    kr.add_v2(Caller::user(BOB), raw(1)).unwrap();
    // No claim while others hold one: ENOKEY.
    let err = kr
        .remove(Caller::user(7), spec, false, &nothing_to_lock)
        .unwrap_err();
    assert_eq!(err.errno(), Errno::NOKEY);
    // Root without a claim is no different.
    let err = kr
        .remove(Caller::root(), spec, false, &nothing_to_lock)
        .unwrap_err();
    assert_eq!(err.errno(), Errno::NOKEY);
    // All users needs privilege.
    let err = kr
        .remove(Caller::user(ALICE), spec, true, &nothing_to_lock)
        .unwrap_err();
    assert_eq!(err.errno(), Errno::ACCESS);
    // Removing one's own claim while another user holds one: OTHER_USERS, key still present.
    let r = kr
        .remove(Caller::user(ALICE), spec, false, &nothing_to_lock)
        .unwrap();
    assert!(r.other_users && !r.files_busy && r.busy.is_empty());
    assert_eq!(r.flags(), uapi::KEY_REMOVAL_STATUS_FLAG_OTHER_USERS);
    assert_eq!(kr.status(Caller::user(ALICE), spec), present(1, false));
    assert_eq!(kr.quota_usage(ALICE), QuotaUsage::default());
    // Alice no longer has a claim, Bob does.
    let err = kr
        .remove(Caller::user(ALICE), spec, false, &nothing_to_lock)
        .unwrap_err();
    assert_eq!(err.errno(), Errno::NOKEY);
    // The last claim goes: removed at once (nothing unlocked).
    let r = kr
        .remove(Caller::user(BOB), spec, false, &nothing_to_lock)
        .unwrap();
    assert_eq!(r, RemovalResult::default());
    assert_eq!(kr.status(Caller::user(BOB), spec), KeyStatus::Absent);
    let err = kr
        .remove(Caller::user(BOB), spec, false, &nothing_to_lock)
        .unwrap_err();
    assert_eq!(err.errno(), Errno::NOKEY);
}

#[test]
fn remove_for_all_users_clears_every_claim_and_quota() {
    let kr = keyring(RemovalMode::Soft);
    let spec = KeySpec::Identifier(kr.add_v2(Caller::user(ALICE), raw(1)).unwrap());
    kr.add_v2(Caller::user(BOB), raw(1)).unwrap();
    let r = kr
        .remove(Caller::root(), spec, true, &nothing_to_lock)
        .unwrap();
    assert_eq!(r, RemovalResult::default());
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
    assert_eq!(kr.quota_usage(ALICE), QuotaUsage::default());
    assert_eq!(kr.quota_usage(BOB), QuotaUsage::default());
    // Absent: ENOKEY, for all users too.
    let err = kr
        .remove(Caller::root(), spec, true, &nothing_to_lock)
        .unwrap_err();
    assert_eq!(err.errno(), Errno::NOKEY);
}

#[test]
fn busy_inodes_keep_a_key_incompletely_removed_until_the_last_one_goes() {
    let kr = keyring(RemovalMode::Soft);
    let id = kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    let spec = KeySpec::Identifier(id);
    let fs = Fs::default();
    fs.open(&kr, spec, 10, true);
    fs.open(&kr, spec, 11, false);
    fs.open(&kr, spec, 12, true);
    assert_eq!(kr.active_inodes(&spec), vec![10, 11, 12]);

    let r = kr.remove(Caller::user(ALICE), spec, false, &fs).unwrap();
    assert!(r.files_busy && !r.other_users);
    assert_eq!(r.flags(), uapi::KEY_REMOVAL_STATUS_FLAG_FILES_BUSY);
    assert_eq!(
        r.busy,
        vec![
            BusyInode {
                ino: 10,
                owner: None,
                path: Some("/mnt/dir/file10".into()),
                pids: vec![4010]
            },
            BusyInode {
                ino: 12,
                owner: None,
                path: Some("/mnt/dir/file12".into()),
                pids: vec![4012]
            },
        ]
    );
    let msg = r.busy_message(&spec).unwrap();
    assert!(msg.starts_with("2 inode(s) still busy after removing key with identifier "));
    assert!(msg.contains("including ino 10 (/mnt/dir/file10) held by pid(s) 4010"));
    // The idle inode was locked; the busy ones still hold the key.
    assert_eq!(kr.active_inodes(&spec), vec![10, 12]);
    let st = kr.status(Caller::user(ALICE), spec);
    assert_eq!(st, KeyStatus::IncompletelyRemoved);
    assert_eq!(st.status_code(), uapi::KEY_STATUS_INCOMPLETELY_REMOVED);
    // New unlocks fail, including of an inode that was locked and of a brand new one.
    for ino in [11, 99] {
        let err = kr.unlock(&spec, ino, |_| Ok(())).unwrap_err();
        assert_eq!(err.errno(), Errno::NOKEY);
    }
    // Nobody holds a claim any more: anyone may retry, which re-runs the locking and succeeds.
    fs.set_busy(12, false);
    let r = kr.remove(Caller::user(BOB), spec, false, &fs).unwrap();
    assert!(r.files_busy);
    assert_eq!(r.busy.iter().map(|b| b.ino).collect::<Vec<_>>(), vec![10]);
    assert_eq!(
        kr.status(Caller::root(), spec),
        KeyStatus::IncompletelyRemoved
    );
    // The last user goes: absent, without another removal.
    fs.close_all(10);
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
    assert!(kr.active_inodes(&spec).is_empty());
    let err = kr.remove(Caller::root(), spec, true, &fs).unwrap_err();
    assert_eq!(err.errno(), Errno::NOKEY);
}

/// The busy report's privacy rule: root sees every inode and process; a user sees the inodes it
/// owns and, on them, its own processes; the rest is a count; vanished pids are dropped.
#[test]
fn busy_report_shows_root_everything_and_a_user_only_its_own() {
    const GONE: u32 = 9999;
    let busy = vec![
        // Alice's file, held by Alice (twice), Bob, a set-uid program Alice started, and a
        // process that has exited.
        BusyInode {
            ino: 10,
            owner: Some(ALICE),
            path: Some("/mnt/alice/secret".into()),
            pids: vec![100, 200, 100, 300, GONE],
        },
        // Bob's file, held by Bob.
        BusyInode {
            ino: 11,
            owner: Some(BOB),
            path: Some("/mnt/bob/file".into()),
            pids: vec![200],
        },
        // An inode whose owner the filesystem could not find.
        BusyInode {
            ino: 12,
            owner: None,
            path: None,
            pids: vec![],
        },
    ];
    let uids_of = |pid: u32| {
        let (real, effective) = match pid {
            100 => (ALICE, ALICE),
            200 => (BOB, BOB),
            300 => (ALICE, 0),
            _ => return None,
        };
        Some(ProcessUids {
            real,
            effective,
            saved: effective,
        })
    };
    let shown = |ino: InodeId, path: &str, pids: Vec<u32>, other_pids: usize| ShownBusy {
        inode: BusyInode {
            ino,
            owner: busy.iter().find(|b| b.ino == ino).and_then(|b| b.owner),
            path: Some(path.into()),
            pids,
        },
        other_pids,
    };

    let root = BusyReport::for_caller(Caller::root(), busy.clone(), &uids_of);
    assert_eq!(root.hidden, 0);
    assert_eq!(root.shown.len(), 3);
    assert_eq!(
        root.shown[0],
        shown(10, "/mnt/alice/secret", vec![100, 200, 300], 0)
    );
    assert_eq!(root.shown[1], shown(11, "/mnt/bob/file", vec![200], 0));
    assert_eq!(root.shown[2].inode.ino, 12);

    let alice = BusyReport::for_caller(Caller::user(ALICE), busy.clone(), &uids_of);
    assert_eq!(
        alice,
        BusyReport {
            shown: vec![shown(10, "/mnt/alice/secret", vec![100], 2)],
            hidden: 2,
        }
    );

    let bob = BusyReport::for_caller(Caller::user(BOB), busy.clone(), &uids_of);
    assert_eq!(
        bob,
        BusyReport {
            shown: vec![shown(11, "/mnt/bob/file", vec![200], 0)],
            hidden: 2,
        }
    );

    // A user owning nothing busy learns only the count.
    let other = BusyReport::for_caller(Caller::user(4242), busy, &uids_of);
    assert_eq!(
        other,
        BusyReport {
            shown: vec![],
            hidden: 3
        }
    );
}

#[test]
fn a_retry_after_close_locks_the_rest_and_reports_no_busy_files() {
    let kr = keyring(RemovalMode::Soft);
    let spec = KeySpec::Identifier(kr.add_v2(Caller::user(ALICE), raw(1)).unwrap());
    let fs = Fs::default();
    fs.open(&kr, spec, 1, true);
    assert!(
        kr.remove(Caller::user(ALICE), spec, false, &fs)
            .unwrap()
            .files_busy
    );
    // Closed but still cached (kernel: evictable): the retry locks it, returns 0 with flags 0.
    fs.set_busy(1, false);
    let r = kr.remove(Caller::user(ALICE), spec, false, &fs).unwrap();
    assert_eq!(r, RemovalResult::default());
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
}

#[test]
fn unreported_references_still_count_as_busy() {
    // A locker that locks nothing and reports nothing: the keyring's own count decides.
    let kr = keyring(RemovalMode::Soft);
    let spec = KeySpec::Identifier(kr.add_v2(Caller::user(ALICE), raw(1)).unwrap());
    let (r1, ()) = kr.unlock(&spec, 5, |_| Ok(())).unwrap();
    let (r2, ()) = kr.unlock(&spec, 5, |_| Ok(())).unwrap();
    let seen = Mutex::new(Vec::new());
    let locker = |_: &KeySpec, inodes: &[InodeId]| {
        seen.lock().unwrap().push(inodes.to_vec());
        Vec::new()
    };
    let r = kr
        .remove(Caller::user(ALICE), spec, false, &locker)
        .unwrap();
    assert!(r.files_busy);
    assert_eq!(
        r.busy,
        vec![BusyInode {
            ino: 5,
            owner: None,
            path: None,
            pids: vec![]
        }]
    );
    // One inode with two references is listed once.
    assert_eq!(*seen.lock().unwrap(), vec![vec![5]]);
    drop(r1);
    assert_eq!(
        kr.status(Caller::root(), spec),
        KeyStatus::IncompletelyRemoved
    );
    drop(r2);
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
}

#[test]
fn the_locker_may_drop_references_synchronously() {
    let kr = keyring(RemovalMode::Soft);
    let spec = KeySpec::Identifier(kr.add_v2(Caller::user(ALICE), raw(1)).unwrap());
    let fs = Fs::default();
    for ino in 0..100 {
        fs.open(&kr, spec, ino, false);
    }
    // Every ref is dropped inside try_lock, the last one making the key absent mid-removal.
    let r = kr.remove(Caller::user(ALICE), spec, false, &fs).unwrap();
    assert_eq!(r, RemovalResult::default());
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
    // The key can come back fresh.
    kr.add_v2(Caller::user(BOB), raw(1)).unwrap();
    assert_eq!(kr.status(Caller::user(BOB), spec), present(1, true));
    assert!(kr.active_inodes(&spec).is_empty());
}

#[test]
fn soft_removal_lets_busy_inodes_derive_extent_keys_and_write() {
    let kr = keyring(RemovalMode::Soft);
    let id = kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    let spec = KeySpec::Identifier(id);
    let (active, ()) = kr.unlock(&spec, 1, |_| Ok(())).unwrap();
    assert!(!active.removal_started());
    active.prepare_write().unwrap();
    let before = active.derive_extent_key(&extent_ctx(id, 7)).unwrap();

    let r = kr
        .remove(Caller::user(ALICE), spec, false, &nothing_to_lock)
        .unwrap();
    assert!(r.files_busy);
    assert!(active.removal_started());
    // Soft: the write check passes, writeout of old and new extents still works.
    active.prepare_write().unwrap();
    let after = active.derive_extent_key(&extent_ctx(id, 7)).unwrap();
    let fresh = active.derive_extent_key(&extent_ctx(id, 8)).unwrap();
    let mut a = vec![0x42u8; 4096];
    let mut b = a.clone();
    let mut c = a.clone();
    before.encrypt_units(0, 4096, &mut a).unwrap();
    after.encrypt_units(0, 4096, &mut b).unwrap();
    fresh.encrypt_units(0, 4096, &mut c).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // The same keys as a master key derived independently.
    let reference = MasterSecret::new_v2(&raw_bytes(1, 64)).unwrap();
    let mut d = vec![0x42u8; 4096];
    ExtentKey::derive(&reference, &extent_ctx(id, 8))
        .unwrap()
        .encrypt_units(0, 4096, &mut d)
        .unwrap();
    assert_eq!(c, d);
    // An extent of another key: ENOKEY.
    let err = active
        .derive_extent_key(&extent_ctx(id_of(2), 1))
        .unwrap_err();
    assert_eq!(err.errno(), Errno::NOKEY);
    drop(active);
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
}

#[test]
fn deny_writes_refuses_new_writes_once_removal_starts_but_still_flushes() {
    let kr = keyring(RemovalMode::DenyWrites);
    assert_eq!(kr.config().removal_mode, RemovalMode::DenyWrites);
    let id = kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    kr.add_v2(Caller::user(BOB), raw(1)).unwrap();
    let spec = KeySpec::Identifier(id);
    let (active, ()) = kr.unlock(&spec, 1, |_| Ok(())).unwrap();
    active.prepare_write().unwrap();
    // Removing one claim of two does not start removal.
    let r = kr
        .remove(Caller::user(ALICE), spec, false, &nothing_to_lock)
        .unwrap();
    assert!(r.other_users);
    active.prepare_write().unwrap();
    // The last claim: removal starts, writes are refused, writeout still derives keys.
    let r = kr
        .remove(Caller::user(BOB), spec, false, &nothing_to_lock)
        .unwrap();
    assert!(r.files_busy);
    assert_eq!(active.prepare_write().unwrap_err().errno(), Errno::NOKEY);
    active.derive_extent_key(&extent_ctx(id, 3)).unwrap();
    // Adding the key back makes writes possible again.
    kr.add_v2(Caller::user(BOB), raw(1)).unwrap();
    active.prepare_write().unwrap();
    assert!(!active.removal_started());
}

#[test]
fn re_adding_an_incompletely_removed_key_makes_it_present_again() {
    let kr = keyring(RemovalMode::Soft);
    let id = kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    let spec = KeySpec::Identifier(id);
    let fs = Fs::default();
    fs.open(&kr, spec, 1, true);
    fs.open(&kr, spec, 2, false);
    assert!(
        kr.remove(Caller::user(ALICE), spec, false, &fs)
            .unwrap()
            .files_busy
    );
    assert_eq!(
        kr.status(Caller::root(), spec),
        KeyStatus::IncompletelyRemoved
    );
    // Another user adds it: present again with one claim; the busy inode carries on.
    kr.add_v2(Caller::user(BOB), raw(1)).unwrap();
    assert_eq!(kr.status(Caller::user(BOB), spec), present(1, true));
    assert_eq!(kr.status(Caller::user(ALICE), spec), present(1, false));
    assert_eq!(kr.active_inodes(&spec), vec![1]);
    // New unlocks work again, including of the inode that was locked.
    fs.open(&kr, spec, 2, false);
    assert_eq!(kr.active_inodes(&spec), vec![1, 2]);
    // Closing the old busy inode does not make the (present) key absent.
    fs.close_all(1);
    assert_eq!(kr.status(Caller::user(BOB), spec), present(1, true));
    let r = kr.remove(Caller::user(BOB), spec, false, &fs).unwrap();
    assert_eq!(r, RemovalResult::default());
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
}

#[test]
fn unlock_needs_a_present_key_and_hands_f_the_secret() {
    let kr = keyring(RemovalMode::Soft);
    let spec = KeySpec::Identifier(id_of(1));
    let err = kr.unlock(&spec, 1, |_| Ok(())).unwrap_err();
    assert_eq!(err.errno(), Errno::NOKEY);
    kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    let (r, seen) = kr.unlock(&spec, 1, |s| Ok(s.identifier())).unwrap();
    assert_eq!(seen, Some(id_of(1)));
    assert_eq!((r.spec(), r.ino()), (spec, 1));
    // v1 keys unlock by descriptor.
    let desc = [9u8; 8];
    kr.add_v1(Caller::root(), desc, raw(2)).unwrap();
    let (v1, size) = kr
        .unlock(&KeySpec::Descriptor(desc), 2, |s| Ok(s.raw_size()))
        .unwrap();
    assert_eq!(size, 64);
    // No extent keys from v1 keys.
    let err = v1.derive_extent_key(&extent_ctx(id_of(2), 1)).unwrap_err();
    assert_eq!(err.errno(), Errno::NOKEY);
}

#[test]
fn a_failing_or_panicking_unlock_gives_its_reference_back() {
    let kr = keyring(RemovalMode::Soft);
    let spec = KeySpec::Identifier(kr.add_v2(Caller::user(ALICE), raw(1)).unwrap());
    let err = kr
        .unlock(&spec, 1, |_| -> fscrypt::Result<()> {
            Err(fscrypt::Error::no_key("wrong key for this policy"))
        })
        .unwrap_err();
    assert_eq!(err.message(), "wrong key for this policy");
    assert!(kr.active_inodes(&spec).is_empty());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = kr.unlock(&spec, 2, |_| -> fscrypt::Result<()> { panic!("fs bug") });
    }));
    assert!(panicked.is_err());
    assert!(kr.active_inodes(&spec).is_empty());
    let r = kr
        .remove(Caller::user(ALICE), spec, false, &nothing_to_lock)
        .unwrap();
    assert_eq!(r, RemovalResult::default());
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
    // The keyring still works after the panic.
    kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    assert_eq!(kr.status(Caller::user(ALICE), spec), present(1, true));
}

#[test]
fn per_file_keys_set_up_before_removal_keep_working() {
    let kr = keyring(RemovalMode::Soft);
    let id = kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    let spec = KeySpec::Identifier(id);
    let fs_params = FsParams::ext4(12, true);
    let policy = Policy::V2(PolicyV2 {
        contents_mode: EncryptionMode::Aes256Xts,
        filenames_mode: EncryptionMode::Aes256Cts,
        flags: 0x02,
        log2_data_unit_size: 0,
        master_key_identifier: id,
    });
    let ctx = Context::new(policy, [5; 16]);
    let params = InodeParams {
        kind: InodeKind::Regular,
        ino: 12,
        fs_uuid: [0; 16],
    };
    let (active, key) = kr
        .unlock(&spec, 12, |s| InodeKey::setup(s, &ctx, &params, &fs_params))
        .unwrap();
    let mut data = vec![7u8; 4096];
    key.encrypt_data_unit(3, &mut data).unwrap();
    let r = kr
        .remove(Caller::user(ALICE), spec, false, &nothing_to_lock)
        .unwrap();
    assert!(r.files_busy);
    drop(active);
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
    // The inode's own key outlives the master key, as the kernel's ci does until eviction.
    key.decrypt_data_unit(3, &mut data).unwrap();
    assert_eq!(data, vec![7u8; 4096]);
}

#[test]
fn verify_key_added_needs_a_claim_or_privilege() {
    let kr = keyring(RemovalMode::Soft);
    let id = id_of(1);
    let root_no_cap = Caller {
        uid: 0,
        privileged: false,
    };
    assert_eq!(
        kr.verify_key_added(Caller::user(ALICE), &id)
            .unwrap_err()
            .errno(),
        Errno::NOKEY
    );
    // CAP_FOWNER passes even when the key is absent, as in the kernel.
    kr.verify_key_added(Caller::root(), &id).unwrap();
    assert_eq!(
        kr.verify_key_added(root_no_cap, &id).unwrap_err().errno(),
        Errno::NOKEY
    );
    kr.add_v2(Caller::root(), raw(1)).unwrap();
    // uid 1000 gets ENOKEY although root added the key [verified on Linux 6.18].
    assert_eq!(
        kr.verify_key_added(Caller::user(ALICE), &id)
            .unwrap_err()
            .errno(),
        Errno::NOKEY
    );
    kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    kr.verify_key_added(Caller::user(ALICE), &id).unwrap();
    let spec = KeySpec::Identifier(id);
    kr.remove(Caller::root(), spec, true, &nothing_to_lock)
        .unwrap();
    assert_eq!(
        kr.verify_key_added(Caller::user(ALICE), &id)
            .unwrap_err()
            .errno(),
        Errno::NOKEY
    );
}

#[test]
fn status_codes_and_flags_match_the_uapi() {
    assert_eq!(KeyStatus::Absent.status_code(), 1);
    let p = present(3, true);
    assert_eq!(
        (p.status_code(), p.status_flags(), p.user_count()),
        (2, 1, 3)
    );
    let p = present(3, false);
    assert_eq!(p.status_flags(), 0);
    assert_eq!(KeyStatus::IncompletelyRemoved.status_code(), 3);
    let r = RemovalResult {
        files_busy: true,
        other_users: true,
        busy: vec![],
    };
    assert_eq!(r.flags(), 3);
    assert_eq!(r.busy_message(&KeySpec::Descriptor([0; 8])), None);
}

#[test]
fn debug_output_never_shows_secrets() {
    let kr = keyring(RemovalMode::Soft);
    let bytes = raw_bytes(1, 64);
    let id = kr
        .add_v2(Caller::user(ALICE), SecretBytes::copy_from(&bytes))
        .unwrap();
    let spec = KeySpec::Identifier(id);
    let (active, secret_dbg) = kr.unlock(&spec, 3, |s| Ok(format!("{s:?}"))).unwrap();
    let shown = format!("{kr:?} {kr:#?} {active:?} {active:#?} {secret_dbg}");
    assert!(shown.contains(&hex(&id)), "{shown}");
    assert!(
        shown.contains("present, 1 claim(s), 1 unlocked inode(s)"),
        "{shown}"
    );
    assert!(!shown.contains(&hex(&bytes[..8])), "{shown}");
    assert!(!shown.contains(&format!("{:?}", &bytes[..4])), "{shown}");
}

#[test]
fn active_refs_outlive_the_keyring() {
    let kr = keyring(RemovalMode::Soft);
    let id = kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    let (active, ()) = kr.unlock(&KeySpec::Identifier(id), 1, |_| Ok(())).unwrap();
    drop(kr);
    active.derive_extent_key(&extent_ctx(id, 1)).unwrap();
    active.prepare_write().unwrap();
    drop(active);
}

#[test]
fn active_refs_are_shareable_across_threads() {
    let kr = Arc::new(keyring(RemovalMode::Soft));
    let id = kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    let (active, ()) = kr.unlock(&KeySpec::Identifier(id), 1, |_| Ok(())).unwrap();
    let active = Arc::new(active);
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let a = Arc::clone(&active);
            std::thread::spawn(move || a.derive_extent_key(&extent_ctx(id, n)).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
}

#[test]
fn setup_only_references_do_not_keep_the_secret() {
    let kr = keyring(RemovalMode::Soft);
    let id = kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    let spec = KeySpec::Identifier(id);
    // A directory and a per-file-layout file in it, both busy (the file open, the directory above
    // it): their keys are derived at unlock.
    let (dir, ()) = kr
        .unlock_with(&spec, 1, SecretNeed::SetupOnly, |_| Ok(()))
        .unwrap();
    let (file, ()) = kr
        .unlock_with(&spec, 2, SecretNeed::SetupOnly, |_| Ok(()))
        .unwrap();
    assert_eq!(file.secret_need(), SecretNeed::SetupOnly);
    let err = file.derive_extent_key(&extent_ctx(id, 1)).unwrap_err();
    assert_eq!(err.errno(), Errno::INVAL, "setup-only refs never derive");
    assert!(kr.secret_retained(&spec));

    let r = kr
        .remove(Caller::user(ALICE), spec, false, &nothing_to_lock)
        .unwrap();
    assert!(r.files_busy);
    // Wiped at removal, as mainline ext4 does; the key stays incompletely removed.
    assert!(!kr.secret_retained(&spec));
    assert_eq!(
        kr.status(Caller::root(), spec),
        KeyStatus::IncompletelyRemoved
    );
    assert!(format!("{kr:?}").contains("secret wiped"));
    // The file closes; its directory still holds a reference: status is unchanged (generic/580)…
    drop(file);
    assert_eq!(
        kr.status(Caller::root(), spec),
        KeyStatus::IncompletelyRemoved
    );
    // …until a retry locks the directory: "Removed".
    let dir_cell = Mutex::new(Some(dir));
    let lock_dir = |_: &KeySpec, _: &[InodeId]| {
        dir_cell.lock().unwrap().take();
        Vec::new()
    };
    let r = kr
        .remove(Caller::user(ALICE), spec, false, &lock_dir)
        .unwrap();
    assert_eq!(r, RemovalResult::default());
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
}

#[test]
fn the_last_later_reference_wipes_the_secret_before_the_key_is_absent() {
    let kr = keyring(RemovalMode::Soft);
    let id = kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    let spec = KeySpec::Identifier(id);
    let (dir, ()) = kr
        .unlock_with(&spec, 1, SecretNeed::SetupOnly, |_| Ok(()))
        .unwrap();
    let (extent_file, ()) = kr.unlock(&spec, 2, |_| Ok(())).unwrap();
    assert_eq!(extent_file.secret_need(), SecretNeed::Later);
    kr.remove(Caller::user(ALICE), spec, false, &nothing_to_lock)
        .unwrap();
    // The per-extent file still needs it for writeout.
    assert!(kr.secret_retained(&spec));
    extent_file.derive_extent_key(&extent_ctx(id, 3)).unwrap();
    drop(extent_file);
    assert!(!kr.secret_retained(&spec));
    assert_eq!(
        kr.status(Caller::root(), spec),
        KeyStatus::IncompletelyRemoved
    );
    // Re-adding makes it present again with a fresh secret; the busy directory carries on.
    kr.add_v2(Caller::user(ALICE), raw(1)).unwrap();
    assert!(kr.secret_retained(&spec));
    assert_eq!(kr.status(Caller::root(), spec), present(1, false));
    let (again, ()) = kr.unlock(&spec, 3, |_| Ok(())).unwrap();
    again.derive_extent_key(&extent_ctx(id, 4)).unwrap();
    drop(again);
    drop(dir);
    kr.remove(Caller::user(ALICE), spec, false, &nothing_to_lock)
        .unwrap();
    assert_eq!(kr.status(Caller::root(), spec), KeyStatus::Absent);
    assert!(!kr.secret_retained(&spec));
}
