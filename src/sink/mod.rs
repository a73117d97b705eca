//! The RESET side: a Socket.IO connection to `/v2` that authenticates and
//! turns RESET's `auth`, `ack` and `errors` events into typed replies.

pub mod connection;

pub use connection::{Connection, ConnectionError, Reply};
