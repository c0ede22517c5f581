//! Busy inodes: what the filesystem reports when removal finds inodes it cannot lock, and what
//! each caller may see of them.
//!
//! - [`InodeLocker`]: the filesystem's side of removal (`try_to_lock_encrypted_files`), called
//!   without any keyring lock held; it locks the idle inodes and describes the rest as
//!   [`BusyInode`]s (path, owner, processes holding them).
//! - [`BusyReport::for_caller`]: the rule of SEMANTICS.md §4, "Busy report" — root sees
//!   everything; anyone else sees only its own inodes and, on them, only its own processes
//!   ([`ProcessUids::belongs_to`]); the rest is counted, never described.
//!
//! Which inodes are busy is the keyring's own count (`remove`); this module only carries and
//! filters the filesystem's description of them.

use super::claims::Caller;
use super::lifecycle::InodeId;
use crate::policy::KeySpec;

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

/// The filesystem's side of removal (`try_to_lock_encrypted_files`): lock what can be locked.
///
/// Called without any keyring lock held. The filesystem syncs, then for every listed inode it can
/// lock (not open, no dirty data it cannot write out, no busy descendant) drops its cached plaintext
/// and its [`ActiveRef`](super::ActiveRef)s — synchronously inside this call is fine — and returns
/// the ones it could not lock. The keyring then counts the references that are really left; the
/// returned list only annotates them with paths and process ids.
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
