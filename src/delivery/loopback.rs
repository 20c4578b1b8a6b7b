//! A loopback HTTP/1.1 server for the delivery module's tests: one request per
//! connection, read whole (the head, then as much body as it announces), answered with
//! what a handler makes of its path.

use std::future::Future;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves on `127.0.0.1` (a free port) until the test's runtime ends; returns its base
/// URL (`http://127.0.0.1:<port>`). `answer` gets each request's path and returns the
/// whole response to write back, status line to body.
pub(super) async fn serve<F, Fut>(answer: F) -> String
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answer = std::sync::Arc::clone(&answer);
            tokio::spawn(async move {
                let Some(path) = read_request(&mut stream).await else { return };
                let response = answer(path).await;
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    base
}

/// Reads one request whole and returns its path; `None` if the connection ends first.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, length) = loop {
        let Ok(n @ 1..) = stream.read(&mut chunk).await else { return None };
        request.extend_from_slice(&chunk[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            break (end + 4, length);
        }
    };
    while request.len() < head_end + length {
        let Ok(n @ 1..) = stream.read(&mut chunk).await else { return None };
        request.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&request[..head_end]).lines().next().unwrap_or("").to_string();
    Some(line.split(' ').nth(1).unwrap_or("").to_string())
}
