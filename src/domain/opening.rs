//! The opening message shown in the AI Conversations list: the first visitor
//! message, cut to 120 characters and then marked "…" so a reader knows
//! there is more. "Character" means what a person sees as
//! one (a grapheme cluster), so an emoji with skin tone or a letter with a
//! combining accent is never split.

use unicode_segmentation::UnicodeSegmentation;

pub const OPENING_MESSAGE_CHARS: usize = 120;

/// The first [`OPENING_MESSAGE_CHARS`] characters of `content`, whitespace
/// runs (line breaks included) folded into single spaces so a row stays
/// one line, followed by "…" when there was more.
pub fn opening_message(content: &str) -> String {
    let folded = content.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut graphemes = folded.graphemes(true);
    let mut opening: String = graphemes.by_ref().take(OPENING_MESSAGE_CHARS).collect();
    if graphemes.next().is_some() {
        opening.push('…');
    }
    opening
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_kept_whole() {
        assert_eq!(
            opening_message("Hi, do you have desks?"),
            "Hi, do you have desks?"
        );
    }

    #[test]
    fn cut_at_120_ascii_characters() {
        let text = "a".repeat(200);
        assert_eq!(opening_message(&text), format!("{}…", "a".repeat(120)));
        // Exactly 120 is whole: no mark.
        assert_eq!(opening_message(&"a".repeat(120)), "a".repeat(120));
    }

    #[test]
    fn never_cuts_inside_a_multibyte_character() {
        let text = "é".repeat(130);
        let cut = opening_message(&text);
        assert_eq!(cut.chars().count(), 121);
        assert_eq!(cut.len(), 240 + '…'.len_utf8());
    }

    #[test]
    fn never_splits_an_emoji_or_combining_sequence() {
        // A family emoji (several code points joined by ZWJ) and "e" + combining acute.
        let family = "👨‍👩‍👧";
        let text = format!("{}{}{}", "x".repeat(119), family, "e\u{301}".repeat(5));
        let cut = opening_message(&text);
        assert!(cut.ends_with(&format!("{family}…")));
        assert_eq!(cut.graphemes(true).count(), 121);

        let accents = "e\u{301}".repeat(121);
        let cut = opening_message(&accents);
        assert_eq!(cut, format!("{}…", "e\u{301}".repeat(120)));
    }

    #[test]
    fn whitespace_is_folded_to_one_line() {
        assert_eq!(opening_message("  Hello\n\nthere\t!  "), "Hello there !");
    }
}
