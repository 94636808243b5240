//! `/metrics` over a minimal HTTP/1.1 responder, for the long-running commands.

use std::sync::Arc;

use mcnet_core::metrics::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `registry` at `/metrics` (Prometheus text format) on `l`, forever.
pub async fn serve(l: tokio::net::TcpListener, registry: Arc<Registry>) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            continue;
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut n = 0;
            while n < buf.len() {
                match s.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => {
                        n += k;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let req = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = match req.split_whitespace().nth(1) {
                Some("/metrics") => ("200 OK", mcnet_core::metrics::encode(&registry)),
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}
