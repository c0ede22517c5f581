//! fsck's progress on a terminal: a spinner on stderr with the counts so far (directories, files,
//! symlinks, special files, problems), shown only when stderr is a terminal and only once the check
//! has run for a second, so a quick check and every non-terminal run (pipes, files, tests) print
//! nothing extra. Cleared before the findings are printed on stdout.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::Report;

/// How long the check runs before the spinner appears.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// How often the counts on show are brought up to date.
const UPDATE: Duration = Duration::from_millis(100);

/// The progress display of one check (inert when not on a terminal).
pub(super) struct Progress {
    /// None: never shown (not a terminal, or not wanted).
    bar: Option<ProgressBar>,
    start: Instant,
    /// When the counts were last updated; None while hidden.
    updated: Option<Instant>,
}

impl Progress {
    /// A display that never shows anything.
    pub(super) fn none() -> Self {
        Progress {
            bar: None,
            start: Instant::now(),
            updated: None,
        }
    }

    /// A spinner on stderr if stderr is a terminal (hidden for the first second); inert otherwise.
    pub(super) fn on_stderr() -> Self {
        let mut p = Self::none();
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template("{spinner} fsck {elapsed}: {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            p.bar = Some(bar);
        }
        p
    }

    /// After one more object: shows the spinner once the check has run for [`SHOW_AFTER`], and
    /// then keeps its counts current (every [`UPDATE`] at most).
    pub(super) fn tick(&mut self, report: &Report) {
        let Some(bar) = &self.bar else {
            return;
        };
        match self.updated {
            None if self.start.elapsed() < SHOW_AFTER => return,
            None => {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.enable_steady_tick(Duration::from_millis(120));
            }
            Some(t) if t.elapsed() < UPDATE => return,
            Some(_) => {}
        }
        self.updated = Some(Instant::now());
        bar.set_message(format!(
            "{} directories, {} files, {} symlinks, {} special files; {} problems",
            report.dirs,
            report.files,
            report.symlinks,
            report.special,
            report.problems()
        ));
    }

    /// Clears the spinner (before the findings are printed).
    pub(super) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
