//! FUSE over io_uring (Linux 6.14+, with the `fuse` module's `enable_uring` parameter set).
//!
//! After INIT has granted `FUSE_OVER_IO_URING`, every CPU gets its own request queue in the kernel
//! (`qid` = CPU number), and a request is served by an entry of the queue of the CPU that made it.
//! Each entry is two buffers registered with an `IORING_OP_URING_CMD` (`FUSE_IO_URING_CMD_REGISTER`):
//! a header (`fuse_uring_req_header`: the `fuse_in_header`, the opcode's fixed argument, the entry's
//! commit id and payload size) and a payload (names, write data; the reply's body on the way
//! back). The command completes when a request is put in the entry; the reply goes back into the
//! same buffers and one `FUSE_IO_URING_CMD_COMMIT_AND_FETCH` both ends that request and waits for
//! the next one: one system call per request instead of a `read` and a `writev`, answered on the
//! requesting CPU. The kernel switches to the rings only once every queue has an entry; until then,
//! and for FORGET, INTERRUPT and notifications always, the `/dev/fuse` threads carry on as before.
//!
//! Each ring thread owns one io_uring instance and one entry, and is pinned to its queue's CPU;
//! [`threads_per_queue`] of them serve each queue, so one slow request does not hold up every
//! other request of its CPU.

use std::alloc::{self, Layout};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use log::{error, warn};

use crate::Filesystem;
use crate::channel::ChannelSender;
use crate::ll::fuse_abi as abi;
use crate::ll::fuse_abi::fuse_opcode as op;
use crate::request::RequestWithSender;
use crate::session::SessionEventLoop;

/// Ring entries (threads) per queue: four on one or two CPUs, two from four CPUs on, so that a
/// queue has entries left while some wait on slow requests, and small machines have as many
/// request threads per CPU as the `/dev/fuse` loop's four.
fn threads_per_queue(queues: usize) -> usize {
    (8 / queues.max(1)).clamp(2, 4)
}

const IN_OUT_SZ: usize = 128;
const OP_IN_SZ: usize = 128;
const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;
/// Room before the payload for the `fuse_in_header` and the opcode's argument, so that a request
/// is one contiguous slice, as from `/dev/fuse`, without moving its payload.
const PREFIX: usize = 256;
const IN_HEADER: usize = size_of::<abi::fuse_in_header>();
const OUT_HEADER: usize = size_of::<abi::fuse_out_header>();

/// `struct fuse_uring_ent_in_out`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct EntInOut {
    flags: u64,
    commit_id: u64,
    payload_sz: u32,
    padding: u32,
    reserved: u64,
}

/// `struct fuse_uring_req_header`.
#[repr(C)]
struct ReqHeader {
    in_out: [u8; IN_OUT_SZ],
    op_in: [u8; OP_IN_SZ],
    ent: EntInOut,
}

