//! Equality of short byte strings (JSON keys, connection ids) without a
//! call to `memcmp`: for strings this short the call costs more than the
//! comparison, and it was a tenth of the time of the paths that make it
//! once per key or per event.

/// `a == b` for two slices of the same length: two or three overlapping
/// loads of each for 4 to 24 bytes, which cover every byte; `==` otherwise.
#[inline]
pub fn same_short(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let word8 = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let word4 = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    match n {
        17..=24 => {
            word8(a, 0) == word8(b, 0)
                && word8(a, 8) == word8(b, 8)
                && word8(a, n - 8) == word8(b, n - 8)
        }
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        _ => a == b,
    }
}

/// `a == b` for slices of any lengths.
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && same_short(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_slices_compare_like_equality_whatever_byte_differs() {
        let text = b"abcdefghijklmnopqrstuvwxyz";
        for n in 0..=text.len() {
            let a = &text[..n];
            assert!(same_short(a, a), "{n}");
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_short(a, &b), "length {n}, byte {at}");
            }
        }
    }

    #[test]
    fn slices_of_other_lengths_differ() {
        assert!(same_bytes(b"GA_00000001", b"GA_00000001"));
        assert!(!same_bytes(b"GA_00000001", b"GA_0000000"));
        assert!(!same_bytes(b"", b"a"));
        assert!(same_bytes(b"", b""));
    }
}
