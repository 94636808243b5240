//! BPF arrays created with `BPF_F_MMAPABLE`, mapped into this process.
//!
//! The kernel programs read these arrays with plain loads while userspace
//! writes them, so every access from this side is an atomic load or store
//! of one aligned word.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// An atomic word type that a mapping may be viewed as.
pub(crate) trait Word: Sync + sealed::Sealed {}
impl Word for AtomicU32 {}
impl Word for AtomicU64 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::sync::atomic::AtomicU32 {}
    impl Sealed for std::sync::atomic::AtomicU64 {}
}

/// The values of a mmapable BPF array, as `len` words of type `W`.
pub(crate) struct MappedArray<W: Word> {
    words: NonNull<W>,
    len: usize,
    bytes: usize,
}

// SAFETY: the mapping is shared memory that lives until `drop`, and every
// access goes through the atomic type `W`, so it may move to and be used
// from any thread.
unsafe impl<W: Word> Send for MappedArray<W> {}
// SAFETY: as above; `&MappedArray` only loads and stores atomically.
unsafe impl<W: Word> Sync for MappedArray<W> {}

impl<W: Word> MappedArray<W> {
    /// Maps the first `len` words of the array behind `fd`.
    pub(crate) fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        let page = 4096;
        let bytes = (len * std::mem::size_of::<W>()).div_ceil(page) * page;
        // SAFETY: a fresh shared mapping of a BPF array's values; the kernel
        // checks that the map is mmapable and at least `bytes` long.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let words =
            NonNull::new(addr.cast::<W>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(MappedArray { words, len, bytes })
    }

    /// Word `i`.
    ///
    /// # Panics
    /// If `i` is out of range: callers index with values they computed for
    /// this array's size.
    pub(crate) fn word(&self, i: usize) -> &W {
        assert!(i < self.len, "word {i} out of range ({} words)", self.len);
        // SAFETY: in bounds (checked above) of a mapping that lives as long
        // as `self`; page alignment makes every word aligned.
        unsafe { &*self.words.as_ptr().add(i) }
    }
}

impl<W: Word> Drop for MappedArray<W> {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe {
            libc::munmap(self.words.as_ptr().cast(), self.bytes);
        }
    }
}
