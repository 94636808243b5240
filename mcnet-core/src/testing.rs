//! Support for mcnet's own tests, public so that every crate's tests and
//! benches share it; not part of the SDK's stable surface.

/// The environment variable that turns a skipped test into a failure. CI
/// sets it (`.ci/run`), so that a machine without root or a tool fails
/// instead of showing green.
pub const REQUIRE_ALL: &str = "MCNET_REQUIRE_ALL";

/// Reports that a test cannot run here (`why`: what it needs). Under
/// `MCNET_REQUIRE_ALL=1` this panics, failing the test; otherwise it
/// prints the reason and the caller returns.
pub fn skip(why: &str) {
    if std::env::var(REQUIRE_ALL).is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("{REQUIRE_ALL} is set, and this test cannot run here: {why}");
    }
    eprintln!("skipped: {why}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn skip_fails_when_everything_is_required() {
        // Runs in a child so that the variable does not leak into other tests.
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args(["--exact", "testing::tests::skip_probe", "--include-ignored"])
            .env(super::REQUIRE_ALL, "1")
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "skip() passed under MCNET_REQUIRE_ALL=1"
        );
    }

    #[test]
    #[ignore = "run by skip_fails_when_everything_is_required"]
    fn skip_probe() {
        super::skip("nothing; this only probes skip()");
    }
}
