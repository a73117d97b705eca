//! Throughput of the core on a fleet of 10,000 monitors (mixed modules) at one
//! sample per 10 s: (a) decoded events through the engine (windows closed with
//! their values), the same through the whole partition pipeline (engine,
//! batcher with message ids and payloads, offset tracker, every message
//! answered), (b) bare Avro bytes through decode and that pipeline, and (c)
//! the decoding alone, Avro (`codec/avro`) and JSON (`codec/json`). Only the core is timed:
//! generating and encoding the samples happens outside the measured spans.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use reset_pipeline::batch::Batch;
use reset_pipeline::codec::{encode, encode_avro, Decoder};
use reset_pipeline::config::{InputFormat, PushMode};
use reset_pipeline::event::{ReusedEvent, SensorEvent};
use reset_pipeline::pipeline::PartitionPipeline;
use reset_pipeline::registry::Registry;
use reset_pipeline::synthetic::{fleet, SampleStream};
use reset_pipeline::window::{Engine, EngineSettings};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: reset_pipeline::Allocator = reset_pipeline::Allocator;

const MONITORS: usize = 10_000;
const INTERVAL_MS: i64 = 10_000;
const CHUNK: usize = 50_000;
const START_MS: i64 = 1_773_532_800_000; // 2026-03-15T00:00:00Z

/// Times `each` over `iters` items made `CHUNK` at a time by `make`, which is not timed.
fn timed_chunks<T>(
    iters: u64,
    mut make: impl FnMut(usize) -> Vec<T>,
    mut each: impl FnMut(&T),
) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let chunk = make(left.min(CHUNK));
        left -= chunk.len();
        let start = Instant::now();
        for item in &chunk {
            each(item);
        }
        timed += start.elapsed();
    }
    timed
}

/// A group measuring events per second, 20 samples of `seconds` each.
fn events_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    seconds: u64,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(seconds));
    group
}

fn engine_throughput(c: &mut Criterion) {
    let registry = Arc::new(fleet(MONITORS));
    let mut group = events_group(c, "window/engine", 8);

    // (a) the engine alone: samples in, windows closed with their values.
    let mut stream = SampleStream::new(Arc::clone(&registry), START_MS, INTERVAL_MS, 7);
    let mut engine = Engine::new(Arc::clone(&registry), EngineSettings::default());
    let mut offset = 0u64;
    let mut rejects = Vec::new();
    group.bench_function(BenchmarkId::new("engine_only", MONITORS), |b| {
        b.iter_custom(|iters| {
            timed_chunks(
                iters,
                |n| stream.by_ref().take(n).collect(),
                |e: &SensorEvent| {
                    offset += 1;
                    engine.record(offset, e, Some(e.event_time), &mut rejects);
                    std::hint::black_box(engine.advance());
                },
            )
        })
    });
    assert!(rejects.is_empty());

    // The same through the whole partition pipeline; each message answered at
    // once, as RESET would, so the tracker stays small.
    let mut stream = SampleStream::new(Arc::clone(&registry), START_MS, INTERVAL_MS, 7);
    let mut pipeline = partition_pipeline(&registry);
    let mut offset = 0u64;
    group.bench_function(BenchmarkId::new("decoded_events", MONITORS), |b| {
        b.iter_custom(|iters| {
            timed_chunks(
                iters,
                |n| stream.by_ref().take(n).collect(),
                |e: &SensorEvent| {
                    offset += 1;
                    let batches = pipeline.record(offset, e, Some(e.event_time), &mut rejects);
                    answer_all(&mut pipeline, batches);
                },
            )
        })
    });
    assert!(rejects.is_empty());

    // (b) bare Avro bytes through decode and the pipeline.
    let mut stream = SampleStream::new(Arc::clone(&registry), START_MS, INTERVAL_MS, 7);
    let mut pipeline = partition_pipeline(&registry);
    let decoder = Decoder::new(InputFormat::Avro);
    let mut offset = 0u64;
    group.bench_function(BenchmarkId::new("avro_decode_and_engine", MONITORS), |b| {
        b.iter_custom(|iters| {
            timed_chunks(
                iters,
                |n| stream.by_ref().take(n).map(|e| encode_avro(&e)).collect(),
                |bytes: &Vec<u8>| {
                    offset += 1;
                    let batches =
                        pipeline.record_bytes(&decoder, offset, None, bytes, &mut rejects);
                    answer_all(&mut pipeline, batches);
                },
            )
        })
    });
    assert!(rejects.is_empty());
    group.finish();
}

/// A partition pipeline over `registry` with the default settings.
fn partition_pipeline(registry: &Arc<Registry>) -> PartitionPipeline {
    PartitionPipeline::new(
        Arc::clone(registry),
        EngineSettings::default(),
        PushMode::Every30Minutes,
    )
}

/// RESET answers every message at once, so the tracker stays small.
fn answer_all(pipeline: &mut PartitionPipeline, batches: Vec<Batch>) {
    for b in batches {
        pipeline.message_answered(std::hint::black_box(&b.message_id));
    }
}

/// Decoding alone, over the same events in `format`, decoded over one
/// event as the partition pipeline does, so allocations are reused.
fn decode_throughput(c: &mut Criterion, format: InputFormat, name: &str) {
    let registry = Arc::new(fleet(MONITORS));
    let mut group = events_group(c, name, 5);
    let mut stream = SampleStream::new(Arc::clone(&registry), START_MS, INTERVAL_MS, 7);
    let decoder = Decoder::new(format);
    let mut event = ReusedEvent::default();
    group.bench_function(BenchmarkId::new("decode_into", MONITORS), |b| {
        b.iter_custom(|iters| {
            timed_chunks(
                iters,
                |n| {
                    stream
                        .by_ref()
                        .take(n)
                        .map(|e| encode(format, 1, &e))
                        .collect()
                },
                |bytes: &Vec<u8>| {
                    decoder.decode_into(bytes, &mut event).unwrap();
                    std::hint::black_box(&event);
                },
            )
        })
    });
    group.finish();
}

fn avro_decode_throughput(c: &mut Criterion) {
    decode_throughput(c, InputFormat::Avro, "codec/avro");
}

fn json_decode_throughput(c: &mut Criterion) {
    decode_throughput(c, InputFormat::Json, "codec/json");
}

criterion_group!(
    benches,
    engine_throughput,
    avro_decode_throughput,
    json_decode_throughput
);
criterion_main!(benches);
