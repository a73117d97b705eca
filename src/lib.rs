//! reset-pipeline: raw sensor events to RESET Cloud half-hour readings.
//!
//! The modules, in data-flow order:
//! - [`codec`]: input records (Avro with or without Confluent framing, JSON) → [`event::SensorEvent`]
//! - [`registry`]: the monitors (module, time zone, declared parameters, channels)
//! - [`normalize`]: one measurement → a value in the declared unit, or a [`reject`]
//! - [`window`]: the pure per-partition engine: local-clock half-hours, aggregators, watermark
//! - [`batch`]: closed windows → `readings` messages of at most 48, deterministic ids
//! - [`payload`]: the exact JSON of `readings` and `monitors` messages
//! - [`offsets`]: what a partition may commit, given RESET's answers, and where it resumes
//! - [`pipeline`]: one partition through engine, batcher and offset tracker, monitors announced first
//! - [`offline`]: the `aggregate` command over a JSON-lines file; [`coverage`]: its completeness report
//!
//! The shell around that pure core:
//! - [`sink`]: the authenticated Socket.IO connection to RESET's `/v2` and the publisher
//! - [`kafka`]: client settings, the progress, announcements, dead-letter and monitor-registry topics
//! - [`live`]: the `run` loop; [`replay`]: a historical range; [`produce`]: events to a topic
//! - [`metrics`] and [`http`]: Prometheus metrics, `/metrics`, `/healthz`, `/readyz`
//! - [`schema_registry`]: Confluent writer schemas by id
//!
//! [`emulator`] is a strict RESET stand-in; [`synthetic`] makes fleets and
//! sample streams for [`demo`], the benchmarks and the tests.
//!
//! Around them: [`config`] and [`problem`] for the user's files, [`parameter`]
//! for RESET's vocabulary and units, [`cli`] for the command line,
//! [`output_file`] for the files it writes, [`causes`] for errors told
//! with their causes, [`progress_line`] for how far
//! a long command has come, [`short_eq`] for comparing short keys,
//! [`short_text`] for short ids kept inline, and [`id_index`] for the
//! registry's table of connection ids.

/// The allocator the binary and the benchmarks run on (each declares it
/// as its `#[global_allocator]`): mimalloc's per-size free lists keep the
/// engine's many small, short-lived allocations (a window's slots, a
/// reading's text) cheap and close together, however long the process
/// has run; glibc's were a third to half slower on the engine's benches.
pub use mimalloc::MiMalloc as Allocator;

pub mod batch;
pub mod causes;
pub mod cli;
pub mod codec;
pub mod config;
pub mod coverage;
pub mod demo;
pub mod emulator;
pub mod event;
pub mod http;
pub mod id_index;
pub mod kafka;
pub mod live;
pub mod metrics;
pub mod normalize;
pub mod offline;
pub mod offsets;
pub mod output_file;
pub mod parameter;
pub mod payload;
pub mod pipeline;
pub mod problem;
pub mod produce;
pub mod progress_line;
pub mod registry;
pub mod reject;
pub mod replay;
pub mod replay_publish;
pub mod schema_registry;
pub mod short_eq;
pub mod short_text;
pub mod sink;
pub mod synthetic;
pub mod throttle;
pub mod window;
pub mod yaml_parts;
pub mod yaml_words;
