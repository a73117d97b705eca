//! Any bytes into the Avro decoders, bare and Confluent-framed (schema id 1
//! known as the bundled schema): an event or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use reset_pipeline::codec::{Decoder, WriterSchema, BUNDLED_SCHEMA};
use reset_pipeline::config::InputFormat;
use std::sync::OnceLock;

/// The two decoders, made once: parsing the schema for every input took
/// most of the time.
fn decoders() -> &'static [Decoder; 2] {
    static DECODERS: OnceLock<[Decoder; 2]> = OnceLock::new();
    DECODERS.get_or_init(|| {
        [InputFormat::Avro, InputFormat::AvroConfluent].map(|format| {
            let mut decoder = Decoder::new(format);
            let schema = WriterSchema::parse(BUNDLED_SCHEMA).expect("bundled schema");
            decoder.avro_mut().register(1, schema);
            decoder
        })
    })
}

fuzz_target!(|data: &[u8]| {
    for decoder in decoders() {
        let _ = decoder.decode(data);
    }
});
