//! A guest with schedule handlers, for the scheduler's tests. Each handler
//! counts its runs in the app's store and logs them (the tests' signals):
//! `beat` counts; `slow` takes 3 s and records whether two of its runs ever
//! overlapped; `spin` burns CPU until the host stops it; `fail` returns an
//! error; `stamp` counts the runs of each tick (by its due time) and
//! records a tick run twice. `GET /count/{key}` reads a count.

use squall_sdk::schedule::Tick;
use squall_sdk::{Error, Request, Router, kv, log, sleep};
use std::time::Duration;

fn app() -> Router {
    Router::new()
        .get("/count/{key}", count)
        .on_schedule("beat", beat)
        .on_schedule("slow", slow)
        .on_schedule("spin", spin)
        .on_schedule("stamp", stamp)
        .on_schedule("fail", |_tick: Tick| async {
            Err::<(), _>(Error::bad_request("deliberate failure"))
        })
}

async fn count(req: Request) -> Result<String, Error> {
    let key = req.param("key").unwrap_or_default();
    Ok(kv::increment(key, 0).await?.to_string())
}

/// Counted under the payload's key (`beats` if none), so two apps sharing
/// a guest count apart.
async fn beat(tick: Tick) -> Result<(), Error> {
    let key = match tick.payload_text() {
        text if text.is_empty() => "beats".to_owned(),
        text => text,
    };
    let beats = kv::increment(&key, 1).await?;
    log::info(format!("{key} {beats}"));
    Ok(())
}

async fn slow(_tick: Tick) -> Result<(), Error> {
    if kv::increment("slow-running", 1).await? > 1 {
        kv::increment("overlaps", 1).await?;
    }
    sleep(Duration::from_secs(3)).await;
    kv::increment("slow-running", -1).await?;
    let runs = kv::increment("slow-runs", 1).await?;
    log::info(format!("slow run {runs} done"));
    Ok(())
}

/// One tick run by two hosts shows as a duplicate.
async fn stamp(tick: Tick) -> Result<(), Error> {
    if kv::increment(&format!("tick:{}", tick.scheduled_ms()), 1).await? > 1 {
        kv::increment("duplicates", 1).await?;
    }
    let stamps = kv::increment("stamps", 1).await?;
    log::info(format!("stamp {stamps} at {}", tick.scheduled_ms()));
    Ok(())
}

async fn spin(_tick: Tick) -> Result<(), Error> {
    log::info("spinning");
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

squall_sdk::export!(app);
