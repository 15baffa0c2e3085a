//! Plain TCP through the real host (`[[app.NAME.tcp]]`): real sockets
//! against the tcp test guest and the tcp-chat example. Every limit has a
//! hostile connection hitting it while a neighbour's echo keeps working.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::{Server, component, refused_manifest, repo};

/// The tcp test guest with one listener per behaviour, each given `extra`
/// settings by name (`app` for the app's own table).
fn tcp_guest(extra: &[(&str, &str)]) -> Server {
    let app_settings = extra
        .iter()
        .filter(|(name, _)| *name == "app")
        .map(|(_, settings)| *settings)
        .collect::<Vec<_>>()
        .join("\n");
    let mut manifest = format!(
        "[app.tcp]\nsource = {:?}\npubsub = [\"news\"]\n{app_settings}\n",
        component("tests/guests/tcp").display().to_string()
    );
    for name in [
        "echo", "count", "silent", "flood", "spin", "panic", "relay", "lines",
    ] {
        let settings = extra
            .iter()
            .filter(|(listener, _)| *listener == name)
            .map(|(_, settings)| *settings)
            .collect::<Vec<_>>()
            .join("\n");
        let mode = if name == "lines" { "hibernate" } else { "live" };
        manifest.push_str(&format!(
            "\n[[app.tcp.tcp]]\nlisten = \"127.0.0.1:0\"\nname = \"{name}\"\nmode = \"{mode}\"\n{settings}\n"
        ));
    }
    Server::with_manifest(&manifest)
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// A neighbour's connection still echoes, promptly.
fn echo_works(server: &Server) {
    let mut stream = connect(server.tcp_address("echo"));
    stream.write_all(b"still here").unwrap();
    let mut answer = [0u8; 10];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"still here");
}

/// Read until the server closes; what came, or the error that came instead.
fn read_to_close(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all)?;
    Ok(all)
}

#[test]
fn bytes_echo_back_and_a_half_close_is_seen() {
    let server = tcp_guest(&[]);
    let mut stream = connect(server.tcp_address("echo"));
    for message in [&b"hello"[..], &[0u8, 255, 10, 13], &vec![7u8; 200_000]] {
        stream.write_all(message).unwrap();
        let mut answer = vec![0u8; message.len()];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(answer, message);
    }
    // The client half-closes: the echo ends its side too.
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut stream).unwrap(), b"");

    // Reading to the client's half-close, then answering on the open side.
    let mut stream = connect(server.tcp_address("count"));
    stream.write_all(&vec![1u8; 300_000]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut stream).unwrap(), b"300000 bytes\n");
}

