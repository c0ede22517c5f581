//! The daemon as a process: termination signals unmount cleanly and flush; without `-f` it detaches
//! from the caller's stdio and logs to `-o log=`; an ordinary user mounts through setuid
//! `fusermount3`.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// Size recorded in a regular file's backing header (offset 24).
fn header_size(p: &Path) -> u64 {
    let b = fs::read(p).unwrap();
    u64::from_le_bytes(b[24..32].try_into().unwrap())
}

#[test]
fn sigterm_and_sigint_unmount_and_flush() {
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    for (round, sig) in [libc::SIGTERM, libc::SIGINT].into_iter().enumerate() {
        let name = format!("enc/f{round}");
        fs::write(m.path(&name), vec![round as u8 + 1; 10_000]).unwrap();
        m.signal(sig);
        let st = m
            .wait_exit(Duration::from_secs(10))
            .expect("daemon exits after the signal");
        assert!(st.success(), "daemon exit status {st}:\n{}", m.log_text());
        assert!(!m.is_mounted(), "still mounted after signal {sig}");
        assert!(
            m.log_text().contains(&format!("signal {sig}: unmounting")),
            "{}",
            m.log_text()
        );
        m.start_again("");
        add_key(&m.mnt, &KEY).unwrap();
        assert_eq!(
            fs::read(m.path(&name)).unwrap(),
            vec![round as u8 + 1; 10_000]
        );
    }
    // Busy: the mount is detached at once; the open file keeps working; its size reaches the
    // header when it is closed; then the daemon exits.
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(m.path("plain"))
        .unwrap();
    f.write_all(&[9u8; 5000]).unwrap();
    m.signal(libc::SIGTERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while m.is_mounted() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !m.is_mounted(),
        "busy mount not detached:\n{}",
        m.log_text()
    );
    f.write_all(&[8u8; 3000]).unwrap();
    drop(f);
    let st = m
        .wait_exit(Duration::from_secs(10))
        .expect("daemon exits once the last file is closed");
    assert!(st.success(), "{st}");
    assert_eq!(header_size(&m.backing.join("plain")), 8000);
    m.start_again("");
    let mut want = vec![9u8; 5000];
    want.extend_from_slice(&[8u8; 3000]);
    assert_eq!(fs::read(m.path("plain")).unwrap(), want);
}

#[test]
fn without_f_the_daemon_detaches_and_logs_to_the_log_option() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (backing, mnt, log) = (
        tmp.path().join("b"),
        tmp.path().join("m"),
        tmp.path().join("daemon.log"),
    );
    fs::create_dir(&mnt).unwrap();
    let out = Command::new(bin())
        .arg("init")
        .arg(&backing)
        .output()
        .unwrap();
    assert!(out.status.success());
    // stdout and stderr are pipes: read_to_end only returns once every holder closed them, so
    // this returning at all shows the daemon kept neither.
    let mut child = Command::new(bin())
        .arg("mount")
        .arg("-o")
        .arg(format!("log={}", log.display()))
        .arg(&backing)
        .arg(&mnt)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut o, mut e) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let reader = std::thread::spawn(move || {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        o.read_to_end(&mut a).unwrap();
        e.read_to_end(&mut b).unwrap();
        (a, b)
    });
    let st = child.wait().unwrap();
    assert!(st.success());
    let t0 = std::time::Instant::now();
    while !reader.is_finished() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        reader.is_finished(),
        "the daemon still holds the caller's stdout/stderr"
    );
    let (out, err) = reader.join().unwrap();
    assert!(out.is_empty() && err.is_empty(), "{out:?} {err:?}");
    assert!(is_mounted(&mnt));
    fs::write(mnt.join("x"), b"y").unwrap();
    assert_eq!(fs::read(mnt.join("x")).unwrap(), b"y");
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("mounted"), "log: {text}");
    let ok = Command::new("fusermount3")
        .arg("-u")
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success());
    let t0 = std::time::Instant::now();
    while !fs::read_to_string(&log).unwrap().contains("unmounted") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no clean exit logged"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An ordinary user (uid 65534) mounts its own volume through setuid fusermount3, uses it, and
