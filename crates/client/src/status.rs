//! A member's `/status` over HTTP/1.0 (the status address, not the client port): the one reader
//! of it for the tools, the fault run and the tests.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// GETs and parses a member's `/status`; `None` if it does not answer with JSON. No timeout of
/// its own: callers bound it as their purpose needs.
pub async fn fetch(addr: &str) -> Option<serde_json::Value> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /status HTTP/1.0\r\nHost: raftfs\r\n\r\n")
        .await
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8_lossy(&response);
    let body = text.split("\r\n\r\n").nth(1)?;
    serde_json::from_str(body).ok()
}
