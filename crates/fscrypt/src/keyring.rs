//! The master keyring of one mounted volume (`fs/crypto/keyring.c`): which master keys are added,
//! which users claim them, which inodes use them, and when their secrets die.
//!
//! A key is *present* (new users may unlock inodes with it), *incompletely removed* (its last claim
//! is gone but some unlocked inodes are still busy) or *absent* (gone, every secret wiped): the
//! kernel's `mk_present` plus `mk_active_refs`. Each unlocked inode holds an [`ActiveRef`].
//!
//! Removal is soft: the secret stays, in locked memory, while an active reference that may still
//! need it lives ([`SecretNeed::Later`]: per-extent files derive extent keys at writeout, long after
//! open, so wiping at removal loses writes that already returned success, fstests generic/595 — what
//! Eric Biggers recommended and Josef Bacik's v6 series does). References taken with
//! [`SecretNeed::SetupOnly`] (per-file-layout inodes and directories, whose `InodeKey` is derived at
//! unlock) do not keep it: once removal has started and no `Later` reference is left, the secret
//! and its per-mode key cache are wiped at once, even though the key stays *incompletely removed*
//! until the remaining references go or a retry locks them (mainline ext4's timing). Only holders
//! of a `Later` [`ActiveRef`] can reach the retained secret; unlocking needs a present key.
//! [`RemovalMode::DenyWrites`] adds the proposed `fscrypt_prep_write` hook: once removal starts,
//! new writes are refused, while data already accepted is still flushed.
//!
//! The keyring never calls the filesystem while holding a lock. Removal collects the unlocked inodes,
//! releases its locks, then calls the [`InodeLocker`], which may drop active references synchronously.
//! Lock order: the table, then one key's state; a key's state is never held while taking the table.
//!
//! Deviations from the kernel, and why (docs/SEMANTICS.md has the full table):
//! - The secret is kept until the last [`SecretNeed::Later`] reference; with only `SetupOnly`
//!   references (the per-file layout) it is wiped at removal, as in mainline.
//! - Quotas count per volume, not system-wide, and are released at once (the kernel's key garbage
//!   collector releases them asynchronously).
//! - No hardware-wrapped keys and no keys by keyring id (`key_id`).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Errno, Error, Result};
use crate::extent::{ExtentContext, ExtentKey};
use crate::keysetup::MasterSecret;
use crate::policy::{KeySpec, KEY_DESCRIPTOR_SIZE, KEY_IDENTIFIER_SIZE};
use crate::secret::SecretBytes;

/// A filesystem's (stable) inode number, as the keyring tracks unlocked inodes.
pub type InodeId = u64;

/// `FSCRYPT_MAX_RAW_KEY_SIZE`: what each claim charges to its user's byte quota, as in the kernel.
pub const CLAIM_QUOTA_BYTES: usize = 64;

/// The uid whose claims are never limited by [`UserQuota`] (the kernel's root quota is effectively
/// unlimited for this purpose).
pub const ROOT_UID: u32 = 0;

/// The numbers the key ioctls carry (`include/uapi/linux/fscrypt.h`).
pub mod uapi {
    /// `FSCRYPT_KEY_STATUS_ABSENT`.
    pub const KEY_STATUS_ABSENT: u32 = 1;
    /// `FSCRYPT_KEY_STATUS_PRESENT`.
    pub const KEY_STATUS_PRESENT: u32 = 2;
    /// `FSCRYPT_KEY_STATUS_INCOMPLETELY_REMOVED`.
    pub const KEY_STATUS_INCOMPLETELY_REMOVED: u32 = 3;
    /// `FSCRYPT_KEY_STATUS_FLAG_ADDED_BY_SELF`.
    pub const KEY_STATUS_FLAG_ADDED_BY_SELF: u32 = 0x1;
    /// `FSCRYPT_KEY_REMOVAL_STATUS_FLAG_FILES_BUSY`.
    pub const KEY_REMOVAL_STATUS_FLAG_FILES_BUSY: u32 = 0x1;
    /// `FSCRYPT_KEY_REMOVAL_STATUS_FLAG_OTHER_USERS`.
    pub const KEY_REMOVAL_STATUS_FLAG_OTHER_USERS: u32 = 0x2;
}

/// Whether an unlocked inode may need the master secret after its unlock (`Keyring::unlock_with`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecretNeed {
    /// The inode may derive keys later ([`ActiveRef::derive_extent_key`]: per-extent regular files).
    /// Its reference keeps the secret alive through removal, until it drops.
    #[default]
    Later,
    /// The inode's key is fully derived inside the unlock closure (per-file-layout inodes,
    /// directories, symlinks). Its reference keeps the key *incompletely removed* but not the
    /// secret, and [`ActiveRef::derive_extent_key`] through it is refused.
    SetupOnly,
}

/// What removal does to inodes that stay busy (a per-volume setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemovalMode {
    /// Busy inodes keep working, writes and writeout included, until they are closed (the kernel's
    /// user-visible semantics).
    #[default]
    Soft,
    /// As `Soft`, but once removal starts [`ActiveRef::prepare_write`] refuses new writes with ENOKEY;
    /// reads and the writeout of data already accepted go on.
    DenyWrites,
}

