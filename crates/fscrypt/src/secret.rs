//! Memory for secrets: master keys, PRKs, derived keys and prepared cipher states.
//!
//! Every secret lives in its own page-aligned heap allocation that is `mlock`ed (never swapped) and
//! marked `MADV_DONTDUMP` (never in a core dump), is zeroed before it is freed, and has no `Debug` or
//! `Display` that shows its bytes. Locking can fail (RLIMIT_MEMLOCK); the secret is then still zeroed
//! and excluded from dumps, and `is_locked()` says so — the caller decides whether to warn.
//!
//! Owning a whole page per secret is deliberate: `munlock` works on pages, so two secrets sharing a page
//! could unlock each other. It costs 4 KiB per live key, which is bounded by the number of unlocked
//! inodes. Single pages whose secret was wiped stay locked in a small pool ([`POOL_MAX`]) for the
//! next secret: a per-extent file derives a key for every extent it writes, and `mlock`, `madvise`
//! and `munlock` each take the process's memory-map lock, which every page fault of every thread
//! takes too.

use std::alloc::{self, Layout};
use std::fmt;
use std::mem::{self, MaybeUninit};
use std::ptr::NonNull;
use std::sync::Mutex;

use zeroize::Zeroize;

const PAGE: usize = 4096;

/// Most wiped single pages kept locked for reuse (256 KiB of locked memory).
const POOL_MAX: usize = 64;

/// Wiped (all zero), locked, `MADV_DONTDUMP` single pages, page-aligned, allocated with the layout
/// of one page: each is a whole allocation no live secret uses.
static POOL: Mutex<Vec<PooledPage>> = Mutex::new(Vec::new());

struct PooledPage(NonNull<u8>);

// SAFETY: a pooled page is owned by the pool alone until it is taken out of it.
unsafe impl Send for PooledPage {}

fn pool() -> std::sync::MutexGuard<'static, Vec<PooledPage>> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One page-aligned, page-sized-multiple allocation, locked in memory where possible.
struct LockedPages {
    ptr: NonNull<u8>,
    layout: Layout,
    locked: bool,
}

// SAFETY: LockedPages owns its allocation exclusively; the raw pointer is not shared.
unsafe impl Send for LockedPages {}
// SAFETY: shared access only reads through `&self`; mutation needs `&mut self`.
unsafe impl Sync for LockedPages {}

impl LockedPages {
    fn new(len: usize, align: usize) -> Self {
        let size = len.max(1).div_ceil(PAGE) * PAGE;
        let layout = match Layout::from_size_align(size, align.max(PAGE)) {
            Ok(l) => l,
            Err(_) => alloc::handle_alloc_error(Layout::new::<u8>()),
        };
        if layout == one_page() {
            let pooled = pool().pop();
            if let Some(PooledPage(ptr)) = pooled {
                // Zeroed when it entered the pool, and still locked.
                return LockedPages {
                    ptr,
                    layout,
                    locked: true,
                };
            }
        }
        // SAFETY: the layout has a nonzero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        let locked = lock_pages(ptr, size);
        LockedPages {
            ptr,
            layout,
            locked,
        }
    }

    fn wipe(&mut self) {
        // SAFETY: the allocation is `layout.size()` bytes, owned by self and initialised (zeroed at
        // allocation, written only with plain bytes or a T that has been dropped before this call).
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) };
        bytes.zeroize();
    }
}

/// The layout of a single page, the one size the pool keeps.
fn one_page() -> Layout {
    Layout::new::<[u8; PAGE]>()
        .align_to(PAGE)
        .unwrap_or_else(|_| Layout::new::<u8>())
}

impl Drop for LockedPages {
    fn drop(&mut self) {
        self.wipe();
        if self.locked && self.layout == one_page() {
            let mut pool = pool();
            if pool.len() < POOL_MAX {
                pool.push(PooledPage(self.ptr));
                return;
            }
        }
        if self.locked {
            unlock_pages(self.ptr, self.layout.size());
        }
        // SAFETY: ptr was returned by alloc_zeroed with this layout and is freed exactly once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

fn lock_pages(ptr: NonNull<u8>, len: usize) -> bool {
    // SAFETY: [ptr, ptr+len) is a live allocation owned by the caller; mlock and madvise do not
    // change its contents.
    unsafe {
        let _ = rustix::mm::madvise(ptr.as_ptr().cast(), len, rustix::mm::Advice::LinuxDontDump);
        rustix::mm::mlock(ptr.as_ptr().cast(), len).is_ok()
    }
}

fn unlock_pages(ptr: NonNull<u8>, len: usize) {
    // SAFETY: the range was locked by lock_pages and is still allocated.
    unsafe {
        let _ = rustix::mm::munlock(ptr.as_ptr().cast(), len);
    }
}

/// A secret byte string of fixed length, in locked memory, zeroed on drop.
pub struct SecretBytes {
    pages: LockedPages,
    len: usize,
}

impl SecretBytes {
    /// A zero-filled secret of `len` bytes, to be filled in place (so the secret is never on the stack).
    pub fn zeroed(len: usize) -> Self {
        SecretBytes {
            pages: LockedPages::new(len, 1),
            len,
        }
    }

    /// A copy of `bytes`. The caller remains responsible for wiping its own copy.
    pub fn copy_from(bytes: &[u8]) -> Self {
        let mut s = Self::zeroed(bytes.len());
        s.as_mut().copy_from_slice(bytes);
        s
    }

    /// The secret's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the pages are `mlock`ed (false when RLIMIT_MEMLOCK refused it).
    pub fn is_locked(&self) -> bool {
        self.pages.locked
    }

    /// Constant-time equality of two secrets (length is not secret).
    pub fn ct_eq(&self, other: &SecretBytes) -> bool {
        self.len == other.len
            && self
                .as_ref()
                .iter()
                .zip(other.as_ref())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the allocation holds at least `len` initialised bytes.
        unsafe { std::slice::from_raw_parts(self.pages.ptr.as_ptr(), self.len) }
    }
}

impl AsMut<[u8]> for SecretBytes {
    /// The secret bytes, for filling in place.
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: the allocation holds at least `len` initialised bytes, exclusively borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.pages.ptr.as_ptr(), self.len) }
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::copy_from(self.as_ref())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {}])", self.len)
    }
}

