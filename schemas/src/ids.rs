//! Stable identifiers derived from names.

use sha2::{Digest, Sha256};

/// The first 128 bits of SHA-256 over `name`, as 32 lower-case hex digits.
pub fn name_hash_hex(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let mut out = String::with_capacity(32);
    for b in &digest[..16] {
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn stable_and_distinct() {
        assert_eq!(super::name_hash_hex("a"), super::name_hash_hex("a"));
        assert_ne!(super::name_hash_hex("a"), super::name_hash_hex("b"));
        assert_eq!(super::name_hash_hex("a").len(), 32);
    }
}
