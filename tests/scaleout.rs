//! Several hosts sharing one Redis (`[server.backend] kind = "redis"`):
//! a publish on one host reaches WebSocket subscribers and long polls on
//! another, with ids that increase across hosts and a shared history, and
//! subscriptions resume after Redis restarts. (The key-value store on
//! Redis is tested in tests/state.rs.)
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use futures::SinkExt;
use std::time::Duration;
use support::redis::RedisServer;
use support::{Server, Socket, client, component, next_text};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

/// A host serving the sockets test guest with pub/sub through `redis`.
fn host(redis: &RedisServer) -> Server {
    Server::with_manifest(&format!(
        "[server.backend]\nkind = \"redis\"\nurl = {:?}\n\n[app.sockets]\nsource = {:?}\npubsub = [\"news\"]\n",
        redis.url(),
        component("tests/guests/sockets").display().to_string()
    ))
}

/// A socket subscribed to `news` (the guest subscribes on open).
async fn subscriber(server: &Server) -> Socket {
    let url = format!("ws://{}/count", server.address());
    connect_async(url).await.unwrap().0
}

async fn publish(server: &Server, text: &'static str) -> (u16, String) {
    let response = client()
        .post(server.url("/publish/news"))
        .body(text)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Publish `text` on `server`, trying again while Redis is coming back.
async fn publish_when_back(server: &Server, text: &'static str) {
    for _ in 0..50 {
        let (status, body) = publish(server, text).await;
        if status == 200 {
            return;
        }
        assert!(body.contains("unavailable"), "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("publishing never worked again: {}", server.logs());
}

async fn wait(server: &Server, after: u64) -> String {
    client()
        .post(server.url(&format!("/wait/news?after={after}&ms=10000")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_on_one_host_reaches_sockets_and_long_polls_on_another() {
    let redis = RedisServer::start();
    let (a, b) = (host(&redis), host(&redis));
    let mut on_a = subscriber(&a).await;
    let mut on_b = subscriber(&b).await;
    // Both hosts follow the topic before anything is published.
    redis.followed_by(2).await;

    // Ids increase across hosts: 1 from A, 2 from B.
    assert_eq!(publish(&a, "hello from a").await, (200, "1".to_owned()));
    assert_eq!(next_text(&mut on_a).await, "hello from a");
    assert_eq!(next_text(&mut on_b).await, "hello from a");
    assert_eq!(publish(&b, "hello from b").await, (200, "2".to_owned()));
    assert_eq!(next_text(&mut on_a).await, "hello from b");
    assert_eq!(next_text(&mut on_b).await, "hello from b");

    // The history is shared: a cursor works on either host.
    assert_eq!(
        wait(&b, 0).await,
        r#"[[1,"hello from a"],[2,"hello from b"]]"#
    );
    assert_eq!(wait(&a, 1).await, r#"[[2,"hello from b"]]"#);
    // A long poll on B wakes on a publish on A.
    let polling = tokio::spawn({
        let url = b.url("/wait/news?after=2&ms=10000");
        async move {
            client()
                .post(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    });
    // Parked, it wakes on the publish; if it comes late, the shared
    // history gives it the same answer.
    assert_eq!(publish(&a, "third").await, (200, "3".to_owned()));
    assert_eq!(polling.await.unwrap(), r#"[[3,"third"]]"#);
    let _ = on_a.close(None).await;
    let _ = on_b.close(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_resume_after_redis_restarts() {
    let mut redis = RedisServer::start_persistent();
    let (a, b) = (host(&redis), host(&redis));
    let mut on_b = subscriber(&b).await;
    redis.followed_by(1).await;
    assert_eq!(publish(&a, "before").await.0, 200);
    assert_eq!(next_text(&mut on_b).await, "before");

    redis.kill();
    let (status, body) = publish(&a, "while down").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("unavailable"), "{body}");
    redis.restart();

    // Publishing works again once Redis is back (a host's first call may
    // still find the old connection gone: it answers 503-like, and the
    // next is through), and B's socket, still connected, gets what A
    // publishes: nothing lost, nothing twice.
    publish_when_back(&a, "after").await;
    assert_eq!(next_text(&mut on_b).await, "after");
    publish_when_back(&b, "and again").await;
    assert_eq!(next_text(&mut on_b).await, "and again");
    assert_eq!(wait(&b, 1).await, r#"[[2,"after"],[3,"and again"]]"#);
    let _ = on_b.send(Message::Close(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_topics_keep_no_more_in_redis_than_its_history_bytes() {
    let redis = RedisServer::start();
    let sockets = component("tests/guests/sockets").display().to_string();
    let server = Server::with_manifest(&format!(
        "[server.backend]\nkind = \"redis\"\nurl = {:?}\n\n\
         [app.flooder]\nsource = {sockets:?}\npubsub = [\"room.*\"]\npubsub_history_bytes = \"4MiB\"\n\n\
         [app.neighbour]\nsource = {sockets:?}\nhosts = [\"neighbour.test\"]\npubsub = [\"news\"]\n",
        redis.url()
    ));
    let http = client();
    let before = redis.memory("used_memory");
    let payload = vec![b'p'; 512 << 10];
    // 200 topics of 512 KiB each: 100 MiB asked for, 4 MiB granted.
    let mut refused = 0;
    for topic in 0..200 {
        let answer = http
            .post(server.url(&format!("/publish/room.{topic}")))
            .body(payload.clone())
            .send()
            .await
            .unwrap();
        match answer.status().as_u16() {
            200 => {}
            403 => {
                let why = answer.text().await.unwrap();
                assert!(why.contains("pubsub_history_bytes"), "{why}");
                refused += 1;
            }
            other => panic!("{other}: {}", answer.text().await.unwrap()),
        }
    }
    assert!(refused >= 190, "{refused} refused");
    // One topic republished makes room from its own history.
    for _ in 0..20 {
        let answer = http
            .post(server.url("/publish/room.0"))
            .body(payload.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let grown_mib = redis.memory("used_memory").saturating_sub(before) >> 20;
    assert!(grown_mib < 12, "Redis grew by {grown_mib} MiB");
    // The neighbour publishes and reads its own topic as ever.
    let published = http
        .post(server.url("/publish/news"))
        .header("host", "neighbour.test")
        .body("still here")
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    let read = http
        .post(server.url("/wait/news?after=0&ms=5000"))
        .header("host", "neighbour.test")
        .send()
        .await
        .unwrap();
    assert_eq!(read.text().await.unwrap(), r#"[[1,"still here"]]"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_cost_history_bytes_on_redis_even_when_empty() {
    let redis = RedisServer::start();
    let sockets = component("tests/guests/sockets").display().to_string();
    let server = Server::with_manifest(&format!(
        "[server.backend]\nkind = \"redis\"\nurl = {:?}\n\n\
         [app.flooder]\nsource = {sockets:?}\npubsub = [\"room.*\"]\npubsub_history_bytes = \"64KiB\"\n",
        redis.url()
    ));
    let http = client();
    // Empty messages on ever new topics: each topic's keys count (512
    // bytes, and 160 a message), so 64 KiB holds fewer than a hundred.
    let mut accepted = 0;
    for topic in 0..200 {
        let answer = http
            .post(server.url(&format!("/publish/room.{topic}")))
            .send()
            .await
            .unwrap();
        if answer.status() == 200 {
            accepted += 1;
        } else {
            let why = answer.text().await.unwrap();
            assert!(why.contains("pubsub_history_bytes"), "{why}");
        }
    }
    assert!((90..100).contains(&accepted), "{accepted} topics kept");
    // A refusal changes nothing: the first topic still has its message.
    let first = http
        .post(server.url("/wait/room.0?after=0&ms=1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.text().await.unwrap(), r#"[[1,""]]"#);
}