/// A value (typically a cipher's key schedule) kept in locked memory and wiped after it is dropped.
///
/// The value is built directly in its locked page by `new_with`, so no copy of it is left on the stack
/// by the move into the box (the closure itself may still use the stack; callers that care wipe it
/// with [`burn_stack`]).
pub struct LockedBox<T> {
    pages: LockedPages,
    _marker: std::marker::PhantomData<T>,
}

impl<T> LockedBox<T> {
    /// Builds the value in place with `init`, which must fully initialise the slot or fail.
    pub fn try_new_with<E>(
        init: impl FnOnce(&mut MaybeUninit<T>) -> Result<(), E>,
    ) -> Result<Self, E> {
        let mut pages = LockedPages::new(mem::size_of::<T>(), mem::align_of::<T>());
        // SAFETY: the allocation is at least size_of::<T>() bytes and aligned for T.
        let slot = unsafe { &mut *pages.ptr.as_ptr().cast::<MaybeUninit<T>>() };
        match init(slot) {
            Ok(()) => Ok(LockedBox {
                pages,
                _marker: std::marker::PhantomData,
            }),
            Err(e) => {
                pages.wipe();
                Err(e)
            }
        }
    }

    /// Moves `value` into locked memory. The moved-from stack copy is the caller's to worry about;
    /// prefer `try_new_with` for key schedules.
    pub fn new(value: T) -> Self {
        let r: Result<Self, std::convert::Infallible> = Self::try_new_with(|slot| {
            slot.write(value);
            Ok(())
        });
        match r {
            Ok(b) => b,
            Err(never) => match never {},
        }
    }

    /// True when the pages are `mlock`ed.
    pub fn is_locked(&self) -> bool {
        self.pages.locked
    }
}

impl<T> std::ops::Deref for LockedBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the slot was fully initialised by try_new_with and is dropped only in Drop.
        unsafe { &*self.pages.ptr.as_ptr().cast::<T>() }
    }
}

impl<T> std::ops::DerefMut for LockedBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref, with exclusive access through &mut self.
        unsafe { &mut *self.pages.ptr.as_ptr().cast::<T>() }
    }
}

impl<T> Drop for LockedBox<T> {
    fn drop(&mut self) {
        // SAFETY: the slot holds an initialised T that is dropped exactly once, here; LockedPages then
        // zeroes the bytes.
        unsafe { std::ptr::drop_in_place(self.pages.ptr.as_ptr().cast::<T>()) };
    }
}

// SAFETY: LockedBox<T> owns its T like Box<T> does.
unsafe impl<T: Send> Send for LockedBox<T> {}
// SAFETY: shared access hands out &T only.
unsafe impl<T: Sync> Sync for LockedBox<T> {}

impl<T> fmt::Debug for LockedBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockedBox([REDACTED])")
    }
}

/// Overwrites 16 KiB of the current thread's stack below this frame with zeros, removing copies of
/// key material that earlier calls (key schedules, HKDF) left in dead stack slots. Word-sized volatile
/// writes keep it cheap (about a microsecond).
#[inline(never)]
pub fn burn_stack() {
    let mut buf = [0u64; 2048];
    buf.zeroize();
    std::hint::black_box(&buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_bytes_roundtrip_and_redacted_debug() {
        let s = SecretBytes::copy_from(&[7u8; 40]);
        assert_eq!(s.as_ref(), &[7u8; 40]);
        assert_eq!(s.len(), 40);
        assert_eq!(format!("{s:?}"), "SecretBytes([REDACTED; 40])");
        assert!(s.ct_eq(&s.clone()));
        assert!(!s.ct_eq(&SecretBytes::copy_from(&[8u8; 40])));
    }

    /// A wiped page goes back to the pool and comes out of it zeroed and locked, and the pool never
    /// holds more than its bound.
    #[test]
    fn wiped_pages_are_reused_zeroed_and_the_pool_is_bounded() {
        let many: Vec<SecretBytes> = (0..POOL_MAX + 8)
            .map(|i| SecretBytes::copy_from(&[i as u8 | 1; 64]))
            .collect();
        let locked = many.iter().all(SecretBytes::is_locked);
        drop(many);
        assert!(pool().len() <= POOL_MAX);
        for _ in 0..POOL_MAX + 8 {
            let s = SecretBytes::zeroed(PAGE);
            // SAFETY: the allocation is one page, initialised.
            let page = unsafe { std::slice::from_raw_parts(s.pages.ptr.as_ptr(), PAGE) };
            assert!(page.iter().all(|&b| b == 0), "a reused page was not wiped");
            if locked {
                assert!(s.is_locked());
            }
        }
    }

    #[test]
    fn locked_box_drops_inner_value() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct D(#[allow(dead_code)] u64);
        impl Drop for D {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        let b = LockedBox::new(D(5));
        assert_eq!(b.0, 5);
        drop(b);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }
}
