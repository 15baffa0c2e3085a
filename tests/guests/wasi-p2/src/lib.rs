//! A standard WASI 0.2 `wasi:http/proxy` component, written against the
//! `wasip2` crate alone (as for `wasmtime serve` or Spin): Squall must serve
//! it unchanged.

use std::io::{Read as _, Write as _};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Hello);

struct Hello;

thread_local! {
    static SERVED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        if path == "/hang" {
            return hang(out);
        }
        if path == "/endless" {
            return endless(out);
        }
        if let Some(url) = path.strip_prefix("/after?url=") {
            return after(out, url);
        }
        let (status, chunks): (u16, Vec<Vec<u8>>) = if path == "/" {
            (200, vec![b"Hello from WASI 0.2!".to_vec()])
        } else if path == "/served" {
            // Requests this instance has served: 1 unless the host reuses it.
            let served = SERVED.with(|served| {
                served.set(served.get() + 1);
                served.get()
            });
            (200, vec![served.to_string().into_bytes()])
        } else if path == "/stream" {
            (
                200,
                (0..5)
                    .map(|i| format!("chunk {i}\n").into_bytes())
                    .collect(),
            )
        } else if path == "/echo" {
            (200, vec![read_body(request)])
        } else if let Some(url) = path.strip_prefix("/fetch?url=") {
            match fetch(url) {
                Ok((status, body)) => (
                    200,
                    vec![format!("{status} {}", String::from_utf8_lossy(&body)).into_bytes()],
                ),
                Err(code) => (502, vec![format!("{code:?}").into_bytes()]),
            }
        } else if let Some(address) = path.strip_prefix("/tcp?addr=") {
            match line_over_tcp(address) {
                Ok(line) => (200, vec![line.into_bytes()]),
                Err(err) => (502, vec![err.to_string().into_bytes()]),
            }
        } else {
            (404, vec![b"not found".to_vec()])
        };
        let response = OutgoingResponse::new(Fields::new());
        let _ = response.set_status_code(status);
        let Ok(body) = response.body() else { return };
        ResponseOutparam::set(out, Ok(response));
        let Ok(mut stream) = body.write() else { return };
        for chunk in chunks {
            let _ = stream.write_all(&chunk);
            let _ = stream.flush();
        }
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

/// Through `wasi:sockets` (Rust's std::net): send a line to `address`,
/// answer the line that comes back.
fn line_over_tcp(address: &str) -> std::io::Result<String> {
    use std::io::BufRead as _;
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.write_all(b"ping\n")?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// Starts a body and never finishes it: the body resource is leaked, so the
/// host must end it at the request's deadline, visibly broken.
fn hang(out: ResponseOutparam) {
    let response = OutgoingResponse::new(Fields::new());
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = body.write() {
        let _ = stream.write_all(b"started ");
        let _ = stream.flush();
        std::mem::forget(stream);
    }
    std::mem::forget(body);
}

/// Answers, then goes on after `response-outparam::set` and the body's
/// finish: a log line and a fetch the client does not wait for.
fn after(out: ResponseOutparam, url: &str) {
    let response = OutgoingResponse::new(Fields::new());
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = body.write() {
        let _ = stream.write_all(b"answered");
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(body, None);
    wasip2::clocks::monotonic_clock::subscribe_duration(50_000_000).block();
    println!("p2 work after the response");
    match fetch(url) {
        Ok((status, _)) => println!("p2 fetched after the response: {status}"),
        Err(code) => println!("p2 fetch after the response failed: {code:?}"),
    }
}

/// Writes a body without end, as fast as the client takes it.
fn endless(out: ResponseOutparam) {
    let response = OutgoingResponse::new(Fields::new());
    let Ok(body) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    let Ok(mut stream) = body.write() else { return };
    let chunk = vec![b'e'; 64 << 10];
    while stream.write_all(&chunk).is_ok() {}
}

fn read_body(request: IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(body) = request.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut bytes);
    }
    bytes
}

/// GET `url` (`http://host:port/path`) through `wasi:http/outgoing-handler`.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), ErrorCode> {
    let rest = url
        .strip_prefix("http://")
        .ok_or(ErrorCode::HttpRequestUriInvalid)?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_scheme(Some(&Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(&path));
    let future = outgoing_handler::handle(request, None)?;
    future.subscribe().block();
    let response = future
        .get()
        .ok_or(ErrorCode::InternalError(None))?
        .map_err(|()| ErrorCode::InternalError(None))??;
    let status = response.status();
    let mut bytes = Vec::new();
    if let Ok(body) = response.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut bytes);
    }
    Ok((status, bytes))
}
