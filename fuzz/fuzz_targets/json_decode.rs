//! Any bytes into the JSON-lines event decoder: an event or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use reset_pipeline::codec::Decoder;
use reset_pipeline::config::InputFormat;

fuzz_target!(|data: &[u8]| {
    let _ = Decoder::new(InputFormat::Json).decode(data);
});
