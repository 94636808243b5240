//! Node tuning: the ADR's kernel network profile, checked against and
//! applied to `/proc/sys`, on the host or inside a network namespace.
//!
//! Some of these settings belong to each network namespace, others are
//! global to the kernel (a namespace sees them read-only). The profile knows
//! which is which: inside a namespace only the per-namespace ones are
//! written, so that tuning a namespace never changes the host.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Whether a sysctl belongs to a network namespace or to the whole kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Each network namespace has its own value.
    PerNetns,
    /// One value for the kernel; namespaces see it read-only.
    Global,
}

/// One setting of the profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// Dotted name, e.g. `net.core.somaxconn`.
    pub key: &'static str,
    /// Wanted value.
    pub value: &'static str,
    /// Namespace or global.
    pub scope: Scope,
    /// How a current value compares with the wanted one.
    #[serde(skip)]
    pub compare: Compare,
}

/// How a current value is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// A number that must be at least the wanted one (more is fine).
    AtLeast,
    /// Exactly the wanted text.
    Exact,
}

/// The ADR's profile (`Performance Optimization → Kernel Optimization`).
pub fn adr_profile() -> Vec<Setting> {
    use Compare::*;
    use Scope::*;
    let s = |key, value, scope, compare| Setting {
        key,
        value,
        scope,
        compare,
    };
    vec![
        s("net.core.somaxconn", "65535", PerNetns, AtLeast),
        s("net.ipv4.tcp_max_syn_backlog", "65535", PerNetns, AtLeast),
        s("net.core.netdev_max_backlog", "5000", Global, AtLeast),
        s("net.ipv4.tcp_congestion_control", "bbr", PerNetns, Exact),
        s("net.core.rmem_max", "134217728", Global, AtLeast),
        s("net.core.wmem_max", "134217728", Global, AtLeast),
    ]
}

/// Errors of node tuning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TuneError {
    /// Reading or writing a sysctl failed.
    #[error("sysctl `{key}` ({})", path.display())]
    Io {
        /// The sysctl.
        key: String,
        /// Its file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A write failed; every value written before it was restored.
    #[error("sysctl `{key}` could not be set to `{value}`; the {restored} value(s) already written were restored")]
    RolledBack {
        /// The sysctl.
        key: String,
        /// The value it refused.
        value: String,
        /// How many earlier writes were undone.
        restored: usize,
        /// The cause.
        source: io::Error,
    },
}

/// The state of one setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Dotted name.
    pub key: String,
    /// Namespace or global.
    pub scope: Scope,
    /// Wanted value.
    pub wanted: String,
    /// Current value (before an apply), `None` where the kernel lacks the setting.
    pub current: Option<String>,
    /// Whether the current value meets the profile.
    pub ok: bool,
    /// After an apply: the value now set, when it was changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_to: Option<String>,
    /// Why a deviation was left alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Reads and writes sysctls under a root (normally `/proc/sys`).
#[derive(Clone, Debug)]
pub struct Sysctl {
    root: PathBuf,
    /// A key whose writes fail (tests of the rollback).
    #[cfg(test)]
    fail_writes_of: Option<&'static str>,
}

impl Default for Sysctl {
    fn default() -> Self {
        Sysctl::at("/proc/sys")
    }
}

fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn meets(s: &Setting, current: &str) -> bool {
    match s.compare {
        Compare::Exact => current == s.value,
        Compare::AtLeast => match (current.parse::<u64>(), s.value.parse::<u64>()) {
            (Ok(c), Ok(w)) => c >= w,
            _ => current == s.value,
        },
    }
}

impl Sysctl {
    /// Sysctls under another root (for tests against a copy).
    pub fn at(root: impl Into<PathBuf>) -> Sysctl {
        Sysctl {
            root: root.into(),
            #[cfg(test)]
            fail_writes_of: None,
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key.replace('.', "/"))
    }

    /// The current value, `None` when the kernel has no such setting.
    pub fn read(&self, key: &str) -> Result<Option<String>, TuneError> {
        let path = self.path(key);
        match fs::read_to_string(&path) {
            Ok(v) => Ok(Some(normalize(&v))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TuneError::Io {
                key: key.into(),
                path,
                source,
            }),
        }
    }

