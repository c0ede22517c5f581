//! Test support for the kernel-oracle tests: a throw-away ext4 image on a loop device, the real fscrypt
//! ioctls, offline inspection of the image with `debugfs`, and a small seeded random generator.
//!
//! Every test that touches the kernel starts with [`prerequisites`]: without root, loop devices or
//! e2fsprogs the test is skipped with a loud message, unless `FSCRYPTFS_REQUIRE_PRIVILEGED=1` (set in
//! CI), in which case a missing prerequisite fails the test.

#![allow(dead_code)]

pub mod ext4;
pub mod ioctl;
pub mod rng;

use std::path::{Path, PathBuf};

/// The environment variable that turns a missing prerequisite into a test failure.
pub const REQUIRE_PRIVILEGED_ENV: &str = "FSCRYPTFS_REQUIRE_PRIVILEGED";

/// The external programs the harness runs.
pub const TOOLS: &[&str] = &["timeout", "mkfs.ext4", "debugfs", "mount", "umount"];

/// Returns true if the kernel-oracle test `test` can run here (root, loop devices, e2fsprogs).
///
/// If something is missing: with `FSCRYPTFS_REQUIRE_PRIVILEGED=1` this panics (the test fails) with
/// the list of what is missing; otherwise it prints a loud SKIPPED line and returns false, and the
/// caller returns at once.
pub fn prerequisites(test: &str) -> bool {
    let missing = missing_prerequisites();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join("; ");
    if std::env::var(REQUIRE_PRIVILEGED_ENV).as_deref() == Ok("1") {
        panic!(
            "{test}: {REQUIRE_PRIVILEGED_ENV}=1 but the kernel-oracle prerequisites are missing: \
             {what}"
        );
    }
    eprintln!(
        "SKIPPED (needs root and loop devices; set {REQUIRE_PRIVILEGED_ENV}=1 to make this fatal): \
         {test}: {what}"
    );
    false
}

/// What is missing for the kernel-oracle tests, one entry per problem (empty: all present).
pub fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        missing.push(format!("not running as root (euid {euid})"));
    }
    if euid == 0 && !has_cap_sys_admin() {
        missing.push("no CAP_SYS_ADMIN in the effective set (cannot mount)".to_string());
    }
    if !Path::new("/dev/loop-control").exists() {
        missing.push("no /dev/loop-control (loop devices unavailable)".to_string());
    }
    for tool in TOOLS {
        if find_tool(tool).is_none() {
            missing.push(format!("`{tool}` not found in PATH, /usr/sbin or /sbin"));
        }
    }
    missing
}

/// True if CAP_SYS_ADMIN (bit 21) is in this process's effective capability set.
fn has_cap_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// The full path of an external program: searched in PATH, then in the sbin directories that a
/// non-login PATH often lacks.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
