//! pjdfstest (the Rust rewrite, saidsay-so/pjdfstest, `cargo install --locked pjdfstest`) as root
//! inside an encrypted directory on a real mount (`-o allow_other,default_permissions`: the suite
//! switches to unprivileged users). Configuration: `tests/data/pjdfstest.toml` (which features are
//! enabled and why) plus a `[dummy_auth]` section chosen here from the users the machine has.
//!
//! It runs twice: in a per-file volume (the default) and in a per-extent one (`_extent`,
//! `init --contents-layout=extent`), each with its own list of expected failures.
//!
//! The result of every case is compared with `tests/data/pjdfstest-expected-failures.txt`
//! (`pjdfstest-extent-expected-failures.txt` for the per-extent volume) (name and
//! reason per line): the test fails on a failure that is not listed, on a listed case that passes or
//! no longer runs, and on a case skipped for a reason other than the known ones (no in-place
//! read-only remount, no LINK_MAX), so the configuration and the list stay true.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const INSTALL: &str = "cargo install --locked fsx pjdfstest";
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
/// Killed (and reported) before nextest's own 5-minute limit would lose the output.
const DEADLINE: Duration = Duration::from_secs(240);

/// Skip reasons that are expected (see pjdfstest.toml).
const ALLOWED_SKIPS: &[&str] = &[
    "Remounts (allow_remount) are not allowed",
    "Cannot get value for LINK_MAX",
];

fn find_tool(name: &str) -> Option<PathBuf> {
    support::find_tool(name, INSTALL)
}

/// The primary gid of `user` and the gid of `group`, if both exist.
fn user_and_group(user: &str, group: &str) -> Option<(u32, u32)> {
    let u = CString::new(user).ok()?;
    let g = CString::new(group).ok()?;
    // SAFETY: getpwnam/getgrnam take NUL-terminated names; the returned pointers are only read
    // before the next call, and this test is single-threaded here.
    unsafe {
        let pw = libc::getpwnam(u.as_ptr());
        let gr = libc::getgrnam(g.as_ptr());
        if pw.is_null() || gr.is_null() {
            return None;
        }
        Some(((*pw).pw_gid, (*gr).gr_gid))
    }
}

/// Two distinct unprivileged users, each with its primary group, for pjdfstest's `[dummy_auth]`.
fn dummy_auth() -> String {
    let pick = |cands: &[(&str, &str)]| {
        cands
            .iter()
            .find(|(u, g)| user_and_group(u, g).is_some_and(|(pg, gg)| pg == gg))
            .map(|&(u, g)| format!("[\"{u}\", \"{g}\"]"))
    };
    let first = pick(&[("nobody", "nogroup"), ("nobody", "nobody")]);
    let second = pick(&[("tests", "tests"), ("daemon", "daemon"), ("bin", "bin")]);
    let (Some(a), Some(b)) = (first, second) else {
        panic!(
            "pjdfstest needs two unprivileged users with their own primary groups (nobody, daemon)"
        );
    };
    format!("\n[dummy_auth]\nentries = [{a}, {b}]\n")
}

/// name → reason, from the expected-failures file `list` (in tests/data).
fn expected_failures(list: &str) -> BTreeMap<String, String> {
    let path = format!("{DATA}/{list}");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, reason) = line
            .split_once(" # ")
            .unwrap_or_else(|| panic!("{path}:{}: expected `name # reason`", i + 1));
        let (name, reason) = (name.trim(), reason.trim());
        assert!(
            !name.contains(char::is_whitespace) && !reason.is_empty(),
            "{path}:{}: expected `name # reason`",
            i + 1
        );
        assert!(
            out.insert(name.to_string(), reason.to_string()).is_none(),
            "{path}:{}: {name} listed twice",
            i + 1
        );
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed,
    Skipped,
}

