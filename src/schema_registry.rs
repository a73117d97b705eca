//! A Confluent-compatible schema registry client: writer schemas by id (for
//! decoding) and registering the bundled schema (for `produce`).

use crate::codec::{WriterSchema, BUNDLED_SCHEMA};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("schema registry {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("schema registry has no schema {0}")]
    Unknown(u32),
    #[error("schema {id} from the registry cannot be used: {reason}")]
    Unusable { id: u32, reason: String },
}

pub struct SchemaRegistry {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct SchemaById {
    schema: String,
}

#[derive(Deserialize)]
struct Registered {
    id: u32,
}

impl SchemaRegistry {
    pub fn new(url: &str) -> SchemaRegistry {
        SchemaRegistry {
            base: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> RegistryError {
        RegistryError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        }
    }

    /// The writer schema registered under `id`.
    pub async fn writer_schema(&self, id: u32) -> Result<WriterSchema, RegistryError> {
        let response = self
            .http
            .get(format!("{}/schemas/ids/{id}", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(RegistryError::Unknown(id));
        }
        let body: SchemaById = response
            .error_for_status()
            .map_err(|e| self.unreachable(e))?
            .json()
            .await
            .map_err(|e| self.unreachable(e))?;
        WriterSchema::parse(&body.schema).map_err(|reason| RegistryError::Unusable { id, reason })
    }

    /// Registers the bundled schema under `subject` and returns its id.
    pub async fn register_bundled(&self, subject: &str) -> Result<u32, RegistryError> {
        let body = serde_json::json!({ "schema": BUNDLED_SCHEMA });
        let response = self
            .http
            .post(format!("{}/subjects/{subject}/versions", self.base))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let registered: Registered = response
            .error_for_status()
            .map_err(|e| self.unreachable(e))?
            .json()
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(registered.id)
    }
}
