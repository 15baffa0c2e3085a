//! A guest with schedule handlers, for the scheduler's tests. Each handler
//! counts its runs in the app's store and logs them (the tests' signals):
//! `beat` counts; `slow` takes 3 s and records whether two of its runs ever
//! overlapped; `spin` burns CPU until the host stops it; `fail` returns an
//! error; `stamp` counts the runs of each tick (by its due time) and
//! records a tick run twice. `GET /count/{key}` reads a count.
//!
//! Jobs: `POST /jobs/{name}?delay_ms=D` (or `?at=MS`) keeps one with the
//! body as payload and answers its id; `POST /flood/{name}?count=N&delay_ms=D`
//! keeps N answers how many were kept, then the first refusal;
//! `DELETE /jobs/{id}` cancels. Handlers: `note` counts its runs, the jobs
//! that ran at all, and a job's attempt run twice (a duplicate), `flaky` fails before its
//! third attempt, `doomed` always fails, `spin` burns CPU.
//!
//! Queues: `POST /send/{queue}` sends the body; `POST /send-many/{queue}?count=N`
//! sends N in batches of 100 and answers how many were sent, then the
//! first refusal; `GET /dead/{queue}` lists the dead letters, a line each
//! (`payload attempts error`). The `work` consumer acknowledges `ok` and
//! numbers, `flaky` on its third delivery, never `doomed`; it counts
//! deliveries as `note` counts runs. The `bench` consumer only counts
//! (`bench-acked`), and the `jitter` schedule keeps how late each tick
//! started (`GET /jitter`), for `squall-bench jobs`.

use squall_sdk::jobs::{self, Job};
use squall_sdk::queue::{self, Batch};
use squall_sdk::schedule::Tick;
use squall_sdk::{Error, Request, Router, kv, log, sleep};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        .post("/jobs/{name}", keep)
        .post("/flood/{name}", flood)
        .delete("/jobs/{name}", cancel)
        .post("/send/{queue}", send)
        .post("/send-many/{queue}", send_many)
        .get("/dead/{queue}", dead)
        .consumer("work", work)
        .consumer("bench", |batch: Batch| async move {
            kv::increment("bench-acked", batch.messages().len() as i64).await?;
            Ok::<_, Error>(())
        })
        .on_schedule("jitter", jitter)
        .get("/jitter", jitters)
        .on_job("note", note)
        .on_job("flaky", flaky)
        .on_job("spin", |_job: Job| async { spin_forever() })
        .on_job("doomed", |job: Job| async move {
            log::info(format!("doomed attempt {}", job.attempt()));
            Err::<(), _>(Error::bad_request("doomed to fail"))
        })
}

async fn keep(mut req: Request) -> Result<String, Error> {
    let name = req.param("name").unwrap_or_default().to_owned();
    let arguments = req.query_arguments();
    let number = |key| {
        arguments
            .get(key)
            .and_then(|value| value.parse::<u64>().ok())
    };
    let (delay_ms, at) = (number("delay_ms"), number("at"));
    let payload = req.bytes().await;
    let id = match at {
        Some(at) => {
            let when = UNIX_EPOCH + Duration::from_millis(at);
            jobs::at(when, &name, payload).await?
        }
        None => {
            let delay = Duration::from_millis(delay_ms.unwrap_or(0));
            jobs::after(delay, &name, payload).await?
        }
    };
    Ok(id)
}

/// Keep `count` jobs due in `delay_ms`, one after another, until one is
/// refused.
async fn flood(req: Request) -> Result<String, Error> {
    let name = req.param("name").unwrap_or_default().to_owned();
    let arguments = req.query_arguments();
    let number = |key| {
        arguments
            .get(key)
            .and_then(|value| value.parse::<u64>().ok())
    };
    let count = number("count").unwrap_or(1);
    let delay = Duration::from_millis(number("delay_ms").unwrap_or(0));
    for kept in 0..count {
        if let Err(refused) = jobs::after(delay, &name, "flood").await {
            return Ok(format!("{kept} {refused}"));
        }
    }
    Ok(format!("{count} none refused"))
}

/// `{name}` is the job's id here: one pattern, one parameter name.
async fn cancel(req: Request) -> Result<String, Error> {
    let id = req.param("name").unwrap_or_default();
    Ok(jobs::cancel(id).await?.to_string())
}

async fn send(mut req: Request) -> Result<String, Error> {
    let queue = req.param("queue").unwrap_or_default().to_owned();
    Ok(queue::send(&queue, req.bytes().await).await?)
}

