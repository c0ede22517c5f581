//! One master key's life (`struct fscrypt_master_key`): its states, the counts that move it from
//! one to the next, and when its secret is wiped.
//!
//! ```text
//!  add ─▶ Present ──remove: no claim left, inodes unlocked──▶ IncompletelyRemoved(secret or none)
//!          ▲  │                                                  │         │
//!          │  └──remove: no claim left, nothing unlocked──▶ Dead ◀─────────┘ last reference drops
//!          └──────────────────── add again ──────────────────────┘
//! ```
//!
//! - *Present* (`mk_present`): new users may unlock inodes with it; the secret is in memory.
//! - *Incompletely removed*: removal started (no claim left) while inodes still hold active
//!   references; nothing new may unlock. The secret is kept only while a [`SecretNeed::Later`]
//!   reference remains (a per-extent file derives extent keys at writeout); with only
//!   [`SecretNeed::SetupOnly`] references left it is wiped at once, per-mode key cache included,
//!   though the key stays incompletely removed until they go.
//! - *Dead* (absent): the last reference went, the secret is wiped; the table unhashes the key.
//!
//! The secret lives inside the states that may use it, so a dead key cannot hold one; every
//! transition that ends a secret hands it back to the caller, which drops (wipes) it after
//! releasing its locks. What this means for one open file is told in `active`'s header; the
//! [`RemovalMode`] chosen per volume decides whether such a file may still accept writes.
//!
//! Also here: [`KeyStatus`] (the state as `FS_IOC_GET_ENCRYPTION_KEY_STATUS` reports it), the
//! lock helper every keyring module uses, and the ENOKEY every lookup of an absent key returns.

use std::collections::{BTreeSet, HashMap};
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};

use super::uapi;
use crate::error::Error;
use crate::keysetup::MasterSecret;
use crate::policy::KeySpec;

/// A filesystem's (stable) inode number, as the keyring tracks unlocked inodes.
pub type InodeId = u64;

/// Whether an unlocked inode may need the master secret after its unlock (`Keyring::unlock_with`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecretNeed {
    /// The inode may derive keys later ([`ActiveRef::derive_extent_key`](super::ActiveRef::derive_extent_key): per-extent regular files).
    /// Its reference keeps the secret alive through removal, until it drops.
    #[default]
    Later,
    /// The inode's key is fully derived inside the unlock closure (per-file-layout inodes,
    /// directories, symlinks). Its reference keeps the key *incompletely removed* but not the
    /// secret, and [`ActiveRef::derive_extent_key`](super::ActiveRef::derive_extent_key) through it is refused.
    SetupOnly,
}

/// What removal does to inodes that stay busy (a per-volume setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemovalMode {
    /// Busy inodes keep working, writes and writeout included, until they are closed (the kernel's
    /// user-visible semantics).
    #[default]
    Soft,
    /// As `Soft`, but once removal starts [`ActiveRef::prepare_write`](super::ActiveRef::prepare_write) refuses new writes with ENOKEY;
    /// reads and the writeout of data already accepted go on.
    DenyWrites,
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

/// One master key (`struct fscrypt_master_key`).
pub(super) struct MasterKey {
    pub(super) spec: KeySpec,
    /// Everything that changes (`mk_sem` and the decrypted-inodes lock in one). Taken after the
    /// table, never before it.
    pub(super) state: Mutex<KeyState>,
}

/// Where a key is in its life. The secret lives inside the states that may use it, so a dead key
/// cannot hold one.
pub(super) enum Lifecycle {
    /// `mk_present`: new users may unlock inodes.
    Present(Arc<MasterSecret>),
    /// Removal started; inodes still hold active references. The secret is kept (for their
    /// writeout) only while a [`SecretNeed::Later`] reference remains; None once it was wiped.
    IncompletelyRemoved(Option<Arc<MasterSecret>>),
    /// The last active reference went: the secret was wiped, the key is absent.
    Dead,
}

/// What changes in a key, under [`MasterKey::state`]: its place in the life above, its claims and
/// the active references it counts.
pub(super) struct KeyState {
    pub(super) lifecycle: Lifecycle,
    /// User claims (`mk_users`); None for v1 keys, which have none.
    pub(super) claims: Option<BTreeSet<u32>>,
    /// `mk_decrypted_inodes`: each unlocked inode and how many active references it holds.
    pub(super) inodes: HashMap<InodeId, usize>,
    /// The sum of `inodes`' counts: `mk_active_refs` without the one "present" holds.
    pub(super) inode_refs: usize,
    /// How many of `inode_refs` were taken with [`SecretNeed::Later`].
    pub(super) secret_refs: usize,
}

impl KeyState {
    /// Not dead: present or incompletely removed.
    pub(super) fn is_live(&self) -> bool {
        !matches!(self.lifecycle, Lifecycle::Dead)
    }

    /// The status as `uid` sees it (`added_by_self` is about `uid`'s claim).
    pub(super) fn status(&self, uid: u32) -> KeyStatus {
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

    /// Counts one more active reference of `ino` (the caller checked that the key is present).
    pub(super) fn register(&mut self, ino: InodeId, need: SecretNeed) {
        *self.inodes.entry(ino).or_insert(0) += 1;
        self.inode_refs += 1;
        if need == SecretNeed::Later {
            self.secret_refs += 1;
        }
    }

    /// Drops one reference of `ino`. Returns the secret to wipe when this was the last reference
    /// that could need it on a key being removed, and whether the key is now dead (its last
    /// reference went).
    pub(super) fn unregister(
        &mut self,
        ino: InodeId,
        need: SecretNeed,
    ) -> (Option<Arc<MasterSecret>>, bool) {
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
    pub(super) fn drop_secret_if_unneeded(&mut self) -> Option<Arc<MasterSecret>> {
        match &mut self.lifecycle {
            Lifecycle::IncompletelyRemoved(s) if self.secret_refs == 0 => s.take(),
            _ => None,
        }
    }

    /// Whether the secret is still in memory (present, or kept for a [`SecretNeed::Later`] user).
    pub(super) fn secret_retained(&self) -> bool {
        matches!(
            self.lifecycle,
            Lifecycle::Present(_) | Lifecycle::IncompletelyRemoved(Some(_))
        )
    }

    /// Makes the key dead and hands back its secret, to be dropped (wiped) outside the locks.
    pub(super) fn kill(&mut self) -> Option<Arc<MasterSecret>> {
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
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// ENOKEY for a key that is not present (absent, or no longer usable for new work).
pub(super) fn no_key(spec: &KeySpec) -> Error {
    Error::no_key(format!("key {spec} is not present"))
}
