//! A `Range` header against a file: never more bytes than the file.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: (&str, u32)| {
    let (header, size) = input;
    squall::fuzzing::range(header, u64::from(size));
});