/// unmounts it.
#[test]
fn an_ordinary_user_mounts_through_fusermount3() {
    if !users_can_mount() {
        return;
    }
    let (tmp, backing, mnt) = nobody_volume_dirs();
    let as_user = |cmd: &mut Command| -> std::process::Output {
        cmd.uid(NOBODY)
            .gid(NOBODY)
            .env("HOME", "/")
            .output()
            .unwrap()
    };
    let out = as_user(Command::new(bin()).arg("init").arg(&backing));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = tmp.path().join("user.log");
    let mut daemon = Command::new(bin())
        .arg("mount")
        .arg("-f")
        .arg(&backing)
        .arg(&mnt)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !is_mounted(&mnt) {
        if let Ok(Some(st)) = daemon.try_wait() {
            panic!(
                "daemon exited ({st}): {}",
                fs::read_to_string(&log).unwrap()
            );
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "no mount");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The user works in it (root cannot: no allow_other).
    let script = format!(
        "set -e; cd {m}; echo hello > f; mkdir d; mv f d/g; cat d/g; ls -n d",
        m = mnt.display()
    );
    let out = as_user(Command::new("sh").arg("-c").arg(&script));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(&log).unwrap()
    );
    assert!(text.starts_with("hello\n"), "{text}");
    assert!(text.contains(" 65534 65534 "), "owned by the user: {text}");
    // The backing objects belong to the user too.
    assert!(fs::read_dir(&backing)
        .unwrap()
        .all(|e| e.unwrap().metadata().unwrap().uid() == NOBODY));
    let out = as_user(Command::new("fusermount3").arg("-u").arg(&mnt));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t0 = std::time::Instant::now();
    loop {
        if let Ok(Some(st)) = daemon.try_wait() {
            assert!(st.success(), "{st}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "daemon did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The mount's read-ahead is raised from the kernel's 128 KiB to 1 MiB on a local backing
/// filesystem (through sysfs, as root),
/// or set to what `-o read_ahead_kb=` says; 0 leaves the kernel's; a value that is not a number is
/// refused with a line naming it.
#[test]
fn read_ahead_is_raised_unless_told_otherwise() {
    let Some(mut m) = mount_volume(&[], "") else {
        return;
    };
    for (opts, want) in [
        ("", "1024"),
        ("read_ahead_kb=256", "256"),
        ("read_ahead_kb=0", "128"),
    ] {
        if !opts.is_empty() {
            m.remount(opts);
        }
        assert_eq!(
            read_ahead_kb_once(&m.mnt, want),
            want,
            "-o {opts:?}:\n{}",
            m.log_text()
        );
    }
    m.stop();
    let err = m
        .try_start_again("read_ahead_kb=lots")
        .expect_err("a read-ahead that is not a number is refused");
    assert!(
        err.contains("read_ahead_kb=\"lots\": not a number of KiB"),
        "{err}"
    );
}

/// The soft and hard "Max open files" of process `pid` (/proc/PID/limits).
fn open_files_limits(pid: u32) -> (String, String) {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut f = line["Max open files".len()..].split_whitespace();
    (
        f.next().expect("soft").to_string(),
        f.next().expect("hard").to_string(),
    )
}

/// Lists `dir`, whose files `fN` hold the text of N, checking each one's size through its entry;
/// returns how many there are.
fn numbered_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("entry");
        let i: usize = e.file_name().to_string_lossy()[1..].parse().unwrap();
        assert_eq!(
            e.metadata().expect("stat").len(),
            i.to_string().len() as u64
        );
        n += 1;
    }
    n
}

/// Every regular file the kernel holds keeps two descriptors in the daemon (its node's `O_PATH`
/// one and its opened backing file), so the daemon raises its soft limit on open descriptors to the
/// hard one: started with a soft limit of 256, it still serves a listing of 400 files, each
/// looked up and kept.
#[test]
fn the_descriptor_limit_is_raised_for_a_large_tree() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    if hard.is_some_and(|h| h < 2048) {
        require_or_skip("the hard limit on open descriptors is below 2048");
        return;
    }
    // This test's own process (nextest runs each test in one): the daemon inherits the limit.
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(256),
            maximum: hard,
        },
    )
    .expect("lower the soft limit");
    for layout in ["per-file", "extent"] {
        let layout_arg = format!("--contents-layout={layout}");
        let Some(mut m) = mount_volume(&[&layout_arg], "") else {
            return;
        };
        let pid = m.daemon_pid().expect("daemon running");
        let (soft, hard_seen) = open_files_limits(pid);
        assert_eq!(soft, hard_seen, "{layout}: the soft limit was not raised");
        assert_ne!(soft, "256", "{layout}");
        let dir = m.path("many");
        fs::create_dir(&dir).unwrap();
        for i in 0..400 {
            fs::write(dir.join(format!("f{i}")), i.to_string()).unwrap();
        }
        // A new daemon knows none of them: the listing looks each one up and keeps it.
        m.remount("");
        assert_eq!(numbered_files(&dir), 400, "{layout}:\n{}", m.log_text());
        assert_eq!(
            fs::read_to_string(dir.join("f399")).expect("read"),
            "399",
            "{layout}"
        );
        m.stop();
    }
}

