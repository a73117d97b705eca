//! Readings per second published to the local emulator with acknowledgements:
//! 1,000 monitors, one message of 48 readings (a local day) each, per round,
//! `max_in_flight` 16. The monitors are created first, outside the measured span.
//! Then the time to open and authenticate a connection, over 10 in a row.
//! Run with `cargo bench --bench publish`.

use reset_pipeline::config::{PushMode, Secret};
use reset_pipeline::emulator::{serve, EmulatorOptions};
use reset_pipeline::payload::Announcements;
use reset_pipeline::pipeline::{with_announcements, Emission, PartitionPipeline};
use reset_pipeline::sink::{Connection, Fate, Outgoing, Publisher, PublisherSettings};
use reset_pipeline::synthetic::{fleet, SampleStream};
use reset_pipeline::window::EngineSettings;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: reset_pipeline::Allocator = reset_pipeline::Allocator;

const MONITORS: usize = 1_000;
const DAYS: i64 = 3;
const START_MS: i64 = 1_773_532_800_000; // 2026-03-15T00:00:00Z

/// The fleet's messages: creates, then days of 48-reading messages.
fn messages() -> (Vec<Outgoing>, Vec<Outgoing>, usize) {
    let registry = Arc::new(fleet(MONITORS));
    let samples = MONITORS * (DAYS as usize * 48 + 1);
    let mut pipeline =
        PartitionPipeline::new(registry.clone(), EngineSettings::default(), PushMode::Daily);
    let mut rejects = Vec::new();
    let mut batches = Vec::new();
    let stream = SampleStream::new(registry.clone(), START_MS, 30 * 60 * 1000, 11);
    for (offset, event) in stream.take(samples).enumerate() {
        batches.extend(pipeline.record(
            offset as u64,
            &event,
            Some(event.event_time),
            &mut rejects,
        ));
    }
    let (mut creates, mut readings, mut rows) = (Vec::new(), Vec::new(), 0);
    for e in with_announcements(&registry, &mut Announcements::default(), batches) {
        match &e {
            Emission::Monitor { .. } => creates.push(Outgoing::from(e)),
            Emission::Readings(b) if b.ends.len() == 48 => {
                rows += 48;
                readings.push(Outgoing::from(e));
            }
            Emission::Readings(_) => {}
        }
    }
    (creates, readings, rows)
}

async fn publish_all(
    publisher: &Publisher,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<reset_pipeline::sink::Delivery>,
    messages: &[Outgoing],
) {
    let mut answered = 0;
    let mut sent = messages.iter();
    // Feed and collect together so the publisher's queue bound never stalls the feeder.
    loop {
        tokio::select! {
            Some(d) = rx.recv() => {
                assert_eq!(d.fate, Fate::Acknowledged, "{}", d.message_id);
                answered += 1;
                if answered == messages.len() { return; }
            }
            next = async { sent.next() }, if sent.len() > 0 => {
                if let Some(m) = next { publisher.publish(m.clone()).await; }
            }
        }
    }
}

fn main() {
    let (creates, readings, rows) = messages();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let emulator = serve("127.0.0.1:0".parse().unwrap(), EmulatorOptions::default()).await.unwrap();
        let mut settings = PublisherSettings::new(&format!("http://{}", emulator.addr), "demo", Secret::new("demo"));
        settings.max_in_flight = 16;
        let (publisher, mut rx) = Publisher::start(settings);
        publish_all(&publisher, &mut rx, &creates).await;
        let start = Instant::now();
        publish_all(&publisher, &mut rx, &readings).await;
        let elapsed = start.elapsed();
        publisher.drain(Duration::from_secs(5)).await;
        let held = emulator.state.lock().unwrap().readings.len();
        assert_eq!(held, rows, "the emulator holds every reading");
        println!(
            "publish: {} readings in {} messages of 48 from {} monitors, acknowledged in {:.2} s: {:.0} readings/s ({:.0} messages/s), max_in_flight 16",
            rows,
            readings.len(),
            MONITORS,
            elapsed.as_secs_f64(),
            rows as f64 / elapsed.as_secs_f64(),
            readings.len() as f64 / elapsed.as_secs_f64()
        );

        const OPENS: u32 = 10;
        let url = format!("http://{}", emulator.addr);
        let start = Instant::now();
        for _ in 0..OPENS {
            let (connection, _replies) =
                Connection::open(&url, "/v2", "demo", &Secret::new("demo"), Duration::from_secs(5), None)
                    .await
                    .unwrap();
            connection.close().await;
        }
        let elapsed = start.elapsed();
        println!(
            "connect: {OPENS} connections opened and authenticated one after another in {:.2} s ({:.1} ms each)",
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0 / f64::from(OPENS)
        );
    });
}
