//! RESET's answer codes (its document, "Response codes"), as the publisher
//! acts on them.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetCode {
    /// 10200: accepted.
    Accepted,
    /// 10400: the message is wrong; sending it again cannot help.
    BadRequest,
    /// 10401: not authenticated.
    Unauthorized,
    /// 10500: RESET failed; the same message may pass later.
    ServerError,
    /// A code the document does not name: treated as 10500.
    Other(String),
}

impl ResetCode {
    /// The code of an answer; an `ack` without one is an acceptance.
    pub fn parse(code: Option<&str>) -> ResetCode {
        match code {
            None | Some("") | Some("10200") => ResetCode::Accepted,
            Some("10400") => ResetCode::BadRequest,
            Some("10401") => ResetCode::Unauthorized,
            Some("10500") => ResetCode::ServerError,
            Some(other) => ResetCode::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ResetCode::Accepted => "10200",
            ResetCode::BadRequest => "10400",
            ResetCode::Unauthorized => "10401",
            ResetCode::ServerError => "10500",
            ResetCode::Other(code) => code,
        }
    }
}

impl fmt::Display for ResetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ResetCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept() {
        for code in ["10200", "10400", "10401", "10500", "10999"] {
            assert_eq!(ResetCode::parse(Some(code)).as_str(), code);
        }
        assert_eq!(ResetCode::parse(None), ResetCode::Accepted);
        assert_eq!(ResetCode::parse(Some("")), ResetCode::Accepted);
        assert_eq!(ResetCode::parse(Some("7")), ResetCode::Other("7".into()));
    }
}
