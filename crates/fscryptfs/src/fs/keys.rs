//! The key lifecycle of inodes: unlocking on demand (`ensure_key`, `unlock_new`, a directory's
//! key state for names: `dir_key`, fscrypt's `DirKey`), and key removal — the busy report, the
//! [`InodeLocker`](fscrypt::keyring::InodeLocker) side (`lock_inodes`: idle inodes drop their keys
//! and the kernel is told to forget their plaintext), and the last close of an inode whose key is
//! being removed (`maybe_lock_after_close`), and the key a size change by path needs
//! (`file_key_for_change`: the contents room gets keys handed in, never fetches them). What happens
//! to an open file when its key is removed is answered here.

use std::collections::HashSet;
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use fscrypt::context::Context;
use fscrypt::keyring::{
    ActiveRef, BusyInode, BusyReport, Caller, KeyStatus, ProcessUids, SecretNeed,
};
use fscrypt::keysetup::{InodeKey, InodeParams};
use fscrypt::policy::KeySpec;
use fscrypt::Result;

use super::locks::{lock, rlock, wlock};
use super::mount::Fs;
use super::node::extent::{secret_need, writeout_locked};
use super::node::{Keys, Kind, Node, Unlocked};
use super::types::Creds;
use crate::store::config::ROOT_INO;

/// How long key removal waits for RELEASEs of handles already FLUSHed (closed by the application).
pub(super) const RELEASE_WAIT: Duration = Duration::from_millis(500);

/// A directory's key state for a name operation (`fscrypt::hooks`).
pub(super) use fscrypt::hooks::DirKey;

/// The longest prefix of `/proc/PID/status` read: its `Uid:` line comes within the first few
/// hundred bytes.
pub(super) const PROC_STATUS_MAX: u64 = 4096;

/// The uids of process `pid` (`/proc/PID/status`, read with a bound); None when it is gone or the
/// line cannot be read (the busy report then drops the pid).
pub(super) fn process_uids(pid: u32) -> Option<ProcessUids> {
    use std::io::Read;
    let f = File::open(format!("/proc/{pid}/status")).ok()?;
    let mut text = Vec::new();
    f.take(PROC_STATUS_MAX).read_to_end(&mut text).ok()?;
    parse_status_uids(&text)
}

/// The process (thread group) of thread `tid`, from `/proc/TID/status`'s `Tgid:` line; `tid`
/// itself when it is gone or the line cannot be read.
pub(super) fn process_of(tid: u32) -> u32 {
    use std::io::Read;
    let Ok(f) = File::open(format!("/proc/{tid}/status")) else {
        return tid;
    };
    let mut text = Vec::new();
    if f.take(PROC_STATUS_MAX).read_to_end(&mut text).is_err() {
        return tid;
    }
    text.split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Tgid:"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(tid)
}

/// The real, effective and saved uids of a `/proc/PID/status` text (`Uid:\tR\tE\tS\tFS`).
pub(super) fn parse_status_uids(text: &[u8]) -> Option<ProcessUids> {
    let line = text
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Uid:"))?;
    let line = std::str::from_utf8(line).ok()?;
    let mut ids = line.split_ascii_whitespace().map(str::parse::<u32>);
    let mut next = || ids.next()?.ok();
    Some(ProcessUids {
        real: next()?,
        effective: next()?,
        saved: next()?,
    })
}

impl Fs {
    /// The key of a regular file for a size change by path (no handle): ENOKEY without it.
    pub(super) fn file_key_for_change(&self, node: &Node) -> Result<Option<Arc<InodeKey>>> {
        let k = self.ensure_key(node)?;
        if let Some(a) = rlock(&node.state).active() {
            a.prepare_write()?;
        }
        Ok(k)
    }

