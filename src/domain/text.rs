//! Free text from outside: the characters no input may carry, short fields
//! (names, ids, keys) trimmed, non-empty and bounded, and input quoted back
//! in an error message without echoing all of it.

use std::fmt;

use super::InvalidInput;

/// The first character of `value` that no text input may carry: NUL and the
/// other C0 and C1 control characters and DEL. Tab, line feed and carriage
/// return are text (a message has lines); short fields refuse them as
/// whitespace of the wrong kind through [`required`].
pub fn forbidden_control(value: &str) -> Option<char> {
    value
        .chars()
        .find(|&c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// Bidirectional formatting characters (U+202A–U+202E, U+2066–U+2069,
/// U+200E/U+200F, U+061C): they make text read differently from what it
/// is, which a URL or an identifier must never do.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Trims `value` and checks it is non-empty, at most `max_chars`
/// characters, and free of control and bidi characters (line breaks
/// included: a short field is one line).
pub fn required(field: &str, value: &str, max_chars: usize) -> Result<String, InvalidInput> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(InvalidInput::new(format!("{field} must not be empty")));
    }
    if trimmed.chars().count() > max_chars {
        return Err(InvalidInput::new(format!(
            "{field} is longer than {max_chars} characters"
        )));
    }
    if let Some(c) = trimmed
        .chars()
        .find(|&c| c.is_control() || is_bidi_control(c))
    {
        return Err(InvalidInput::new(format!(
            "{field} contains the control character U+{:04X}; send one line of printable text",
            u32::from(c)
        )));
    }
    Ok(trimmed.to_owned())
}

/// Like [`required`] for text that may run over several lines (a
/// confirmation's summary): line breaks and tabs stay, other control
/// characters are refused.
pub fn multiline(field: &str, value: &str, max_chars: usize) -> Result<String, InvalidInput> {
    let one_line: String = value.replace(['\n', '\r', '\t'], " ");
    required(field, &one_line, max_chars)?;
    Ok(value.trim().to_owned())
}

/// Like [`required`] for an optional field; absent stays absent.
pub fn optional(
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> Result<Option<String>, InvalidInput> {
    value.map(|v| required(field, v, max_chars)).transpose()
}

/// Most characters of an input quoted back in an error message.
pub const QUOTED_CHARS: usize = 40;

/// Input quoted in an error message: escaped like `{:?}` and cut to
/// [`QUOTED_CHARS`] characters, so a 60 KB input is not sent back whole.
pub struct Quoted<'a>(pub &'a str);

/// Shorthand for [`Quoted`].
pub fn quoted(value: &str) -> Quoted<'_> {
    Quoted(value)
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(QUOTED_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(
                f,
                "{:?}… ({} characters)",
                &self.0[..cut],
                self.0.chars().count()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_bounds() {
        assert_eq!(required("recordId", "  v-1 ", 10), Ok("v-1".to_owned()));
        assert!(required("recordId", "   ", 10).is_err());
        assert!(required("recordId", "ééééééééééé", 10).is_err());
        assert_eq!(
            required("recordId", "éééééééééé", 10).map(|s| s.len()),
            Ok(20)
        );
        assert_eq!(optional("userName", None, 5), Ok(None));
    }

    #[test]
    fn short_fields_are_one_line_of_printable_text() {
        for bad in [
            "a\0b",
            "a\nb",
            "a\u{7f}",
            "a\u{85}b",
            "v\u{202E}1",
            "x\u{2066}",
        ] {
            let refused = required("recordId", bad, 50).expect_err(bad);
            assert!(refused.0.contains("control character U+"), "{}", refused.0);
        }
    }

    #[test]
    fn multiline_text_keeps_its_lines() {
        assert_eq!(
            multiline("summary", " Room A\n10:00\t11:00 ", 50),
            Ok("Room A\n10:00\t11:00".to_owned())
        );
        assert!(multiline("summary", "a\0b", 50).is_err());
        assert!(multiline("summary", "\n\n", 50).is_err());
    }

    #[test]
    fn text_may_have_lines_but_no_other_control_characters() {
        assert_eq!(forbidden_control("line one\nline two\r\n\tindented"), None);
        assert_eq!(forbidden_control("nul \0 here"), Some('\0'));
        assert_eq!(forbidden_control("bell \u{7}"), Some('\u{7}'));
        assert_eq!(forbidden_control("del \u{7f}"), Some('\u{7f}'));
        assert_eq!(forbidden_control("c1 \u{9b}"), Some('\u{9b}'));
        assert_eq!(forbidden_control("émoji 🎉 and ünïcode"), None);
    }

    #[test]
    fn quoting_cuts_long_input_at_a_character() {
        assert_eq!(quoted("short").to_string(), "\"short\"");
        let long = "é".repeat(60_000);
        let shown = quoted(&long).to_string();
        assert!(shown.chars().count() < 80, "{shown}");
        assert!(shown.ends_with("… (60000 characters)"), "{shown}");
        assert_eq!(quoted("a\0b").to_string(), "\"a\\0b\"");
    }
}
