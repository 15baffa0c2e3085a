//! A guest that breaks the rules on purpose, for the host's limit tests.

use squall_sdk::{Request, Response, Router, StatusCode};

fn app() -> Router {
    Router::new()
        .get("/ok", |_req| async { "ok" })
        .get("/streamed-ok", |_req| async {
            Response::stream(|mut body| async move {
                let _ = body.write("ok").await;
            })
        })
        .get("/endless", |_req| async {
            Response::stream(|mut body| async move {
                let chunk = vec![b'e'; 64 << 10];
                while body.write(chunk.clone()).await.is_ok() {}
            })
        })
        .get("/spin", spin)
        .get("/fill-between-waits", fill_between_waits)
        .get("/alloc", alloc)
        .get("/bad-status", |_req| async {
            Response::new(StatusCode::OK, "x").with_status(StatusCode::CONTINUE)
        })
        // A redirect whose URL smuggles a header: never sent as it is.
        .get("/bad-location", |_req| async {
            Response::redirect("/next\r\nset-cookie: admin=1")
        })
        .get("/headers", headers)
        .post("/count", count)
        .get("/stream-then-panic", stream_then_panic)
        .get("/served", served)
        .get("/panic", |_req: Request| async {
            panic!("this request breaks on purpose");
            #[allow(unreachable_code)]
            ""
        })
        // A blocking sleep (WASI 0.2's poll): it holds the store while it waits.
        .get("/block/{ms}", |req: Request| async move {
            let ms = req.param("ms").and_then(|ms| ms.parse().ok()).unwrap_or(0);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            "blocked"
        })
        .get("/sleep/{ms}", |req: Request| async move {
            let ms = req.param("ms").and_then(|ms| ms.parse().ok()).unwrap_or(0);
            squall_sdk::sleep(std::time::Duration::from_millis(ms)).await;
            "slept"
        })
}

thread_local! {
    /// Requests this instance has served: 1 unless the app reuses instances.
    static SERVED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many requests this instance has served, this one included.
async fn served(_req: Request) -> String {
    SERVED.with(|served| {
        served.set(served.get() + 1);
        served.get().to_string()
    })
}

/// Burns CPU forever in short runs between waits (a 16 MiB fill, then a
/// 1 ms sleep): the deadline restarts with every run, yet the ticks that
/// pass while it runs are charged and its CPU budget stops it.
async fn fill_between_waits(_req: Request) -> &'static str {
    let mut buffer = vec![0u8; 16 << 20];
    let mut byte = 0u8;
    loop {
        byte = byte.wrapping_add(1);
        std::hint::black_box(&mut buffer).fill(byte);
        squall_sdk::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Burns CPU forever; only the host's limits stop it.
async fn spin(_req: Request) -> &'static str {
    // Tests wait for this line to know the guest is spinning.
    println!("spinning");
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Allocates until the memory limit is hit.
async fn alloc(_req: Request) -> String {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// Reads the whole body before answering with its length.
async fn count(mut req: Request) -> String {
    req.bytes().await.len().to_string()
}

/// Request headers as `name: value` lines.
async fn headers(req: Request) -> String {
    req.headers()
        .iter()
        .map(|(name, value)| format!("{name}: {}\n", value.to_str().unwrap_or("?")))
        .collect()
}

/// Sends part of a body, then dies: the client must see a broken response.
async fn stream_then_panic(_req: Request) -> Response {
    Response::stream(|mut body| async move {
        let _ = body.write("partial ").await;
        squall_sdk::sleep(std::time::Duration::from_millis(50)).await;
        panic!("the stream breaks on purpose");
    })
}

squall_sdk::export!(app);