#[test]
fn a_client_that_does_not_read_holds_its_guest_back_and_the_host_buffers_nothing() {
    let server = tcp_guest(&[]);
    let before = resident_kib(server.pid());
    // The guest writes without end; the client never reads.
    let flooded = connect(server.tcp_address("flood"));
    // This client sends without end and never reads its echo: the echo
    // stalls, then the guest stops reading, then the client's writes stall.
    let mut sender = connect(server.tcp_address("echo"));
    sender
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let chunk = vec![b'y'; 64 * 1024];
    let mut sent = 0usize;
    let stalled = loop {
        match sender.write(&chunk) {
            Ok(count) => sent += count,
            Err(err) => break err,
        }
        assert!(sent < 512 << 20, "512 MiB went in without pushing back");
    };
    assert!(
        matches!(stalled.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{stalled}"
    );
    // What is held is in the kernel's socket buffers, not the host's heap.
    std::thread::sleep(Duration::from_secs(1));
    let grown = resident_kib(server.pid()).saturating_sub(before);
    assert!(grown < 32 << 10, "the host grew by {grown} KiB");
    echo_works(&server);
    drop((flooded, sender));
}

#[test]
fn a_silent_connection_is_closed_after_its_idle_timeout() {
    let server = tcp_guest(&[("silent", "idle_timeout = \"1s\"")]);
    let started = Instant::now();
    let mut stream = connect(server.tcp_address("silent"));
    assert_eq!(read_to_close(&mut stream).unwrap(), b"");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
    echo_works(&server);
}

#[test]
fn a_spinning_connection_is_stopped_by_its_cpu_time() {
    let server = tcp_guest(&[("spin", "cpu_time = \"200ms\"")]);
    let mut stream = connect(server.tcp_address("spin"));
    // Closed, cleanly or with a reset.
    let _ = read_to_close(&mut stream);
    echo_works(&server);
    server.expect_log("ran guest code for longer than its cpu_time limit");
}

#[test]
fn waiting_for_the_next_line_is_not_charged_as_cpu_time() {
    // 40 echoes 30 ms apart span 120 ticks of 10 ms; the guest runs for a
    // few microseconds each. Charging a tick per wake-up would close the
    // connection after about 10.
    let server = tcp_guest(&[("echo", "cpu_time = \"100ms\"")]);
    let mut stream = connect(server.tcp_address("echo"));
    for round in 0..40 {
        let message = format!("line {round:02}\n");
        stream.write_all(message.as_bytes()).unwrap();
        let mut answer = vec![0u8; message.len()];
        stream
            .read_exact(&mut answer)
            .unwrap_or_else(|err| panic!("echo {round} failed: {err}"));
        assert_eq!(answer, message.as_bytes());
        std::thread::sleep(Duration::from_millis(30));
    }
    let logs = server.logs();
    assert!(!logs.contains("cpu_time"), "{logs}");
}

#[test]
fn a_panicking_guest_closes_only_its_own_connection() {
    let server = tcp_guest(&[]);
    let mut neighbour = connect(server.tcp_address("echo"));
    let mut stream = connect(server.tcp_address("panic"));
    let _ = read_to_close(&mut stream);
    neighbour.write_all(b"ping").unwrap();
    let mut answer = [0u8; 4];
    neighbour.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"ping");
}

#[test]
fn connections_beyond_max_connections_are_closed_at_once() {
    let server = tcp_guest(&[("echo", "max_connections = 2")]);
    let address = server.tcp_address("echo");
    let mut first = connect(address);
    let mut second = connect(address);
    for stream in [&mut first, &mut second] {
        stream.write_all(b"in").unwrap();
        let mut answer = [0u8; 2];
        stream.read_exact(&mut answer).unwrap();
    }
    let mut third = connect(address);
    let _ = third.write_all(b"out");
    assert!(matches!(
        read_to_close(&mut third).as_deref(),
        Ok(b"") | Err(_)
    ));
    // A place frees when a connection ends.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = connect(address);
        let _ = again.write_all(b"ok");
        let mut answer = [0u8; 2];
        if again.read_exact(&mut answer).is_ok() {
            assert_eq!(&answer, b"ok");
            break;
        }
        assert!(Instant::now() < deadline, "the place never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.expect_log("max_connections");
}

#[tokio::test(flavor = "multi_thread")]
async fn many_connections_echo_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = tcp_guest(&[]);
    let address = server.tcp_address("echo");
    let mut clients = Vec::new();
    for index in 0..300u32 {
        clients.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let message = format!("client {index}");
            for _ in 0..3 {
                stream.write_all(message.as_bytes()).await.unwrap();
                let mut answer = vec![0u8; message.len()];
                stream.read_exact(&mut answer).await.unwrap();
                assert_eq!(answer, message.as_bytes());
            }
            stream
        }));
    }
    let mut open = Vec::new();
    for client in clients {
        open.push(client.await.unwrap());
    }
    assert_eq!(open.len(), 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn hibernate_connections_keep_their_state_and_subscriptions_between_fresh_instances() {
    let server = tcp_guest(&[("lines", "max_frame = \"64\"")]);
    let address = server.tcp_address("lines");
    let mut ann = BufReader::new(connect(address));
    let hello = read_line(&mut ann);
    let ann_id = hello.trim_start_matches("hello #").to_owned();
    assert!(hello.starts_with("hello #"), "{hello}");
    // Each line runs in a fresh instance; the count lives in host-kept state.
    for (count, line) in ["one", "two", "three"].iter().enumerate() {
        writeln!(ann.get_mut(), "{line}").unwrap();
        assert_eq!(read_line(&mut ann), format!("{}: {line}", count + 1));
    }
    // A subscription is fed by the host, no guest woken.
    let mut bob = BufReader::new(connect(address));
    read_line(&mut bob);
    writeln!(bob.get_mut(), "/sub").unwrap();
    assert_eq!(read_line(&mut bob), "subscribed");
    let published = support::client()
        .post(server.url("/publish"))
        .body("extra, extra\n")
        .send()
        .await
        .unwrap();
    assert!(published.status().is_success());
    assert_eq!(read_line(&mut bob), "extra, extra");
    // The guest closes after its last words; on-close runs.
    writeln!(ann.get_mut(), "/quit").unwrap();
    assert_eq!(read_line(&mut ann), "bye");
    assert_eq!(read_to_close(ann.get_mut()).unwrap(), b"");
    assert_eq!(read_line(&mut bob), format!("left #{ann_id}"));
    // A client that half-closes after its line still gets the answer.
    let mut brief = connect(address);
    let mut hello = [0u8; 64];
    let _ = brief.read(&mut hello).unwrap();
    brief.write_all(b"last words\n").unwrap();
    brief.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_close(&mut brief).unwrap(), b"1: last words\n");
    // A line over max_frame closes the connection.
    let mut long = connect(address);
    let mut hello = [0u8; 64];
    let _ = long.read(&mut hello).unwrap();
    long.write_all(&[b'a'; 100]).unwrap();
    assert!(matches!(
        read_to_close(&mut long).as_deref(),
        Ok(b"") | Err(_)
    ));
    echo_works(&server);
}