/// `struct fuse_uring_cmd_req`, in the 80-byte command area of the SQE.
fn cmd_req(commit_id: u64, qid: u16) -> [u8; 80] {
    let mut cmd = [0u8; 80];
    cmd[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    cmd[16..18].copy_from_slice(&qid.to_ne_bytes());
    cmd
}

/// Size of the fixed argument the kernel puts in `op_in` (its `in_args[0]`) for `opcode`: what
/// the `/dev/fuse` parser reads first. Zero for opcodes whose first argument is a name (the
/// kernel sends a zero-size header for them) and for opcodes without arguments.
fn op_in_size(opcode: u32) -> usize {
    let Ok(opcode) = op::try_from(opcode) else {
        return 0;
    };
    match opcode {
        op::FUSE_GETATTR => size_of::<abi::fuse_getattr_in>(),
        op::FUSE_SETATTR => size_of::<abi::fuse_setattr_in>(),
        op::FUSE_MKNOD => size_of::<abi::fuse_mknod_in>(),
        op::FUSE_MKDIR => size_of::<abi::fuse_mkdir_in>(),
        op::FUSE_RENAME => size_of::<abi::fuse_rename_in>(),
        op::FUSE_RENAME2 => size_of::<abi::fuse_rename2_in>(),
        op::FUSE_LINK => size_of::<abi::fuse_link_in>(),
        op::FUSE_OPEN | op::FUSE_OPENDIR => size_of::<abi::fuse_open_in>(),
        op::FUSE_CREATE => size_of::<abi::fuse_create_in>(),
        op::FUSE_READ | op::FUSE_READDIR | op::FUSE_READDIRPLUS => {
            size_of::<abi::fuse_read_in>()
        }
        op::FUSE_WRITE => size_of::<abi::fuse_write_in>(),
        op::FUSE_RELEASE | op::FUSE_RELEASEDIR => size_of::<abi::fuse_release_in>(),
        op::FUSE_FSYNC | op::FUSE_FSYNCDIR => size_of::<abi::fuse_fsync_in>(),
        op::FUSE_SETXATTR => size_of::<abi::fuse_setxattr_in>(),
        op::FUSE_GETXATTR | op::FUSE_LISTXATTR => size_of::<abi::fuse_getxattr_in>(),
        op::FUSE_FLUSH => size_of::<abi::fuse_flush_in>(),
        op::FUSE_GETLK | op::FUSE_SETLK | op::FUSE_SETLKW => size_of::<abi::fuse_lk_in>(),
        op::FUSE_ACCESS => size_of::<abi::fuse_access_in>(),
        op::FUSE_BMAP => size_of::<abi::fuse_bmap_in>(),
        op::FUSE_IOCTL => size_of::<abi::fuse_ioctl_in>(),
        op::FUSE_POLL => size_of::<abi::fuse_poll_in>(),
        op::FUSE_FALLOCATE => size_of::<abi::fuse_fallocate_in>(),
        op::FUSE_LSEEK => size_of::<abi::fuse_lseek_in>(),
        op::FUSE_COPY_FILE_RANGE => size_of::<abi::fuse_copy_file_range_in>(),
        op::FUSE_INTERRUPT => size_of::<abi::fuse_interrupt_in>(),
        op::FUSE_FORGET => size_of::<abi::fuse_forget_in>(),
        op::FUSE_BATCH_FORGET => size_of::<abi::fuse_batch_forget_in>(),
        op::FUSE_INIT => size_of::<abi::fuse_init_in>(),
        _ => 0,
    }
}

/// The CPUs the kernel makes queues for (`nr_cpu_ids`: every possible CPU).
fn possible_cpus() -> usize {
    let parsed = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| {
            s.trim()
                .split(',')
                .filter_map(|r| r.rsplit('-').next()?.parse::<usize>().ok())
                .max()
        });
    match parsed {
        Some(last) => last + 1,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// One page-aligned heap buffer, zeroed.
struct Buffer {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Buffer {
    fn new(len: usize) -> io::Result<Self> {
        let layout = Layout::from_size_align(len.max(1), 4096).map_err(io::Error::other)?;
        // SAFETY: the layout has a nonzero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(Buffer { ptr, layout })
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// What the reply to the entry's current request left: its `fuse_out_header`, and its body,
/// already in the payload buffer (`direct`) or held back in `staged` while the request's own
/// payload may still be borrowed by the filesystem.
struct SlotState {
    replied: bool,
    out_header: [u8; OUT_HEADER],
    body_len: usize,
    direct: bool,
    staged: Vec<u8>,
}

struct Slot {
    state: Mutex<SlotState>,
    replied: Condvar,
    /// The entry's payload buffer (written only between a request's arrival and its commit).
    payload: NonNull<u8>,
    payload_cap: usize,
}

// SAFETY: `payload` is written only under `state`'s lock, between a request's arrival and its
// commit, while the ring thread does not touch the buffer; the buffer outlives every sender (the
// ring thread waits for the reply before it commits and drops the buffer after the last one).
unsafe impl Send for Slot {}
// SAFETY: as above; shared access goes through the mutex.
unsafe impl Sync for Slot {}

/// Sends the reply of a request that came over io_uring into its ring entry.
#[derive(Clone)]
pub(crate) struct RingSender {
    slot: Arc<Slot>,
    ch: ChannelSender,
}

impl std::fmt::Debug for RingSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RingSender")
    }
}

impl RingSender {
    /// The FUSE device, for what has no ring form (backing ids).
    pub(crate) fn channel(&self) -> &ChannelSender {
        &self.ch
    }

    pub(crate) fn send(&self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        let mut st = self.slot.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.replied {
            return Err(io::Error::other("second reply to one request"));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let body_len = total.saturating_sub(OUT_HEADER);
        let mut header = [0u8; OUT_HEADER];
        let mut at = 0usize;
        let mut too_big = body_len > self.slot.payload_cap;
        for b in bufs {
            let mut rest = &b[..];
            if at < OUT_HEADER {
                let n = rest.len().min(OUT_HEADER - at);
                header[at..at + n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
                at += n;
            }
            if rest.is_empty() || too_big {
                continue;
            }
            let off = at - OUT_HEADER;
            if st.direct {
                // SAFETY: off + rest.len() <= body_len <= payload_cap; the buffer is the entry's,
                // and no one borrows it while `direct` (the request had no payload).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        rest.as_ptr(),
                        self.slot.payload.as_ptr().add(off),
                        rest.len(),
                    )
                };
            } else {
                st.staged.extend_from_slice(rest);
            }
            at += rest.len();
        }
        if at < OUT_HEADER {
            too_big = true;
        }
        st.body_len = body_len;
        if too_big {
            error!("io_uring reply of {body_len} bytes does not fit the entry");
            header[4..8].copy_from_slice(&(-libc::EIO).to_ne_bytes());
            st.body_len = 0;
            st.staged.clear();
        }
        st.out_header = header;
        st.replied = true;
        self.slot.replied.notify_all();
        Ok(())
    }
}

/// Ring threads of one session; [`RingThreads::join`] waits for them after the `/dev/fuse`
/// threads ended.
pub(crate) struct RingThreads {
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl RingThreads {
    /// Starts [`threads_per_queue`] ring threads for every queue; `event_loop` makes each one's
    /// dispatcher (its name given).
    pub(crate) fn start<FS: Filesystem>(
        event_loop: impl Fn(String) -> SessionEventLoop<FS>,
        payload: usize,
    ) -> io::Result<RingThreads> {
        let mut rings = RingThreads {
            threads: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let queues = possible_cpus();
        for qid in 0..queues {
            for t in 0..threads_per_queue(queues) {
                if let Err(e) = rings.spawn(&event_loop, qid, t, payload) {
                    // The threads started so far hold the filesystem: they must end with us.
                    rings.join();
                    return Err(e);
                }
            }
        }
        Ok(rings)
    }

    fn spawn<FS: Filesystem>(
        &mut self,
        event_loop: &impl Fn(String) -> SessionEventLoop<FS>,
        qid: usize,
        t: usize,
        payload: usize,
    ) -> io::Result<()> {
        let qid16 = u16::try_from(qid).map_err(io::Error::other)?;
        let name = format!("fuser-ring-{qid}-{t}");
        let se = event_loop(name.clone());
        let helper = Helper::start(event_loop(format!("fuser-ring-{qid}-{t}h")), qid)?;
        let stop = self.stop.clone();
        self.threads
            .push(thread::Builder::new().name(name).spawn(move || {
                if let Err(e) = serve(&se, &helper, qid16, payload, &stop) {
                    warn!("FUSE io_uring queue {qid}: {e}");
                }
            })?);
        Ok(())
    }

    /// Tells the threads the session ended and waits for them.
    pub(crate) fn join(self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Pins the calling thread to `cpu` (`away`: to every allowed CPU but `cpu`), best effort: nothing
/// changes when that leaves no CPU the thread may use.
fn pin_to(cpu: usize, away: bool) {
    // SAFETY: zeroed cpu_set_t values are valid empty sets; sched_getaffinity fills `allowed` (at
    // most its size); CPU_ISSET, CPU_SET and CPU_CLR stay inside the sets (cpu is checked against
    // the size).
    unsafe {
        let size = size_of::<libc::cpu_set_t>();
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0
            || cpu >= 8 * size
            || !libc::CPU_ISSET(cpu, &allowed)
        {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if away {
            set = allowed;
            libc::CPU_CLR(cpu, &mut set);
            if libc::CPU_COUNT(&set) == 0 {
                return;
            }
        } else {
            libc::CPU_SET(cpu, &mut set);
        }
        let _ = libc::sched_setaffinity(0, size, &set);
    }
}

enum HelperState {
    Idle,
    /// A request's bytes (address and length: they stay put until `Done`) and its reply's way.
    Job(usize, usize, RingSender),
    Done,
    Exit,
}

/// A ring thread's helper, not pinned: it serves the ring thread's requests that move much data
/// (large READs and WRITEs) on whatever CPU is free. All the read-ahead of one sequential reader
/// comes from the reader's CPU, so to its queue: served on the pinned ring threads alone, its
/// decryption would use one CPU.
struct Helper {
    state: Arc<(Mutex<HelperState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Helper {
    fn start<FS: Filesystem>(se: SessionEventLoop<FS>, qid: usize) -> io::Result<Helper> {
        let state = Arc::new((Mutex::new(HelperState::Idle), Condvar::new()));
        let theirs = state.clone();
        let name = se.thread_name.clone();
        let thread = thread::Builder::new().name(name).spawn(move || {
            pin_to(qid, true);
            let (m, cv) = &*theirs;
            loop {
                let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
                while matches!(*st, HelperState::Idle | HelperState::Done) {
                    st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                let (ptr, len, sender) = match std::mem::replace(&mut *st, HelperState::Idle) {
                    HelperState::Job(ptr, len, sender) => (ptr, len, sender),
                    _ => return,
                };
                drop(st);
                // SAFETY: the ring thread handed over these bytes and waits for `Done` before
                // it touches them again.
                let data = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) };
                dispatch(&se, sender, data);
                *m.lock().unwrap_or_else(|e| e.into_inner()) = HelperState::Done;
                cv.notify_all();
            }
        })?;
        Ok(Helper {
            state,
            thread: Some(thread),
        })
    }

    /// Serves the request in `data` on the helper and waits until it is done with it.
    fn serve(&self, data: &[u8], sender: RingSender) {
        let (m, cv) = &*self.state;
        let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
        *st = HelperState::Job(data.as_ptr() as usize, data.len(), sender);
        cv.notify_all();
        while !matches!(*st, HelperState::Done) {
            st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        *st = HelperState::Idle;
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let (m, cv) = &*self.state;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = HelperState::Exit;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Parses and dispatches one request; an unparsable one gets EIO.
fn dispatch<FS: Filesystem>(se: &SessionEventLoop<FS>, sender: RingSender, data: &[u8]) {
    match RequestWithSender::from_ring(sender.clone(), data) {
        Some(req) => req.dispatch(se),
        None => {
            let unique = data.get(8..16).map_or(0, |b| {
                u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]))
            });
            let _ = sender.send(&[IoSlice::new(&error_header(unique, libc::EIO))]);
        }
    }
}

/// A `fuse_out_header` with no body: `errno` 0 is success.
fn error_header(unique: u64, errno: i32) -> [u8; OUT_HEADER] {
    let mut h = [0u8; OUT_HEADER];
    h[0..4].copy_from_slice(&(OUT_HEADER as u32).to_ne_bytes());
    h[4..8].copy_from_slice(&(-errno).to_ne_bytes());
    h[8..16].copy_from_slice(&unique.to_ne_bytes());
    h
}

/// Requests of this many bytes or more are served by the [`Helper`].
const HEAVY_BYTES: u32 = 64 * 1024;

/// Whether a request moves enough data to be served on any CPU: READ and WRITE of
/// [`HEAVY_BYTES`] or more (`size`, a u32 at offset 16 of both `fuse_read_in` and
/// `fuse_write_in`).
fn is_heavy(opcode: &Option<op>, op_in: &[u8; OP_IN_SZ]) -> bool {
    matches!(opcode, Some(op::FUSE_READ | op::FUSE_WRITE))
        && u32::from_ne_bytes([op_in[16], op_in[17], op_in[18], op_in[19]]) >= HEAVY_BYTES
}

/// An URING_CMD SQE for `/dev/fuse` with `cmd_op`, the command area `cmd`, and for a REGISTER
/// the address of the entry's two iovecs.
fn fuse_cmd(fd: i32, cmd_op: u32, cmd: [u8; 80], iov: Option<*const libc::iovec>) -> squeue::Entry128 {
    let mut b = opcode::UringCmd80::new(types::Fd(fd), cmd_op).cmd(cmd);
    if let Some(iov) = iov {
        b = b.addr(Some(iov as u64));
    }
    let sqe = b.build().user_data(u64::from(cmd_op));
    if iov.is_none() {
        return sqe;
    }
    // The crate has no setter for `len`, which a REGISTER must set to the iovec count (2).
    // SAFETY: Entry128 is `#[repr(C)]` over `struct io_uring_sqe` (64 bytes, `len` a u32 at
    // offset 24) and 64 more bytes: 128 plain bytes either way.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(sqe) };
    raw[24..28].copy_from_slice(&2u32.to_ne_bytes());
    // SAFETY: the same bytes back, with only `len` changed.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

/// Submits `sqe` and waits for the next completion (a second at most, so that `stop` is seen).
fn submit_and_wait(
    ring: &mut IoUring<squeue::Entry128, cqueue::Entry>,
    sqe: Option<&squeue::Entry128>,
    stop: &AtomicBool,
) -> io::Result<Option<i32>> {
    if let Some(sqe) = sqe {
        // SAFETY: the SQE's iovecs and buffers live as long as the ring (owned by `serve`).
        unsafe { ring.submission().push(sqe) }
            .map_err(|_| io::Error::other("submission queue full"))?;
    }
    loop {
        if let Some(cqe) = ring.completion().next() {
            return Ok(Some(cqe.result()));
        }
        if stop.load(Ordering::Acquire) {
            return Ok(None);
        }
        let ts = types::Timespec::new().sec(1);
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR | libc::EBUSY)) => {
            }
            Err(e) => return Err(e),
        }
    }
}

fn serve<FS: Filesystem>(
    se: &SessionEventLoop<FS>,
    helper: &Helper,
    qid: u16,
    payload_cap: usize,
    stop: &AtomicBool,
) -> io::Result<()> {
    pin_to(usize::from(qid), false);
    let fd = se.ch.as_fd().as_raw_fd();
    // Only this thread submits, and it waits in io_uring_enter: completions' task work can wait
    // for that wait instead of interrupting the thread (Linux 6.1+; plain ring otherwise).
    let mut ring = match IoUring::<squeue::Entry128, cqueue::Entry>::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(4)
    {
        Ok(ring) => ring,
        Err(_) => IoUring::<squeue::Entry128, cqueue::Entry>::builder().build(4)?,
    };
    let header_buf = Buffer::new(size_of::<ReqHeader>())?;
    let region = Buffer::new(PREFIX + payload_cap)?;
    // SAFETY: `region` is PREFIX + payload_cap bytes.
    let payload = unsafe { NonNull::new_unchecked(region.ptr.as_ptr().add(PREFIX)) };
    let header = header_buf.ptr.as_ptr().cast::<ReqHeader>();
    let iov = Box::new([
        libc::iovec {
            iov_base: header_buf.ptr.as_ptr().cast(),
            iov_len: size_of::<ReqHeader>(),
        },
        libc::iovec {
            iov_base: payload.as_ptr().cast(),
            iov_len: payload_cap,
        },
    ]);
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState {
            replied: false,
            out_header: [0; OUT_HEADER],
            body_len: 0,
            direct: true,
            staged: Vec::new(),
        }),
        replied: Condvar::new(),
        payload,
        payload_cap,
    });
    let mut next = Some(fuse_cmd(fd, CMD_REGISTER, cmd_req(0, qid), Some(iov.as_ptr())));
    loop {
        let res = match submit_and_wait(&mut ring, next.as_ref(), stop)? {
            Some(res) => res,
            None => return Ok(()),
        };
        if res < 0 {
            let err = -res;
            return if matches!(err, libc::ENOTCONN | libc::ECANCELED | libc::ENODEV) {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(err))
            };
        }
        // SAFETY: the kernel filled the header before completing the command; nothing else
        // writes it until the next commit.
        let (in_header, op_in, ent) = unsafe {
            let h = &*header;
            let mut ih = [0u8; IN_HEADER];
            ih.copy_from_slice(&h.in_out[..IN_HEADER]);
            (ih, h.op_in, h.ent)
        };
        let opcode = u32::from_ne_bytes([in_header[4], in_header[5], in_header[6], in_header[7]]);
        let unique = u64::from_ne_bytes(in_header[8..16].try_into().unwrap_or([0; 8]));
        let payload_sz = (ent.payload_sz as usize).min(payload_cap);
        let op_size = op_in_size(opcode).min(OP_IN_SZ);
        let start = PREFIX - IN_HEADER - op_size;
        let len = IN_HEADER + op_size + payload_sz;
        {
            let mut st = slot.state.lock().unwrap_or_else(|e| e.into_inner());
            st.replied = false;
            st.body_len = 0;
            st.direct = payload_sz == 0;
            st.staged.clear();
        }
        // SAFETY: [start, PREFIX) lies in the region's prefix, which only this thread writes;
        // the payload follows at PREFIX.
        let data = unsafe {
            let base = region.ptr.as_ptr();
            std::ptr::copy_nonoverlapping(in_header.as_ptr(), base.add(start), IN_HEADER);
            std::ptr::copy_nonoverlapping(
                (len as u32).to_ne_bytes().as_ptr(),
                base.add(start),
                4,
            );
            std::ptr::copy_nonoverlapping(op_in.as_ptr(), base.add(start + IN_HEADER), op_size);
            std::slice::from_raw_parts(base.add(start), len)
        };
        let sender = RingSender {
            slot: slot.clone(),
            ch: se.ch.sender(),
        };
        let opcode = op::try_from(opcode).ok();
        if matches!(opcode, Some(op::FUSE_DESTROY)) {
            // The session ends with the device; nothing to tell the filesystem here.
            sender.send(&[IoSlice::new(&error_header(unique, 0))])?;
        } else if is_heavy(&opcode, &op_in) {
            helper.serve(data, sender);
        } else {
            dispatch(se, sender, data);
            if matches!(opcode, Some(op::FUSE_IOCTL)) {
                // As the /dev/fuse loop does: an ioctl's input may be a secret.
                // SAFETY: the request's bytes, no longer borrowed (dispatch returned).
                let bytes =
                    unsafe { std::slice::from_raw_parts_mut(region.ptr.as_ptr().add(start), len) };
                crate::read_buf::wipe_bytes(bytes);
            }
        }
        // The reply may come from another thread, later.
        let mut st = slot.state.lock().unwrap_or_else(|e| e.into_inner());
        while !st.replied {
            st = slot.replied.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if !st.direct && !st.staged.is_empty() {
            // SAFETY: staged.len() <= payload_cap (checked in send); the request no longer
            // borrows the payload.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    st.staged.as_ptr(),
                    payload.as_ptr(),
                    st.staged.len(),
                )
            };
        }
        // SAFETY: between completion and commit the header is ours.
        unsafe {
            let h = &mut *header;
            h.in_out[..OUT_HEADER].copy_from_slice(&st.out_header);
            h.ent.payload_sz = st.body_len as u32;
        }
        let commit_id = ent.commit_id;
        drop(st);
        next = Some(fuse_cmd(fd, CMD_COMMIT_AND_FETCH, cmd_req(commit_id, qid), None));
    }
}

/// The payload size a ring entry needs: what the kernel checks at REGISTER
/// (`max(FUSE_MIN_READ_BUFFER, max_write, max_pages * PAGE_SIZE)`).
pub(crate) fn payload_size(max_write: u32, max_pages: u16) -> usize {
    let page = page_size::get();
    8192usize
        .max(max_write as usize)
        .max(usize::from(max_pages) * page)
}