/// The per-user limits on claims (the kernel's `maxkeys` / `maxbytes` of the keys subsystem).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserQuota {
    /// Claims one non-root user may hold (kernel default 200).
    pub max_keys: usize,
    /// Bytes one non-root user may hold; each claim charges [`CLAIM_QUOTA_BYTES`] (default 20000).
    pub max_bytes: usize,
}

impl UserQuota {
    /// No limit for anyone.
    pub const UNLIMITED: UserQuota = UserQuota {
        max_keys: usize::MAX,
        max_bytes: usize::MAX,
    };
}

impl Default for UserQuota {
    /// `key_quota_maxkeys` and `key_quota_maxbytes` (security/keys/key.c).
    fn default() -> Self {
        UserQuota {
            max_keys: 200,
            max_bytes: 20000,
        }
    }
}

/// A volume's keyring settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyringConfig {
    /// What removal does to busy inodes.
    pub removal_mode: RemovalMode,
    /// The per-user claim limits.
    pub quota: UserQuota,
}

/// Who is calling: the filesystem's view of the requesting process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The caller's fsuid: claims and quotas belong to it.
    pub uid: u32,
    /// CAP_SYS_ADMIN (v1 keys, removal for all users) and CAP_FOWNER (verify_key_added).
    pub privileged: bool,
}

impl Caller {
    /// uid 0 with every capability.
    pub fn root() -> Self {
        Caller {
            uid: ROOT_UID,
            privileged: true,
        }
    }

    /// An unprivileged user.
    pub fn user(uid: u32) -> Self {
        Caller {
            uid,
            privileged: false,
        }
    }
}

/// `FS_IOC_GET_ENCRYPTION_KEY_STATUS`'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// Not in the keyring (or fully removed).
    Absent,
    /// Usable. `user_count` claims (0 for v1 keys); `added_by_self` when the caller holds one.
    Present {
        /// Number of users holding a claim (0 for v1 keys).
        user_count: u32,
        /// The caller holds a claim (always false for v1 keys).
        added_by_self: bool,
    },
    /// Removal started; some unlocked inodes are still busy.
    IncompletelyRemoved,
}

impl KeyStatus {
    /// The UAPI `status` value.
    pub fn status_code(&self) -> u32 {
        match self {
            KeyStatus::Absent => uapi::KEY_STATUS_ABSENT,
            KeyStatus::Present { .. } => uapi::KEY_STATUS_PRESENT,
            KeyStatus::IncompletelyRemoved => uapi::KEY_STATUS_INCOMPLETELY_REMOVED,
        }
    }

    /// The UAPI `status_flags` value.
    pub fn status_flags(&self) -> u32 {
        match self {
            KeyStatus::Present {
                added_by_self: true,
                ..
            } => uapi::KEY_STATUS_FLAG_ADDED_BY_SELF,
            _ => 0,
        }
    }

    /// The UAPI `user_count` value.
    pub fn user_count(&self) -> u32 {
        match self {
            KeyStatus::Present { user_count, .. } => *user_count,
            _ => 0,
        }
    }
}

/// An inode that kept a key busy, as the filesystem describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusyInode {
    /// The inode number.
    pub ino: InodeId,
    /// Its owner's uid, where the filesystem knows it: besides root, only the owner may see the
    /// inode in a busy report ([`BusyReport`]). None: shown to root only.
    pub owner: Option<u32>,
    /// A path to it, where the filesystem knows one.
    pub path: Option<String>,
    /// Processes holding it open, where the filesystem knows them.
    pub pids: Vec<u32>,
}

/// The uids of a process that decide who may see it in a busy report (the first three fields of
/// the `Uid:` line of `/proc/PID/status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessUids {
    /// Real uid.
    pub real: u32,
    /// Effective uid.
    pub effective: u32,
    /// Saved set-user-ID.
    pub saved: u32,
}

impl ProcessUids {
    /// Whether the process belongs to `uid` alone: its real, effective and saved uids are all
    /// `uid` (the uid rule of the kernel's `ptrace_may_access`, which guards `/proc/PID/fd`: a
    /// user may see which files a process holds exactly when it could look itself). A set-uid
    /// program a user started is therefore not the user's.
    pub fn belongs_to(&self, uid: u32) -> bool {
        self.real == uid && self.effective == uid && self.saved == uid
    }
}

/// One busy inode as a caller sees it: the inode (its `pids` cut to the processes the caller may
/// see) and how many processes of other users also hold it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShownBusy {
    /// The inode, with only the pids the caller may see.
    pub inode: BusyInode,
    /// Processes holding it that the caller may not see (counted, never named).
    pub other_pids: usize,
}

/// What one caller may see of a key's busy inodes (`remove-key`'s list, `FSCRYPTFS_IOC_BUSY_FILES`).
///
/// The rule (SEMANTICS.md §4, "Busy report"): a privileged caller (root) sees every busy inode and
/// every process. Anyone else sees only the inodes it owns, and on them only the processes that
/// [belong](ProcessUids::belongs_to) to it; the other inodes and processes are counted, never
/// described. A pid whose process is gone (no uids to be found) is dropped for everyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusyReport {
    /// The busy inodes shown, in the order given.
    pub shown: Vec<ShownBusy>,
    /// Busy inodes not shown: owned by other users, or of unknown owner.
    pub hidden: usize,
}

