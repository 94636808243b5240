//! The state lock: one writer (`apply`, `destroy`) per state directory at
//! a time. The lock is an advisory lock (`flock`) on `<state>/mcnet.lock`,
//! released by the kernel however the holder ends (a crash included); the
//! file also says who holds it, so a waiting command can tell the user.
//! Readers (`plan`, `drift`) never take it: state files are replaced by
//! atomic renames, so a reader always sees the last committed state.
//!
//! ```
//! use std::time::Duration;
//! use mcnet_cloud::lock::{StateLock, Wait};
//!
//! let dir = std::env::temp_dir().join(format!("mcnet-lock-doc-{}", std::process::id()));
//! let held = StateLock::acquire(&dir, "apply", Wait::For(Duration::ZERO), |_| {}).unwrap();
//! // A second writer gives up at once, naming the holder.
//! let err = StateLock::acquire(&dir, "destroy", Wait::For(Duration::ZERO), |_| {}).unwrap_err();
//! assert!(err.to_string().contains("apply"));
//! drop(held);
//! assert!(StateLock::acquire(&dir, "destroy", Wait::For(Duration::ZERO), |_| {}).is_ok());
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The lock file's name inside a state directory.
pub const LOCK_FILE: &str = "mcnet.lock";

/// How long to wait for a lock another command holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Until it is released.
    Forever,
    /// At most this long (`Duration::ZERO`: not at all).
    For(Duration),
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The state directory or the lock file cannot be used.
    #[error("cannot use the state lock `{}`", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another command held the lock for the whole wait.
    #[error("the state lock `{}` is held by {holder}; gave up after {waited:?}", path.display())]
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as its holder wrote it.
        holder: String,
        /// How long we waited.
        waited: Duration,
    },
}

/// A held state lock; dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock of `dir` (created if missing) for `command`, waiting
    /// as `wait` says. `waiting` is called once, with the holder's
    /// description, if the lock is held when we first try.
    pub fn acquire(
        dir: &Path,
        command: &str,
        wait: Wait,
        waiting: impl FnOnce(&str),
    ) -> Result<StateLock, LockError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LockError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io(&path))?;
        let started = Instant::now();
        let mut waiting = Some(waiting);
        let mut pause = Duration::from_millis(10);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
                Err(TryLockError::WouldBlock) => {}
            }
            let holder = read_holder(&mut file);
            if let Some(f) = waiting.take() {
                f(&holder);
            }
            let waited = started.elapsed();
            let left = match wait {
                Wait::Forever => pause,
                Wait::For(limit) if waited >= limit => {
                    return Err(LockError::Timeout {
                        path,
                        holder,
                        waited,
                    })
                }
                Wait::For(limit) => limit - waited,
            };
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(500));
        }
        // Say who holds it, for whoever waits next.
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let who = format!(
            "`mcnet {command}` (pid {}, since unix time {since})",
            std::process::id()
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(who.as_bytes()))
            .and_then(|()| file.sync_data())
            .map_err(io(&path))?;
        Ok(StateLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Clear the holder; the kernel releases the lock with the file.
        let _ = self.file.set_len(0);
    }
}

/// What the holder wrote, or a placeholder (a holder from before this
/// format, or one that has not written yet).
fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let read = file
        .seek(SeekFrom::Start(0))
        .and_then(|_| file.take(512).read_to_string(&mut text));
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_string(),
        _ => "another mcnet command".to_string(),
    }
}

/// The longest lock wait accepted: a day (longer is a mistake).
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Why a wait does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// Not a number with a unit.
    #[error("`{0}` is not a duration like 30s, 2m or 1h (units: ms, s, m, h)")]
    Malformed(String),
    /// Longer than [`MAX_WAIT`].
    #[error("`{0}` is longer than the largest accepted wait, 24h")]
    TooLong(String),
}

/// Parses a duration such as `30s`, `2m`, `1h`, `500ms` or `0`, up to
/// [`MAX_WAIT`], with checked arithmetic.
pub fn parse_wait(s: &str) -> Result<Duration, WaitError> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let malformed = || WaitError::Malformed(s.to_string());
    let n: u64 = num.parse().map_err(|_| malformed())?;
    let ms_per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(malformed()),
    };
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_WAIT)
        .ok_or_else(|| WaitError::TooLong(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mcnet-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_second_writer_waits_then_gives_up_naming_the_holder() {
        let d = dir("timeout");
        let held = StateLock::acquire(&d, "apply", Wait::Forever, |_| {}).unwrap();
        let mut told = String::new();
        let err = StateLock::acquire(&d, "destroy", Wait::For(Duration::from_millis(50)), |h| {
            told = h.to_string()
        })
        .unwrap_err();
        assert!(
            told.contains("mcnet apply") && told.contains("pid"),
            "{told}"
        );
        match err {
            LockError::Timeout { holder, waited, .. } => {
                assert!(holder.contains("mcnet apply"));
                assert!(waited >= Duration::from_millis(50));
            }
            other => panic!("{other}"),
        }
        drop(held);
        let again = StateLock::acquire(&d, "destroy", Wait::For(Duration::ZERO), |_| {});
        assert!(again.is_ok());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_waiting_writer_gets_the_lock_when_it_is_released() {
        let d = dir("release");
        let held = StateLock::acquire(&d, "apply", Wait::Forever, |_| {}).unwrap();
        let d2 = d.clone();
        let t = std::thread::spawn(move || {
            StateLock::acquire(&d2, "apply", Wait::Forever, |_| {}).map(|_| ())
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(held);
        assert!(t.join().unwrap().is_ok());
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn waits_parse_with_checked_units() {
        assert_eq!(parse_wait("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_wait("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "s", "10", "10d", "18446744073709551615h", "25h", "-1s"] {
            assert!(parse_wait(bad).is_err(), "{bad}");
        }
    }
}
