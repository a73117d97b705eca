//! serde's messages about a YAML value, reworded in the terms of the file's
//! author: what kind of value was expected and which was found, never the
//! program's own type names (`struct KafkaConfig`, `usize`).

/// What `plain_words` says where a mapping was expected.
pub const A_MAPPING: &str = "a mapping (key: value)";

/// Whether a text value seen is shown in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSeen {
    /// A field's value: shown (cut short), to find it by.
    Shown,
    /// A whole file's: not shown, for a file that is not a mapping at all
    /// may be a key or a secret given by mistake.
    Hidden,
}

/// `message` reworded: a wrong kind of value (`invalid type`/`invalid
/// value: FOUND, expected EXPECTED`) becomes `expected E, found F` in YAML
/// terms, an unknown enum word is an unknown value; any other message is
/// kept. A trailing ` at line N column M` stays where it is.
pub fn plain_words(message: &str, text_seen: TextSeen) -> String {
    let (body, place) = match message.rfind(" at line ") {
        Some(i) => message.split_at(i),
        None => (message, ""),
    };
    let wrong_kind = body
        .strip_prefix("invalid type: ")
        .or_else(|| body.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rsplit_once(", expected "));
    if let Some((seen, wanted)) = wrong_kind {
        let seen = match text_seen {
            TextSeen::Hidden if seen.starts_with("string ") => {
                "text (not shown: is it the right file?)".to_string()
            }
            _ => found(seen),
        };
        return format!("expected {}, found {seen}{place}", expected(wanted));
    }
    if let Some(rest) = body.strip_prefix("unknown variant ") {
        return format!("unknown value {rest}{place}");
    }
    message.to_string()
}

/// serde's name of the kind a value must be, in YAML terms.
fn expected(wanted: &str) -> String {
    let words = match wanted {
        "a map" => A_MAPPING,
        _ if wanted.starts_with("struct ") => A_MAPPING,
        "a sequence" => "a list",
        "a string" => "text",
        "a boolean" => "true or false",
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        // What serde_yaml asks of an enum given a list or a mapping.
        "a YAML tag starting with '!'" => "a single word",
        other => other,
    };
    words.to_string()
}

/// serde's description of the value seen (`serde::de::Unexpected`), in
/// YAML terms; a long text is cut short.
fn found(seen: &str) -> String {
    let ticked = |s: &str| s.trim_matches('`').to_string();
    if let Some(text) = seen.strip_prefix("string ") {
        return format!("the text {}", cut(text));
    }
    if let Some(c) = seen.strip_prefix("character ") {
        return format!("the text \"{}\"", ticked(c));
    }
    if let Some(n) = seen
        .strip_prefix("integer ")
        .or_else(|| seen.strip_prefix("floating point "))
    {
        return format!("the number {}", ticked(n));
    }
    if let Some(b) = seen.strip_prefix("boolean ") {
        return ticked(b);
    }
    let words = match seen {
        "sequence" => "a list",
        "map" => "a mapping",
        "unit value" => "nothing (null)",
        other => other,
    };
    words.to_string()
}

/// A quoted text of at most `SHOWN` characters, cut with an ellipsis.
fn cut(quoted: &str) -> String {
    const SHOWN: usize = 40;
    let inner = quoted.trim_matches('"');
    if inner.chars().count() <= SHOWN {
        return quoted.to_string();
    }
    let kept: String = inner.chars().take(SHOWN).collect();
    format!("\"{kept}…\"")
}

#[cfg(test)]
mod tests {
    use super::{plain_words, TextSeen};

    #[test]
    fn each_kind_of_value_is_named_in_yaml_terms() {
        let cases = [
            (
                "invalid type: integer `1`, expected struct KafkaConfig at line 1 column 8",
                "expected a mapping (key: value), found the number 1 at line 1 column 8",
            ),
            (
                "invalid type: sequence, expected a YAML tag starting with '!'",
                "expected a single word, found a list",
            ),
            (
                "invalid type: map, expected a string",
                "expected text, found a mapping",
            ),
            (
                "invalid type: integer `-1`, expected usize",
                "expected a whole number (0 or more), found the number -1",
            ),
            (
                "invalid value: integer `70000`, expected u16",
                "expected a whole number from 0 to 65535, found the number 70000",
            ),
            (
                "invalid type: floating point `1.5`, expected u32",
                "expected a whole number from 0 to 4294967295, found the number 1.5",
            ),
            (
                "invalid type: string \"lots\", expected f64",
                "expected a number, found the text \"lots\"",
            ),
            (
                "invalid type: boolean `true`, expected a map",
                "expected a mapping (key: value), found true",
            ),
            (
                "invalid type: unit value, expected a sequence",
                "expected a list, found nothing (null)",
            ),
            (
                "invalid type: string \"a, expected b\", expected a boolean",
                "expected true or false, found the text \"a, expected b\"",
            ),
            (
                "unknown variant `xml`, expected one of `avro`, `json` at line 3 column 11",
                "unknown value `xml`, expected one of `avro`, `json` at line 3 column 11",
            ),
            ("missing field `topics`", "missing field `topics`"),
            (
                "invalid duration \"5\": a unit is needed",
                "invalid duration \"5\": a unit is needed",
            ),
        ];
        for (serde, ours) in cases {
            assert_eq!(plain_words(serde, TextSeen::Shown), ours, "{serde}");
        }
    }

    #[test]
    fn a_whole_file_of_text_is_not_shown() {
        let file = "invalid type: string \"PASSWORD=hunter2\", expected struct Config";
        assert_eq!(
            plain_words(file, TextSeen::Hidden),
            "expected a mapping (key: value), found text (not shown: is it the right file?)"
        );
        let list = "invalid type: sequence, expected struct Config";
        assert_eq!(
            plain_words(list, TextSeen::Hidden),
            "expected a mapping (key: value), found a list"
        );
    }

    #[test]
    fn a_long_text_seen_is_cut_short_on_a_character_boundary() {
        let long = format!(
            "invalid type: string \"{}\", expected struct Config",
            "é".repeat(100)
        );
        assert_eq!(
            plain_words(&long, TextSeen::Shown),
            format!(
                "expected a mapping (key: value), found the text \"{}…\"",
                "é".repeat(40)
            )
        );
    }
}
