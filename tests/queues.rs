//! Queues (`queue::send`, `[[app.NAME.consumer]]`, `Router::consumer`)
//! against the real binary: a consumer that fails twice then succeeds is
//! delivered each message again with its attempt number, then it is
//! acknowledged; one that always fails lands in the dead letters, which
//! the app reads; a tenant flooding its queue meets its limits while a
//! neighbour's schedule keeps its rhythm; a queue no consumer reads, and
//! a consumer without a handler, are refused; and hosts sharing Redis
//! deliver each message once per attempt, one of them killed mid-way. The
//! guest (tests/guests/ticks) counts deliveries in its store and logs
//! them: the tests wait for those lines, never for time to pass.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::path::PathBuf;
use std::time::Duration;
use support::redis::RedisServer;
use support::{
    Server, admin_url, client, component, get_text, guest_count, manifest, post_text,
    refused_manifest, until_within,
};

fn ticks() -> PathBuf {
    component("tests/guests/ticks")
}

fn consumer(app: &str, settings: &str) -> String {
    format!("[[app.{app}.consumer]]\nqueue = \"work\"\n{settings}\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_is_retried_with_its_attempt_then_acknowledged_or_dead_lettered() {
    let text = format!(
        "[server]\nadmin_listen = \"127.0.0.1:0\"\n{}",
        manifest(
            "ticks",
            &ticks(),
            &format!(
                "kv = true\n{}",
                consumer(
                    "ticks",
                    "retry_delay = \"200ms\"\nmax_retries = 2\nbatch = 5"
                )
            )
        )
    );
    let server = Server::with_manifest(&text);
    for payload in ["ok", "flaky", "doomed"] {
        let (status, id) = post_text(&server, "/send/work", payload).await;
        assert_eq!(status, 200, "{id}");
        assert_eq!(id.len(), 32);
    }
    server.logged("work ok attempt 1").await;
    // Not acknowledged twice, then acknowledged on its third delivery.
    server.logged("work flaky attempt 3").await;
    // Never acknowledged: after 2 retries (3 deliveries), a dead letter.
    server.logged("work doomed attempt 3").await;
    let dead = server.url("/dead/work");
    until_within(
        Duration::from_secs(20),
        async || {
            let letters = client().get(&dead).send().await.unwrap();
            letters.text().await.unwrap().starts_with("doomed 3 ")
        },
        || format!("no dead letter:\n{}", server.logs()),
    )
    .await;
    assert!(!server.logs().contains("work flaky attempt 4"));
    assert!(!server.logs().contains("work doomed attempt 4"));
    assert_eq!(guest_count(&server, "", "delivery-duplicates").await, 0);
    // The batch that buried it has settled every message it carried.
    server.logged("dead=1").await;
    let metrics = get_text(format!("{}/metrics", admin_url(&server))).await;
    for series in [
        "squall_queue_sent_total{app=\"ticks\",queue=\"work\"} 3",
        "squall_queue_messages_total{app=\"ticks\",queue=\"work\",outcome=\"acked\"} 2",
        "squall_queue_messages_total{app=\"ticks\",queue=\"work\",outcome=\"dead\"} 1",
        "squall_queue_dead_letters{app=\"ticks\",queue=\"work\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }
    // A queue no consumer reads is refused, naming the table to add.
    let (status, _) = post_text(&server, "/send/elsewhere", "x").await;
    assert_eq!(status, 500);
    server
        .logged("no [[app.ticks.consumer]] reads the queue \"elsewhere\"")
        .await;
}

#[test]
fn a_consumer_without_a_handler_or_out_of_bounds_is_refused_at_load() {
    let text = manifest(
        "ticks",
        &ticks(),
        "kv = true\n[[app.ticks.consumer]]\nqueue = \"emails\"\n",
    );
    let refused = refused_manifest(&text);
    assert!(
        refused.contains("consumer of the queue \"emails\" has no handler")
            && refused.contains("Router::consumer(\"emails\""),
        "{refused}"
    );
    let text = manifest("ticks", &ticks(), &consumer("ticks", "batch = 1000"));
    let refused = refused_manifest(&text);
    assert!(refused.contains("batch must be from 1 to 100"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_flooding_its_queue_meets_its_limits_while_a_neighbours_schedule_keeps_its_rhythm()
{
    let wasm = ticks();
    let hostile = format!(
        "kv = true\nroutes = [\"/hostile\"]\nstrip_prefix = true\nqueue_max_messages = 150\n\
         queue_max_payload = \"1KiB\"\nmax_instances = 1\n{}",
        consumer("hostile", "max_retries = 0\nbatch = 100")
    );
    let neighbour = "kv = true\nroutes = [\"/neighbour\"]\nstrip_prefix = true\n\
                     [[app.neighbour.schedule]]\nname = \"beat\"\nevery = \"1s\"\n\
                     payload = \"neighbour\"\n";
    let text = format!(
        "[app.hostile]\nsource = {source:?}\n{hostile}\n[app.neighbour]\nsource = {source:?}\n{neighbour}\n",
        source = wasm.display().to_string()
    );
    let server = Server::with_manifest(&text);
    let (status, _) = post_text(&server, "/hostile/send/work", &"x".repeat(1025)).await;
    assert_eq!(status, 413);
    // Its one instance sends: nothing is consumed meanwhile. A batch of
    // 100 fits; the next would pass 150, and is refused whole.
    let (status, flooded) = post_text(&server, "/hostile/send-many/work?count=1000", "").await;
    assert_eq!(status, 200);
    assert_eq!(
        flooded,
        "100 queue quota: the queue holds 150 messages (queue_max_messages)"
    );
    server.logged("work 99 attempt 1").await;
    server.logged("neighbour 3").await;
    assert!(guest_count(&server, "/neighbour", "neighbour").await >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_sharing_redis_deliver_each_message_once_per_attempt_while_one_is_killed() {
    const MESSAGES: i64 = 200;
    let redis = RedisServer::start();
    let text = format!(
        "[server.backend]\nkind = \"redis\"\nurl = {:?}\n\n{}",
        redis.url(),
        manifest(
            "ticks",
            &ticks(),
            &format!(
                "kv = true\ntimeout = \"5s\"\n{}",
                consumer("ticks", "batch = 5\nconcurrency = 2\nmax_retries = 10")
            )
        )
    );
    let a = Server::with_manifest(&text);
    let b = Server::with_manifest(&text);
    let (status, sent) = post_text(&a, &format!("/send-many/work?count={MESSAGES}"), "").await;
    assert_eq!((status, sent.as_str()), (200, "200 none refused"));
    until_within(
        Duration::from_secs(20),
        async || guest_count(&b, "", "distinct-messages").await >= 20,
        || format!("delivery did not start:\n{}\n{}", a.logs(), b.logs()),
    )
    .await;
    // Killed mid-way, without draining: B delivers the rest, and what A
    // held once its leases lapse.
    let pid = rustix::process::Pid::from_raw(a.pid() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    until_within(
        Duration::from_secs(90),
        async || guest_count(&b, "", "distinct-messages").await == MESSAGES,
        || format!("not every message was delivered:\n{}", b.logs()),
    )
    .await;
    assert_eq!(
        guest_count(&b, "", "delivery-duplicates").await,
        0,
        "{}",
        b.logs()
    );
    // Messages the killed host held, delivered again once its lease lapsed.
    let again = guest_count(&b, "", "redelivered").await;
    eprintln!("messages delivered again: {again}");
    drop(a);
}
