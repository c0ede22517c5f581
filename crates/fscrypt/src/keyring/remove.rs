//! Removing a key (`FS_IOC_REMOVE_ENCRYPTION_KEY[_ALL_USERS]`, the kernel's
//! `fscrypt_ioctl_remove_key`, `do_remove_key`, `try_to_lock_encrypted_files` and
//! `check_for_busy_inodes`) and its answer, [`RemovalResult`].
//!
//! Three steps. Under the locks: release the caller's claim (or all of them); if other users still
//! hold one, stop there (OTHER_USERS). Otherwise start removal: the key stops being present, its
//! secret is wiped now unless an unlocked inode may still need it, and a key with nothing unlocked
//! dies at once. Without any lock: hand the unlocked inodes to the filesystem's [`InodeLocker`],
//! which may drop active references inside the call. Then count what is really left: anything
//! still holding a reference is busy (FILES_BUSY), described by the filesystem where it could.
//! Calling it again on an incompletely removed key retries the locking. What the busy inodes
//! themselves go through is `active`'s header.

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;

use super::busy::{BusyInode, InodeLocker};
use super::claims::Caller;
use super::lifecycle::{lock, no_key, InodeId, Lifecycle, MasterKey};
use super::table::Keyring;
use super::uapi;
use crate::error::{Errno, Error, Result};
use crate::keysetup::MasterSecret;
use crate::policy::KeySpec;

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
    /// told goes through [`BusyReport::for_caller`](super::BusyReport::for_caller).
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

impl Keyring {
    /// Removes the caller's claim, or every claim (`FS_IOC_REMOVE_ENCRYPTION_KEY[_ALL_USERS]`), and
    /// when none is left starts removing the key: it stops being present at once, every unlocked
    /// inode is offered to `locker`, and the key is absent once the last active reference goes.
    /// Calling it again on an incompletely removed key retries the locking.
    ///
    /// `locker` is called without any keyring lock held and may drop
    /// [`ActiveRef`](super::ActiveRef)s inside the call.
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
                table.quotas.release(uid);
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