impl BusyReport {
    /// Filters `busy` for `caller`; `uids_of` looks a pid up (None: the process is gone).
    pub fn for_caller(
        caller: Caller,
        busy: Vec<BusyInode>,
        uids_of: &dyn Fn(u32) -> Option<ProcessUids>,
    ) -> BusyReport {
        let mut report = BusyReport::default();
        for mut inode in busy {
            if !caller.privileged && inode.owner != Some(caller.uid) {
                report.hidden += 1;
                continue;
            }
            inode.pids.sort_unstable();
            inode.pids.dedup();
            let mut other_pids = 0;
            inode.pids.retain(|&pid| match uids_of(pid) {
                None => false,
                Some(_) if caller.privileged => true,
                Some(u) if u.belongs_to(caller.uid) => true,
                Some(_) => {
                    other_pids += 1;
                    false
                }
            });
            report.shown.push(ShownBusy { inode, other_pids });
        }
        report
    }
}

/// `FS_IOC_REMOVE_ENCRYPTION_KEY`'s answer on success.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemovalResult {
    /// FILES_BUSY: removal started but some inodes are still unlocked (status: incompletely removed).
    pub files_busy: bool,
    /// OTHER_USERS: only the caller's claim was removed; the key stays present for the others.
    pub other_users: bool,
    /// The inodes still unlocked, by inode number, when `files_busy`.
    pub busy: Vec<BusyInode>,
}

impl RemovalResult {
    /// The UAPI `removal_status_flags` value.
    pub fn flags(&self) -> u32 {
        let mut f = 0;
        if self.files_busy {
            f |= uapi::KEY_REMOVAL_STATUS_FLAG_FILES_BUSY;
        }
        if self.other_users {
            f |= uapi::KEY_REMOVAL_STATUS_FLAG_OTHER_USERS;
        }
        f
    }

    /// The kernel's warning, with what is still open: "N inode(s) still busy after removing key with
    /// identifier X, including ino Y (path) held by pid(s) P". None when nothing is busy.
    ///
    /// Unfiltered: for the daemon's own log (root's, as the kernel's log line). What a caller is
    /// told goes through [`BusyReport::for_caller`].
    pub fn busy_message(&self, spec: &KeySpec) -> Option<String> {
        let first = self.busy.first()?;
        let kind = match spec {
            KeySpec::Descriptor(_) => "descriptor",
            KeySpec::Identifier(_) => "identifier",
        };
        let mut msg = format!(
            "{} inode(s) still busy after removing key with {kind} {spec}, including ino {}",
            self.busy.len(),
            first.ino
        );
        if let Some(path) = &first.path {
            msg.push_str(&format!(" ({path})"));
        }
        if !first.pids.is_empty() {
            let pids: Vec<String> = first.pids.iter().map(u32::to_string).collect();
            msg.push_str(&format!(" held by pid(s) {}", pids.join(", ")));
        }
        Some(msg)
    }
}

/// Claims and bytes one user holds against [`UserQuota`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Claims held.
    pub keys: usize,
    /// Bytes charged ([`CLAIM_QUOTA_BYTES`] per claim).
    pub bytes: usize,
}

/// The filesystem's side of removal (`try_to_lock_encrypted_files`): lock what can be locked.
///
/// Called without any keyring lock held. The filesystem syncs, then for every listed inode it can
/// lock (not open, no dirty data it cannot write out, no busy descendant) drops its cached plaintext
/// and its [`ActiveRef`]s — synchronously inside this call is fine — and returns the ones it could
/// not lock. The keyring then counts the references that are really left; the returned list only
/// annotates them with paths and process ids.
pub trait InodeLocker {
    /// Locks every inode of `inodes` (unlocked under `spec`) it can; returns the busy ones.
    fn try_lock(&self, spec: &KeySpec, inodes: &[InodeId]) -> Vec<BusyInode>;
}

impl<F> InodeLocker for F
where
    F: Fn(&KeySpec, &[InodeId]) -> Vec<BusyInode>,
{
    fn try_lock(&self, spec: &KeySpec, inodes: &[InodeId]) -> Vec<BusyInode> {
        self(spec, inodes)
    }
}

/// The keyring of one volume (`struct fscrypt_keyring`).
pub struct Keyring {
    shared: Arc<Shared>,
}

/// What the keyring and its [`ActiveRef`]s share; it outlives the [`Keyring`] while references remain,
/// as the kernel destroys a keyring only after every inode is evicted.
struct Shared {
    config: KeyringConfig,
    /// Which keys exist and what each user is charged. Taken before any key's state.
    table: Mutex<Table>,
}

struct Table {
    /// Keys by specifier. A `Dead` key may linger here briefly between its last reference going and
    /// its unhashing; every lookup treats it as absent.
    keys: HashMap<KeySpec, Arc<MasterKey>>,
    /// Claims charged per uid. Changed only together with a key's claims, under this lock.
    usage: HashMap<u32, QuotaUsage>,
}

/// One master key (`struct fscrypt_master_key`).
struct MasterKey {
    spec: KeySpec,
    /// Everything that changes (`mk_sem` and the decrypted-inodes lock in one). Taken after the
    /// table, never before it.
    state: Mutex<KeyState>,
}