/// Per-file nodes keep their backing files open only within a quarter of the descriptor limit:
/// with a hard limit of 1024, a listing of 600 per-file files (600 nodes, each with its `O_PATH`
/// descriptor) still works, and each file still reads and writes through a descriptor opened
/// when needed.
#[test]
fn kept_files_stay_within_a_share_of_the_descriptor_limit() {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let Some(mut m) = mount_volume(&["--contents-layout=per-file"], "") else {
        return;
    };
    let dir = m.path("many");
    fs::create_dir(&dir).unwrap();
    for i in 0..600 {
        fs::write(dir.join(format!("f{i}")), i.to_string()).unwrap();
    }
    m.stop();
    // This test's own process (nextest runs each test in one): the daemon inherits the limits.
    let low = Rlimit {
        current: Some(1024),
        maximum: Some(1024),
    };
    setrlimit(Resource::Nofile, low).expect("lower the descriptor limit");
    m.start_again("");
    assert_eq!(numbered_files(&dir), 600, "{}", m.log_text());
    for i in [0, 299, 599] {
        let p = dir.join(format!("f{i}"));
        assert_eq!(fs::read_to_string(&p).expect("read"), i.to_string());
        fs::write(&p, format!("again {i}")).expect("write");
        assert_eq!(fs::read_to_string(&p).expect("read"), format!("again {i}"));
    }
    m.stop();
}

/// A lookup reads a file's header (and a per-extent file's log) through a descriptor opened
/// without touching the access time: a `stat` that looks a file up leaves its atime as it was
/// (here set far in the past), while a user's read updates it as the backing filesystem's atime
/// rule says (relatime: an atime that old is updated) — through a descriptor of its own (per-file),
/// or through the log, which touches the atime from the first open on (per-extent). Encrypted
/// files, whose per-extent contents are read through the log; a plaintext file too.
#[test]
fn a_lookup_leaves_the_atime_and_a_read_updates_it() {
    const OLD: i64 = 946_684_800; // 2000-01-01
    for layout in ["per-file", "extent"] {
        let layout_arg = format!("--contents-layout={layout}");
        let Some((mut m, _id)) = encrypted_volume_made_with(&[&layout_arg]) else {
            return;
        };
        let old = std::time::UNIX_EPOCH + Duration::from_secs(OLD as u64);
        let mut backing = Vec::new();
        for (rel, dir) in [("enc/f", "enc"), ("f", "")] {
            fs::write(m.path(rel), b"contents").unwrap();
            // Found first: finding it reads the backing file.
            let ino = fs::metadata(m.path(rel)).unwrap().ino();
            backing.push((rel, backing_file_of(&m.backing.join(dir), ino).0));
            let f = fs::File::options().write(true).open(m.path(rel)).unwrap();
            f.set_times(fs::FileTimes::new().set_accessed(old)).unwrap();
        }
        m.stop();
        let backing_atime = |p: &Path| fs::metadata(p).unwrap().atime();
        m.start_again("");
        add_key(&m.mnt, &KEY).expect("add key");
        let noatime = rustix::fs::statvfs(&m.backing)
            .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::NOATIME));
        for (rel, b) in &backing {
            assert_eq!(backing_atime(b), OLD, "{layout} {rel}");
            // The lookup (a new daemon: it reads the header) and the attributes it answers.
            assert_eq!(
                fs::metadata(m.path(rel)).unwrap().atime(),
                OLD,
                "{layout} {rel}"
            );
            assert_eq!(
                backing_atime(b),
                OLD,
                "{layout} {rel}: the lookup changed the atime"
            );
            assert_eq!(
                fs::read(m.path(rel)).unwrap(),
                b"contents",
                "{layout} {rel}"
            );
            if !noatime {
                assert!(
                    backing_atime(b) > OLD,
                    "{layout} {rel}: a read left the atime of 2000 (relatime updates it)"
                );
            }
        }
        m.stop();
    }
}