#[test]
fn idle_hibernate_connections_hold_no_instance() {
    // Two instances for the whole app, and forty open connections that
    // each still get answers: none holds an instance while it idles.
    let server = tcp_guest(&[("app", "max_instances = 2")]);
    let address = server.tcp_address("lines");
    let mut clients: Vec<_> = (0..40)
        .map(|_| {
            let mut client = BufReader::new(connect(address));
            assert!(read_line(&mut client).starts_with("hello #"));
            client
        })
        .collect();
    for client in &mut clients {
        writeln!(client.get_mut(), "hi").unwrap();
        assert_eq!(read_line(client), "1: hi");
    }
}

/// A line server on a free port answering each line with `upstream: LINE`.
fn upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if writeln!(writer, "upstream: {line}").is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Ask the relay listener to connect to `target`; its first answer line.
fn relay_to(server: &Server, target: &str) -> BufReader<TcpStream> {
    let mut relay = BufReader::new(connect(server.tcp_address("relay")));
    writeln!(relay.get_mut(), "{target}").unwrap();
    relay
}

#[test]
fn outbound_connections_reach_only_what_tcp_outbound_allows() {
    let port = upstream();
    let other = upstream();
    let server = tcp_guest(&[(
        "app",
        &format!("tcp_outbound = [\"127.0.0.1:{port}\"]\ntcp_outbound_connections = 1"),
    )]);
    let mut relay = relay_to(&server, &format!("127.0.0.1:{port}"));
    assert_eq!(read_line(&mut relay), "connected");
    for line in ["one", "two"] {
        writeln!(relay.get_mut(), "{line}").unwrap();
        assert_eq!(read_line(&mut relay), format!("upstream: {line}"));
    }
    // Another port of the same host: not named, so refused before connecting.
    let mut denied = relay_to(&server, &format!("127.0.0.1:{other}"));
    let refused = read_line(&mut denied);
    assert!(
        refused.starts_with("refused: tcp connect denied"),
        "{refused}"
    );
    // The one connection allowed is taken.
    let mut over = relay_to(&server, &format!("127.0.0.1:{port}"));
    let refused = read_line(&mut over);
    assert!(refused.contains("tcp_outbound_connections"), "{refused}");
    // Closing the first gives its place back.
    drop(relay);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = relay_to(&server, &format!("127.0.0.1:{port}"));
        if read_line(&mut again) == "connected" {
            break;
        }
        assert!(Instant::now() < deadline, "the place never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    echo_works(&server);
}

/// A standard WASI 0.2 component connecting with `wasi:sockets` (Rust's
/// std::net) under the same `tcp_outbound` grant.
#[tokio::test(flavor = "multi_thread")]
async fn standard_components_connect_through_wasi_sockets_where_tcp_outbound_allows() {
    let (port, other) = (upstream(), upstream());
    let wasm = component("tests/guests/wasi-p2").display().to_string();
    let granted = Server::with_manifest(&format!(
        "[app.p2]\nsource = {wasm:?}\ntcp_outbound = [\"127.0.0.1:{port}\", \"localhost:{other}\"]\n"
    ));
    let get = |server: &Server, address: String| {
        let url = server.url(&format!("/tcp?addr={address}"));
        async move {
            let response = support::client().get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(
        get(&granted, format!("127.0.0.1:{port}")).await,
        (200, "upstream: ping".to_owned())
    );
    // Named by `localhost`, reached by its loopback address.
    assert_eq!(
        get(&granted, format!("127.0.0.1:{other}")).await,
        (200, "upstream: ping".to_owned())
    );
    let unnamed = upstream();
    let (status, _) = get(&granted, format!("127.0.0.1:{unnamed}")).await;
    assert_eq!(status, 502);
    granted.logged("wasi:sockets use denied").await;
    // Without tcp_outbound, no sockets at all.
    let bare = Server::with_manifest(&format!("[app.p2]\nsource = {wasm:?}\n"));
    let (status, _) = get(&bare, format!("127.0.0.1:{port}")).await;
    assert_eq!(status, 502);
}

/// A store serving requests one after another gives back the places of
/// the sockets its earlier requests closed: with two places and two
/// instances, every request connects (else two idle instances would hold
/// both places for good).
#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_gives_back_the_places_of_closed_sockets() {
    let port = upstream();
    let wasm = component("tests/guests/wasi-p2").display().to_string();
    let server = Server::with_manifest(&format!(
        "[app.p2]\nsource = {wasm:?}\ntcp_outbound = [\"127.0.0.1:{port}\"]\n\
         tcp_outbound_connections = 2\nmax_instances = 2\nreuse = {{ requests = 100 }}\n"
    ));
    let url = server.url(&format!("/tcp?addr=127.0.0.1:{port}"));
    for _ in 0..5 {
        let response = support::client().get(&url).send().await.unwrap();
        assert_eq!(
            (response.status().as_u16(), response.text().await.unwrap()),
            (200, "upstream: ping".to_owned())
        );
    }
}

#[test]
fn listeners_that_cannot_be_served_are_refused_at_start() {
    let wasm = component("tests/guests/tcp").display().to_string();
    let taken = refused_manifest(&format!(
        "[app.a]\nsource = {wasm:?}\nroutes = [\"/a\"]\n[[app.a.tcp]]\nlisten = \"127.0.0.1:7411\"\n\n\
         [app.b]\nsource = {wasm:?}\nroutes = [\"/b\"]\n[[app.b.tcp]]\nlisten = \"127.0.0.1:7411\"\n"
    ));
    assert!(
        taken.contains("127.0.0.1:7411 is already taken by app.a"),
        "{taken}"
    );
    let standard = support::standard_component("examples/hello")
        .display()
        .to_string();
    let refused = refused_manifest(&format!(
        "[app.std]\nsource = {standard:?}\n[[app.std.tcp]]\nlisten = \"127.0.0.1:0\"\n"
    ));
    assert!(
        refused.contains("TCP listeners need a squall-sdk app"),
        "{refused}"
    );
}

/// The tcp-chat example, as its README section runs it: two clients, one
/// line, both see it; `/quit` says bye and closes.
#[test]
fn the_tcp_chat_example_passes_lines_between_clients() {
    let manifest = std::fs::read_to_string(repo().join("examples/tcp-chat/squall.toml"))
        .unwrap()
        .replace(
            "source = \".\"",
            &format!(
                "source = {:?}",
                component("examples/tcp-chat").display().to_string()
            ),
        )
        .replace("127.0.0.1:7000", "127.0.0.1:0");
    let server = Server::with_manifest(&manifest);
    let address = server.tcp_address("chat");
    let mut ann = BufReader::new(connect(address));
    let welcome = read_line(&mut ann);
    assert!(welcome.starts_with("welcome, 127.0.0.1:"), "{welcome}");
    let mut bob = BufReader::new(connect(address));
    let bob_name = read_line(&mut bob)
        .trim_start_matches("welcome, ")
        .split('!')
        .next()
        .unwrap()
        .to_owned();
    wait_for_line(&mut ann, &format!("* {bob_name} joined"));
    bob.get_mut().write_all(b"hello, ann\n").unwrap();
    wait_for_line(&mut ann, &format!("{bob_name}: hello, ann"));
    bob.get_mut().write_all(b"/quit\n").unwrap();
    wait_for_line(&mut bob, "bye");
    assert_eq!(read_to_close(bob.get_mut()).unwrap(), b"");
    wait_for_line(&mut ann, &format!("* {bob_name} left"));
}

/// The resp-kv example, as `redis-cli` (the real one, from Debian's Redis)
/// talks to it.
#[test]
fn redis_cli_talks_to_the_resp_kv_example() {
    let manifest = std::fs::read_to_string(repo().join("examples/resp-kv/squall.toml"))
        .unwrap()
        .replace(
            "source = \".\"",
            &format!(
                "source = {:?}",
                component("examples/resp-kv").display().to_string()
            ),
        )
        .replace("127.0.0.1:6380", "127.0.0.1:0");
    let server = Server::with_manifest(&manifest);
    let port = server.tcp_address("resp").port().to_string();
    let cli = |args: &[&str]| -> String {
        let output = std::process::Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .output()
            .expect("redis-cli runs (apt-get install redis-tools)");
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(&["GET", "greeting"]), "hello world");
    assert_eq!(cli(&["INCR", "visits"]), "1");
    assert_eq!(cli(&["INCRBY", "visits", "41"]), "42");
    assert_eq!(cli(&["GET", "visits"]), "42");
    assert_eq!(cli(&["EXISTS", "greeting", "visits", "nothing"]), "2");
    assert_eq!(cli(&["KEYS", "*"]), "greeting\nvisits");
    assert_eq!(cli(&["DEL", "greeting"]), "1");
    assert_eq!(cli(&["GET", "greeting"]), "");
    assert_eq!(
        cli(&["INCR", "visits", "extra"]),
        "ERR wrong number of arguments for 'incr' command"
    );
    assert_eq!(cli(&["FLUSHALL"]), "ERR unknown command 'flushall'");
    assert_eq!(cli(&["SET", "short", "lived", "PX", "1"]), "OK");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(cli(&["GET", "short"]), "");
    // Inline commands, pipelined.
    let mut piped = std::process::Command::new("redis-cli")
        .args(["-p", &port, "--pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    piped
        .stdin
        .take()
        .unwrap()
        .write_all(b"INCR piped\nINCR piped\nINCR piped\n")
        .unwrap();
    let output = piped.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("errors: 0, replies: 3"), "{report}");
    assert_eq!(cli(&["GET", "piped"]), "3");
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

/// Read lines until one equals `expected` (others, such as join notices,
/// may come first).
fn wait_for_line(reader: &mut BufReader<TcpStream>, expected: &str) {
    let mut seen = Vec::new();
    loop {
        let line = read_line(reader);
        if line == expected {
            return;
        }
        assert!(
            !line.is_empty() && seen.len() < 20,
            "never saw {expected:?} in {seen:?}"
        );
        seen.push(line);
    }
}

/// The resident memory of process `pid`, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}
