//! A Confluent-compatible schema registry client: writer schemas by id (for
//! decoding) and registering the bundled schema (for `produce`). Its errors
//! say whether asking again later may help (`is_transient`).

use crate::codec::{WriterSchema, BUNDLED_SCHEMA};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer in time, no connection, or a server error (5xx, 429).
    #[error("schema registry {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// An answer that will not change by asking again (401, 403, 400...).
    #[error("schema registry {url} refused the request ({status}): {reason}")]
    Refused {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("schema registry has no schema {0}")]
    Unknown(u32),
    #[error("schema {id} from the registry cannot be used: {reason}")]
    Unusable { id: u32, reason: String },
}

impl RegistryError {
    /// Whether the same request may succeed later: the registry was away or
    /// overloaded. An unknown id, an unusable schema or a refused request
    /// stay as they are.
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unreachable { .. })
    }
}

/// How long one request to the registry may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct SchemaRegistry {
    base: String,
    /// `base` without user and password, for errors and logs.
    shown: String,
    http: reqwest::Client,
}

/// A URL as errors may show it: without the credentials it may carry.
fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "(an unparsable URL)".to_string(),
    }
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
            shown: without_credentials(url),
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    fn unreachable(&self, reason: String) -> RegistryError {
        RegistryError::Unreachable {
            url: self.shown.clone(),
            reason,
        }
    }

    /// A transport error with its causes (refused, name not found, a
    /// certificate...), without the URL it names (it may carry credentials).
    fn unreachable_by(&self, e: reqwest::Error) -> RegistryError {
        self.unreachable(crate::causes::with_causes(&e.without_url()))
    }

    /// The response when it is a success; otherwise its error, by class.
    async fn successful(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, RegistryError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let reason = response.text().await.unwrap_or_default();
        let reason: String = reason.chars().take(200).collect();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(self.unreachable(format!("{status}: {reason}")));
        }
        Err(RegistryError::Refused {
            url: self.shown.clone(),
            status: status.as_u16(),
            reason,
        })
    }

    /// The writer schema registered under `id`.
    pub async fn writer_schema(&self, id: u32) -> Result<WriterSchema, RegistryError> {
        let response = self
            .http
            .get(format!("{}/schemas/ids/{id}", self.base))
            .send()
            .await
            .map_err(|e| self.unreachable_by(e))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(RegistryError::Unknown(id));
        }
        let body: SchemaById = self
            .successful(response)
            .await?
            .json()
            .await
            .map_err(|e| self.unreachable_by(e))?;
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
            .map_err(|e| self.unreachable_by(e))?;
        let registered: Registered = self
            .successful(response)
            .await?
            .json()
            .await
            .map_err(|e| self.unreachable_by(e))?;
        Ok(registered.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_show_the_url_without_its_credentials() {
        let registry = SchemaRegistry::new("https://user:s3cret@registry.example:8081/");
        let shown = registry.unreachable("down".into()).to_string();
        assert_eq!(shown, "schema registry https://registry.example:8081: down");
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn an_unreachable_registry_is_told_with_the_cause_and_without_credentials() {
        // A port the system just gave and took back: connections are refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let registry = SchemaRegistry::new(&format!("http://user:s3cret@127.0.0.1:{port}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = runtime.block_on(registry.writer_schema(1)).unwrap_err();
        let shown = e.to_string();
        assert!(e.is_transient(), "{shown}");
        assert!(shown.to_lowercase().contains("refused"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn only_an_unreachable_registry_is_worth_asking_again() {
        let unreachable = RegistryError::Unreachable {
            url: "u".into(),
            reason: "503".into(),
        };
        let refused = RegistryError::Refused {
            url: "u".into(),
            status: 401,
            reason: "".into(),
        };
        assert!(unreachable.is_transient());
        assert!(!refused.is_transient());
        assert!(!RegistryError::Unknown(7).is_transient());
    }
}
