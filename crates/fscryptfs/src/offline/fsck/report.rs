//! What `fscryptfs fsck` found: each [`Finding`] (a problem or a note, named by backing path) and
//! the [`Report`] with the counts of what was checked.

use std::path::PathBuf;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A violated invariant (exit 1).
    Problem,
    /// A crash leftover the daemon handles (exit 0).
    Note,
}

/// One finding, named by backing path.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Problem or note.
    pub severity: Severity,
    /// The backing path at fault.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let note = if self.severity == Severity::Note {
            "note: "
        } else {
            ""
        };
        write!(f, "{}: {note}{}", self.path.display(), self.message)
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Problems and notes, in walk order.
    pub findings: Vec<Finding>,
    /// Directories checked.
    pub dirs: u64,
    /// Regular files checked.
    pub files: u64,
    /// Symlinks checked.
    pub symlinks: u64,
    /// FIFOs, sockets and devices seen.
    pub special: u64,
}

impl Report {
    /// The number of problems.
    pub fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Problem)
            .count()
    }

    /// The number of notes.
    pub fn notes(&self) -> usize {
        self.findings.len() - self.problems()
    }
}
