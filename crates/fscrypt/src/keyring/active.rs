//! Active references: one unlocked inode's hold on its master key, from [`Keyring::unlock_with`]
//! to the [`ActiveRef`]'s drop — and so **what happens to an open file when its key is removed**.
//!
//! An inode is unlocked once (at open, create, or a directory's first plaintext lookup): the key
//! must be *present*, the filesystem's closure derives the inode's key from the master secret, and
//! the inode keeps the returned [`ActiveRef`] until the filesystem locks or evicts it. When
//! `remove-key` takes the key's last claim (a v1 key has none: at once; `remove` has the steps):
//!
//! 1. The key stops being present at once: nothing new unlocks (open of a locked file, create:
//!    ENOKEY). The filesystem's [`InodeLocker`](super::InodeLocker) then writes out and locks
//!    every idle inode (its reference drops); an *open* file is busy, keeps its reference, and the
//!    key is *incompletely removed* (FILES_BUSY; `lifecycle` has the states).
//! 2. The open file keeps working. A per-file-layout file reads and writes with the inode key it
//!    derived at unlock ([`SecretNeed::SetupOnly`]: its reference does not keep the master secret,
//!    which is wiped at removal unless a `Later` reference is left). A per-extent file holds a
//!    [`SecretNeed::Later`] reference, which keeps the secret so
//!    [`ActiveRef::derive_extent_key`] can derive the keys of the extents it reads and of those its
//!    buffered data becomes at writeout (data already accepted is never lost, fstests generic/595).
//! 3. Writes: [`RemovalMode::Soft`] (the kernel's behaviour) accepts them as before;
//!    [`RemovalMode::DenyWrites`] makes [`ActiveRef::prepare_write`] refuse new ones with ENOKEY
//!    while reads and the writeout of what was accepted go on.
//! 4. The filesystem drops the reference when it locks the inode: at its last close once removal
//!    has started (after the writeout), at eviction, or when a retried removal finds it idle. The
//!    last `Later` reference of a key being removed wipes the secret; the last reference of any
//!    kind makes the key absent (`Drop for ActiveRef`, which unhashes it from the table).
//!
//! Adding the key again while it is incompletely removed makes it present again: the open file
//! carries on with its reference (and, in deny-writes mode, accepts writes again). The
//! filesystem's side (which inodes it locks, when, and what it tells the kernel) is in its own key
//! lifecycle module; docs/SEMANTICS.md §2 has the per-operation table, §5 when each secret dies.

use std::fmt;
use std::sync::Arc;

use super::lifecycle::{lock, no_key, InodeId, Lifecycle, MasterKey, RemovalMode, SecretNeed};
use super::table::{Keyring, Shared};
use crate::error::{Error, Result};
use crate::extent::{ExtentContext, ExtentKey};
use crate::keysetup::MasterSecret;
use crate::policy::KeySpec;

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

impl Keyring {
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
}
