//! TCP behaviours for the tests, one per listener name: a byte echo, a
//! count of what arrived before the client half-closed, a guest that never
//! reads nor writes, one that writes without end, one that spins, one
//! that panics, and a line relay through an outbound connection; and in
//! hibernate mode, lines counted in host-kept state, with a subscription.

use squall_sdk::tcp::{self, ReadError, TcpConnection, TcpEvents, TcpStream};
use squall_sdk::{Request, Router, pubsub};

fn app() -> Router {
    Router::new()
        .get("/", |_req| async { "tcp guest" })
        .post("/publish", |mut req: Request| async move {
            let body = req.bytes().await;
            match pubsub::publish("news", body) {
                Ok(id) => id.to_string(),
                Err(err) => err.to_string(),
            }
        })
        .tcp(serve)
        .tcp_events(
            TcpEvents::new()
                .on_open(|client: TcpConnection| async move {
                    let _ = client.set_state("0");
                    let _ = client.send(format!("hello #{}\n", client.id()));
                })
                .on_frame(counted_line)
                .on_close(|client: TcpConnection| async move {
                    let _ = pubsub::publish("news", format!("left #{}\n", client.id()));
                }),
        )
}

/// Hibernate mode: each line in a fresh instance, counted in the state
/// the host keeps; `/sub` subscribes to the news, `/quit` says bye and
/// closes.
async fn counted_line(client: TcpConnection, line: Vec<u8>) {
    let line = String::from_utf8_lossy(&line).trim_end().to_owned();
    match line.as_str() {
        "/sub" => {
            let answer = match client.subscribe("news") {
                Ok(()) => "subscribed\n".to_owned(),
                Err(err) => format!("{err}\n"),
            };
            let _ = client.send(answer);
        }
        "/quit" => {
            let _ = client.send("bye\n");
            client.close();
        }
        _ => {
            let seen: u64 = String::from_utf8_lossy(&client.state())
                .parse()
                .unwrap_or(0);
            let _ = client.set_state((seen + 1).to_string());
            let _ = client.send(format!("{}: {line}\n", seen + 1));
        }
    }
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
