//! Decoding input records (Avro with or without Confluent framing, or JSON)
//! into [`SensorEvent`]s. Undecodable bytes are an error value, never a panic.

mod avro;
mod json;
mod json_common;

pub use avro::{
    confluent_schema_id, encode_avro, encode_confluent, AvroCodec, WriterSchema, BUNDLED_SCHEMA,
};
pub use json::{decode_json, encode_json};

use crate::config::InputFormat;
use crate::event::{ReusedEvent, SensorEvent};
use crate::schema_registry::RegistryError;

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
    /// Schema ids the registry does not have or that cannot be read: asked once.
    unusable_schemas: std::collections::HashSet<u32>,
}

impl Decoder {
    pub fn new(format: InputFormat) -> Decoder {
        Decoder {
            format,
            avro: AvroCodec::new(),
            unusable_schemas: Default::default(),
        }
    }

    /// The Avro side, to register writer schemas fetched from a schema registry.
    pub fn avro_mut(&mut self) -> &mut AvroCodec {
        &mut self.avro
    }

    /// Whether the writer schema `id` is still to be asked of the registry:
    /// neither known nor known to be unusable.
    pub fn needs_schema(&self, id: u32) -> bool {
        !self.avro.knows(id) && !self.unusable_schemas.contains(&id)
    }

    /// Takes the registry's answer for `id`: a schema is learnt; an id it
    /// does not have, or a schema that cannot be read as `SensorEvent`, is
    /// settled too (its records are undecodable, dead-lettered as `decode`).
    /// Any other error is given back, for the caller to ask again or stop.
    pub fn settle_schema(
        &mut self,
        id: u32,
        answer: Result<WriterSchema, RegistryError>,
    ) -> Result<(), RegistryError> {
        match answer {
            Ok(schema) => self.avro.register(id, schema),
            Err(e @ (RegistryError::Unknown(_) | RegistryError::Unusable { .. })) => {
                tracing::warn!(error = %e, "records of this schema are dead-lettered as undecodable");
                self.unusable_schemas.insert(id);
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<SensorEvent, DecodeError> {
        let mut event = ReusedEvent::default();
        self.decode_into(bytes, &mut event)?;
        Ok(event.event)
    }

    /// Decodes into `event`, reusing its allocations; after an error
    /// `event` holds nothing meaningful.
    pub fn decode_into(&self, bytes: &[u8], event: &mut ReusedEvent) -> Result<(), DecodeError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(DecodeError::TooLarge(bytes.len(), MAX_RECORD_BYTES));
        }
        match self.format {
            InputFormat::Json => {
                if json_common::decode_common(bytes, event).is_none() {
                    event.event = decode_json(bytes)?;
                }
            }
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
