//! Problems found in a user's files, each naming the file, the field and what is wrong.

use serde::de::DeserializeOwned;
use std::fmt;

/// One problem: `location` is `file: field.path`, `message` says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: String,
    pub message: String,
}

impl Problem {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            location: location.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Every problem found, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn one(problem: Problem) -> Problems {
        Problems(vec![problem])
    }

    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    pub fn extend(&mut self, other: Problems) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter()
    }

    pub fn into_result(self) -> Result<(), Problems> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// What a value that must be text says when YAML read it as a number.
pub const UNQUOTED: &str = "is a number to YAML, and ids are text";

/// Flow collections (`[...]`, `{...}`) nested deeper than this are refused
/// before parsing: a config or registry never needs more, and a hundred
/// thousand levels took the YAML loader 25 s of CPU.
pub const MAX_NESTING: usize = 64;

/// Deserializes YAML, naming the field path of the first error.
pub fn from_yaml<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, Problems> {
    if flow_depth(text) > MAX_NESTING {
        return Err(Problems::one(Problem::new(
            file,
            format!("nested more than {MAX_NESTING} levels deep"),
        )));
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let location = if path == "." || path.is_empty() {
            file.to_string()
        } else {
            format!("{file}: {path}")
        };
        let error = e.into_inner();
        let at = error.location().map(|l| l.index());
        // serde_yaml prefixes the path of the enclosing mapping; ours is more precise.
        let message = error.to_string();
        let mut message = match message.split_once(": ") {
            Some((head, rest)) if path.starts_with(head) => rest.to_string(),
            _ => message,
        };
        if message.contains(UNQUOTED) {
            // The scalar as written, shown in the quotes it needs.
            message = match at.and_then(|i| scalar_at(text, i)) {
                Some(written) => {
                    let written = written.to_string();
                    format!(
                        "{} (read as a number): write it in quotes, {written:?}",
                        UNQUOTED
                    )
                }
                None => message,
            };
        }
        Problems::one(Problem::new(location, message))
    })
}

/// How deep the flow collections of a YAML text nest (brackets outside
/// quoted scalars and comments).
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    for c in text.chars() {
        match (quote, c) {
            (_, '\n') if comment => comment = false,
            _ if comment => {}
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The plain scalar that starts at byte `index` of a YAML text.
fn scalar_at(text: &str, index: usize) -> Option<&str> {
    let rest = text.get(index..)?;
    let end = rest.find([',', '}', ']', '\n', '#']).unwrap_or(rest.len());
    let scalar = rest[..end].trim();
    (!scalar.is_empty()).then_some(scalar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_nesting_is_measured_outside_quotes_and_comments() {
        assert_eq!(flow_depth("a: {b: [1, {c: 2}]}"), 3);
        assert_eq!(flow_depth("a: '[[[['\nb: \"{{{\" # [[[[\n"), 0);
        let deep = format!("monitors: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let refused = from_yaml::<serde_yaml::Value>(&deep, "m.yaml").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "m.yaml: nested more than 64 levels deep"
        );
    }
}
