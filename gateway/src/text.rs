//! Text the gateway records or answers with, bounded: what a caller sent (a token's `kid`,
//! a `User-Agent`) or what its query built can be of any size.

/// `text` cut to `max` characters, marked when cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}… (cut)", &text[..at]),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_at_a_character_and_says_so() {
        assert_eq!(super::clip("short", 10), "short");
        assert_eq!(super::clip("ééééé", 2), "éé… (cut)");
    }
}