/// Where a key is in its life. The secret lives inside the states that may use it, so a dead key
/// cannot hold one.
enum Lifecycle {
    /// `mk_present`: new users may unlock inodes.
    Present(Arc<MasterSecret>),
    /// Removal started; inodes still hold active references. The secret is kept (for their
    /// writeout) only while a [`SecretNeed::Later`] reference remains; None once it was wiped.
    IncompletelyRemoved(Option<Arc<MasterSecret>>),
    /// The last active reference went: the secret was wiped, the key is absent.
    Dead,
}

struct KeyState {
    lifecycle: Lifecycle,
    /// User claims (`mk_users`); None for v1 keys, which have none.
    claims: Option<BTreeSet<u32>>,
    /// `mk_decrypted_inodes`: each unlocked inode and how many active references it holds.
    inodes: HashMap<InodeId, usize>,
    /// The sum of `inodes`' counts: `mk_active_refs` without the one "present" holds.
    inode_refs: usize,
    /// How many of `inode_refs` were taken with [`SecretNeed::Later`].
    secret_refs: usize,
}

impl KeyState {
    fn is_live(&self) -> bool {
        !matches!(self.lifecycle, Lifecycle::Dead)
    }

    fn status(&self, uid: u32) -> KeyStatus {
        match self.lifecycle {
            Lifecycle::Present(_) => {
                let (user_count, added_by_self) = match &self.claims {
                    Some(c) => (u32::try_from(c.len()).unwrap_or(u32::MAX), c.contains(&uid)),
                    None => (0, false),
                };
                KeyStatus::Present {
                    user_count,
                    added_by_self,
                }
            }
            Lifecycle::IncompletelyRemoved(_) => KeyStatus::IncompletelyRemoved,
            Lifecycle::Dead => KeyStatus::Absent,
        }
    }

    fn register(&mut self, ino: InodeId, need: SecretNeed) {
        *self.inodes.entry(ino).or_insert(0) += 1;
        self.inode_refs += 1;
        if need == SecretNeed::Later {
            self.secret_refs += 1;
        }
    }

    /// Drops one reference of `ino`. Returns the secret to wipe when this was the last reference
    /// that could need it on a key being removed, and whether the key is now dead (its last
    /// reference went).
    fn unregister(&mut self, ino: InodeId, need: SecretNeed) -> (Option<Arc<MasterSecret>>, bool) {
        if let Some(n) = self.inodes.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                self.inodes.remove(&ino);
            }
            self.inode_refs -= 1;
            if need == SecretNeed::Later {
                self.secret_refs -= 1;
            }
        } else {
            debug_assert!(false, "active reference of an inode the key does not list");
        }
        if !matches!(self.lifecycle, Lifecycle::IncompletelyRemoved(_)) {
            return (None, false);
        }
        if self.inode_refs == 0 {
            return (self.kill(), true);
        }
        (self.drop_secret_if_unneeded(), false)
    }

    /// While removal is under way: takes the secret out (to be wiped) once no reference that may
    /// need it is left. The key stays incompletely removed.
    fn drop_secret_if_unneeded(&mut self) -> Option<Arc<MasterSecret>> {
        match &mut self.lifecycle {
            Lifecycle::IncompletelyRemoved(s) if self.secret_refs == 0 => s.take(),
            _ => None,
        }
    }

    /// Whether the secret is still in memory (present, or kept for a [`SecretNeed::Later`] user).
    fn secret_retained(&self) -> bool {
        matches!(
            self.lifecycle,
            Lifecycle::Present(_) | Lifecycle::IncompletelyRemoved(Some(_))
        )
    }

    /// Makes the key dead and hands back its secret, to be dropped (wiped) outside the locks.
    fn kill(&mut self) -> Option<Arc<MasterSecret>> {
        match mem::replace(&mut self.lifecycle, Lifecycle::Dead) {
            Lifecycle::Present(s) => Some(s),
            Lifecycle::IncompletelyRemoved(s) => s,
            Lifecycle::Dead => None,
        }
    }
}

/// Takes a lock, recovering it if a thread panicked while holding it. No critical section here runs
/// caller code or leaves the state half-updated at a point that can panic, so poisoning carries no
/// information — and a keyring that refused to work would lock every user out of their files.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn no_key(spec: &KeySpec) -> Error {
    Error::no_key(format!("key {spec} is not present"))
}

impl Table {
    /// The live key under `spec`, if any.
    fn find(&self, spec: &KeySpec) -> Option<Arc<MasterKey>> {
        self.keys.get(spec).cloned()
    }

    /// Charges one claim to `uid` (`add_master_key_user` through `key_alloc`). EDQUOT over quota.
    fn charge(&mut self, uid: u32, quota: &UserQuota) -> Result<()> {
        let used = self.usage.get(&uid).copied().unwrap_or_default();
        if uid != ROOT_UID
            && (used.keys >= quota.max_keys
                || used.bytes.saturating_add(CLAIM_QUOTA_BYTES) > quota.max_bytes)
        {
            return Err(Error::new(
                Errno::DQUOT,
                format!(
                    "uid {uid} holds {} key claim(s) ({} bytes); the quota is {} claims and {} bytes",
                    used.keys, used.bytes, quota.max_keys, quota.max_bytes
                ),
            ));
        }
        let u = self.usage.entry(uid).or_default();
        u.keys = u.keys.saturating_add(1);
        u.bytes = u.bytes.saturating_add(CLAIM_QUOTA_BYTES);
        Ok(())
    }

