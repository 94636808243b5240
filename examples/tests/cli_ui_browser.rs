//! `mcnet ui` in a real browser: Debian's Chromium, headless, driven over
//! the DevTools protocol. The page loads from the binary with no console
//! error and no request to any other origin, shows adr-003's three
//! clusters, follows its diagram's links, shows a denied flow appended to
//! the flows file within two seconds, and explains it when clicked.
//! Screenshots go to `target/mcnet-ui/`.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

mod common;
use common::{have, listening, start_server, TempDir};

const ADR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");
const PROD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/adr-003-production.yaml"
);

/// Headless Chromium in its own process group, killed with all its
/// helper processes on drop.
struct Browser {
    child: std::process::Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile, every host name but loopback
    /// unresolvable and its background services off, so that nothing it
    /// does leaves this machine; returns it and its DevTools WebSocket URL.
    fn start() -> (Browser, String) {
        let profile = TempDir::new("chromium");
        let child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--no-pings",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.0.display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromium");
        let b = Browser {
            child,
            _profile: profile,
        };
        // Chromium writes its DevTools port and path here once it listens.
        let active = b._profile.0.join("DevToolsActivePort");
        let t0 = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&active) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return (b, format!("ws://127.0.0.1:{port}{path}"));
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole process group: the browser and its renderers.
        let pgid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools protocol client over one page's flattened session.
struct Cdp {
    ws: WebSocket<TcpStream>,
    next: u64,
    session: Option<String>,
    /// Every event received, in order.
    events: Vec<Value>,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let addr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let stream = TcpStream::connect(&addr).unwrap();
        // The handshake may take a while on a busy machine; reads after it
        // time out quickly so that events can be polled.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (ws, _) = tungstenite::client(url, stream).expect("DevTools handshake");
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Cdp {
            ws,
            next: 0,
            session: None,
            events: Vec::new(),
        }
    }

    /// Reads one message, or None when nothing arrived within the read timeout.
    fn read(&mut self) -> Option<Value> {
        match self.ws.read() {
            Ok(Message::Text(t)) => Some(serde_json::from_str(&t).unwrap()),
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                None
            }
            Err(e) => panic!("DevTools connection: {e}"),
        }
    }

    /// Calls `method` and returns its result; events that arrive meanwhile are kept.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::Text(msg.to_string().into())).unwrap();
        let t0 = Instant::now();
        loop {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "{method}: no answer in 30 s"
            );
            let Some(m) = self.read() else { continue };
            if m["id"] == json!(id) {
                if let Some(e) = m.get("error") {
                    panic!("{method}: {e}");
                }
                return m["result"].clone();
            }
            if m.get("method").is_some() {
                self.events.push(m);
            }
        }
    }

    /// The value of a JavaScript expression in the page (promises awaited).
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is true; panics with `what` after `limit`.
    /// An expression that throws (the page is still loading) is not yet true.
    fn wait_until(&mut self, expr: &str, limit: Duration, what: &str) -> Duration {
        let t0 = Instant::now();
        loop {
            let r = self.call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            );
            if r.get("exceptionDetails").is_none() && r["result"]["value"] == json!(true) {
                return t0.elapsed();
            }
            assert!(t0.elapsed() < limit, "{what}: not within {limit:?}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// A real mouse click (pressed and released) at the middle of the
    /// first element `selector` matches, scrolled into view.
    fn click(&mut self, selector: &str) {
        let at = self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
             e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            sel = json!(selector)
        ));
        let (x, y) = (
            at[0]
                .as_f64()
                .unwrap_or_else(|| panic!("nothing matches {selector}")),
            at[1].as_f64().unwrap(),
        );
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    fn screenshot(&mut self, to: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(to, png).unwrap();
    }

    /// Collects the events that arrive within `d`.
    fn drain(&mut self, d: Duration) {
        let t0 = Instant::now();
        while t0.elapsed() < d {
            if let Some(m) = self.read() {
                if m.get("method").is_some() {
                    self.events.push(m);
                }
            }
        }
    }

    /// Console errors, uncaught exceptions and error log entries.
    fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.consoleAPICalled") => {
                    matches!(e["params"]["type"].as_str(), Some("error" | "assert"))
                }
                Some("Runtime.exceptionThrown") => true,
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .map(|e| e["params"].to_string())
            .collect()
    }

    /// Every URL the page requested.
    fn requests(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_string))
            .collect()
    }
}

