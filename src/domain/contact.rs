//! Who is on the other end: an email address for EMAIL, an E.164 phone number
//! for WHATSAPP and VOICE. Contacts are normalised so the same person always
//! matches the same open session.

use super::InvalidInput;
use super::channel::Channel;
use super::text::quoted;

/// Parses the `contact` of a `startSession` for the given channel.
/// EMAIL and WHATSAPP need one (it is how the session is found again); VOICE
/// may be anonymous (withheld caller id); CHAT takes any short text.
pub fn parse(channel: Channel, contact: Option<&str>) -> Result<Option<String>, InvalidInput> {
    let contact = contact.map(str::trim).filter(|c| !c.is_empty());
    match (channel, contact) {
        (Channel::Email, None) => Err(InvalidInput::new(
            "EMAIL sessions need contact: the sender's email address",
        )),
        (Channel::Whatsapp, None) => Err(InvalidInput::new(
            "WHATSAPP sessions need contact: the phone number in E.164 form, e.g. +447700900123",
        )),
        (_, None) => Ok(None),
        (Channel::Email, Some(c)) => email(c).map(Some),
        (Channel::Whatsapp | Channel::Voice, Some(c)) => e164(c).map(Some),
        (Channel::Chat, Some(c)) => super::text::required("contact", c, 320).map(Some),
    }
}

/// An email address, lower-cased.
pub fn email(value: &str) -> Result<String, InvalidInput> {
    let value = value.trim().to_lowercase();
    let invalid = || {
        InvalidInput::new(format!(
            "contact {} is not an email address",
            quoted(&value)
        ))
    };
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
    let domain_ok = domain.contains('.')
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(invalid());
    }
    Ok(value)
}

/// A phone number in E.164 form. Spaces, dashes, dots and parentheses that
/// people type are dropped; what remains must be `+` and 8 to 15 digits.
pub fn e164(value: &str) -> Result<String, InvalidInput> {
    let compact: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    let valid = (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if valid {
        Ok(compact)
    } else {
        Err(InvalidInput::new(format!(
            "contact {} is not a phone number in E.164 form, e.g. +447700900123",
            quoted(value)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_required_and_normalised() {
        assert_eq!(
            parse(Channel::Email, Some(" Ada@Example.COM ")),
            Ok(Some("ada@example.com".to_owned()))
        );
        assert!(parse(Channel::Email, None).is_err());
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "a@b@c.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phone_numbers_are_e164() {
        assert_eq!(e164("+44 7700 900-123"), Ok("+447700900123".to_owned()));
        for bad in [
            "447700900123",
            "+0447700900",
            "+1234567",
            "+1234567890123456",
            "+44abc",
        ] {
            assert!(e164(bad).is_err(), "{bad}");
        }
        assert!(parse(Channel::Whatsapp, None).is_err());
        assert_eq!(parse(Channel::Voice, None), Ok(None));
        assert!(parse(Channel::Voice, Some("anonymous")).is_err());
    }

    #[test]
    fn chat_contact_is_optional_free_text() {
        assert_eq!(parse(Channel::Chat, None), Ok(None));
        assert_eq!(parse(Channel::Chat, Some("  ")), Ok(None));
        assert_eq!(
            parse(Channel::Chat, Some("member 42")),
            Ok(Some("member 42".to_owned()))
        );
    }
}
