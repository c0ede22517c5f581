//! Errors of the fscrypt layer.
//!
//! Every failure carries the errno the kernel returns in the same situation (EINVAL for a bad policy,
//! ENOKEY for a missing key, EUCLEAN for corrupt on-disk data, ...) and a message that names the thing
//! at fault, so the filesystem can hand the errno to FUSE and the command line can print the message.
//! Messages never contain key material.

use std::borrow::Cow;
use std::fmt;

pub use rustix::io::Errno;

/// A failure with the kernel's errno and a human-readable reason.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    errno: Errno,
    message: Cow<'static, str>,
}

/// The layer's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A failure with `errno` and a message naming what is wrong.
    pub fn new(errno: Errno, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            errno,
            message: message.into(),
        }
    }

    /// EINVAL: malformed or unsupported input (policy, flags, sizes, arguments).
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Errno::INVAL, message)
    }

    /// EUCLEAN: on-disk data is corrupt (bad context, bad name length, bad symlink data).
    pub fn corrupt(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Errno::UCLEAN, message)
    }

    /// ENOKEY: the key needed is not available.
    pub fn no_key(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Errno::NOKEY, message)
    }

    /// The kernel errno for this failure.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The raw errno value, as FUSE replies want it.
    pub fn raw_os_error(&self) -> i32 {
        self.errno.raw_os_error()
    }

    /// The reason, without the errno.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, errno_name(self.errno))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::from_raw_os_error(e.raw_os_error())
    }
}

/// The symbolic name of the errnos this layer uses (`EINVAL`, `ENOKEY`, ...), for messages.
pub fn errno_name(errno: Errno) -> &'static str {
    const NAMES: &[(Errno, &str)] = &[
        (Errno::INVAL, "EINVAL"),
        (Errno::NOKEY, "ENOKEY"),
        (Errno::UCLEAN, "EUCLEAN"),
        (Errno::EXIST, "EEXIST"),
        (Errno::NODATA, "ENODATA"),
        (Errno::OVERFLOW, "EOVERFLOW"),
        (Errno::NOTDIR, "ENOTDIR"),
        (Errno::NOTEMPTY, "ENOTEMPTY"),
        (Errno::ACCESS, "EACCES"),
        (Errno::PERM, "EPERM"),
        (Errno::DQUOT, "EDQUOT"),
        (Errno::NOPKG, "ENOPKG"),
        (Errno::XDEV, "EXDEV"),
        (Errno::NOENT, "ENOENT"),
        (Errno::IO, "EIO"),
        (Errno::BUSY, "EBUSY"),
        (Errno::RANGE, "ERANGE"),
        (Errno::NAMETOOLONG, "ENAMETOOLONG"),
        (Errno::NOMEM, "ENOMEM"),
        (Errno::NOTTY, "ENOTTY"),
        (Errno::FAULT, "EFAULT"),
        (Errno::ROFS, "EROFS"),
    ];
    NAMES
        .iter()
        .find(|(e, _)| *e == errno)
        .map(|(_, n)| *n)
        .unwrap_or("errno")
}