fn shots() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/mcnet-ui");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn in_headless_chromium_the_page_shows_the_clusters_live_flows_and_why() {
    if !have("chromium") {
        mcnet_core::testing::skip("chromium is not installed (scripts/setup.sh installs it)");
        return;
    }
    let dir = TempDir::new("ui-browser");
    let flows = dir.path("flows.jsonl");
    std::fs::write(&flows, "").unwrap();
    // With a token, as on a shared host: the page passes it on.
    let (_ui, [port]) = start_server(
        "mcnet-ui",
        |[port]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcnet"));
            cmd.args(["ui", ADR, "--listen", &format!("127.0.0.1:{port}")])
                .args([
                    "--manifests",
                    &format!("eks-prod={PROD}"),
                    "--flows",
                    &flows,
                ])
                .args(["--token", "t0ken"])
                .stdout(Stdio::null());
            cmd
        },
        |[port]| listening(port),
    );
    let origin = format!("http://127.0.0.1:{port}");

    let (_browser, url) = Browser::start();
    let mut cdp = Cdp::connect(&url);
    let target = cdp.call("Target.createTarget", json!({"url": "about:blank"}));
    let attached = cdp.call(
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
    for domain in ["Page", "Runtime", "Log", "Network"] {
        cdp.call(&format!("{domain}.enable"), json!({}));
    }
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1280, "height": 1400, "deviceScaleFactor": 1, "mobile": false}),
    );
    cdp.call(
        "Page.navigate",
        json!({"url": format!("{origin}/?token=t0ken")}),
    );

    // The three clusters, from the API, as buttons and diagram links.
    cdp.wait_until(
        &format!(
            "location.origin === {} && document.getElementById('status').textContent.startsWith('3 clusters')",
            json!(origin)
        ),
        Duration::from_secs(20),
        "the page loaded its topology",
    );
    let clusters =
        cdp.eval("[...document.querySelectorAll('#clusters button')].map(b => b.dataset.cluster)");
    assert_eq!(clusters, json!(["eks-prod", "aks-prod", "gke-prod"]));
    let links =
        cdp.eval("[...document.querySelectorAll('#diagram text.link')].map(t => t.dataset.target)");
    for want in [
        "cluster/eks-prod",
        "cluster/aks-prod",
        "cluster/gke-prod",
        "vxc/vxc-aws-dx",
        "mcr/multicloud-mcr",
    ] {
        assert!(
            links.as_array().unwrap().contains(&json!(want)),
            "{want} not linked: {links}"
        );
    }

    // Click a cloud link in the diagram: what it carries and what its loss disconnects.
    cdp.click("#diagram text[data-target='vxc/vxc-aws-dx']");
    cdp.wait_until(
        "document.getElementById('why').textContent.includes('single point of failure')",
        Duration::from_secs(10),
        "the VXC's failure analysis",
    );
    let why = cdp.eval("document.getElementById('why').textContent");
    assert!(
        why.as_str().unwrap().contains("eks-prod ↔ gke-prod"),
        "{why}"
    );

    // Click the cluster in the diagram: its matrix, each cell explained.
    cdp.click("#diagram text[data-target='cluster/eks-prod']");
    cdp.wait_until(
        "document.querySelectorAll('#cluster td.cell.deny').length > 0",
        Duration::from_secs(60),
        "eks-prod's matrix",
    );
    cdp.click("#cluster td.cell.deny");
    cdp.wait_until(
        "document.getElementById('why').textContent.includes('stopped at')",
        Duration::from_secs(5),
        "a denied cell's explanation",
    );
    cdp.screenshot(&shots().join("matrix.png"));

    // A denied flow appended to the file is in the table within two seconds.
    let denied = r#"{"time_ns":77,"type":"L3_L4","verdict":"deny","hubble_verdict":"DROPPED","reason":"drop-no-rule","src":"198.18.0.30","dst":"198.18.0.20","sport":42138,"dport":8080,"protocol":"TCP","direction":"egress","src_identity":257,"dst_identity":256,"is_reply":false,"l7":false,"ifindex":4}"#;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&flows)
        .unwrap();
    writeln!(f, "{denied}").unwrap();
    drop(f);
    let took = cdp.wait_until(
        "[...document.querySelectorAll('#flows tbody tr')].some(r => r.textContent.includes('production/batch'))",
        Duration::from_secs(2),
        "the appended flow in the table",
    );
    eprintln!("the appended flow was in the table after {took:?}");
    cdp.click("#flows tbody tr");
    cdp.wait_until(
        "document.getElementById('why').textContent.includes('default-deny-all')",
        Duration::from_secs(5),
        "the flow's explanation",
    );
    // The verdict filter hides it when only allowed flows are wanted.
    cdp.eval("(() => { const s = document.querySelector('#filters select'); s.value = 'allow'; s.dispatchEvent(new Event('input', {bubbles: true})); })()");
    assert_eq!(
        cdp.eval("document.querySelector('#flows tbody tr').hidden"),
        json!(true)
    );
    cdp.eval("(() => { const s = document.querySelector('#filters select'); s.value = ''; s.dispatchEvent(new Event('input', {bubbles: true})); })()");
    cdp.screenshot(&shots().join("flow.png"));

    cdp.drain(Duration::from_millis(300));
    assert_eq!(cdp.errors(), Vec::<String>::new(), "console errors");
    let requests = cdp.requests();
    assert!(
        requests.iter().any(|u| u.contains("/api/flows")),
        "{requests:?}"
    );
    for u in &requests {
        assert!(
            u.starts_with(&origin) || u.starts_with("data:"),
            "the page fetched {u}, outside its own origin"
        );
    }
}
