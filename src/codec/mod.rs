//! Decoding input records (Avro with or without Confluent framing, or JSON)
//! into [`SensorEvent`]s. Undecodable bytes are an error value, never a panic.

mod avro;
mod json;

pub use avro::{
    confluent_schema_id, encode_avro, encode_confluent, AvroCodec, WriterSchema, BUNDLED_SCHEMA,
};
pub use json::{decode_json, encode_json};

use crate::config::InputFormat;
use crate::event::SensorEvent;

/// Why a record could not be decoded. All of these are the input's fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("record is empty")]
    Empty,
    #[error("record of {0} bytes is larger than the {1}-byte limit")]
    TooLarge(usize, usize),
    #[error("not Confluent framing: first byte is {0:#04x}, expected 0x00")]
    BadMagic(u8),
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    #[error("truncated Avro datum: {0}")]
    Truncated(&'static str),
    #[error("invalid Avro datum: {0}")]
    InvalidAvro(String),
    #[error("{0} trailing bytes after the Avro datum")]
    TrailingBytes(usize),
    #[error("invalid JSON event: {0}")]
    InvalidJson(String),
}

/// The largest record the pipeline accepts (a sensor event is a few hundred bytes).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Decodes records of one configured format.
#[derive(Debug, Clone)]
pub struct Decoder {
    format: InputFormat,
    avro: AvroCodec,
}

impl Decoder {
    pub fn new(format: InputFormat) -> Decoder {
        Decoder {
            format,
            avro: AvroCodec::new(),
        }
    }

    /// The Avro side, to register writer schemas fetched from a schema registry.
    pub fn avro_mut(&mut self) -> &mut AvroCodec {
        &mut self.avro
    }

    /// Whether the writer schema registered under `id` is known.
    pub fn knows_schema(&self, id: u32) -> bool {
        self.avro.knows(id)
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<SensorEvent, DecodeError> {
        let mut event = SensorEvent::default();
        self.decode_into(bytes, &mut event)?;
        Ok(event)
    }

    /// Decodes into `event`, reusing its allocations (Avro); after an error
    /// `event` holds nothing meaningful.
    pub fn decode_into(&self, bytes: &[u8], event: &mut SensorEvent) -> Result<(), DecodeError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(DecodeError::TooLarge(bytes.len(), MAX_RECORD_BYTES));
        }
        match self.format {
            InputFormat::Json => *event = decode_json(bytes)?,
            InputFormat::Avro => self.avro.decode_bare_into(bytes, event)?,
            InputFormat::AvroConfluent => self.avro.decode_confluent_into(bytes, event)?,
        }
        Ok(())
    }
}

/// Encodes an event in a configured format (for `produce` and tests).
pub fn encode(format: InputFormat, schema_id: u32, event: &SensorEvent) -> Vec<u8> {
    match format {
        InputFormat::Json => encode_json(event).into_bytes(),
        InputFormat::Avro => encode_avro(event),
        InputFormat::AvroConfluent => encode_confluent(schema_id, event),
    }
}
