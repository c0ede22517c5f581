//! fsck's full consistency check of an opened per-extent file: every stored run's ciphertext
//! against its checksum (the committed ones too, which recovery trusts) and, for records with a
//! block-sum table, the table against its hash and every block against its entry, the map's invariants, and
//! what lies beyond the log (reported as notes: a torn tail, records not yet committed); and
//! `fsck --repair`'s one change to such a file, cutting a torn tail.

use std::collections::HashSet;

use fscrypt::Result;

use super::blocksums;
use super::ciphertext::{read_table, sum_range_blocks};
use super::{ExtentFile, Finding, Run};
use crate::store::io_err;

/// A finding; `note` for what a crash legitimately leaves.
fn finding(offset: Option<u64>, note: bool, message: impl Into<String>) -> Finding {
    Finding {
        offset,
        note,
        message: message.into(),
    }
}

impl ExtentFile {
    /// The full check for `fsck`: every stored run's ciphertext against its checksum (committed ones
    /// included, which `open` trusts), the map's invariants, and what lies beyond the log (notes:
    /// a torn tail, records not yet committed). Headers and contexts were checked by `open`.
    /// Err only when the check cannot run (I/O).
    pub fn check(&self) -> Result<Vec<Finding>> {
        let mut out = Vec::new();
        if let Err(m) = self.map.check(self.du) {
            out.push(finding(None, false, m));
        }
        let mut seen = HashSet::new();
        for run in &self.runs {
            if !seen.insert((run.data_off, run.nunits)) {
                continue;
            }
            let len = run.nunits * self.du;
            if run.data_off + len > self.end {
                out.push(finding(
                    Some(run.record_off),
                    false,
                    "extent data beyond the end of the log",
                ));
                continue;
            }
            let (sum, sums) =
                sum_range_blocks(run.sum_alg, self.file()?, run.data_off, len, &self.what)?;
            if blocksums::has_table(&run.table) {
                self.check_table(run, &sums, &mut out)?;
            }
            if sum != run.sum {
                out.push(finding(
                    Some(run.data_off),
                    false,
                    format!(
                        "extent ciphertext checksum mismatch (record at {})",
                        run.record_off
                    ),
                ));
            }
        }
        let file_len = self
            .file()?
            .metadata()
            .map_err(|e| io_err(&self.what, e))?
            .len();
        if file_len > self.end {
            out.push(finding(
                Some(self.end),
                true,
                format!(
                    "{} bytes beyond the end of the log (an incomplete write; cut at the next change)",
                    file_len - self.end
                ),
            ));
        }
        if self.durable_end < self.end {
            out.push(finding(
                Some(self.durable_end),
                true,
                "records after the last commit (written but not yet fsynced)",
            ));
        }
        Ok(out)
    }

    /// Checks the block-sum table of `run`'s record against its hash in the header and against
    /// `sums`, the block sums of the run's ciphertext as stored: a finding for a damaged table, and
    /// one per block that does not match its entry.
    fn check_table(&self, run: &Run, sums: &[u8], out: &mut Vec<Finding>) -> Result<()> {
        let n = (sums.len() / 8) as u64;
        let table = read_table(self.file()?, run.record_off, n, &self.what)?;
        if blocksums::table_hash(&table) != run.table {
            out.push(finding(
                Some(run.record_off + blocksums::TABLE_OFF),
                false,
                format!(
                    "extent block-sum table checksum mismatch (record at {})",
                    run.record_off
                ),
            ));
            return Ok(());
        }
        for (i, (want, got)) in table.chunks(8).zip(sums.chunks(8)).enumerate() {
            if want != got {
                out.push(finding(
                    Some(run.data_off + i as u64 * blocksums::BLOCK),
                    false,
                    format!(
                        "extent ciphertext block checksum mismatch (block {i}, record at {})",
                        run.record_off
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `fsck --repair`: cuts the bytes beyond the end of the log that recovery kept (a torn or
    /// failed append: never a committed record, which `open` would have refused), durably, as the
    /// engine itself does before its next append. Returns how many bytes were cut (0: nothing was
    /// beyond the log). The file must have been opened for writing.
    pub fn cut_torn_tail(&mut self) -> Result<u64> {
        let file_len = self
            .file()?
            .metadata()
            .map_err(|e| io_err(&self.what, e))?
            .len();
        if file_len <= self.end {
            return Ok(0);
        }
        debug_assert!(self.end >= self.durable_end);
        let f = self.file()?;
        f.set_len(self.end)
            .and_then(|()| f.sync_data())
            .map_err(|e| io_err(format!("{}: cutting a torn tail", self.what), e))?;
        self.trim_pending = false;
        Ok(file_len - self.end)
    }

    /// The end of the log as of its last commit (the header alone: no commit yet).
    pub fn committed_end(&self) -> u64 {
        self.durable_end
    }
}
