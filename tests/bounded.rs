//! What the host builds for a guest is bounded before it is built: a call
//! that would make the host (or the Redis it shares with other hosts) hold
//! more than the guest could take gets a typed error, and a neighbour app
//! keeps answering. Real binary, real components, real Redis.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use support::redis::RedisServer;
use support::{Server, client, component, hello_wasm, neighbour_answers, peak_kib};

/// The state test guest at `/` with a store, and the hello app as its
/// neighbour under `/hello`, on `backend` (a `[server.backend]` table, or
/// nothing for the embedded store).
fn state_and_neighbour(backend: &str) -> Server {
    Server::with_manifest(&format!(
        "{backend}\n\
         [app.state]\nsource = {:?}\nkv = true\n\n\
         [app.hello]\nsource = {:?}\nroutes = [\"/hello\"]\n",
        component("tests/guests/state").display().to_string(),
        hello_wasm().display().to_string(),
    ))
}

/// A 1 MiB value asked for a thousand times in one call, by three requests
/// at once: each is refused before its values are built, the host's peak
/// memory barely moves, and a call within the bound is served.
async fn a_thousandfold_read_is_refused_before_it_is_built(server: &Server) {
    let http = client();
    let stored = http
        .put(server.url("/kv/big"))
        .body(vec![b'b'; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 204);
    let before = peak_kib(server.pid());
    let asks = (0..3).map(|_| {
        let http = http.clone();
        let url = server.url("/many/big?times=1000");
        async move { http.get(url).send().await.unwrap() }
    });
    let (answers, ()) = tokio::join!(futures::future::join_all(asks), neighbour_answers(server));
    for answer in answers {
        assert_eq!(answer.status(), 413);
        // The client is told the status; the limit it met is in the log.
        assert_eq!(answer.text().await.unwrap(), "Payload Too Large\n");
    }
    let grown_mib = peak_kib(server.pid()).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 256,
        "the host's peak grew by {grown_mib} MiB for refused reads"
    );
    let within = http
        .get(server.url("/many/big?times=8"))
        .send()
        .await
        .unwrap();
    assert_eq!(within.text().await.unwrap(), "8");
    server.logged("max_call_bytes").await;
    server.logged("this call may return").await;
    neighbour_answers(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_many_values_is_bounded_on_the_embedded_store() {
    let server = state_and_neighbour("");
    a_thousandfold_read_is_refused_before_it_is_built(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_many_values_is_bounded_on_redis_and_inside_redis() {
    let redis = RedisServer::start();
    let server = state_and_neighbour(&format!(
        "[server.backend]\nkind = \"redis\"\nurl = {:?}\n",
        redis.url()
    ));
    a_thousandfold_read_is_refused_before_it_is_built(&server).await;
    // Redis built no gigabyte reply either.
    let peak = redis.memory("used_memory_peak");
    assert!(peak < 256 << 20, "Redis peaked at {peak} bytes");
}
