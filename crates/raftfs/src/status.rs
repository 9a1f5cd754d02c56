//! Reading members' status over HTTP (`/status`), for `raftfs status`, local clusters,
//! benchmarks and tests.

/// Fetches and parses a member's `/status` (a small HTTP/1.0 client for tools and tests); `None`
/// if it does not answer with JSON.
pub async fn fetch(addr: &str) -> Option<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /status HTTP/1.0\r\nHost: raftfs\r\n\r\n")
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let body = response.split("\r\n\r\n").nth(1)?;
    serde_json::from_str(body).ok()
}