    /// Gives one claim back to `uid`'s quota.
    fn release(&mut self, uid: u32) {
        if let Some(u) = self.usage.get_mut(&uid) {
            u.keys = u.keys.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub(CLAIM_QUOTA_BYTES);
            if u.keys == 0 {
                self.usage.remove(&uid);
            }
        }
    }

    /// Unhashes `mk` if the table still maps its spec to it (a re-add may have replaced it).
    fn unhash(&mut self, mk: &Arc<MasterKey>) {
        if self
            .keys
            .get(&mk.spec)
            .is_some_and(|cur| Arc::ptr_eq(cur, mk))
        {
            self.keys.remove(&mk.spec);
        }
    }
}

impl Keyring {
    /// An empty keyring with `config`.
    pub fn new(config: KeyringConfig) -> Self {
        Keyring {
            shared: Arc::new(Shared {
                config,
                table: Mutex::new(Table {
                    keys: HashMap::new(),
                    usage: HashMap::new(),
                }),
            }),
        }
    }

    /// The settings this keyring was made with.
    pub fn config(&self) -> KeyringConfig {
        self.shared.config
    }

    /// Adds a v2 key (`FS_IOC_ADD_ENCRYPTION_KEY`, identifier type) and returns its identifier,
    /// which is computed from the key, never taken from the caller.
    ///
    /// The raw key is consumed: it is wiped right after HKDF-Extract, before any lock is taken. The
    /// caller gets a claim; a caller who already holds one changes nothing. Adding a key that is
    /// incompletely removed makes it present again, and its busy inodes carry on.
    ///
    /// # Errors
    /// EINVAL for a raw key outside 16..=64 bytes; EDQUOT when the caller's quota is full.
    #[doc(alias = "fscrypt_ioctl_add_key")]
    pub fn add_v2(&self, caller: Caller, raw: SecretBytes) -> Result<[u8; KEY_IDENTIFIER_SIZE]> {
        let secret = MasterSecret::new_v2(raw.as_ref());
        drop(raw);
        let secret = secret?;
        let Some(identifier) = secret.identifier() else {
            return Err(Error::invalid("a v2 master key has no identifier"));
        };
        self.add_master_key(caller, KeySpec::Identifier(identifier), secret)?;
        Ok(identifier)
    }

    /// Adds a v1 key under `descriptor` (descriptor type). Only privileged callers may, because a
    /// descriptor is not bound to the key: anyone else could add the wrong key for another's files.
    /// v1 keys have no claims and cost no quota; adding a present v1 key again changes nothing.
    ///
    /// # Errors
    /// EACCES when the caller is not privileged; EINVAL for a raw key outside 16..=64 bytes.
    pub fn add_v1(
        &self,
        caller: Caller,
        descriptor: [u8; KEY_DESCRIPTOR_SIZE],
        raw: SecretBytes,
    ) -> Result<()> {
        if !caller.privileged {
            return Err(Error::new(
                Errno::ACCESS,
                "adding a v1 key by descriptor needs CAP_SYS_ADMIN",
            ));
        }
        let secret = MasterSecret::new_v1(raw.as_ref());
        drop(raw);
        self.add_master_key(caller, KeySpec::Descriptor(descriptor), secret?)
    }

    /// `do_add_master_key`: a new key, a new claim, or a key made present again.
    fn add_master_key(&self, caller: Caller, spec: KeySpec, secret: MasterSecret) -> Result<()> {
        // Whatever secret is not kept, or is replaced, is dropped (wiped) after the locks are gone.
        let mut leftover: Option<Arc<MasterSecret>> = None;
        let secret = Arc::new(secret);
        let result = self.add_locked(caller, spec, &secret, &mut leftover);
        drop(leftover);
        drop(secret);
        result
    }

    fn add_locked(
        &self,
        caller: Caller,
        spec: KeySpec,
        secret: &Arc<MasterSecret>,
        leftover: &mut Option<Arc<MasterSecret>>,
    ) -> Result<()> {
        let quota = self.shared.config.quota;
        let mut table = lock(&self.shared.table);
        if let Some(mk) = table.find(&spec) {
            let mut st = lock(&mk.state);
            if st.is_live() {
                // add_existing_master_key.
                if let Some(claims) = &st.claims {
                    if claims.contains(&caller.uid) {
                        return Ok(());
                    }
                    table.charge(caller.uid, &quota)?;
                }
                if let Some(claims) = &mut st.claims {
                    claims.insert(caller.uid);
                }
                if matches!(st.lifecycle, Lifecycle::IncompletelyRemoved(_)) {
                    let old =
                        mem::replace(&mut st.lifecycle, Lifecycle::Present(Arc::clone(secret)));
                    if let Lifecycle::IncompletelyRemoved(s) = old {
                        *leftover = s;
                    }
                }
                return Ok(());
            }
            // Dead but not yet unhashed (the kernel's KEY_DEAD): replace it with a fresh key.
        }
        let claims = match spec {
            KeySpec::Identifier(_) => {
                table.charge(caller.uid, &quota)?;
                Some(BTreeSet::from([caller.uid]))
            }
            KeySpec::Descriptor(_) => None,
        };
        let mk = Arc::new(MasterKey {
            spec,
            state: Mutex::new(KeyState {
                lifecycle: Lifecycle::Present(Arc::clone(secret)),
                claims,
                inodes: HashMap::new(),
                inode_refs: 0,
                secret_refs: 0,
            }),
        });
        table.keys.insert(spec, mk);
        Ok(())
    }

