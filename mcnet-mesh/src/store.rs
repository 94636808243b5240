//! An identity on disk: files written atomically (keys 0600), and the
//! directory layout a workload reads its certificate, key and trust
//! bundle from (a Kubernetes Secret volume's), loaded and checked together.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::identity::{SecretKey, TrustBundle, WorkloadCert};
use crate::{Error, Result};

/// How many temporary names [`write_file`] tries before it gives up.
const TEMP_ATTEMPTS: usize = 16;

/// Writes a file atomically, with `mode` from its first byte.
///
/// The contents go to a new temporary file beside `path`, named with 128
/// random bits from the operating system and created exclusively
/// (`O_CREAT | O_EXCL`: a file or a symbolic link already at that name is
/// never opened, let alone followed; another name is tried, up to 16). The
/// file is synced, renamed over `path`, and the directory synced. Missing
/// directories are created with mode 0700; existing ones are left as they are.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    write_file_named(path, contents, mode, random_suffix)
}

/// 32 hex digits from the operating system's random number generator
/// (`getrandom(2)`, through ring).
fn random_suffix() -> Result<String> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::Crypto {
            context: "the system's random number generator failed".into(),
            source: None,
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// [`write_file`] with the temporary names' suffixes from `suffix`.
fn write_file_named(
    path: &Path,
    contents: &[u8],
    mode: u32,
    mut suffix: impl FnMut() -> Result<String>,
) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("`{}` does not name a file", path.display())))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))?;
    let mut created = None;
    for _ in 0..TEMP_ATTEMPTS {
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".tmp-");
        tmp_name.push(suffix()?);
        let tmp = dir.join(tmp_name);
        // O_CREAT|O_EXCL (`create_new`) refuses any existing name, a
        // symlink included; O_NOFOLLOW says so again for the last component.
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => {
                created = Some((tmp, f));
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&tmp, e)),
        }
    }
    let Some((tmp, mut f)) = created else {
        return Err(Error::Io {
            context: format!(
                "{}: no free temporary name for `{}` after {TEMP_ATTEMPTS} attempts",
                dir.display(),
                name.to_string_lossy()
            ),
            source: None,
        });
    };
    let written = f
        .write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))
        .and_then(|_| fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    drop(f);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    match fs::File::open(dir).and_then(|d| d.sync_all()) {
        // Some file systems cannot sync a directory (EINVAL); the rename
        // stands, as durable as they make it.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        r => r.map_err(|e| Error::io(dir, e)),
    }
}

/// Writes a private key: mode 0600.
pub fn write_key(path: &Path, key: &SecretKey) -> Result<()> {
    write_file(path, key.expose_pem().as_bytes(), 0o600)
}

/// A workload's identity directory, as `mcnet mesh cert issue` writes it
/// and a Kubernetes TLS Secret mounts it: `tls.crt` (leaf then issuer),
/// `tls.key` and `ca.crt` (the trust bundle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityDir {
    path: PathBuf,
}

/// What an [`IdentityDir`]'s files look like on disk (modification and
/// change times, size, inode), to notice that they changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirStamp(Vec<Option<FileStamp>>);

#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: (i64, i64),
    changed: (i64, i64),
    size: u64,
    inode: u64,
}

impl IdentityDir {
    /// The certificate chain's file name.
    pub const CERT: &'static str = "tls.crt";
    /// The private key's file name.
    pub const KEY: &'static str = "tls.key";
    /// The trust bundle's file name.
    pub const BUNDLE: &'static str = "ca.crt";

    /// The identity in directory `path`.
    pub fn new(path: impl Into<PathBuf>) -> IdentityDir {
        IdentityDir { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the certificate, key and bundle, checked together (see
    /// [`crate::tls::check_identity`]): the key is the certificate's, and
    /// the chain verifies against the bundle now. Either all three are
    /// returned or an error naming the file at fault.
    pub fn load(&self) -> Result<(WorkloadCert, TrustBundle)> {
        let cert_pem = read_file(&self.path.join(Self::CERT))?;
        let key_pem = read_file(&self.path.join(Self::KEY))?;
        let bundle_pem = read_file(&self.path.join(Self::BUNDLE))?;
        let cert = WorkloadCert::from_pem(&cert_pem, &key_pem)?;
        let bundle = TrustBundle::from_pem(&bundle_pem)
            .map_err(|e| Error::Invalid(format!("{}: {e}", Self::BUNDLE)))?;
        crate::tls::check_identity(&cert, &bundle)?;
        Ok((cert, bundle))
    }

    /// The files' current stamp: when it differs from an earlier one, some
    /// file was written or replaced since (including the symbolic-link swap
    /// of a Kubernetes Secret volume).
    pub fn stamp(&self) -> DirStamp {
        use std::os::unix::fs::MetadataExt;
        DirStamp(
            [Self::CERT, Self::KEY, Self::BUNDLE]
                .iter()
                .map(|f| {
                    fs::metadata(self.path.join(f)).ok().map(|m| FileStamp {
                        modified: (m.mtime(), m.mtime_nsec()),
                        changed: (m.ctime(), m.ctime_nsec()),
                        size: m.size(),
                        inode: m.ino(),
                    })
                })
                .collect(),
        )
    }
}

/// Reads a file, naming it in the error.
pub fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mcnet-identity-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn taken_temporary_names_are_skipped_never_opened() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let d = scratch("taken");
        let victim = d.join("victim");
        fs::write(&victim, "untouched").unwrap();
        // The first names tried are taken: a symbolic link and a world-readable file.
        symlink(&victim, d.join(".tls.key.tmp-a")).unwrap();
        fs::write(d.join(".tls.key.tmp-b"), "planted").unwrap();
        fs::set_permissions(d.join(".tls.key.tmp-b"), fs::Permissions::from_mode(0o644)).unwrap();
        let mut names = ["a", "b", "c"].into_iter();
        let mut next = || Ok(names.next().unwrap_or("z").to_string());
        write_file_named(&d.join("tls.key"), b"secret", 0o600, &mut next).unwrap();
        let key = d.join("tls.key");
        assert_eq!(fs::read_to_string(&key).unwrap(), "secret");
        let meta = fs::symlink_metadata(&key).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(
            fs::read_to_string(d.join(".tls.key.tmp-b")).unwrap(),
            "planted"
        );
        assert!(!d.join(".tls.key.tmp-c").exists(), "renamed into place");

        // Every name taken: a bounded number of attempts, then an error.
        let mut tries = 0;
        let err = write_file_named(&d.join("tls.key"), b"new", 0o600, || {
            tries += 1;
            Ok("a".to_string())
        })
        .unwrap_err();
        assert_eq!(tries, TEMP_ATTEMPTS);
        assert!(err.to_string().contains("no free temporary name"), "{err}");
        assert_eq!(fs::read_to_string(&key).unwrap(), "secret");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn temporary_names_are_random() {
        let (a, b) = (random_suffix().unwrap(), random_suffix().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
