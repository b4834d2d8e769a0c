//! An EMAIL conversation's thread key: a thread id, or the subject line as
//! a mail client shows it. A reply's subject gains prefixes (`Re:`,
//! `AW:`, `RE[2]:`, `Fwd:`…) in the sender's language; they, case and
//! runs of whitespace are left out, so the reply finds its thread.

use super::InvalidInput;

/// Longest thread key kept, in characters.
pub const MAX_THREAD_KEY_CHARS: usize = 500;

/// Reply and forward prefixes, lower-case, without their colon: English,
/// German (AW, WG), Scandinavian (SV), French (TR), Dutch (Antw).
const PREFIXES: [&str; 8] = ["re", "fwd", "fw", "aw", "wg", "sv", "tr", "antw"];

/// The thread key as stored and compared.
pub fn normalize(given: &str) -> Result<String, InvalidInput> {
    let mut rest = given.trim();
    while let Some(after) = strip_reply_prefix(rest) {
        rest = after.trim_start();
    }
    let key = rest
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if key.is_empty() {
        return Err(InvalidInput::new(
            "threadKey must not be empty (nor only reply prefixes such as Re:)",
        ));
    }
    if key.chars().count() > MAX_THREAD_KEY_CHARS {
        return Err(InvalidInput::new(format!(
            "threadKey may be at most {MAX_THREAD_KEY_CHARS} characters"
        )));
    }
    Ok(key)
}

/// `text` after one leading prefix such as `Re:`, `RE[2]:`, `Re(3):` or
/// `Fwd :`; none when it does not start with one.
fn strip_reply_prefix(text: &str) -> Option<&str> {
    let word_end = text
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let word = text[..word_end].to_ascii_lowercase();
    if !PREFIXES.contains(&word.as_str()) {
        return None;
    }
    let mut rest = &text[word_end..];
    // A reply count: `[2]` or `(2)`.
    for (open, close) in [('[', ']'), ('(', ')')] {
        if let Some(inner) = rest.strip_prefix(open)
            && let Some(end) = inner.find(close)
            && inner[..end].chars().all(|c| c.is_ascii_digit())
        {
            rest = &inner[end + 1..];
        }
    }
    rest.trim_start().strip_prefix(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(given: &str) -> String {
        normalize(given).expect("a key")
    }

    #[test]
    fn reply_and_forward_prefixes_are_left_out() {
        for reply in [
            "Tour next week",
            "Re: Tour next week",
            "RE: Tour next week",
            "RE[2]: Tour next week",
            "Re(3): Tour next week",
            "Fwd: Tour next week",
            "Fw: Tour next week",
            "AW: Tour next week",
            "WG: Tour next week",
            "SV: Tour next week",
            "TR: Tour next week",
            "Antw: Tour next week",
            "Re: Fwd: RE: Tour next week",
            "Re : Tour next week",
            "  re:   Tour   next\tweek  ",
        ] {
            assert_eq!(key(reply), "tour next week", "{reply}");
        }
    }

    #[test]
    fn words_that_only_look_like_prefixes_stay() {
        assert_eq!(key("Report: March"), "report: march");
        assert_eq!(key("Trip to Lisbon"), "trip to lisbon");
        assert_eq!(key("Re Lisbon"), "re lisbon");
    }

    #[test]
    fn thread_ids_are_kept_apart_from_case() {
        assert_eq!(
            key("<CAF=abc123@mail.gmail.com>"),
            "<caf=abc123@mail.gmail.com>"
        );
    }

    #[test]
    fn an_empty_key_is_refused() {
        assert!(normalize("   ").is_err());
        assert!(normalize("Re: ").is_err());
        assert!(normalize(&"a".repeat(MAX_THREAD_KEY_CHARS + 1)).is_err());
    }
}
