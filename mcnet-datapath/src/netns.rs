//! Running code inside a network namespace: a scoped thread that joins the
//! namespace with setns(2) (never `ip netns exec`, which remounts /sys and
//! hides /sys/fs/bpf).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Runs `f` on a thread that has joined the network namespace at `path`
/// (`/run/netns/NAME` or `/proc/PID/ns/net`), and returns its result.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let ns = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd affects only this thread.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
    })
}

/// The path of a named namespace made by `ip netns add`.
#[cfg(any(test, feature = "lab"))]
pub fn named(name: &str) -> std::path::PathBuf {
    Path::new("/run/netns").join(name)
}

/// The index of an interface in the current thread's namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"))?;
    // SAFETY: a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface `{name}`"),
        ))
    } else {
        Ok(idx)
    }
}
