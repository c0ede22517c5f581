//! fsck's full consistency check of an opened per-extent file: every stored run's ciphertext
//! against its checksum (the committed ones too, which recovery trusts), the map's invariants, and
//! what lies beyond the log (reported as notes: a torn tail, records not yet committed).

use std::collections::HashSet;

use fscrypt::Result;

use super::ciphertext::sum_range;
use super::{ExtentFile, Finding};
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
            if sum_range(&self.file, run.data_off, len, &self.what)? != run.sum {
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
            .file
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
}