    /// The inode's key, setting it up if the master key is present. Ok(None) for unencrypted
    /// inodes and for unlocked per-extent files (they have an `ActiveRef` and extent keys, no
    /// inode key); ENOKEY when it cannot be unlocked.
    pub(super) fn ensure_key(&self, node: &Node) -> Result<Option<Arc<InodeKey>>> {
        {
            let st = rlock(&node.state);
            match st.keys() {
                None | Some(Keys { ctx: None, .. }) => return Ok(None),
                Some(Keys {
                    ctx: Some(_),
                    unlocked: Some(u),
                }) => return Ok(u.key.clone()),
                Some(Keys {
                    ctx: Some(_),
                    unlocked: None,
                }) => {}
            }
        }
        let mut st = wlock(&node.state);
        let need = secret_need(node.kind, st.is_extent());
        let Some(keys) = st.keys_mut() else {
            return Ok(None);
        };
        if let Some(u) = &keys.unlocked {
            return Ok(u.key.clone());
        }
        let Some(ctx) = keys.ctx else {
            return Ok(None);
        };
        let (active, key) = self.unlock_new(&ctx, node.ino, node.kind, need)?;
        let key = key.map(Arc::new);
        keys.unlocked = Some(Unlocked {
            active,
            key: key.clone(),
        });
        Ok(key)
    }

    /// Unlocks a new reference for inode `ino`: `need` is `SecretNeed::Later` only for per-extent
    /// regular files (they derive extent keys at writeout and read, and get no inode key: None).
    pub(super) fn unlock_new(
        &self,
        ctx: &Context,
        ino: u64,
        kind: Kind,
        need: SecretNeed,
    ) -> Result<(ActiveRef, Option<InodeKey>)> {
        let spec = ctx.policy().key_spec();
        let params = InodeParams {
            kind: kind.inode_kind(),
            ino,
            fs_uuid: self.uuid,
        };
        self.keyring.unlock_with(&spec, ino, need, |m| {
            if need == SecretNeed::Later {
                return Ok(None);
            }
            InodeKey::setup(m, ctx, &params, &self.fsp).map(Some)
        })
    }

    /// A directory's key state (ENOKEY becomes `DirKey::NoKey`; `DirKey::require` is
    /// `fscrypt_require_key`).
    pub(super) fn dir_key(&self, dir: &Node) -> Result<DirKey> {
        DirKey::from_setup(self.ensure_key(dir))
    }

    /// Inodes that count as busy: open ones and every directory above one.
    pub(super) fn busy_set(&self) -> HashSet<u64> {
        let nodes = rlock(&self.inodes.table);
        let mut busy = HashSet::new();
        for n in nodes.values() {
            let open = lock(&n.meta).opens > 0;
            if !open {
                continue;
            }
            let mut cur = n.ino;
            for _ in 0..4096 {
                if !busy.insert(cur) || cur == ROOT_INO {
                    break;
                }
                let Some(p) = nodes.get(&cur) else { break };
                cur = lock(&p.meta).parent;
            }
        }
        busy
    }

    /// How a busy inode is reported: its number, owner (the backing object's, which is the owner
    /// users see), path and the pids holding it open.
    pub(super) fn busy_inode(&self, node: &Node) -> BusyInode {
        // FUSE names the thread that opened a file; people know processes.
        let mut pids: Vec<u32> = lock(&node.meta)
            .pids
            .iter()
            .map(|&p| process_of(p))
            .collect();
        pids.sort_unstable();
        pids.dedup();
        let owner = match rustix::fs::fstat(node.fd()) {
            Ok(st) => Some(st.st_uid),
            Err(e) => {
                // Unknown owner: the report shows the inode to root only.
                tracing::debug!("busy report: {}: {e}", self.describe(node));
                None
            }
        };
        BusyInode {
            ino: node.ino,
            owner,
            path: Some(self.inodes.path_of(node)),
            pids,
        }
    }

