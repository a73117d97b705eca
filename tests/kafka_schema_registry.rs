//! Confluent-framed Avro through a schema registry (a stand-in over real
//! HTTP) on both test brokers: records of two writer schemas interleaved on
//! the partitions decode by schema resolution into exactly what `aggregate`
//! gives for the same events; records of an id the registry does not hold
//! are dead-lettered as `decode`; and a registry that hangs, then answers
//! 503, while the first records wait for their schemas, delays the run but
//! loses nothing.

#[macro_use]
mod common;
use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use common::kafka::*;
use common::rfc3339;
use common::schema_registry::{Mode, RegistryStandIn};
use reset_pipeline::emulator::EmulatorOptions;
use reset_pipeline::event::{SampleValue, SensorEvent};
use reset_pipeline::synthetic::fleet;
use std::time::Duration;

on_both_brokers!(two_writer_schemas_and_a_registry_away_end_exact);

/// The first writer schema: no `channel_id` yet, fields in another order.
const V1: &str = r#"{"type": "record", "name": "SensorEvent", "namespace": "build.reset.pipeline",
 "fields": [
  {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "connection_id", "type": "string"},
  {"name": "measurements", "type": {"type": "array", "items": {
     "type": "record", "name": "Measurement", "fields": [
       {"name": "parameter", "type": "string"},
       {"name": "value", "type": ["null", "double"], "default": null},
       {"name": "unit", "type": ["null", "string"], "default": null}]}}},
  {"name": "bin_emptied", "type": "boolean", "default": false}]}"#;

/// The second: `channel_id`, and a field the reader does not know, with a default.
const V2: &str = r#"{"type": "record", "name": "SensorEvent", "namespace": "build.reset.pipeline",
 "fields": [
  {"name": "connection_id", "type": "string"},
  {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "channel_id", "type": ["null", "string"], "default": null},
  {"name": "firmware", "type": "string", "default": "unknown"},
  {"name": "measurements", "type": {"type": "array", "items": {
     "type": "record", "name": "Measurement", "fields": [
       {"name": "parameter", "type": "string"},
       {"name": "value", "type": ["null", "double"], "default": null},
       {"name": "unit", "type": ["null", "string"], "default": null}]}}},
  {"name": "bin_emptied", "type": "boolean", "default": false}]}"#;

/// An id the stand-in does not hold.
const UNKNOWN_ID: u32 = 999;

fn optional(value: Option<Avro>) -> Avro {
    match value {
        None => Avro::Union(0, Box::new(Avro::Null)),
        Some(v) => Avro::Union(1, Box::new(v)),
    }
}

/// `event` as a record of the writer `schema` (V1 or V2), field by field.
fn record_of(schema: &Schema, event: &SensorEvent) -> Avro {
    let Schema::Record(record) = schema else {
        panic!("a record schema")
    };
    let measurements: Vec<Avro> = event
        .measurements
        .iter()
        .map(|m| {
            let value = match m.value {
                SampleValue::Number(v) => Some(Avro::Double(v)),
                _ => None,
            };
            Avro::Record(vec![
                ("parameter".into(), Avro::String(m.parameter.clone())),
                ("value".into(), optional(value)),
                ("unit".into(), optional(m.unit.clone().map(Avro::String))),
            ])
        })
        .collect();
    let fields = record
        .fields
        .iter()
        .map(|f| {
            let value = match f.name.as_str() {
                "connection_id" => Avro::String(event.connection_id.clone()),
                "event_time" => Avro::TimestampMillis(event.event_time),
                "channel_id" => optional(event.channel_id.clone().map(Avro::String)),
                "firmware" => Avro::String("4.2.0".into()),
                "measurements" => Avro::Array(measurements.clone()),
                "bin_emptied" => Avro::Boolean(event.bin_emptied),
                other => panic!("no field {other}"),
            };
            (f.name.clone(), value)
        })
        .collect();
    Avro::Record(fields)
}

/// The Confluent framing: magic byte, schema id, datum.
fn framed(id: u32, schema: &Schema, event: &SensorEvent) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(apache_avro::to_avro_datum(schema, record_of(schema, event)).unwrap());
    out
}