    /// Removes the caller's claim, or every claim (`FS_IOC_REMOVE_ENCRYPTION_KEY[_ALL_USERS]`), and
    /// when none is left starts removing the key: it stops being present at once, every unlocked
    /// inode is offered to `locker`, and the key is absent once the last active reference goes.
    /// Calling it again on an incompletely removed key retries the locking.
    ///
    /// `locker` is called without any keyring lock held and may drop [`ActiveRef`]s inside the call.
    ///
    /// # Errors
    /// EACCES for `all_users` or a v1 key without privilege; ENOKEY when the key is absent, or when
    /// the caller holds no claim while other users do.
    #[doc(alias = "fscrypt_ioctl_remove_key")]
    pub fn remove(
        &self,
        caller: Caller,
        spec: KeySpec,
        all_users: bool,
        locker: &dyn InodeLocker,
    ) -> Result<RemovalResult> {
        if all_users && !caller.privileged {
            return Err(Error::new(
                Errno::ACCESS,
                "removing a key for all users needs CAP_SYS_ADMIN",
            ));
        }
        if matches!(spec, KeySpec::Descriptor(_)) && !caller.privileged {
            return Err(Error::new(
                Errno::ACCESS,
                "removing a v1 key by descriptor needs CAP_SYS_ADMIN",
            ));
        }
        let mut wiped: Option<Arc<MasterSecret>> = None;
        let step = self.remove_locked(caller, &spec, all_users, &mut wiped);
        drop(wiped);
        let (mk, inodes) = match step? {
            RemoveStep::Done(result) => return Ok(result),
            RemoveStep::TryLock(mk, inodes) => (mk, inodes),
        };
        let reported = locker.try_lock(&spec, &inodes);
        Ok(check_for_busy_inodes(&mk, reported))
    }

    /// do_remove_key up to `try_to_lock_encrypted_files`, under the locks.
    fn remove_locked(
        &self,
        caller: Caller,
        spec: &KeySpec,
        all_users: bool,
        wiped: &mut Option<Arc<MasterSecret>>,
    ) -> Result<RemoveStep> {
        let mut table = lock(&self.shared.table);
        let mk = table.find(spec).ok_or_else(|| no_key(spec))?;
        let mut st = lock(&mk.state);
        if !st.is_live() {
            return Err(no_key(spec));
        }
        if let Some(claims) = st.claims.as_mut().filter(|c| !c.is_empty()) {
            let released: Vec<u32> = if all_users {
                mem::take(claims).into_iter().collect()
            } else if claims.remove(&caller.uid) {
                vec![caller.uid]
            } else {
                return Err(Error::no_key(format!(
                    "uid {} has no claim on key {spec}; other users do",
                    caller.uid
                )));
            };
            let others = !claims.is_empty();
            for uid in released {
                table.release(uid);
            }
            if others {
                return Ok(RemoveStep::Done(RemovalResult {
                    other_users: true,
                    ..RemovalResult::default()
                }));
            }
        }
        // No claims left: fscrypt_initiate_key_removal, unless it already happened (a retry).
        let mut initiated = false;
        if matches!(st.lifecycle, Lifecycle::Present(_)) {
            initiated = true;
            if st.inode_refs == 0 {
                *wiped = st.kill();
                drop(st);
                table.unhash(&mk);
                return Ok(RemoveStep::Done(RemovalResult::default()));
            }
            st.lifecycle = match mem::replace(&mut st.lifecycle, Lifecycle::Dead) {
                Lifecycle::Present(s) => Lifecycle::IncompletelyRemoved(Some(s)),
                other => other,
            };
            // Nothing unlocked may need the secret later: wipe it now, not at the last close.
            *wiped = st.drop_secret_if_unneeded();
        }
        if st.inode_refs == 0 {
            // Not present and nothing unlocked: already dead, which is_live() excluded above.
            debug_assert!(initiated);
            return Err(no_key(spec));
        }
        let mut inodes: Vec<InodeId> = st.inodes.keys().copied().collect();
        inodes.sort_unstable();
        drop(st);
        Ok(RemoveStep::TryLock(Arc::clone(&mk), inodes))
    }

    /// `FS_IOC_GET_ENCRYPTION_KEY_STATUS` for `caller` (no permission needed).
    #[doc(alias = "fscrypt_ioctl_get_key_status")]
    pub fn status(&self, caller: Caller, spec: KeySpec) -> KeyStatus {
        let table = lock(&self.shared.table);
        match table.find(&spec) {
            Some(mk) => lock(&mk.state).status(caller.uid),
            None => KeyStatus::Absent,
        }
    }

