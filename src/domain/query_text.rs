//! Counting the lexical tokens of a GraphQL document without parsing it, so
//! an oversized document is refused before the parser spends time on it.

/// Counts tokens (names, numbers, strings, punctuators) of `source`, and
/// stops counting past `limit` so the work stays bounded.
pub fn count_tokens(source: &str, limit: usize) -> usize {
    let bytes = source.as_bytes();
    let mut i = 0;
    let mut count = 0;
    while i < bytes.len() && count <= limit {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                count += 1;
                if bytes[i..].starts_with(b"\"\"\"") {
                    i += 3;
                    while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                        i += if bytes[i..].starts_with(b"\\\"\"\"") {
                            4
                        } else {
                            1
                        };
                    }
                    i += 3;
                } else {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                count += 1;
                i += 3;
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' => {
                count += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'_' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
                {
                    i += 1;
                }
            }
            b'-' | b'0'..=b'9' => {
                count += 1;
                i += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
            }
            _ => {
                count += 1;
                // One token per character, whole characters (UTF-8 safe).
                i += source
                    .get(i..)
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_names_punctuators_strings_and_numbers() {
        assert_eq!(count_tokens("{ a }", 100), 3);
        assert_eq!(
            count_tokens("query Q($x: Int = -1.5e3) { f(x: $x) }", 100),
            19
        );
        assert_eq!(count_tokens(r#"{ f(s: "a \" b, c") }"#, 100), 8);
        assert_eq!(
            count_tokens("{ f(s: \"\"\"block\n\"\"\" ) } # a comment { { {", 100),
            8
        );
        assert_eq!(count_tokens("{ ...F } fragment F on T { a }", 100), 11);
        assert_eq!(count_tokens("", 100), 0);
    }

    #[test]
    fn stops_past_the_limit_and_survives_garbage() {
        let big = "{ a } ".repeat(10_000);
        assert_eq!(count_tokens(&big, 50), 51);
        for garbage in [
            "\"unterminated",
            "\"\"\"unterminated",
            "é€🙂",
            "\\\\\\",
            "#",
            "..",
            "-",
        ] {
            count_tokens(garbage, 100);
        }
    }
}
