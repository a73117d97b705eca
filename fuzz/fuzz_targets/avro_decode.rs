//! Any bytes into the Avro decoders, bare and Confluent-framed (schema id 1
//! known as the bundled schema): an event or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use reset_pipeline::codec::{Decoder, WriterSchema, BUNDLED_SCHEMA};
use reset_pipeline::config::InputFormat;

fuzz_target!(|data: &[u8]| {
    for format in [InputFormat::Avro, InputFormat::AvroConfluent] {
        let mut decoder = Decoder::new(format);
        decoder
            .avro_mut()
            .register(1, WriterSchema::parse(BUNDLED_SCHEMA).expect("bundled schema"));
        let _ = decoder.decode(data);
    }
});
