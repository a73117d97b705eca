//! A RESET stand-in for local development and tests: Socket.IO namespace
//! `/v2`, `auth`, strict `monitors` and `readings` checks, `ack`/`errors`
//! replies, `GET /state`, and misbehaviour on request; over TLS when given
//! a certificate and key.

pub mod rules;
mod server;
mod tls;
pub mod vocabulary;

pub use server::{serve, EmulatorHandle, EmulatorOptions, EmulatorState, EmulatorStats};
pub use tls::TlsFiles;
