//! Host patterns and path prefixes, lines of `host|prefix`, and a request's
//! host and path (the last line) against them.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    let mut lines: Vec<&str> = text.lines().collect();
    let request = lines.pop().unwrap_or_default();
    let (host, path) = request.split_once('|').unwrap_or((request, "/"));
    let (hosts, routes): (Vec<String>, Vec<String>) = lines
        .iter()
        .map(|line| {
            let (host, prefix) = line.split_once('|').unwrap_or(("", line));
            (host.to_owned(), prefix.to_owned())
        })
        .unzip();
    squall::fuzzing::routes(&hosts, &routes, host, path);
});
