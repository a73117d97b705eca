//! The RESET side: an authenticated Socket.IO connection to `/v2`, and the
//! publisher that sends messages over it and reports each one's fate.

pub mod code;
pub mod connection;
mod ledger;
pub mod publisher;
pub mod tls;

pub use code::ResetCode;
pub use connection::{Connection, ConnectionError, Reply};
pub use publisher::{Delivery, Fate, FirstSend, Outgoing, Publisher, PublisherSettings, Status};
