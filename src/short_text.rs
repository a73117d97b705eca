//! Text kept inside its owner when short (up to 22 bytes, as connection and
//! channel ids are), so that comparing it reads no memory elsewhere: with a
//! fleet larger than the CPU's caches, each pointer followed per event is a
//! wait for memory.

use crate::short_eq::same_bytes;

/// Longest text kept inline: with its length and the enum's tag, 24
/// bytes, the size of a `String`.
const INLINE: usize = 22;

#[derive(Clone)]
pub enum ShortText {
    Inline { len: u8, bytes: [u8; INLINE] },
    Long(Box<str>),
}

impl ShortText {
    pub fn new(text: &str) -> ShortText {
        if text.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            ShortText::Inline {
                len: text.len() as u8,
                bytes,
            }
        } else {
            ShortText::Long(text.into())
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ShortText::Inline { len, bytes } => &bytes[..usize::from(*len)],
            ShortText::Long(text) => text.as_bytes(),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ShortText::Inline { .. } => {
                std::str::from_utf8(self.as_bytes()).expect("made from text")
            }
            ShortText::Long(text) => text,
        }
    }

    /// Whether this is `text`, compared without a `memcmp` call.
    pub fn is(&self, text: &str) -> bool {
        same_bytes(self.as_bytes(), text.as_bytes())
    }
}

impl PartialEq for ShortText {
    fn eq(&self, other: &ShortText) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ShortText {}

impl std::fmt::Debug for ShortText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_any_length_reads_back_and_compares_as_itself() {
        let texts: Vec<String> = (0..40)
            .map(|n| "é".repeat(n / 2) + &"x".repeat(n % 2))
            .collect();
        for t in &texts {
            let short = ShortText::new(t);
            assert_eq!(short.as_str(), t);
            assert_eq!(short.as_bytes(), t.as_bytes());
            for other in &texts {
                assert_eq!(short.is(other), t == other, "{t:?} against {other:?}");
                assert_eq!(short == ShortText::new(other), t == other);
            }
        }
        assert!(matches!(
            ShortText::new(&"x".repeat(22)),
            ShortText::Inline { .. }
        ));
        assert!(matches!(
            ShortText::new(&"x".repeat(23)),
            ShortText::Long(_)
        ));
    }

    #[test]
    fn it_is_no_larger_than_a_string() {
        assert_eq!(
            std::mem::size_of::<ShortText>(),
            std::mem::size_of::<String>()
        );
    }
}
