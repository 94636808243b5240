//! Shared by the CLI tests: running `mcnet` and writing input files.

#![allow(dead_code)]

use std::process::Command;

/// Runs `mcnet` with `args`: (exit code, stdout, stderr).
pub fn mcnet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .args(args)
        .output()
        .expect("run mcnet");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `text` to a file `name` in this test process's temporary directory.
pub fn temp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("mcnet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

/// A child process killed (and reaped) on drop, even when the test fails.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory under the temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// A fresh, empty directory named after `tag` and this process.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("mcnet-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// A path inside it, as a string.
    pub fn path(&self, s: &str) -> String {
        self.0.join(s).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    // Never the same port twice in one test process: tests run in parallel,
    // and the kernel may hand a just-released port out again.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The UDP side too, for servers that bind both (DNS).
        if !given.contains(&port) && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
}

/// Starts a server on `N` fresh ports and waits until `ready(ports)`.
///
/// A port chosen by [`free_port`] can still be taken by another socket
/// before the server binds it; a server that exits before it is ready is
/// started again on fresh ports (three attempts). Its stderr goes to a file
/// that the final panic message quotes.
pub fn start_server<const N: usize>(
    what: &str,
    build: impl Fn([u16; N]) -> Command,
    ready: impl Fn([u16; N]) -> bool,
) -> (Proc, [u16; N]) {
    use std::time::{Duration, Instant};
    let mut last = String::new();
    for attempt in 0..3 {
        let ports = [(); N].map(|_| free_port());
        let log = std::env::temp_dir().join(format!(
            "mcnet-cli-{}-{what}-{}-{attempt}.stderr",
            std::process::id(),
            ports.first().copied().unwrap_or(0)
        ));
        let mut cmd = build(ports);
        cmd.stderr(std::fs::File::create(&log).unwrap());
        let mut p = Proc(cmd.spawn().unwrap_or_else(|e| panic!("start {what}: {e}")));
        let t0 = Instant::now();
        loop {
            if ready(ports) {
                return (p, ports);
            }
            if let Ok(Some(status)) = p.0.try_wait() {
                last = format!(
                    "{what} exited ({status}) before it was ready: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{what} was not ready after 30 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("{last}")
}

/// Whether something accepts TCP connections on loopback `port`.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Whether a program is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Waits (at most 20 s) until something listens on `addr`.
pub fn wait_for(addr: &str) {
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "{addr} never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Asserts that `promtool check metrics` accepts an exposition (when promtool is installed).
pub fn promtool_accepts(exposition: &str) {
    use std::io::Write;
    if !have("promtool") {
        mcnet_core::testing::skip("promtool is not installed: the metrics format is not checked");
        return;
    }
    let mut c = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
