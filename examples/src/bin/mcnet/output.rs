//! Output helpers shared by the subcommands.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// How a command prints its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// Reads an input file, naming it in the error: a regular UTF-8 file of at
/// most [`mcnet_core::input::MAX_INPUT_BYTES`], nested at most
/// [`mcnet_core::input::MAX_NESTING`] levels (checked before parsing).
pub fn read(path: &str) -> anyhow::Result<String> {
    Ok(mcnet_core::input::read_file(Path::new(path))?)
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Writes a file atomically: a temporary file in the same directory, then a rename.
pub fn write_atomic(path: &str, contents: &[u8]) -> anyhow::Result<()> {
    let p = Path::new(path);
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let name = p
        .file_name()
        .with_context(|| format!("`{path}` is not a file path"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, p)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write `{path}`"))
}
