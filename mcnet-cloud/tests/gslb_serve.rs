//! The GSLB's listeners under misbehaving clients, in process on loopback:
//! DNS over TCP closes idle and stalled connections and caps how many are
//! open while UDP keeps answering; `/metrics` answers 404, 405, 400 and 431,
//! times out a silent client and caps its connections too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use mcnet_cloud::gslb::{self, Config, Gslb, MetricsOptions, ServeOptions};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

fn gslb() -> Arc<Gslb> {
    Gslb::new(
        &Config::from_yaml(
            "records:\n  - name: api.example.test\n    endpoints:\n      - {name: a, address: 198.18.0.10}\n",
        )
        .unwrap(),
    )
}

async fn start(options: ServeOptions) -> (SocketAddr, Vec<tokio::task::JoinHandle<()>>) {
    gslb::serve_with(gslb(), "127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap()
}

fn query() -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 42;
    m.add_query(Query::query(
        Name::from_ascii("api.example.test.").unwrap(),
        RecordType::A,
    ));
    m.to_vec().unwrap()
}

/// How long until the server closes `s` (reads return 0 or fail), if
/// within `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut b = [0u8; 512];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t0.elapsed()), s.read(&mut b)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(t0.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One query over `s`; the answer's id.
async fn ask_tcp(s: &mut TcpStream) -> std::io::Result<u16> {
    let q = query();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).await?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await?;
    let mut out = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut out).await?;
    Ok(Message::from_vec(&out).unwrap().metadata.id)
}

async fn ask_udp(addr: SocketAddr) -> Option<u16> {
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.send_to(&query(), addr).await.unwrap();
    let mut b = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), u.recv_from(&mut b))
        .await
        .ok()?
        .ok()?;
    Some(Message::from_vec(&b[..n]).ok()?.metadata.id)
}

#[tokio::test]
async fn an_idle_tcp_connection_is_closed_after_the_idle_timeout() {
    let (addr, _t) = start(ServeOptions {
        tcp_idle_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let took = closed_within(&mut s, Duration::from_secs(5))
        .await
        .expect("an idle connection is held open");
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    // After a query, the idle time starts again.
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask_tcp(&mut s).await.unwrap(), 42);
    assert!(closed_within(&mut s, Duration::from_secs(5))
        .await
        .is_some());
}

#[tokio::test]
async fn a_query_that_stalls_is_closed_after_the_read_timeout() {
    let (addr, _t) = start(ServeOptions {
        tcp_idle_timeout: Duration::from_secs(30),
        tcp_read_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    })
    .await;
    // Half a length prefix, then nothing.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0]).await.unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5))
            .await
            .is_some(),
        "a stalled query holds the connection"
    );
    // A length, then part of the query.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0, 40, 1, 2, 3]).await.unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5))
        .await
        .is_some());
}

#[tokio::test]
async fn at_the_cap_new_connections_are_closed_at_once_and_udp_answers() {
    let (addr, _t) = start(ServeOptions {
        max_tcp_connections: 4,
        tcp_idle_timeout: Duration::from_secs(30),
        ..ServeOptions::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(ask_tcp(&mut s).await.unwrap(), 42);
        held.push(s);
    }
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut fifth, Duration::from_secs(1))
            .await
            .is_some(),
        "the connection over the cap is not closed promptly"
    );
    assert_eq!(ask_udp(addr).await, Some(42), "UDP answers at the cap");
    for s in &mut held {
        assert_eq!(ask_tcp(s).await.unwrap(), 42, "the open ones are served");
    }
    // One closes: its slot is free again.
    drop(held.pop());
    let t0 = Instant::now();
    loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if ask_tcp(&mut s).await.is_ok() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the slot never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metrics(options: MetricsOptions) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let mut r = Registry::default();
    gslb().register(&mut r);
    tokio::spawn(gslb::serve_metrics(l, Arc::new(r), options));
    addr
}

/// Sends `req` and reads the whole answer (the server closes).
async fn exchange(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the metrics server never closed")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_metrics_listener_answers_by_path_method_and_shape() {
    let addr = metrics(MetricsOptions::default()).await;
    let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.contains("mcnet_gslb_endpoint_healthy"), "{ok}");
    for (req, status) in [
        (&b"GET /other HTTP/1.1\r\n\r\n"[..], "404"),
        (b"GET /metricsX HTTP/1.1\r\n\r\n", "404"),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", "405"),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            "400",
        ),
        (b"hello there\r\n\r\n", "400"),
    ] {
        let out = exchange(addr, req).await;
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status} ")),
            "{}: {out}",
            String::from_utf8_lossy(req)
        );
    }
    let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    let out = exchange(addr, big.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
}

#[tokio::test]
async fn the_metrics_listener_times_out_silent_clients_and_caps_connections() {
    let addr = metrics(MetricsOptions {
        max_connections: 2,
        read_timeout: Duration::from_millis(300),
        ..MetricsOptions::default()
    })
    .await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent client is held forever");
    assert!(took >= Duration::from_millis(250), "{took:?}");

    let addr = metrics(MetricsOptions {
        max_connections: 2,
        read_timeout: Duration::from_secs(30),
        ..MetricsOptions::default()
    })
    .await;
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut c, Duration::from_secs(1))
            .await
            .is_some(),
        "the connection over the cap is not closed promptly"
    );
}
