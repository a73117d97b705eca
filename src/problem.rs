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

/// Deserializes YAML. On failure, every part of the file that can be
/// parsed alone (each top-level key's block, each entry of a top-level
/// block list: see `yaml_parts`) is parsed alone, so that the first error
/// of each part is reported, not only the first of the file; each names
/// its field path.
pub fn from_yaml<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, Problems> {
    if crate::yaml_parts::flow_nesting(text).deepest > MAX_NESTING {
        return Err(Problems::one(Problem::new(
            file,
            format!("nested more than {MAX_NESTING} levels deep"),
        )));
    }
    let first = match parse::<T>(text) {
        Ok(value) => return Ok(value),
        Err(e) => e.problem(file, text, |path| path.to_string(), |m| m.to_string()),
    };
    // A file that is not a mapping at all is one problem, not one per line.
    let not_a_mapping = format!("expected {}", crate::yaml_words::A_MAPPING);
    if first.location == file && first.message.starts_with(&not_a_mapping) {
        return Err(Problems::one(first));
    }
    let mut found = Problems::default();
    for part in crate::yaml_parts::parts(text) {
        for problem in part_problems::<T>(file, &part) {
            if !found.0.contains(&problem) {
                found.push(problem);
            }
        }
    }
    // An error that only the whole file has (a key given twice) comes first.
    if !found.0.iter().any(|p| p.location == first.location) {
        found.0.insert(0, first);
    }
    Err(found)
}

/// The problems of one part, every field's: after each error its field is
/// blanked out and the part parsed again, until it parses or an error
/// remains that blanking out cannot get past (a field it removed now
/// missing, or an error outside any field: reported once, if new).
fn part_problems<T: DeserializeOwned>(file: &str, part: &crate::yaml_parts::Part) -> Vec<Problem> {
    let mut text = part.text.clone();
    let mut removed: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    while let Err(e) = parse::<T>(&text) {
        let at = e.at;
        let field = crate::yaml_parts::field_of(part, &e.path).map(str::to_string);
        let missing_removed = removed
            .iter()
            .any(|f| e.message.contains(&format!("missing field `{f}`")));
        if missing_removed
            || (field.is_none() && !removed.is_empty() && !e.message.contains("missing field"))
        {
            break;
        }
        problems.push(e.problem(
            file,
            &text,
            |path| crate::yaml_parts::file_path(part, path),
            |message| crate::yaml_parts::file_message(part, message),
        ));
        let Some(field) = field.filter(|f| !removed.contains(f)) else {
            break;
        };
        // A field of a flow mapping goes with its pair; one in block
        // style with its lines.
        let in_flow = |i: usize| {
            text.get(..i)
                .is_some_and(|b| crate::yaml_parts::flow_nesting(b).open > 0)
        };
        let rest = match at.filter(|&i| in_flow(i)) {
            Some(at) => crate::yaml_parts::without_flow_pair(&text, at),
            None => crate::yaml_parts::without_field(&text, &field),
        };
        let Some(rest) = rest else {
            break;
        };
        text = rest;
        removed.push(field);
    }
    problems
}

/// Why a text did not deserialize: the field path, the parser's message
/// and where in the text it stopped.
struct ParseError {
    path: String,
    message: String,
    at: Option<usize>,
}

fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let error = e.into_inner();
        let mut at = error.location().map(|l| l.index());
        let mut message = error.to_string();
        // A field's own check is placed at its mapping: move it to the
        // field. An unknown field is placed at its key already.
        let key = path.rsplit('.').next().filter(|k| !k.contains('['));
        let key = key.filter(|_| !message.contains("unknown field `"));
        if let Some((mapping, key)) = at.zip(key) {
            if let Some(field_at) = crate::yaml_parts::value_of_key(text, mapping, key) {
                message = placed_at(&message, text, field_at);
                at = Some(field_at);
            }
        }
        ParseError { at, message, path }
    })
}

/// `message` with its ` at line N column M` (the parser's) made the line
/// and column of byte `index` of `text`.
fn placed_at(message: &str, text: &str, index: usize) -> String {
    let head = message.rsplit_once(" at line ").map_or(message, |(h, _)| h);
    let before = &text[..index];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    format!("{head} at line {line} column {column}")
}

impl ParseError {
    /// The problem in `file`, its path and message mapped from the parsed
    /// `text` to the file's.
    fn problem(
        self,
        file: &str,
        text: &str,
        file_path: impl Fn(&str) -> String,
        file_message: impl Fn(&str) -> String,
    ) -> Problem {
        let path = self.path;
        let location = if path == "." || path.is_empty() {
            file.to_string()
        } else {
            format!("{file}: {}", file_path(&path))
        };
        // serde_yaml prefixes the path of the enclosing mapping; ours is more precise.
        let serde_message = match self.message.split_once(": ") {
            Some((head, rest)) if path.starts_with(head) => rest,
            _ => &self.message,
        };
        let text_seen = match location == file {
            true => crate::yaml_words::TextSeen::Hidden,
            false => crate::yaml_words::TextSeen::Shown,
        };
        let mut message = crate::yaml_words::plain_words(serde_message, text_seen);
        if message.contains(UNQUOTED) {
            // The scalar as written, shown in the quotes it needs.
            if let Some(written) = self.at.and_then(|i| scalar_at(text, i)) {
                message = format!(
                    "{} (read as a number): write it in quotes, {:?}",
                    UNQUOTED,
                    written.to_string()
                );
            }
        }
        Problem::new(location, file_message(&message))
    }
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
    fn a_file_nested_too_deep_is_refused_before_parsing() {
        let deep = format!("monitors: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let refused = from_yaml::<serde_yaml::Value>(&deep, "m.yaml").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "m.yaml: nested more than 64 levels deep"
        );
    }
}
