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
//!
//! The modules, one concern each; each uses only those listed before it, and this file only
//! re-exports:
//!
//! - `uapi`: the status and removal numbers the key ioctls carry;
//! - `claims`: who calls ([`Caller`]), per-user claims and their [`UserQuota`];
//! - `lifecycle`: one key's states (present, incompletely removed, dead) and when its secret is
//!   wiped; [`SecretNeed`], [`RemovalMode`], [`KeyStatus`];
//! - `busy`: busy inodes, the filesystem's [`InodeLocker`] and what a caller may see
//!   ([`BusyReport`]);
//! - `table`: the [`Keyring`] handle, its table of keys and the read-only questions;
//! - `active`: unlocking and [`ActiveRef`] — **what happens to an open file when its key is
//!   removed** is answered in its header;
//! - `add`: adding a key; `remove`: removing one ([`RemovalResult`]).

mod active;
mod add;
mod busy;
mod claims;
mod lifecycle;
mod remove;
mod table;
pub mod uapi;

pub use active::ActiveRef;
pub use busy::{BusyInode, BusyReport, InodeLocker, ProcessUids, ShownBusy};
pub use claims::{Caller, QuotaUsage, UserQuota, CLAIM_QUOTA_BYTES, ROOT_UID};
pub use lifecycle::{InodeId, KeyStatus, RemovalMode, SecretNeed};
pub use remove::RemovalResult;
pub use table::{Keyring, KeyringConfig};

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ActiveRef>();
    assert_send_sync::<Keyring>();
};
