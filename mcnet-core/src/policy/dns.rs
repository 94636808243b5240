//! DNS L7 rules as Cilium reads them: `matchName` is one name and
//! `matchPattern` a name where `*` stands for any run of name characters
//! within one label (a lone `*` for every name). Both compare the fully
//! qualified, lower-case name.

use regex::Regex;

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

fn check_chars(what: &str, s: &str, extra: &[u8]) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if s.len() > 255 {
        return Err(format!("{what} `{s}` is longer than 255 characters"));
    }
    match s.bytes().find(|b| {
        !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') || extra.contains(b))
    }) {
        Some(b) => Err(format!(
            "{what} `{s}` holds `{}`, which is not a DNS name character",
            b as char
        )),
        None => Ok(()),
    }
}

/// The anchored regex of a `matchName`.
pub fn name_regex(name: &str) -> Result<Regex, String> {
    check_chars("matchName", name, &[])?;
    Regex::new(&format!("^{}$", regex::escape(&to_fqdn(name)))).map_err(|e| e.to_string())
}

/// The anchored regex of a `matchPattern`.
pub fn pattern_regex(pattern: &str) -> Result<Regex, String> {
    check_chars("matchPattern", pattern, b"*")?;
    let p = pattern.trim();
    if p == "*" {
        // Every name: one or more labels, or the root.
        return Regex::new(&format!(r"^(?:(?:{NAME_CHARS}+\.)+|\.)$")).map_err(|e| e.to_string());
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
    Regex::new(&re).map_err(|e| e.to_string())
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
