//! fsck's progress on a terminal: a spinner on stderr with the counts so far (directories, files,
//! symlinks, special files, problems), shown only when stderr is a terminal and only once the check
//! has run for a second (a timer thread shows it, so one long object — a large per-extent file
//! being checksummed — shows it too), so a quick check and every non-terminal run (pipes, files,
//! tests) print nothing extra. Cleared before the findings are printed on stdout.

use std::io::IsTerminal;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::Report;

/// How long the check runs before the spinner appears, unless `FSCRYPTFS_PROGRESS_AFTER_MS` says
/// otherwise (tests make it 0 or very long, so what they check does not hang on timing).
const SHOW_AFTER: Duration = Duration::from_secs(1);

fn show_after() -> Duration {
    std::env::var("FSCRYPTFS_PROGRESS_AFTER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(SHOW_AFTER)
}

/// How often the counts are brought up to date.
const UPDATE: Duration = Duration::from_millis(100);

/// The spinner of one check, while it runs.
struct Shown {
    bar: ProgressBar,
    /// Dropped to tell the timer thread the check is over.
    done: mpsc::Sender<()>,
    /// The thread that shows the bar after [`SHOW_AFTER`].
    timer: JoinHandle<()>,
}

/// The progress display of one check (inert when not on a terminal).
pub(super) struct Progress {
    /// None: never shown (not a terminal, not wanted, or finished).
    shown: Option<Shown>,
    /// When the counts were last updated.
    updated: Instant,
}

impl Progress {
    /// A display that never shows anything.
    pub(super) fn none() -> Self {
        Progress {
            shown: None,
            updated: Instant::now(),
        }
    }

    /// A spinner on stderr if stderr is a terminal (hidden for the first second); inert otherwise.
    pub(super) fn on_stderr() -> Self {
        let mut p = Self::none();
        if !std::io::stderr().is_terminal() {
            return p;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template("{spinner} fsck {elapsed}: {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message("starting");
        let (done, rx) = mpsc::channel::<()>();
        let b = bar.clone();
        let after = show_after();
        let timer = std::thread::spawn(move || {
            if rx.recv_timeout(after) == Err(mpsc::RecvTimeoutError::Timeout) {
                b.set_draw_target(ProgressDrawTarget::stderr());
                b.enable_steady_tick(Duration::from_millis(120));
            }
        });
        p.shown = Some(Shown { bar, done, timer });
        p
    }

    /// After one more object: brings the counts up to date (every [`UPDATE`] at most).
    pub(super) fn tick(&mut self, report: &Report) {
        let Some(s) = &self.shown else {
            return;
        };
        if self.updated.elapsed() < UPDATE {
            return;
        }
        self.updated = Instant::now();
        s.bar.set_message(format!(
            "{} directories, {} files, {} symlinks, {} special files; {} problems",
            report.dirs,
            report.files,
            report.symlinks,
            report.special,
            report.problems()
        ));
    }

    /// Clears the spinner (before the findings are printed); the timer thread is over after it.
    pub(super) fn finish(&mut self) {
        if let Some(Shown { bar, done, timer }) = self.shown.take() {
            drop(done);
            let _ = timer.join();
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
