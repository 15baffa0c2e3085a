//! The job store on the embedded backend: order, takers, leases, quota.

use super::*;
use crate::kv::embedded::Embedded;

fn store(dir: &tempfile::TempDir) -> JobStore {
    let backend = Embedded::open(&dir.path().join("kv.redb")).expect("a store");
    JobStore::new(backend, "app", 10, 1 << 10)
}

fn job(due_ms: u64, name: &str) -> JobRecord {
    JobRecord {
        due_ms,
        attempt: 0,
        leased: false,
        name: name.to_owned(),
        payload: b"line one\nline two".to_vec(),
    }
}

#[test]
fn a_record_survives_its_encoding_newlines_and_all() {
    let record = job(42, "remind");
    assert_eq!(JobRecord::decode(&record.encode()), Some(record));
    let id = new_job_id().expect("an id");
    assert!(is_job_id(&id), "{id}");
    assert!(!is_job_id("../../other-app") && !is_job_id(&id.to_uppercase()));
    assert_eq!(JobRecord::decode(b"not a record"), None);
}

#[tokio::test]
async fn due_jobs_come_in_order_and_only_once_due() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let jobs = store(&dir);
    jobs.add("b", &job(2_000, "second")).await.expect("added");
    jobs.add("a", &job(1_000, "first")).await.expect("added");
    jobs.add("c", &job(9_000, "later")).await.expect("added");
    let due = jobs.due(2_000, 100).await.expect("listed");
    let names: Vec<_> = due.jobs.iter().map(|(_, job)| job.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(due.next_ms, Some(9_000));
}

#[tokio::test]
async fn one_taker_wins_each_attempt_and_a_lease_falls_due_again() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let jobs = store(&dir);
    let seen = job(1_000, "once");
    jobs.add("x", &seen).await.expect("added");
    let taken = jobs.take("x", &seen, 5_000).await.expect("taken");
    assert!(taken.is_some());
    // A second host that saw the same record loses.
    assert_eq!(jobs.take("x", &seen, 5_000).await.expect("asked"), None);
    assert!(jobs.due(4_999, 100).await.expect("listed").jobs.is_empty());
    // Running, it cannot be cancelled.
    assert!(!jobs.cancel("x").await.expect("asked"));
    // Its host died: the lease falls due, attempt 1 already counted.
    let again = jobs.due(5_000, 100).await.expect("listed").jobs;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1.attempt, 1);
    assert!(again[0].1.leased);
}

#[tokio::test]
async fn a_removed_or_retried_job_leaves_no_stale_entry() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let jobs = store(&dir);
    let seen = job(1_000, "cancel me");
    jobs.add("x", &seen).await.expect("added");
    assert!(jobs.cancel("x").await.expect("cancelled"));
    assert!(!jobs.cancel("x").await.expect("asked"));
    assert!(!jobs.remove("x", &seen).await.expect("asked"));
    assert!(
        jobs.due(u64::MAX, 100)
            .await
            .expect("listed")
            .jobs
            .is_empty()
    );

    let seen = job(1_000, "retry me");
    jobs.add("y", &seen).await.expect("added");
    let taken = jobs.take("y", &seen, 3_000).await.expect("taken");
    let taken = taken.expect("ours");
    assert!(jobs.put_back("y", &taken, 2_000).await.expect("moved"));
    let due = jobs.due(2_000, 100).await.expect("listed").jobs;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].1.attempt, 1);
    assert!(!due[0].1.leased);
    assert!(jobs.due(1_999, 100).await.expect("listed").jobs.is_empty());
}

#[tokio::test]
async fn many_jobs_move_in_a_few_writes_each_taken_once() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let jobs = store(&dir);
    let seen: Vec<(String, JobRecord)> = (0..5)
        .map(|n| (format!("m{n}"), job(1_000 + n, "q")))
        .collect();
    jobs.add_all(&seen).await.expect("added");
    let taken = jobs.take_all(&seen, 9_000).await.expect("taken");
    assert!(taken.iter().all(Option::is_some));
    // Another host that saw the same records takes none of them.
    let again = jobs.take_all(&seen, 9_001).await.expect("asked");
    assert!(again.iter().all(Option::is_none));
    let taken: Vec<(String, JobRecord)> = seen
        .iter()
        .zip(taken)
        .filter_map(|((id, _), job)| Some((id.clone(), job?)))
        .collect();
    let (done, retried) = taken.split_at(3);
    assert_eq!(jobs.remove_all(done).await.expect("removed"), [true; 3]);
    assert_eq!(
        jobs.put_back_all(retried, 2_000).await.expect("moved"),
        [true; 2]
    );
    let due = jobs.due(2_000, 100).await.expect("listed").jobs;
    let ids: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["m3", "m4"]);
    assert!(due.iter().all(|(_, job)| job.attempt == 1 && !job.leased));
    // The losing host's entries at 9_001 are stale: dropped when met.
    assert!(jobs.due(u64::MAX, 100).await.expect("listed").jobs.len() == 2);
    assert_eq!(jobs.pending().await.expect("counted"), 2);
}

#[tokio::test]
async fn past_its_pending_limit_a_job_is_refused_whole() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let jobs = store(&dir);
    for n in 0..10 {
        jobs.add(&format!("{n}"), &job(1_000, "n"))
            .await
            .expect("added");
    }
    let refused = jobs.add("11", &job(1_000, "n")).await;
    assert!(matches!(refused, Err(KvFailure::Quota(_))), "{refused:?}");
    // Full, its jobs still move: taken, released, retried.
    let seen = job(1_000, "n");
    let taken = jobs.take("3", &seen, 9_000).await.expect("asked");
    let taken = taken.expect("taken at full quota");
    assert!(jobs.release("3", &taken, 1_000).await.expect("released"));
    let again = jobs.due(1_000, 100).await.expect("listed").jobs;
    assert_eq!(again.len(), 10);
    assert!(again.iter().all(|(_, job)| job.attempt == 0 && !job.leased));
    assert_eq!(
        jobs.due(u64::MAX, 100).await.expect("listed").jobs.len(),
        10
    );
    assert_eq!(jobs.pending().await.expect("counted"), 10);
    let too_big = JobRecord {
        payload: vec![0; 4096],
        ..job(1_000, "big")
    };
    let refused = jobs.add("big", &too_big).await;
    assert!(matches!(refused, Err(KvFailure::Quota(_))), "{refused:?}");
}