    /// `fscrypt_verify_key_added`, as setting a v2 policy needs: the caller must hold a claim on
    /// `identifier`, or be privileged (CAP_FOWNER), whether or not the key exists.
    ///
    /// # Errors
    /// ENOKEY otherwise.
    #[doc(alias = "fscrypt_verify_key_added")]
    pub fn verify_key_added(
        &self,
        caller: Caller,
        identifier: &[u8; KEY_IDENTIFIER_SIZE],
    ) -> Result<()> {
        let spec = KeySpec::Identifier(*identifier);
        let claimed = {
            let table = lock(&self.shared.table);
            table.find(&spec).is_some_and(|mk| {
                let st = lock(&mk.state);
                st.is_live() && st.claims.as_ref().is_some_and(|c| c.contains(&caller.uid))
            })
        };
        if claimed || caller.privileged {
            Ok(())
        } else {
            Err(Error::no_key(format!(
                "uid {} has not added key {spec}",
                caller.uid
            )))
        }
    }

    /// Unlocks `inode` under `spec` with [`SecretNeed::Later`]: [`Keyring::unlock_with`].
    ///
    /// # Errors
    /// As [`Keyring::unlock_with`].
    pub fn unlock<T>(
        &self,
        spec: &KeySpec,
        inode: InodeId,
        f: impl FnOnce(&MasterSecret) -> Result<T>,
    ) -> Result<(ActiveRef, T)> {
        self.unlock_with(spec, inode, SecretNeed::Later, f)
    }

    /// Unlocks `inode` under `spec` (`fscrypt_setup_encryption_info`): runs `f` with the master
    /// secret (typically `InodeKey::setup`) and registers the inode as unlocked. The returned
    /// [`ActiveRef`] is the inode's hold on the key; drop it when the inode is locked or evicted.
    /// `need` says whether the reference keeps the secret alive through a removal (per-extent
    /// files) or only the key's *incompletely removed* state (everything whose key `f` derives).
    ///
    /// `f` runs without any keyring lock held. The reference is taken before `f` runs, so a removal
    /// racing with `f` sees the inode as in use, and an error or panic in `f` gives it back.
    ///
    /// # Errors
    /// ENOKEY unless the key is present; whatever `f` returns.
    #[doc(alias = "fscrypt_setup_encryption_info")]
    pub fn unlock_with<T>(
        &self,
        spec: &KeySpec,
        inode: InodeId,
        need: SecretNeed,
        f: impl FnOnce(&MasterSecret) -> Result<T>,
    ) -> Result<(ActiveRef, T)> {
        let (mk, secret) = {
            let table = lock(&self.shared.table);
            let mk = table.find(spec).ok_or_else(|| no_key(spec))?;
            let mut st = lock(&mk.state);
            let Lifecycle::Present(secret) = &st.lifecycle else {
                return Err(no_key(spec));
            };
            let secret = Arc::clone(secret);
            st.register(inode, need);
            drop(st);
            (mk, secret)
        };
        let active = ActiveRef {
            shared: Arc::clone(&self.shared),
            key: mk,
            ino: inode,
            need,
        };
        let out = f(&secret);
        drop(secret);
        out.map(|v| (active, v))
    }

    /// The inodes unlocked under `spec` (holding active references), by inode number: what keeps a
    /// key busy, for status commands. Empty when the key is absent.
    pub fn active_inodes(&self, spec: &KeySpec) -> Vec<InodeId> {
        let table = lock(&self.shared.table);
        let mut v: Vec<InodeId> = match table.find(spec) {
            Some(mk) => lock(&mk.state).inodes.keys().copied().collect(),
            None => Vec::new(),
        };
        v.sort_unstable();
        v
    }

    /// Whether the master secret of `spec` is still in memory: present, or incompletely removed
    /// with a [`SecretNeed::Later`] reference left. False once it was wiped (or never added).
    pub fn secret_retained(&self, spec: &KeySpec) -> bool {
        let table = lock(&self.shared.table);
        table
            .find(spec)
            .is_some_and(|mk| lock(&mk.state).secret_retained())
    }

    /// What `uid` is charged against the quota.
    pub fn quota_usage(&self, uid: u32) -> QuotaUsage {
        lock(&self.shared.table)
            .usage
            .get(&uid)
            .copied()
            .unwrap_or_default()
    }
}

enum RemoveStep {
    Done(RemovalResult),
    TryLock(Arc<MasterKey>, Vec<InodeId>),
}

/// `check_for_busy_inodes`: after the filesystem locked what it could, whatever still holds a
/// reference is busy. Counted from the keyring's own list, so an inode the filesystem forgot to
/// report (or one being unlocked right now) still shows; the filesystem's report adds paths and pids.
fn check_for_busy_inodes(mk: &MasterKey, reported: Vec<BusyInode>) -> RemovalResult {
    let mut still: Vec<InodeId> = {
        let st = lock(&mk.state);
        if !st.is_live() || st.inode_refs == 0 {
            return RemovalResult::default();
        }
        st.inodes.keys().copied().collect()
    };
    still.sort_unstable();
    let mut by_ino: HashMap<InodeId, BusyInode> =
        reported.into_iter().map(|b| (b.ino, b)).collect();
    let busy = still
        .into_iter()
        .map(|ino| {
            by_ino.remove(&ino).unwrap_or(BusyInode {
                ino,
                ..BusyInode::default()
            })
        })
        .collect();
    RemovalResult {
        files_busy: true,
        other_users: false,
        busy,
    }
}

