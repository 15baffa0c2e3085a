//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`):
//! the parsers a client, a guest or a manifest reaches, each taking any
//! input. A panic is a failure; an error is an answer.

use crate::routes::{Claim, RouteTable};
use std::path::Path;

/// Parse `text` as a manifest; resolve its apps' claims into a route table
/// as a load would.
pub fn manifest(text: &str) {
    let Ok(manifest) = crate::config::Manifest::parse(text, "fuzz.toml", Path::new("/nowhere"))
    else {
        return;
    };
    // Every schedule's next ticks: a cron line that parses must also be
    // searchable, quickly, without panicking, and always move forward. From
    // an ordinary instant, from inside New York's repeated hour (2026-11-01
    // 06:30Z) and from just before Paris's skipped one (2027-03-28 00:59:30Z).
    let starts = [1_800_000_000, 1_793_514_600, 1_806_195_570];
    let schedules = manifest.apps.iter().flat_map(|app| &app.schedules);
    for (schedule, start) in schedules.flat_map(|schedule| starts.map(|start| (schedule, start))) {
        let mut after = chrono::DateTime::from_timestamp(start, 123_456_789).unwrap_or_default();
        for _ in 0..3 {
            match schedule.when.next_after(after) {
                Some(next) if next > after => after = next,
                Some(next) => panic!("{:?}: {next} is not after {after}", schedule.when),
                None => break,
            }
        }
    }
    let claims = manifest.apps.iter().filter_map(|app| {
        Claim::all(&app.hosts, &app.routes)
            .ok()
            .map(|claims| (app.name.clone(), claims, ()))
    });
    let _ = RouteTable::new(claims);
}

/// Claims made of `hosts` and `routes` (one app each), then `host` and
/// `path` looked up in them.
pub fn routes(hosts: &[String], routes: &[String], host: &str, path: &str) {
    let apps = hosts.iter().enumerate().filter_map(|(n, pattern)| {
        let hosts = if pattern.is_empty() {
            Vec::new()
        } else {
            vec![pattern.clone()]
        };
        Claim::all(&hosts, routes)
            .ok()
            .map(|claims| (format!("app{n}"), claims, n))
    });
    if let Ok(table) = RouteTable::new(apps) {
        let _ = table.find(Some(host), path);
        let _ = table.find(None, path);
    }
}

/// A `Range` header against a file of `size` bytes: whether it is served
/// as asked, and the ranges the response builder would send, which then
/// add up to no more than the file.
pub fn range(header: &str, size: u64) {
    if crate::static_files::ranges_fit(header, size)
        && let Ok(ranges) = http_range::HttpRange::parse(header, size)
    {
        let total: u64 = ranges.iter().map(|range| range.length).sum();
        assert!(total <= size, "{header:?} of {size} bytes: {total}");
        assert!(ranges.len() <= crate::static_files::MAX_RANGES);
    }
}