fn produce_framed(bootstrap: &str, records: &[(String, Vec<u8>)]) {
    use rdkafka::producer::{BaseRecord, Producer};
    let producer: rdkafka::producer::BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "50")
        .create()
        .unwrap();
    for (key, payload) in records {
        while let Err((e, _)) =
            producer.send(BaseRecord::to("sensor-events").key(key).payload(payload))
        {
            assert!(
                matches!(
                    e.rdkafka_error_code(),
                    Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                ),
                "{e}"
            );
            producer.poll(Duration::from_millis(50));
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

async fn two_writer_schemas_and_a_registry_away_end_exact(kind: BrokerKind) {
    let Setup {
        broker,
        emulator,
        dir,
        registry,
    } = setup_with(kind, fleet(8), EmulatorOptions::default()).await;
    let stand_in = RegistryStandIn::start().await;
    let (v1, v2) = (stand_in.add(V1), stand_in.add(V2));
    let (s1, s2) = (
        Schema::parse_str(V1).unwrap(),
        Schema::parse_str(V2).unwrap(),
    );
    let events = samples(&registry, 3, 240);
    let expected = expected_rows(&registry, &events);
    let mut records = Vec::new();
    let (mut unknown, mut of_v1) = (0, 0);
    for (i, event) in events.iter().enumerate() {
        let key = event.connection_id.clone();
        if i % 97 == 0 {
            // A copy of the event under an id the registry does not hold:
            // decoded, it would change its window.
            records.push((key.clone(), framed(UNKNOWN_ID, &s2, event)));
            unknown += 1;
        }
        let payload = if event.channel_id.is_none() && i % 2 == 0 {
            of_v1 += 1;
            framed(v1, &s1, event)
        } else {
            framed(v2, &s2, event)
        };
        records.push((key, payload));
    }
    assert!(
        of_v1 > 0 && of_v1 < events.len(),
        "{of_v1} of {}",
        events.len()
    );
    produce_framed(&broker.bootstrap, &records);
    let config = write_config(dir.path(), &broker.bootstrap, emulator.addr, "");
    let confluent = format!(
        "input:\n  format: avro-confluent\n  schema_registry_url: \"{}\"\n",
        stand_in.url()
    );
    edit_config(&config, &[("input:\n  format: avro\n", &confluent)]);
    let log = dir.path().join("pipeline.log");
    // The registry hangs (the client gives up after 10 s), then answers 503.
    stand_in.set_mode(Mode::Hanging);
    let mut pipeline = Pipeline::start(&config, &log);
    let failures = |p: &Pipeline| {
        p.metric("reset_pipeline_schema_registry_failures_total{}")
            .unwrap_or(0.0)
    };
    assert!(
        wait_until(Duration::from_secs(60), || failures(&pipeline) >= 1.0).await,
        "no timeout from a hanging registry"
    );
    stand_in.set_mode(Mode::Unavailable);
    assert!(
        wait_until(Duration::from_secs(60), || failures(&pipeline) >= 4.0).await,
        "no retries while the registry answers 503"
    );
    assert!(pipeline.is_running(), "a registry away ended the run");
    let decoded = pipeline.metric("reset_pipeline_records_decoded_total{}");
    assert_eq!(decoded, Some(0.0), "records decoded without their schema");
    let asked = stand_in.requests();
    stand_in.set_mode(Mode::Healthy);
    assert_reset_receives(&emulator, expected.len(), Duration::from_secs(120)).await;
    let dead_lettered = || {
        read_topic(&broker.bootstrap, "sensor-events.dlq")
            .iter()
            .filter(|l| l["reason"] == "decode")
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(60), || dead_lettered() >= unknown).await,
        "{} of {unknown} records of an unknown schema dead-lettered",
        dead_lettered()
    );
    let failed = failures(&pipeline);
    assert!(pipeline.terminate().success());
    assert_eq!(emulator_rows(&emulator.state.lock().unwrap()), expected);
    assert_eq!(dead_lettered(), unknown);
    let log = std::fs::read_to_string(&log).unwrap();
    let warnings = log.matches("cannot fetch a writer schema yet").count();
    assert!(
        (1..=failed as usize).contains(&warnings),
        "{warnings} warnings for {failed} failures:\n{log}"
    );
    // `replay` decodes the same records through the same registry.
    let out = dir.path().join("replay.jsonl");
    let o = std::process::Command::new(BIN)
        .args(["replay", "--config", config.to_str().unwrap()])
        .args([
            "--from",
            &rfc3339(START - 86_400_000),
            "--to",
            &rfc3339(START + 86_400_000),
        ])
        .args(["--dry-run", out.to_str().unwrap()])
        .env("RESET_CLIENT_SECRET", "demo")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let replayed = rows_of(
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["event"] == "readings")
            .map(|e| e["payload"].clone()),
    );
    assert_eq!(replayed, expected);
    eprintln!(
        "{kind:?}: {} records ({of_v1} of the first writer schema, {unknown} of an unknown one); the registry was asked {asked} times while away, {failed} failures, {warnings} warnings",
        records.len()
    );
}
