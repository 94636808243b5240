//! DNS L7 rules as Cilium reads them: `matchName` is one name and
//! `matchPattern` a name where `*` stands for any run of name characters
//! within one label (a lone `*` for every name). Both compare the fully
//! qualified, lower-case name.

use regex::Regex;

/// Why a `matchName` or `matchPattern` is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsRuleError {
    /// Nothing was given.
    #[error("{field} is empty")]
    Empty {
        /// `matchName` or `matchPattern`.
        field: &'static str,
    },
    /// Longer than a DNS name can be.
    #[error("{field} `{value}` is longer than 255 characters")]
    TooLong {
        /// `matchName` or `matchPattern`.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// A character no DNS name holds.
    #[error("{field} `{value}` holds `{ch}`, which is not a DNS name character")]
    BadChar {
        /// `matchName` or `matchPattern`.
        field: &'static str,
        /// The value.
        value: String,
        /// The character.
        ch: char,
    },
}

/// The characters a DNS name may hold in a rule.
const NAME_CHARS: &str = "[-a-zA-Z0-9_]";

/// A name as rules compare it: lower case, with the trailing dot.
pub fn to_fqdn(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

fn check_chars(field: &'static str, s: &str, extra: &[u8]) -> Result<(), DnsRuleError> {
    if s.is_empty() {
        return Err(DnsRuleError::Empty { field });
    }
    if s.len() > 255 {
        return Err(DnsRuleError::TooLong {
            field,
            value: s.to_string(),
        });
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.')
            || (c.is_ascii() && extra.contains(&(c as u8)))
    };
    match s.chars().find(|&c| !allowed(c)) {
        Some(ch) => Err(DnsRuleError::BadChar {
            field,
            value: s.to_string(),
            ch,
        }),
        None => Ok(()),
    }
}

/// Compiles a regex built from escaped literals and fixed classes only.
fn compile(re: &str) -> Regex {
    Regex::new(re).unwrap_or_else(|e| unreachable!("the DNS rule regex `{re}` is malformed: {e}"))
}

/// The anchored regex of a `matchName`.
pub fn name_regex(name: &str) -> Result<Regex, DnsRuleError> {
    check_chars("matchName", name, &[])?;
    Ok(compile(&format!("^{}$", regex::escape(&to_fqdn(name)))))
}

/// The anchored regex of a `matchPattern`.
pub fn pattern_regex(pattern: &str) -> Result<Regex, DnsRuleError> {
    check_chars("matchPattern", pattern, b"*")?;
    let p = pattern.trim();
    if p == "*" {
        // Every name: one or more labels, or the root.
        return Ok(compile(&format!(r"^(?:(?:{NAME_CHARS}+\.)+|\.)$")));
    }
    let fqdn = to_fqdn(p);
    let mut re = String::from("^");
    for c in fqdn.chars() {
        match c {
            '*' => {
                re.push_str(NAME_CHARS);
                re.push('*');
            }
            '.' => re.push_str(r"\."),
            c => re.push(c),
        }
    }
    re.push('$');
    Ok(compile(&re))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_in_any_case() {
        let r = name_regex("api.Example.com").unwrap();
        assert!(r.is_match(&to_fqdn("API.example.com.")));
        assert!(!r.is_match(&to_fqdn("xapi.example.com")));
        assert!(!r.is_match(&to_fqdn("api.example.com.evil")));
    }

    #[test]
    fn a_star_stays_within_its_label() {
        let r = pattern_regex("*.example.com").unwrap();
        assert!(r.is_match(&to_fqdn("api.example.com")));
        assert!(!r.is_match(&to_fqdn("a.b.example.com")));
        assert!(r.is_match(&to_fqdn(".example.com")));
        let all = pattern_regex("*").unwrap();
        assert!(all.is_match(&to_fqdn("a.b.c")));
        assert!(all.is_match("."));
        let mid = pattern_regex("sub*.example.com").unwrap();
        assert!(mid.is_match(&to_fqdn("sub-1.example.com")));
        assert!(!mid.is_match(&to_fqdn("xsub.example.com")));
    }

    #[test]
    fn bad_characters_are_refused() {
        assert!(name_regex("a b.com").is_err());
        assert!(pattern_regex("(.*)").is_err());
        assert!(name_regex("").is_err());
    }
}