/// Per-case outcomes and skip reasons from pjdfstest's output (`NAME<padding>ok|FAILED|skipped`,
/// then tab-indented detail lines), and the summary line.
fn parse(out: &str) -> (BTreeMap<String, Outcome>, BTreeMap<String, String>, String) {
    let mut results = BTreeMap::new();
    let mut skips: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<(String, Outcome)> = None;
    let mut summary = String::new();
    for line in out.lines() {
        if line.starts_with("Summary:") {
            summary = line.to_string();
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let Some((name, Outcome::Skipped)) = &last {
                let e = skips.entry(name.clone()).or_default();
                e.push_str(line.trim());
                e.push(' ');
            }
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(status), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        let outcome = match status {
            "ok" => Outcome::Ok,
            "FAILED" => Outcome::Failed,
            "skipped" => Outcome::Skipped,
            _ => continue,
        };
        assert!(
            results.insert(name.to_string(), outcome).is_none(),
            "pjdfstest reported {name} twice"
        );
        last = Some((name.to_string(), outcome));
    }
    (results, skips, summary)
}

#[test]
fn pjdfstest_in_an_encrypted_directory() {
    run_pjdfstest(&[], "pjdfstest-expected-failures.txt");
}

/// The same in a per-extent volume (`init --contents-layout=extent`), with that layout's own list.
#[test]
fn pjdfstest_in_an_encrypted_directory_extent() {
    run_pjdfstest(
        &["--contents-layout=extent"],
        "pjdfstest-extent-expected-failures.txt",
    );
}

/// Runs pjdfstest in `enc/` of a fresh volume made with `init_args`; `list` names the expected
/// failures file in tests/data.
fn run_pjdfstest(init_args: &[&str], list: &str) {
    let Some(pjdfstest) = find_tool("pjdfstest") else {
        return;
    };
    // The daemon inherits this process's umask; pin it so the results do not depend on the caller's
    // (see the umask entry in the expected-failures list).
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o022) };
    let Some(mut m) = mount_volume(init_args, "allow_other,default_permissions") else {
        return;
    };
    // The other users must be able to walk down to the mount (tempdirs are 0700).
    fs::set_permissions(m.tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod tmp");
    let id = add_key(&m.mnt, &KEY).expect("add key");
    let enc = m.path("enc");
    fs::create_dir(&enc).expect("mkdir enc");
    fs::set_permissions(&enc, fs::Permissions::from_mode(0o755)).expect("chmod enc");
    set_policy(&enc, &policy_v2(&id)).expect("set policy");

    // A second filesystem for the EXDEV cases: the filesystem holding the backing directory.
    let secondary = m.tmp.path().join("secondary");
    fs::create_dir(&secondary).expect("mkdir secondary");
    fs::set_permissions(&secondary, fs::Permissions::from_mode(0o755)).expect("chmod secondary");

    let base = fs::read_to_string(format!("{DATA}/pjdfstest.toml")).expect("pjdfstest.toml");
    let conf = m.tmp.path().join("pjdfstest.toml");
    fs::write(&conf, base + &dummy_auth()).expect("write config");
    let expected = expected_failures(list);
    // The "[atime]" expected failures need a backing filesystem that updates atimes.
    let noatime = rustix::fs::statvfs(m.tmp.path())
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOATIME));

    let out_path = m.tmp.path().join("pjdfstest.out");
    let out_file = fs::File::create(&out_path).expect("output file");
    let t = Instant::now();
    let mut child = Command::new(&pjdfstest)
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(&enc)
        .arg("-s")
        .arg(&secondary)
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().expect("dup"))
        .stderr(out_file)
        .spawn()
        .expect("run pjdfstest");
    let status = wait_or_kill(&mut child, t, DEADLINE, "pjdfstest");
    let out = fs::read_to_string(&out_path).unwrap_or_default();
    let secs = t.elapsed().as_secs_f64();
    let Some(status) = status else {
        let art = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pjdfstest-{}", std::process::id()));
        let _ = fs::create_dir_all(&art);
        let _ = fs::write(art.join("pjdfstest.out"), &out);
        m.stop_and_keep_log(&art);
        panic!(
            "pjdfstest did not finish within {DEADLINE:?} (output and daemon log: {}); its output \
             so far:\n{}",
            art.display(),
            tail(&out, 60)
        );
    };

    let (results, skips, summary) = parse(&out);
    eprintln!(
        "pjdfstest ({init_args:?}): {status} in {secs:.1} s; {summary}; {} expected failures listed",
        expected.len()
    );
    let mut problems = Vec::new();
    if summary.is_empty() {
        problems.push("pjdfstest printed no summary (did it crash?)".to_string());
    }
    if results.len() < 300 {
        problems.push(format!(
            "only {} cases reported (expected ~400)",
            results.len()
        ));
    }
    for (name, outcome) in &results {
        match (outcome, expected.get(name)) {
            (Outcome::Failed, None) => problems.push(format!("UNEXPECTED FAILURE: {name}")),
            (Outcome::Ok, Some(reason)) if reason.starts_with("[atime]") && noatime => {
                eprintln!("pjdfstest: {name} passes on this noatime backing mount: {reason}")
            }
            (Outcome::Ok, Some(reason)) => problems.push(format!(
                "PASSES NOW (remove it from {list}): {name} # {reason}"
            )),
            (Outcome::Skipped, _) => {
                let why = skips.get(name).map(String::as_str).unwrap_or("");
                if !ALLOWED_SKIPS.iter().any(|a| why.contains(a)) {
                    problems.push(format!("UNEXPECTED SKIP: {name}: {why}"));
                }
                if let Some(reason) = expected.get(name) {
                    problems.push(format!(
                        "LISTED AS EXPECTED FAILURE BUT SKIPPED: {name} # {reason}"
                    ));
                }
            }
            _ => {}
        }
    }
    let ran: BTreeSet<&String> = results.keys().collect();
    for (name, reason) in &expected {
        if !ran.contains(name) {
            problems.push(format!(
                "LISTED AS EXPECTED FAILURE BUT NOT RUN (renamed?): {name} # {reason}"
            ));
        }
    }
    if !problems.is_empty() {
        let art = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pjdfstest-{}", std::process::id()));
        let _ = fs::create_dir_all(&art);
        let _ = fs::write(art.join("pjdfstest.out"), &out);
        m.stop_and_keep_log(&art);
        panic!(
            "pjdfstest in an encrypted directory ({init_args:?}): {} problem(s):\n  {}\n\n\
             ---- failure details from pjdfstest ----\n{}\n(full output and daemon log: {})",
            problems.len(),
            problems.join("\n  "),
            failure_details(&out, &expected),
            art.display()
        );
    }
}

/// The detail lines of every failed case that is not an expected failure.
fn failure_details(out: &str, expected: &BTreeMap<String, String>) -> String {
    let mut keep = false;
    let mut s = String::new();
    for line in out.lines() {
        if !line.starts_with(char::is_whitespace) {
            keep = line.ends_with("FAILED")
                && line
                    .split_whitespace()
                    .next()
                    .is_some_and(|n| !expected.contains_key(n));
        }
        if keep {
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}
