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

/// Text: arbitrary characters, or a valid text with some of its characters
/// replaced (by any character, wide ones included), cut short or extended:
/// the YAML loaders see only valid UTF-8, so byte noise rarely reaches them.
fn text_near(valid: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let noise = any::<String>();
    let mutated = (
        proptest::sample::select(valid),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<char>()), 0..8),
        any::<prop::sample::Index>(),
        any::<String>(),
    )
        .prop_map(|(text, replaced, cut, tail)| {
            let mut chars: Vec<char> = text.chars().collect();
            if !chars.is_empty() {
                for (at, c) in replaced {
                    let i = at.index(chars.len());
                    chars[i] = c;
                }
                chars.truncate(cut.index(chars.len() + 1));
            }
            chars.into_iter().collect::<String>() + &tail
        });
    prop_oneof![noise, mutated].prop_map(String::into_bytes)
}

fn sample_events() -> Vec<reset_pipeline::event::SensorEvent> {
    let registry = std::sync::Arc::new(reset_pipeline::synthetic::fleet(5));
    reset_pipeline::synthetic::SampleStream::new(registry, 1_773_558_000_000, 30_000, 3)
        .take(20)
        .collect()
}

fn run(name: &str, valid: Vec<Vec<u8>>, check: impl Fn(&[u8])) {
    run_with(name, bytes_near(valid), check);
}

fn run_with(name: &str, inputs: impl Strategy<Value = Vec<u8>>, check: impl Fn(&[u8])) {
    runner()
        .run(&inputs, |bytes| {
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
    // Durations a field's own check refuses, which a problem is moved to
    // from their mapping, in block and in flow style.
    let bad_durations = "reset:\n  url: 'http://x'\n  ack_timeout: 5 ñ\nwindowing: {allowed_lateness: ∞, max_future_skew: {a: 1}}\n";
    let valid = vec![
        std::fs::read_to_string("examples/config.yaml").unwrap(),
        bad_durations.to_string(),
    ];
    run_with("config", text_near(valid), |b| {
        if let Ok(text) = std::str::from_utf8(b) {
            if let Ok(c) = Config::parse(text, "c.yaml") {
                let _ = c.validate("c.yaml");
            }
        }
    });
}

#[test]
fn the_registry_loaders_take_any_text() {
    let file = std::fs::read_to_string("examples/monitors.yaml").unwrap();
    // The file cut where the fuzzer found a panic in cutting YAML into parts.
    let found = ":[\"\u{1f}\n- \n&\0\0\0\0\0\0\0\u{428a}\n:\n  -\n.\u{428a}\n\u{1a}\n".to_string();
    run_with("registry yaml", text_near(vec![file, found]), |b| {
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
