//! Background writeout of per-extent write buffers: when data that nobody fsyncs or closes becomes
//! extents; and the commit of per-file sizes that close recorded as pending. Two triggers, as the
//! kernel's flusher has them:
//!
//! - **Age** (`-o commit=N`, default [`COMMIT_DEFAULT`] seconds, the name ext4 and btrfs use): a
//!   buffer dirty for that long is written out and committed, and so is a log whose records no
//!   commit covers yet (close and large writes append without committing), and a per-file size
//!   pending that long is committed (its data synced, then the header), so a crash loses at
//!   most about that much of a file's unsynced writes.
//! - **Memory** ([`Budget`]): every buffer counts its bytes in one volume-wide total. Above
//!   `BUDGET_HIGH` the writeout thread is woken and writes the largest buffers out (and commits
//!   them) until the total is under `BUDGET_LOW`; a writer that finds the total above `BUDGET_HARD` writes its own
//!   buffer out first (the kernel's `balance_dirty_pages`), so memory stays bounded however many
//!   files are being written.
//!
//! The thread holds the node table only weakly and never two node locks at once; each writeout is
//! `writeout_locked` under the node's `state` lock, through the node's `ActiveRef` like every
//! other writeout (so a soft-removed key still serves files that are open). A failed writeout
//! leaves the data buffered and logs; fsync or close reports the error to the application.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use fscrypt::Result;

use crate::fs::inodes::NodeTable;
use crate::fs::locks::{rlock, wlock};
use crate::fs::node::budget::{Budget, BUDGET_HIGH, BUDGET_LOW};
use crate::fs::node::extent::writeout_locked;
use crate::fs::node::{Kind, Node};

/// Seconds a buffer may stay dirty when the mount does not say (`-o commit=`).
pub const COMMIT_DEFAULT: u64 = 5;

/// How long the thread leaves a buffer alone after failing to write it out (a full backing
/// filesystem would otherwise be retried, and logged, twice a second).
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// Starts the writeout thread for the node table `nodes`; it ends when the table is dropped.
/// `commit`: the age after which a buffer is written out (`None`: never by age).
pub(in crate::fs) fn start(
    nodes: Weak<NodeTable>,
    budget: Arc<Budget>,
    commit: Option<Duration>,
) -> Result<()> {
    std::thread::Builder::new()
        .name("writeout".into())
        .spawn(move || run(&nodes, &budget, commit))
        .map(|_| ())
        .map_err(|e| crate::store::io_err("starting the writeout thread", e))
}

fn run(nodes: &Weak<NodeTable>, budget: &Budget, commit: Option<Duration>) {
    loop {
        budget.wait();
        let Some(table) = nodes.upgrade() else {
            return;
        };
        let files: Vec<Arc<Node>> = rlock(&table)
            .values()
            .filter(|n| n.kind == Kind::File)
            .cloned()
            .collect();
        drop(table);
        let now = Instant::now();
        let mut dirty: Vec<(u64, Instant, Arc<Node>)> = files
            .iter()
            .filter_map(|n| {
                let d = rlock(&n.state)
                    .ext()
                    .filter(|e| {
                        e.background_failed
                            .is_none_or(|t| now.duration_since(t) >= RETRY_AFTER)
                    })
                    .and_then(|e| e.dirty());
                d.map(|(bytes, since)| (bytes, since, Arc::clone(n)))
            })
            .collect();
        if let Some(age) = commit {
            let before = now.checked_sub(age).unwrap_or(now);
            for node in &files {
                if let Err(e) = super::per_file::commit_pending(node, before) {
                    tracing::warn!(
                        "inode {}: committing its size failed (its pending size stays, the next \
                         try is in {} s; fsync reports the error): {e}",
                        node.ino,
                        age.as_secs()
                    );
                }
            }
            dirty.retain(|(_, since, node)| {
                if now.duration_since(*since) < age {
                    return true;
                }
                write_out(node, "commit interval");
                false
            });
        }
        if budget.bytes() > BUDGET_HIGH {
            dirty.sort_by_key(|d| std::cmp::Reverse(d.0));
            for (_, _, node) in &dirty {
                if budget.bytes() <= BUDGET_LOW {
                    break;
                }
                write_out(node, "memory");
            }
        }
    }
}

/// Writes the node's buffer out and commits it (written-out data is made durable at once, so a
/// fresh reader of the log sees it too).
fn write_out(node: &Node, why: &str) {
    let mut st = wlock(&node.state);
    let failed = writeout_locked(&mut st, true).err();
    if let Some(e) = &failed {
        tracing::warn!(
            "inode {}: background writeout ({why}) failed, data stays buffered (next try in \
             {} s; fsync and close report the error): {e}",
            node.ino,
            RETRY_AFTER.as_secs()
        );
    }
    if let Some(ext) = st.ext_mut() {
        ext.background_failed = failed.map(|_| Instant::now());
    }
}