/// Whether this kernel offers FUSE over io_uring to daemons that ask: `CONFIG_FUSE_IO_URING` (the
/// `fuse` module has an `enable_uring` parameter) and the parameter set. None: no such parameter.
fn kernel_offers_io_uring() -> Option<bool> {
    let p = fs::read_to_string("/sys/module/fuse/parameters/enable_uring").ok()?;
    Some(p.trim() == "Y" || p.trim() == "1")
}

/// The names of the daemon's threads.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let comm = t.unwrap().path().join("comm");
        if let Ok(n) = fs::read_to_string(comm) {
            names.push(n.trim().to_string());
        }
    }
    names
}

/// Requests come over FUSE io_uring exactly when the kernel offers it and the mount does not say
/// `no_io_uring`: the daemon then has ring threads (`fuser-ring-Q-T`, per CPU queue) and serves
/// the requests of a small workload on them (its debug log names the thread of every request),
/// and the data is the same either way. CI runs the suite with the `fuse` module's `enable_uring`
/// off and again with it on (`scripts/test-io-uring`), so this checks both halves.
#[test]
fn requests_come_over_io_uring_exactly_when_the_kernel_offers_it() {
    let Some((mut m, _id)) = encrypted_volume() else {
        return;
    };
    let offered = kernel_offers_io_uring();
    eprintln!("fuse enable_uring: {offered:?}");
    let workload = |m: &Mounted, tag: &str| {
        for i in 0..20u64 {
            fs::write(m.path(&format!("enc/{tag}{i}")), pattern(i, 70_000)).unwrap();
        }
        fs::rename(
            m.path(&format!("enc/{tag}0")),
            m.path(&format!("enc/{tag}-renamed")),
        )
        .unwrap();
        fs::remove_file(m.path(&format!("enc/{tag}1"))).unwrap();
        assert!(m.path(&format!("enc/{tag}-renamed")).exists());
        assert!(!m.path(&format!("enc/{tag}1")).exists());
        assert_eq!(
            fs::read(m.path(&format!("enc/{tag}2"))).unwrap(),
            pattern(2, 70_000)
        );
    };
    let ring_requests = |m: &Mounted| m.log_text().matches("thread=fuser-ring-").count();

    workload(&m, "a");
    let rings = thread_names(m.daemon_pid().unwrap())
        .iter()
        .filter(|n| n.starts_with("fuser-ring-"))
        .count();
    if offered == Some(true) {
        assert!(
            rings >= 2,
            "no ring threads: {:?}",
            thread_names(m.daemon_pid().unwrap())
        );
        assert!(
            ring_requests(&m) >= 40,
            "requests did not come over the rings:\n{}",
            tail(&m.log_text(), 40)
        );
    } else {
        assert_eq!(rings, 0, "ring threads without the kernel's offer");
        assert_eq!(ring_requests(&m), 0);
    }

    // Opted out: /dev/fuse only, and everything written over the rings reads back the same.
    m.remount("no_io_uring");
    let before = ring_requests(&m);
    add_key(&m.path(""), &KEY).unwrap();
    workload(&m, "b");
    for i in 2..20 {
        assert_eq!(
            fs::read(m.path(&format!("enc/a{i}"))).unwrap(),
            pattern(i, 70_000)
        );
    }
    assert!(
        !thread_names(m.daemon_pid().unwrap())
            .iter()
            .any(|n| n.starts_with("fuser-ring-")),
        "ring threads despite no_io_uring"
    );
    assert_eq!(
        ring_requests(&m),
        before,
        "requests over the rings despite no_io_uring"
    );
}

/// Requests over `/dev/fuse` are read by one thread per CPU (at least two, at most eight) on a
/// local backing store: threads beyond the CPUs only rotate requests over sleeping threads
/// (`fs::daemon::request_threads`); at least four where every backing call is a round trip (the
/// suite's temporary directory on NFS, say). Counted by name (`fuser-N`), whatever the transport.
#[test]
fn requests_are_read_by_one_thread_per_cpu_on_a_local_store() {
    let Some(m) = mount_volume(&[], "") else {
        return;
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let want = if fscryptfs::store::features::on_round_trip_filesystem(&m.backing) {
        cpus.clamp(2, 8).max(4)
    } else {
        cpus.clamp(2, 8)
    };
    let readers = thread_names(m.daemon_pid().unwrap())
        .iter()
        .filter(|n| {
            n.strip_prefix("fuser-")
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    assert_eq!(
        readers,
        want,
        "request threads on {cpus} CPUs: {:?}",
        thread_names(m.daemon_pid().unwrap())
    );
}
