//! TCP behaviours for the tests, one per listener name: a byte echo, a
//! count of what arrived before the client half-closed, a guest that never
//! reads nor writes, one that writes without end, one that spins, one
//! that panics, and a line relay through an outbound connection.

use squall_sdk::Router;
use squall_sdk::tcp::{self, ReadError, TcpStream};

fn app() -> Router {
    Router::new()
        .get("/", |_req| async { "tcp guest" })
        .tcp(serve)
}

async fn serve(stream: TcpStream) -> Result<(), ReadError> {
    match stream.info().listener.as_str() {
        "echo" => echo(stream).await,
        "count" => count(stream).await,
        "silent" => silent(stream).await,
        "flood" => flood(stream).await,
        "spin" => spin(),
        "panic" => panic!("this guest fails on purpose"),
        "relay" => relay(stream).await,
        _ => Ok(()),
    }
}

/// Every byte back as it arrives; half-closes when the client does.
async fn echo(mut stream: TcpStream) -> Result<(), ReadError> {
    while let Some(bytes) = stream.read().await {
        if stream.write(bytes).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// The first line names `host:port`; each line after goes there, and the
/// peer's answer line comes back.
async fn relay(mut stream: TcpStream) -> Result<(), ReadError> {
    let target = stream.read_until(b"\n", 512).await?;
    let target = String::from_utf8_lossy(&target).trim().to_owned();
    let (host, port) = target.rsplit_once(':').unwrap_or((&target, "0"));
    let mut peer = match tcp::connect(host, port.parse().unwrap_or(0)).await {
        Ok(peer) => peer,
        Err(refused) => {
            let _ = stream.write(format!("refused: {refused}\n")).await;
            return Ok(());
        }
    };
    let _ = stream.write("connected\n").await;
    loop {
        let line = stream.read_until(b"\n", 4096).await?;
        if peer.write(line).await.is_err() {
            return Ok(());
        }
        let answer = peer.read_until(b"\n", 4096).await?;
        if stream.write(answer).await.is_err() {
            return Ok(());
        }
    }
}

/// Read to the client's half-close, then say how many bytes came.
async fn count(stream: TcpStream) -> Result<(), ReadError> {
    let (mut reader, writer) = stream.split();
    let mut total = 0usize;
    while let Some(bytes) = reader.read().await {
        total += bytes.len();
    }
    let _ = writer.write(format!("{total} bytes\n")).await;
    Ok(())
}

/// Waits far longer than any idle timeout, touching nothing.
async fn silent(_stream: TcpStream) -> Result<(), ReadError> {
    squall_sdk::sleep(std::time::Duration::from_secs(3600)).await;
    Ok(())
}

/// Writes 64 KiB chunks until the client goes away.
async fn flood(mut stream: TcpStream) -> Result<(), ReadError> {
    let chunk = vec![b'x'; 64 * 1024];
    while stream.write(chunk.clone()).await.is_ok() {}
    Ok(())
}

#[allow(clippy::empty_loop)]
fn spin() -> Result<(), ReadError> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

squall_sdk::export!(app);