impl fmt::Debug for Keyring {
    /// The settings and, per key, its specifier (public), state, claim count and unlocked inodes.
    /// Never any secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = {
            let table = lock(&self.shared.table);
            let mut keys: Vec<_> = table.keys.values().cloned().collect();
            drop(table);
            keys.sort_by_key(|mk| mk.spec);
            keys.iter()
                .map(|mk| {
                    let st = lock(&mk.state);
                    let state = match st.lifecycle {
                        Lifecycle::Present(_) => "present",
                        Lifecycle::IncompletelyRemoved(Some(_)) => "incompletely removed",
                        Lifecycle::IncompletelyRemoved(None) => {
                            "incompletely removed (secret wiped)"
                        }
                        Lifecycle::Dead => "absent",
                    };
                    format!(
                        "{}: {state}, {} claim(s), {} unlocked inode(s)",
                        mk.spec,
                        st.claims.as_ref().map_or(0, BTreeSet::len),
                        st.inodes.len()
                    )
                })
                .collect()
        };
        f.debug_struct("Keyring")
            .field("config", &self.shared.config)
            .field("keys", &keys)
            .finish()
    }
}

/// One unlocked inode's hold on its master key (an active reference: the kernel's `ci_master_key`
/// link plus its count in `mk_active_refs`).
///
/// While it lives the key cannot become absent; a [`SecretNeed::Later`] reference may also derive
/// per-extent keys after removal started. Dropping the last `Later` one of a key being removed wipes
/// its secret, per-mode keys included; dropping the last one of any kind makes the key absent. Not
/// `Clone`: one reference per unlock; share it with `Arc`.
pub struct ActiveRef {
    shared: Arc<Shared>,
    key: Arc<MasterKey>,
    ino: InodeId,
    need: SecretNeed,
}

impl ActiveRef {
    /// The key this reference holds.
    pub fn spec(&self) -> KeySpec {
        self.key.spec
    }

    /// The inode it was taken for.
    pub fn ino(&self) -> InodeId {
        self.ino
    }

    /// Whether it keeps the secret for later derivations.
    pub fn secret_need(&self) -> SecretNeed {
        self.need
    }

    /// True once removal of the key has started (it is no longer present); false again if the key
    /// is added back.
    pub fn removal_started(&self) -> bool {
        !matches!(lock(&self.key.state).lifecycle, Lifecycle::Present(_))
    }

    /// Derives the key of an extent of this inode (a new extent at writeout, or an existing one on
    /// read), while the master key is present or incompletely removed: soft removal keeps the secret
    /// for exactly this. Only through a [`SecretNeed::Later`] reference.
    ///
    /// # Errors
    /// EINVAL through a [`SecretNeed::SetupOnly`] reference (it does not keep the secret); ENOKEY
    /// when `ctx` names another master key (a v1 key never matches: extents are v2 only).
    pub fn derive_extent_key(&self, ctx: &ExtentContext) -> Result<ExtentKey> {
        if self.need != SecretNeed::Later {
            return Err(Error::invalid(format!(
                "inode {} unlocked key {} for setup only; it cannot derive extent keys",
                self.ino, self.key.spec
            )));
        }
        let secret = {
            let st = lock(&self.key.state);
            match &st.lifecycle {
                Lifecycle::Present(s) | Lifecycle::IncompletelyRemoved(Some(s)) => Arc::clone(s),
                // Unreachable while this reference lives; refuse rather than panic.
                Lifecycle::IncompletelyRemoved(None) | Lifecycle::Dead => {
                    return Err(no_key(&self.key.spec))
                }
            }
        };
        ExtentKey::derive(&secret, ctx)
    }

    /// The write-permission check (the proposed `fscrypt_prep_write` hook), called before a write,
    /// truncate or fallocate accepts any data. Always Ok in [`RemovalMode::Soft`].
    ///
    /// # Errors
    /// ENOKEY in [`RemovalMode::DenyWrites`] once removal of the key has started.
    pub fn prepare_write(&self) -> Result<()> {
        match self.shared.config.removal_mode {
            RemovalMode::Soft => Ok(()),
            RemovalMode::DenyWrites => {
                if self.removal_started() {
                    Err(Error::no_key(format!(
                        "key {} is being removed; new writes are refused",
                        self.key.spec
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }
}

impl Drop for ActiveRef {
    /// `fscrypt_put_master_key_activeref`: the last reference of a key being removed makes it absent
    /// and wipes its secret; the last one that could need the secret wipes it earlier.
    fn drop(&mut self) {
        let (wiped, dead) = lock(&self.key.state).unregister(self.ino, self.need);
        if dead {
            lock(&self.shared.table).unhash(&self.key);
        }
        drop(wiped);
    }
}

impl fmt::Debug for ActiveRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActiveRef")
            .field("key", &format_args!("{}", self.key.spec))
            .field("ino", &self.ino)
            .field("need", &self.need)
            .finish()
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ActiveRef>();
    assert_send_sync::<Keyring>();
};
