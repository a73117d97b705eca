//! Kafka around the pure core: client settings, the progress topic that
//! makes restarts exact, and the dead-letter topic.

pub mod client;
pub mod dead_letter;
pub mod progress;

pub use client::{client_config, ensure_topics};
pub use dead_letter::{DeadLetters, Origin};
pub use progress::{ProgressReader, ProgressWriter};
