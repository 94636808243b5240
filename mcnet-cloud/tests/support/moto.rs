//! moto's server on a free loopback port, stopped on drop. `None` (and a
//! note on stderr) where moto_server is not installed; `scripts/test.sh`
//! installs it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The running server; killed when dropped.
pub struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts moto_server; returns it with its URL.
pub fn moto() -> Option<(Moto, String)> {
    if Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        mcnet_core::testing::skip("moto_server is not installed");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((Moto(child), format!("http://127.0.0.1:{port}")))
}

/// Sets the credentials and region the standard chain reads, moto's test
/// values (the same in every test, so setting them twice is harmless).
pub fn test_credentials() {
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ] {
        std::env::set_var(k, v);
    }
}
