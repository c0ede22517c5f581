//! What `fscryptfs fsck` found: each [`Finding`] (a problem, a note, or with `--repair` what was
//! repaired, named by backing path) and the [`Report`] with the counts of what was checked.

use std::path::PathBuf;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// A violated invariant (exit 1).
    Problem,
    /// A crash leftover the daemon handles (exit 0).
    Note,
    /// With `--repair`: a problem or note that was repaired; the message says what was done
    /// (exit 4 when nothing else is left but notes).
    Repaired,
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
        match self.severity {
            Severity::Problem => write!(f, "{}: {}", self.path.display(), self.message),
            Severity::Note => write!(f, "{}: note: {}", self.path.display(), self.message),
            Severity::Repaired => write!(f, "repaired: {}: {}", self.path.display(), self.message),
        }
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Problems, notes and repairs, in walk order.
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
    fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// The number of problems (with `--repair`: those left unrepaired).
    pub fn problems(&self) -> usize {
        self.count(Severity::Problem)
    }

    /// The number of notes (with `--repair`: those left as they are).
    pub fn notes(&self) -> usize {
        self.count(Severity::Note)
    }

    /// The number of repairs made (`--repair`).
    pub fn repaired(&self) -> usize {
        self.count(Severity::Repaired)
    }
}
