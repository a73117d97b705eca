//! A RESET stand-in for local development and tests: Socket.IO namespace
//! `/v2`, `auth`, strict `monitors` and `readings` checks, `ack`/`errors`
//! replies, `GET /state`, and misbehaviour on request.

pub mod rules;
mod server;

pub use server::{serve, EmulatorHandle, EmulatorOptions, EmulatorState, EmulatorStats};
