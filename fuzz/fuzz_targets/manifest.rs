//! A manifest, as `squall serve` reads one.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    squall::fuzzing::manifest(text);
});
