//! Windowing: the local-clock half-hour grid, the per-window aggregators, and
//! the per-partition engine that turns samples into closed windows.

pub mod aggregate;
pub mod clock;
pub mod engine;
pub mod plausible;
pub mod shape;

pub use aggregate::{Aggregator, BinRules, SlotValue};
pub use clock::{reading_time, window_end, HALF_HOUR_MS};
pub use engine::{ClosedWindow, Engine, EngineSettings, ResumePoint};
pub use shape::{Epoch, Shape};