/// Send `count` numbered messages in batches of 100, until one is refused.
async fn send_many(req: Request) -> Result<String, Error> {
    let queue = req.param("queue").unwrap_or_default().to_owned();
    let count: u64 = req
        .query_arguments()
        .get("count")
        .and_then(|value| value.parse().ok())
        .unwrap_or(1);
    let mut sent = 0;
    while sent < count {
        let batch: Vec<String> = (sent..count.min(sent + 100))
            .map(|n| n.to_string())
            .collect();
        let size = batch.len() as u64;
        if let Err(refused) = queue::send_batch(&queue, batch).await {
            return Ok(format!("{sent} {refused}"));
        }
        sent += size;
    }
    Ok(format!("{sent} none refused"))
}

async fn dead(req: Request) -> Result<String, Error> {
    let queue = req.param("queue").unwrap_or_default();
    let letters = queue::dead_letters(queue, 100).await?;
    Ok(letters
        .iter()
        .map(|letter| {
            let payload = String::from_utf8_lossy(&letter.payload);
            format!("{payload} {} {}\n", letter.attempts, letter.error)
        })
        .collect())
}

/// Each delivery counted once per message and attempt (twice is a
/// duplicate), and each message that was delivered at all.
async fn work(batch: Batch) -> Result<(), Error> {
    // Numbered messages take a little while: a host killed mid-way is then
    // likely to hold a batch, whose lease must lapse for another to take it.
    if batch
        .messages()
        .iter()
        .any(|message| message.payload_text().parse::<u64>().is_ok())
    {
        sleep(Duration::from_millis(200)).await;
    }
    for message in batch.messages() {
        let delivery = format!("delivery:{}:{}", message.id(), message.attempt());
        if kv::increment(&delivery, 1).await? > 1 {
            kv::increment("delivery-duplicates", 1).await?;
        }
        if kv::increment(&format!("got:{}", message.id()), 1).await? == 1 {
            kv::increment("distinct-messages", 1).await?;
        }
        if message.attempt() > 1 {
            kv::increment("redelivered", 1).await?;
        }
        let text = message.payload_text();
        log::info(format!("work {text} attempt {}", message.attempt()));
        let done = match text.as_str() {
            "doomed" => false,
            "flaky" => message.attempt() >= 3,
            _ => true,
        };
        if !done {
            batch.retry(message);
        }
    }
    Ok(())
}

/// How late this tick started, in ms, kept by its due time.
async fn jitter(tick: Tick) -> Result<(), Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let late = now.saturating_sub(tick.scheduled_ms());
    kv::set(&format!("jitter:{}", tick.scheduled_ms()), late.to_string()).await?;
    Ok(())
}

/// Every lateness kept, a line each.
async fn jitters(_req: Request) -> Result<String, Error> {
    let page = kv::list_keys("jitter:", None, 1000).await?;
    let values = kv::get_many(&page.keys).await?;
    Ok(values
        .into_iter()
        .flatten()
        .map(|value| format!("{}\n", String::from_utf8_lossy(&value)))
        .collect())
}

/// Counted once per attempt: an attempt run twice is a duplicate.
async fn note(job: Job) -> Result<(), Error> {
    // Numbered jobs take a little while, as numbered messages do.
    if job.payload_text().parse::<u64>().is_ok() {
        sleep(Duration::from_millis(200)).await;
    }
    let run = format!("run:{}:{}", job.id(), job.attempt());
    if kv::increment(&run, 1).await? > 1 {
        kv::increment("job-duplicates", 1).await?;
    }
    if kv::increment(&format!("done:{}", job.id()), 1).await? == 1 {
        kv::increment("distinct-jobs", 1).await?;
    }
    if job.attempt() > 1 {
        kv::increment("redelivered", 1).await?;
    }
    let runs = kv::increment("job-runs", 1).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    log::info(format!(
        "note {} ran ({runs} runs) attempt {} at {now}",
        job.payload_text(),
        job.attempt()
    ));
    Ok(())
}

async fn flaky(job: Job) -> Result<(), Error> {
    log::info(format!("flaky attempt {}", job.attempt()));
    if job.attempt() < 3 {
        return Err(Error::bad_request("not yet"));
    }
    kv::increment("flaky-done", 1).await?;
    Ok(())
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
    spin_forever()
}

fn spin_forever() -> ! {
    log::info("spinning");
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

squall_sdk::export!(app);