    fn write(&self, key: &str, value: &str) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_writes_of == Some(key) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "refused"));
        }
        fs::write(self.path(key), format!("{value}\n"))
    }

    /// Compares every setting of `profile` with the current values.
    pub fn check(&self, profile: &[Setting]) -> Result<Vec<Finding>, TuneError> {
        profile
            .iter()
            .map(|s| {
                let current = self.read(s.key)?;
                Ok(Finding {
                    key: s.key.into(),
                    scope: s.scope,
                    wanted: s.value.into(),
                    ok: current.as_deref().is_some_and(|c| meets(s, c)),
                    current,
                    changed_to: None,
                    skipped: None,
                })
            })
            .collect()
    }

    /// Sets every deviating setting, all or nothing: if one write fails, the
    /// ones already made are restored. With `in_namespace`, global settings
    /// are reported but never written (they would change the whole host).
    pub fn apply(
        &self,
        profile: &[Setting],
        in_namespace: bool,
    ) -> Result<Vec<Finding>, TuneError> {
        let mut findings = self.check(profile)?;
        let mut written: Vec<(&str, String)> = Vec::new();
        for (s, f) in profile.iter().zip(findings.iter_mut()) {
            if f.ok {
                continue;
            }
            if in_namespace && s.scope == Scope::Global {
                f.skipped =
                    Some("global to the kernel: not changed from inside a namespace".into());
                continue;
            }
            let Some(old) = f.current.clone() else {
                f.skipped = Some("this kernel has no such setting".into());
                continue;
            };
            if let Err(source) = self.write(s.key, s.value) {
                let restored = written.len();
                for (key, old) in written.iter().rev() {
                    let _ = self.write(key, old);
                }
                return Err(TuneError::RolledBack {
                    key: s.key.into(),
                    value: s.value.into(),
                    restored,
                    source,
                });
            }
            written.push((s.key, old));
            f.changed_to = self.read(s.key)?;
        }
        Ok(findings)
    }
}

/// Runs `f` with the sysctls of network namespace `netns` (a path such as
/// `/var/run/netns/NAME`), or of the caller's namespace when `None`.
pub fn in_netns<T: Send>(
    netns: Option<&Path>,
    f: impl FnOnce(&Sysctl) -> T + Send,
) -> io::Result<T> {
    match netns {
        Some(p) => crate::netns::run_in(p, || f(&Sysctl::default())),
        None => Ok(f(&Sysctl::default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(values: &[(&str, &str)]) -> (tempdir::Dir, Sysctl) {
        let d = tempdir::Dir::new();
        for (k, v) in values {
            let p = d.0.join(k.replace('.', "/"));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, format!("{v}\n")).unwrap();
        }
        let s = Sysctl::at(&d.0);
        (d, s)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "mcnet-sysctl-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn check_judges_minimums_and_exact_values() {
        let (_d, s) = fake(&[
            ("net.core.somaxconn", "100000"),
            ("net.ipv4.tcp_max_syn_backlog", "128"),
            ("net.ipv4.tcp_congestion_control", "cubic"),
            ("net.core.rmem_max", "134217728"),
        ]);
        let f = s.check(&adr_profile()).unwrap();
        let by = |k: &str| f.iter().find(|x| x.key == k).unwrap().clone();
        assert!(by("net.core.somaxconn").ok, "more than the minimum is fine");
        assert!(!by("net.ipv4.tcp_max_syn_backlog").ok);
        assert!(!by("net.ipv4.tcp_congestion_control").ok);
        assert!(by("net.core.rmem_max").ok);
        assert_eq!(by("net.core.wmem_max").current, None);
        assert!(!by("net.core.wmem_max").ok);
    }

    #[test]
    fn apply_in_a_namespace_never_writes_globals() {
        let (_d, s) = fake(&[
            ("net.core.somaxconn", "4096"),
            ("net.ipv4.tcp_max_syn_backlog", "65535"),
            ("net.ipv4.tcp_congestion_control", "cubic"),
            ("net.core.netdev_max_backlog", "1000"),
            ("net.core.rmem_max", "212992"),
            ("net.core.wmem_max", "212992"),
        ]);
        let f = s.apply(&adr_profile(), true).unwrap();
        let by = |k: &str| f.iter().find(|x| x.key == k).unwrap().clone();
        assert_eq!(
            by("net.core.somaxconn").changed_to.as_deref(),
            Some("65535")
        );
        assert_eq!(
            by("net.ipv4.tcp_max_syn_backlog").changed_to,
            None,
            "already fine"
        );
        assert_eq!(
            s.read("net.core.rmem_max").unwrap().as_deref(),
            Some("212992")
        );
        assert!(by("net.core.rmem_max").skipped.is_some());
        assert_eq!(
            s.read("net.ipv4.tcp_congestion_control")
                .unwrap()
                .as_deref(),
            Some("bbr")
        );
        // On the host, globals are written too.
        let f = s.apply(&adr_profile(), false).unwrap();
        assert!(f.iter().all(|x| x.skipped.is_none()));
        assert_eq!(
            s.read("net.core.wmem_max").unwrap().as_deref(),
            Some("134217728")
        );
    }

    #[test]
    fn a_failed_write_restores_the_earlier_ones() {
        let (_d, mut s) = fake(&[
            ("net.core.somaxconn", "4096"),
            ("net.ipv4.tcp_max_syn_backlog", "128"),
            ("net.ipv4.tcp_congestion_control", "cubic"),
        ]);
        s.fail_writes_of = Some("net.ipv4.tcp_congestion_control");
        let profile: Vec<Setting> = adr_profile()
            .into_iter()
            .filter(|x| x.scope == Scope::PerNetns)
            .collect();
        let e = s.apply(&profile, true).unwrap_err();
        assert!(
            matches!(e, TuneError::RolledBack { restored: 2, .. }),
            "{e}"
        );
        assert_eq!(
            s.read("net.core.somaxconn").unwrap().as_deref(),
            Some("4096")
        );
        assert_eq!(
            s.read("net.ipv4.tcp_max_syn_backlog").unwrap().as_deref(),
            Some("128")
        );
    }
}
