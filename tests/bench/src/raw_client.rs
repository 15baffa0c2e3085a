//! A bare-hands client for the benchmarks: WebSocket handshakes and frames
//! over a plain TCP stream, and one-shot HTTP POSTs. Cheap enough to open
//! thousands of at once, and no client library's buffers in the figures.

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Open a WebSocket on `path`.
pub(crate) async fn handshake(address: &str, path: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(address).await.context("connect")?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        bail!("upgrade refused: {}", String::from_utf8_lossy(&head));
    }
    Ok(stream)
}

/// A masked text frame, as a client sends it (short messages only).
pub(crate) async fn send_text(stream: &mut TcpStream, text: &str) -> Result<()> {
    let payload = text.as_bytes();
    anyhow::ensure!(payload.len() < 126, "short messages only");
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await?;
    Ok(())
}

/// One server frame's payload (server frames are not masked); an error for
/// a close frame.
pub(crate) async fn read_frame(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await?;
    if head[0] & 0x0f == 0x8 {
        bail!("closed");
    }
    let length = match head[1] & 0x7f {
        126 => u64::from(stream.read_u16().await?),
        127 => stream.read_u64().await?,
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(length)?];
    stream.read_exact(&mut payload).await?;
    Ok(payload)
}

/// POST `body` to `path` on a new connection; the response body of a 200.
pub(crate) async fn http_post(address: &str, path: &str, body: &str) -> Result<String> {
    http_post_to(address, "bench", path, body).await
}

/// `http_post` with `host` as the `Host` header.
pub(crate) async fn http_post_to(
    address: &str,
    host: &str,
    path: &str,
    body: &str,
) -> Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").context("no response head")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    Ok(body.to_owned())
}
