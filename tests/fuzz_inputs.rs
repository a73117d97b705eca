//! Arbitrary bytes into every parser of outside input: the JSON and Avro
//! decoders (bare and Confluent-framed), the config and registry loaders
//! (YAML) and the registry topic's records (JSON). None may panic; each
//! answers with a value or an error. A fixed seed and case count keep the
//! run the same on every machine; `fuzz/` holds cargo-fuzz targets for
//! longer runs outside the test command (see the README).

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use reset_pipeline::codec::{encode_json, Decoder};
use reset_pipeline::config::{Config, InputFormat};
use reset_pipeline::registry::Registry;

const CASES: u32 = 20_000;

/// A runner with a fixed seed: the same inputs on every machine and run.
fn runner() -> TestRunner {
    let config = RunnerConfig {
        cases: CASES,
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]))
}

/// Raw bytes, or a valid input with some of its bytes replaced, cut short
/// or extended (which reaches further into a parser than noise does).
fn bytes_near(valid: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let noise = proptest::collection::vec(any::<u8>(), 0..512);
    let mutated = (
        proptest::sample::select(valid),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(mut bytes, flips, cut, tail)| {
            if !bytes.is_empty() {
                for (at, byte) in flips {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes.extend(tail);
            bytes
        });
    prop_oneof![noise, mutated]
}

fn sample_events() -> Vec<reset_pipeline::event::SensorEvent> {
    let registry = std::sync::Arc::new(reset_pipeline::synthetic::fleet(5));
    reset_pipeline::synthetic::SampleStream::new(registry, 1_773_558_000_000, 30_000, 3)
        .take(20)
        .collect()
}

fn run(name: &str, valid: Vec<Vec<u8>>, check: impl Fn(&[u8])) {
    runner()
        .run(&bytes_near(valid), |bytes| {
            check(&bytes);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}

#[test]
fn the_json_decoder_takes_any_bytes() {
    let valid = sample_events()
        .iter()
        .map(|e| encode_json(e).into_bytes())
        .collect();
    let decoder = Decoder::new(InputFormat::Json);
    run("json", valid, |b| {
        let _ = decoder.decode(b);
    });
}

#[test]
fn the_avro_decoders_take_any_bytes() {
    let events = sample_events();
    for format in [InputFormat::Avro, InputFormat::AvroConfluent] {
        let valid = events
            .iter()
            .map(|e| reset_pipeline::codec::encode(format, 1, e))
            .collect();
        let mut decoder = Decoder::new(format);
        let bundled =
            reset_pipeline::codec::WriterSchema::parse(reset_pipeline::codec::BUNDLED_SCHEMA)
                .unwrap();
        decoder.avro_mut().register(1, bundled);
        run(&format!("{format:?}"), valid, |b| {
            let _ = decoder.decode(b);
        });
    }
}

#[test]
fn the_config_loader_takes_any_text() {
    let valid = vec![std::fs::read("examples/config.yaml").unwrap()];
    run("config", valid, |b| {
        if let Ok(text) = std::str::from_utf8(b) {
            if let Ok(c) = Config::parse(text, "c.yaml") {
                let _ = c.validate("c.yaml");
            }
        }
    });
}

#[test]
fn the_registry_loaders_take_any_text() {
    let file = std::fs::read("examples/monitors.yaml").unwrap();
    run("registry yaml", vec![file], |b| {
        if let Ok(text) = std::str::from_utf8(b) {
            let _ = Registry::parse(text, "m.yaml");
        }
    });
    let record = br#"{"connection_id": "EN_7", "module": "energy", "timezone": "America/New_York", "monitor_brand": "ACME", "monitor_sku": "EM-2", "monitor_serial_id": "7", "parameters": {"power_consumption": "kWh"}, "channels": [{"channel_id": "c01"}]}"#;
    let base = Registry::load("examples/monitors.yaml".as_ref()).unwrap();
    run("registry topic", vec![record.to_vec()], |b| {
        let mut r = base.clone();
        let _ = r.apply(Some("EN_7"), Some(b), "monitor-registry/0@1");
    });
}
