//! Short free-text fields (names, ids, keys): trimmed, non-empty, bounded.

use super::InvalidInput;

/// Trims `value` and checks it is non-empty and at most `max_chars` characters.
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
    Ok(trimmed.to_owned())
}

/// Like [`required`] for an optional field; absent stays absent.
pub fn optional(
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> Result<Option<String>, InvalidInput> {
    value.map(|v| required(field, v, max_chars)).transpose()
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
}