    /// The inodes keeping `spec` busy, as `caller` may see them (`FSCRYPTFS_IOC_BUSY_FILES`;
    /// the rule is [`BusyReport`]'s: root sees all, anyone else its own inodes and processes).
    pub(super) fn busy_report(&self, caller: Caller, spec: &KeySpec) -> BusyReport {
        let busy: Vec<BusyInode> = self
            .keyring
            .active_inodes(spec)
            .into_iter()
            .map(|ino| {
                // The table's read lock ends here: `busy_inode` reads it again (`path_of`).
                let node = rlock(&self.inodes.table).get(&ino).cloned();
                match node {
                    Some(node) => self.busy_inode(&node),
                    None => BusyInode {
                        ino,
                        ..BusyInode::default()
                    },
                }
            })
            .collect();
        BusyReport::for_caller(caller, busy, &process_uids)
    }

    /// The [`InodeLocker`](fscrypt::keyring::InodeLocker): locks every listed inode that is not
    /// busy, invalidates the kernel's caches of them (after releasing every lock), and reports the
    /// busy ones.
    pub(super) fn lock_inodes(&self, _spec: &KeySpec, inos: &[u64]) -> Vec<BusyInode> {
        // RELEASE follows close() asynchronously: give handles already FLUSHed a moment to go
        // (directories get no FLUSH: RELEASEDIR is all, so an open directory is waited for too,
        // e.g. the one `fscryptfs lock DIR` itself read the policy of a moment ago). Nodes being
        // evicted right now drop their references within moments: wait for them too.
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        loop {
            // One lock at a time: `transit` is taken under the table lock elsewhere.
            let evicting = inos.iter().any(|i| self.inodes.in_transit(*i));
            let pending = evicting
                || inos.iter().any(|i| {
                    rlock(&self.inodes.table).get(i).is_some_and(|n| {
                        let m = lock(&n.meta);
                        m.opens > 0
                            && (m.flushed >= m.opens || n.kind == crate::store::kind::Kind::Dir)
                    })
                });
            if !pending || std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let busy = self.busy_set();
        let mut reported = Vec::new();
        let mut dropped: Vec<(Option<Arc<InodeKey>>, Option<ActiveRef>)> = Vec::new();
        let mut locked_dirs = HashSet::new();
        let mut inval_inodes = Vec::new();
        for &ino in inos {
            let Some(node) = rlock(&self.inodes.table).get(&ino).cloned() else {
                continue;
            };
            if busy.contains(&ino) {
                reported.push(self.busy_inode(&node));
                continue;
            }
            let mut st = wlock(&node.state);
            if lock(&node.meta).opens > 0 {
                // Opened since the busy set was taken (`do_open` counts an open before it
                // takes the key): busy.
                drop(st);
                reported.push(self.busy_inode(&node));
                continue;
            }
            if let Err(e) = writeout_locked(&mut st, true) {
                // Accepted data that cannot be written out keeps the inode busy (SEMANTICS.md §3).
                tracing::error!("{e}");
                drop(st);
                reported.push(self.busy_inode(&node));
                continue;
            }
            dropped.push(st.take_keys());
            drop(st);
            if node.kind == Kind::Dir {
                locked_dirs.insert(ino);
            }
            inval_inodes.push(ino);
        }
        drop(dropped);
        // A node whose eviction began after the wait above (a FORGET racing with this call) was
        // not in the table to be locked; its eviction drops its own key before it leaves transit.
        // Wait for that, so the keyring does not count the reference as a busy inode.
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        while inos.iter().any(|i| self.inodes.in_transit(*i))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Entries the kernel holds by plaintext name in directories now locked.
        self.forget_entries_in(&locked_dirs);
        if let Some(notifier) = self.notifier.get() {
            for ino in inval_inodes {
                if let Err(e) = notifier.inval_inode(ino) {
                    tracing::debug!("inval_inode({ino}): {e}");
                }
            }
        }
        reported
    }

    /// Makes the kernel forget every entry it may hold in directories `dirs` (each node's
    /// `cached_names`). Entries are cached for [`TTL`](super::attr::TTL); this is how a key change
    /// is seen at once instead (names change between plaintext and no-key form). Called with no
    /// lock held (the kernel takes the directory's lock, which the request waiting for this one
    /// may hold).
    pub(super) fn forget_entries_in(&self, dirs: &HashSet<u64>) {
        if dirs.is_empty() {
            return;
        }
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        let mut entries = Vec::new();
        for n in rlock(&self.inodes.table).values() {
            let m = lock(&n.meta);
            entries.extend(
                m.cached_names
                    .iter()
                    .filter(|(p, _)| dirs.contains(p))
                    .cloned(),
            );
        }
        for (parent, name) in entries {
            if let Err(e) = notifier.inval_entry(parent, &name) {
                tracing::debug!("inval_entry({parent}): {e}");
            }
        }
    }

    /// After a key was added: the kernel forgets the no-key names it holds in directories of that
    /// key, so their next lookup finds the plaintext names (fscrypt's `d_revalidate` of no-key
    /// names). Encrypted symlinks' attributes are never cached, so nothing else changes.
    pub(super) fn key_added(&self, spec: &KeySpec) {
        let dirs: HashSet<u64> = rlock(&self.inodes.table)
            .values()
            .filter(|n| n.kind == Kind::Dir)
            .filter(|n| n.ctx().is_some_and(|c| c.policy().key_spec() == *spec))
            .map(|n| n.ino)
            .collect();
        self.forget_entries_in(&dirs);
    }

    /// The caller of a request.
    pub(super) fn caller(req: &Creds) -> Caller {
        Caller {
            uid: req.uid(),
            privileged: req.uid() == 0,
        }
    }

    /// At the last close of a handle: if the inode's key is being removed, the inode locks itself
    /// (drops its key and active reference; the keyring wipes the secret once nothing else holds it).
    pub(super) fn maybe_lock_after_close(&self, node: &Node) {
        // Cheap checks first: this runs at every last close, and the busy set walks every node.
        if lock(&node.meta).opens > 0
            || !rlock(&node.state)
                .active()
                .is_some_and(|a| a.removal_started())
            || self.busy_set().contains(&node.ino)
        {
            return;
        }
        {
            let mut st = wlock(&node.state);
            if !st.active().is_some_and(|a| a.removal_started()) {
                return;
            }
            // Re-checked under the state lock, as `lock_inodes` does: an open that raced with this
            // close has counted itself before taking the key, so it keeps the inode unlocked (its
            // handle must not be left without the key reference its writes need).
            if lock(&node.meta).opens > 0 {
                return;
            }
            // Per-extent files: nothing accepted may be left behind by the key (RELEASE wrote the
            // buffer out; if that failed, try once more and stay unlocked on failure).
            if let Err(e) = writeout_locked(&mut st, true) {
                tracing::error!("{e}");
                return;
            }
            // Dropped under the state lock (node state, then keyring locks: the documented
            // order): a removal racing with this RELEASE either finds the reference here and takes
            // it itself, or waits for the lock and finds it gone. Dropping it after the lock left a
            // window in which the reference was detached but still counted, and the racing
            // removal reported a file that was already closed as busy (generic/580's loop).
            let (key, active) = st.take_keys();
            drop(active);
            drop(key);
        }
        if node.kind == Kind::Dir {
            self.forget_entries_in(&HashSet::from([node.ino]));
        }
        if let Some(n) = self.notifier.get() {
            let _ = n.inval_inode(node.ino);
        }
    }

    /// Key status for `spec` as `caller` sees it.
    pub(super) fn key_status(&self, caller: Caller, spec: KeySpec) -> KeyStatus {
        self.keyring.status(caller, spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_report_reads_the_uid_line_of_proc_status() {
        let text = b"Name:\tcat\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t7\n\
                     Uid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(
            parse_status_uids(text),
            Some(ProcessUids {
                real: 1000,
                effective: 0,
                saved: 0
            })
        );
        assert_eq!(parse_status_uids(b"Name:\tx\n"), None);
        assert_eq!(parse_status_uids(b"Uid:\t1000\t0\n"), None);
        assert_eq!(parse_status_uids(b"Uid:\t1000\tx\t0\t0\n"), None);
        // This process exists and is ours.
        let me = process_uids(std::process::id()).expect("own status");
        assert_eq!(me.real, rustix::process::getuid().as_raw());
    }
}
