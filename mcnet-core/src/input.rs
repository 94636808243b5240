//! Limits on what mcnet reads, checked before any parser runs: a size
//! ([`MAX_INPUT_BYTES`]) and a nesting depth ([`MAX_NESTING`]), so that a
//! huge file, a device such as `/dev/zero`, or a document of thousands of
//! nested levels is refused at once with a clear error instead of taking
//! memory or seconds.

use crate::diag::Code;
use std::io::Read;
use std::path::Path;

use crate::diag::Diagnostic;
use crate::{Error, Result};

/// The largest input read: 16 MiB (a topology of 10,000 networks or the
/// manifests of a large cluster are a few MiB).
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// The deepest nesting of mappings and sequences accepted (a topology or a
/// policy nests about 10 levels).
pub const MAX_NESTING: usize = 64;

/// Checks a text against the limits; `what` names it in the error.
pub fn check(what: &str, text: &str) -> Result<()> {
    let problem = if text.len() as u64 > MAX_INPUT_BYTES {
        Some(Diagnostic::new(
            Code::InputTooLarge,
            "",
            format!(
                "{what} is {} bytes, more than the {MAX_INPUT_BYTES} accepted",
                text.len()
            ),
        ))
    } else {
        let (depth, line) = nesting(text);
        (depth > MAX_NESTING).then(|| {
            Diagnostic::new(
                Code::InputTooDeep,
                format!("line {line}"),
                format!(
                    "{what} nests more than {MAX_NESTING} levels deep (at line {line}); no mcnet document needs that"
                ),
            )
        })
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(Error::Invalid {
            what: what.to_string(),
            problems: vec![p],
        }),
    }
}

/// Reads a file as UTF-8 text within [`MAX_INPUT_BYTES`], refusing
/// anything that is not a regular file (a device, a directory, a FIFO)
/// before reading it, then checks its nesting.
pub fn read_file(path: &Path) -> Result<String> {
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(Error::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(Error::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than the {MAX_INPUT_BYTES} bytes accepted"),
            ),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })?;
    check(&path.display().to_string(), &text)?;
    Ok(text)
}

/// The deepest nesting of a YAML or JSON text and the line where it is
/// reached, by one linear scan: flow brackets outside quotes and comments,
/// plus block levels (each deeper indentation, each `- ` of a compact
/// sequence). It may count a level too many in odd texts (an unbalanced
/// bracket in a plain scalar), never too few for the nesting a parser sees.
pub fn nesting(text: &str) -> (usize, usize) {
    let mut max = (0usize, 0usize);
    let mut flow = 0usize;
    let mut blocks: Vec<usize> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        if flow == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            while blocks.last().is_some_and(|&top| top >= indent) {
                blocks.pop();
            }
            blocks.push(indent);
            // A compact sequence (`- - a`, `- a: b`) opens a level per dash.
            let mut rest = trimmed;
            let mut col = indent;
            while let Some(after) = rest.strip_prefix("- ") {
                let inner = after.trim_start_matches(' ');
                col += rest.len() - inner.len();
                blocks.push(col);
                rest = inner;
            }
        }
        let (mut single, mut double, mut escaped) = (false, false, false);
        let mut prev_space = true;
        for c in line.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' if double => escaped = true,
                '"' if !single => double = !double,
                '\'' if !double => single = !single,
                '#' if !single && !double && prev_space => break,
                '[' | '{' if !single && !double => {
                    flow += 1;
                    let depth = blocks.len() + flow;
                    if depth > max.0 {
                        max = (depth, n + 1);
                    }
                }
                ']' | '}' if !single && !double => flow = flow.saturating_sub(1),
                _ => {}
            }
            prev_space = c == ' ' || c == '\t';
        }
        if blocks.len() > max.0 {
            max = (blocks.len(), n + 1);
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_documents_are_shallow() {
        let text = "a:\n  b:\n    - c: 1\n      d: [1, {e: 2}]\n  f: \"[[[[\" # [[[\n";
        let (depth, _) = nesting(text);
        assert!((3..=6).contains(&depth), "{depth}");
        assert!(check("t", text).is_ok());
    }

    #[test]
    fn deep_flow_and_block_nesting_is_refused_quickly() {
        let flow = "[".repeat(100_000);
        let started = std::time::Instant::now();
        let err = check("deep.yaml", &flow).unwrap_err().to_string();
        assert!(err.contains(Code::InputTooDeep.as_str()), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let block: String = (0..200)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert!(check("block.yaml", &block).is_err());
        let dashes = format!("{}x\n", "- ".repeat(100));
        assert!(check("dashes.yaml", &dashes).is_err());
    }

    #[test]
    fn devices_and_directories_are_not_read() {
        let e = read_file(Path::new("/dev/zero")).unwrap_err();
        let e = crate::error::Chain(&e).to_string();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(read_file(Path::new("/")).is_err());
    }
}
