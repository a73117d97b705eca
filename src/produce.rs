//! `produce`: raw events from a JSON-lines file, encoded in the configured
//! input format and sent to the input topic keyed by connection_id.

use crate::codec::{decode_json, encode};
use crate::config::{Config, InputFormat};
use crate::event::SensorEvent;
use crate::kafka::client_config;
use crate::kafka::quiet::Quiet;
use crate::progress_line::ProgressLine;
use crate::schema_registry::SchemaRegistry;
use anyhow::{anyhow, Context, Result};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::io::BufRead;
use std::time::Duration;

/// What `produce` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Produced {
    pub sent: u64,
    pub skipped: u64,
}

/// Sends events to `topic`; lines that are not events are skipped and reported.
pub async fn produce_events(
    config: &Config,
    topic: &str,
    events: impl IntoIterator<Item = SensorEvent>,
) -> Result<u64> {
    // The schema first: a config that cannot be used, or a registry that
    // cannot be reached, is told before the broker is tried.
    let schema_id = match config.input.format {
        InputFormat::AvroConfluent => {
            let url = config.input.schema_registry_url.as_deref().ok_or_else(|| {
                anyhow!("input.schema_registry_url is required for avro-confluent")
            })?;
            SchemaRegistry::new(url)
                .register_bundled(&format!("{topic}-value"))
                .await?
        }
        _ => 0,
    };
    let producer: FutureProducer<Quiet> = client_config(&config.kafka)
        .set("linger.ms", "20")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "1")
        .create_with_context(Quiet)
        .context("cannot create the Kafka producer")?;
    // Enqueued one by one, in order: a monitor's samples keep their order in its partition.
    let events = events.into_iter();
    let mut progress =
        ProgressLine::new("produce", "events", events.size_hint().1.map(|n| n as u64));
    let mut sent = 0u64;
    let mut pending = std::collections::VecDeque::new();
    for event in events {
        let payload = encode(config.input.format, schema_id, &event);
        let mut record = FutureRecord::to(topic)
            .key(&event.connection_id)
            .payload(&payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push_back(delivery);
                    break;
                }
                Err((e, r))
                    if e.rdkafka_error_code()
                        == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                {
                    record = r;
                    wait_one(&mut pending, &mut sent).await?;
                }
                Err((e, _)) => return Err(anyhow!(e).context("cannot send")),
            }
        }
        if pending.len() >= 50_000 {
            wait_one(&mut pending, &mut sent).await?;
        }
        progress.update(sent);
    }
    while !pending.is_empty() {
        wait_one(&mut pending, &mut sent).await?;
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flush failed")?;
    Ok(sent)
}

async fn wait_one(
    pending: &mut std::collections::VecDeque<rdkafka::producer::DeliveryFuture>,
    sent: &mut u64,
) -> Result<()> {
    if let Some(delivery) = pending.pop_front() {
        delivery
            .await
            .context("the producer stopped")?
            // The error's text only: its source says the same again.
            .map_err(|(e, _)| anyhow!("send failed: {e}"))?;
        *sent += 1;
    }
    Ok(())
}

/// Reads events from JSON lines; bad lines are reported on stderr and skipped.
pub fn read_events(input: &mut dyn BufRead, source: &str) -> Result<(Vec<SensorEvent>, u64)> {
    let mut events = Vec::new();
    let mut skipped = 0;
    crate::offline::skip_byte_order_mark(input)
        .with_context(|| format!("{source}: cannot read"))?;
    for (i, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("{source}: cannot read"))?;
        if line.trim().is_empty() {
            continue;
        }
        match decode_json(line.as_bytes()) {
            Ok(e) => events.push(e),
            Err(e) => {
                skipped += 1;
                eprintln!("{source}:{}: skipped: {e}", i + 1);
            }
        }
    }
    Ok((events, skipped))
}

#[cfg(test)]
mod tests {
    use super::read_events;

    #[test]
    fn a_byte_order_mark_at_the_start_is_no_part_of_the_first_event() {
        let line = "{\"connection_id\":\"A\",\"event_time\":0,\"measurements\":[]}\n";
        let plain = read_events(&mut line.as_bytes(), "e.jsonl").unwrap();
        let marked = format!("\u{feff}{line}");
        let read = read_events(&mut marked.as_bytes(), "e.jsonl").unwrap();
        assert_eq!(plain.1, 0);
        assert_eq!(read.0, plain.0);
        assert_eq!(read.1, 0);
    }
}
