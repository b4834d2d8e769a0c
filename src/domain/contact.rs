//! Who is on the other end: an email address for EMAIL, an E.164 phone number
//! for WHATSAPP and VOICE. Contacts are normalised from the forms real
//! providers send (README "Provider input") so the same person always
//! matches the same open session.

use super::InvalidInput;
use super::channel::Channel;
use super::text::quoted;

/// Caller ids a phone network sends when the number is withheld: words, and
/// the numbers Twilio uses for them. A VOICE session with one of these has
/// no contact rather than a wrong one.
const WITHHELD_WORDS: [&str; 5] = [
    "anonymous",
    "restricted",
    "private",
    "unknown",
    "unavailable",
];
const WITHHELD_NUMBERS: [&str; 4] = ["+266696687", "+7378742833", "+8656696", "+2562533"];

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
        (Channel::Voice, Some(c)) if withheld(c) => Ok(None),
        (Channel::Whatsapp | Channel::Voice, Some(c)) => e164(c).map(Some),
        (Channel::Chat, Some(c)) => super::text::required("contact", c, 320).map(Some),
    }
}

/// Whether a caller id says the number was withheld.
pub fn withheld(caller_id: &str) -> bool {
    let bare = strip_prefix_ignore_case(caller_id.trim(), "tel:").trim();
    WITHHELD_WORDS.iter().any(|w| bare.eq_ignore_ascii_case(w))
        || WITHHELD_NUMBERS.contains(&compact(bare).as_str())
}

/// An email address, lower-cased: given bare, as a `From` header with a
/// display name (`"Maria Silva" <Maria@Example.com>`), or as a `mailto:`
/// URI (its query left out).
pub fn email(value: &str) -> Result<String, InvalidInput> {
    let address = address_in(value.trim()).to_lowercase();
    let invalid = || {
        InvalidInput::new(format!(
            "contact {} is not an email address (give it bare, as a From header \
             \"Name\" <address>, or as mailto:address)",
            quoted(value.trim())
        ))
    };
    if address.len() > 254
        || address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
    {
        return Err(invalid());
    }
    let (local, domain) = address.split_once('@').ok_or_else(invalid)?;
    let domain_ok = domain.contains('.')
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(invalid());
    }
    Ok(address)
}

/// The address inside a `From` header's angle brackets or a `mailto:` URI;
/// the text itself otherwise.
fn address_in(value: &str) -> &str {
    if let Some(open) = value.rfind('<')
        && let Some(inside) = value[open + 1..].strip_suffix('>')
    {
        return inside.trim();
    }
    let bare = strip_prefix_ignore_case(value, "mailto:");
    if bare.len() != value.len() {
        return bare.split('?').next().unwrap_or("").trim();
    }
    value
}

/// A phone number in E.164 form, from what providers and people send:
/// `+351 912 345 678`, `whatsapp:+351912345678` (Twilio),
/// `tel:+351912345678`, `00351912345678`, or international digits without
/// the `+` as Meta's WhatsApp Cloud API sends them (`351912345678`). What
/// remains must be `+` and 8 to 15 digits, not starting with 0.
pub fn e164(value: &str) -> Result<String, InvalidInput> {
    let mut rest = value.trim();
    for scheme in ["whatsapp:", "tel:"] {
        rest = strip_prefix_ignore_case(rest, scheme).trim_start();
    }
    let compact = compact(rest);
    let digits = if let Some(digits) = compact.strip_prefix('+') {
        digits
    } else if let Some(digits) = compact.strip_prefix("00") {
        digits
    } else {
        compact.as_str()
    };
    let valid = (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    if valid {
        Ok(format!("+{digits}"))
    } else {
        Err(InvalidInput::new(format!(
            "contact {} is not a phone number; accepted forms: +351912345678, \
             351912345678, 00351912345678, whatsapp:+351912345678, tel:+351912345678 \
             (spaces, dashes, dots and parentheses allowed)",
            quoted(value)
        )))
    }
}

/// `value` without the separators people type in numbers.
fn compact(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
        .collect()
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> &'a str {
    match value.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &value[prefix.len()..],
        _ => value,
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
            "\"Ada\" <ada>",
            "mailto:",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_from_header_yields_its_address() {
        assert_eq!(
            email("\"Maria Silva\" <Maria@Example.com>"),
            Ok("maria@example.com".to_owned())
        );
        assert_eq!(
            email("Maria <maria@example.com>"),
            Ok("maria@example.com".to_owned())
        );
        assert_eq!(
            email("<maria@example.com>"),
            Ok("maria@example.com".to_owned())
        );
    }

    #[test]
    fn a_mailto_uri_yields_its_address() {
        assert_eq!(
            email("mailto:Maria@Example.com"),
            Ok("maria@example.com".to_owned())
        );
        assert_eq!(
            email("MAILTO:maria@example.com?subject=Tour"),
            Ok("maria@example.com".to_owned())
        );
    }

    #[test]
    fn phone_numbers_are_e164() {
        assert_eq!(e164("+44 7700 900-123"), Ok("+447700900123".to_owned()));
        for bad in [
            "+0447700900",
            "+1234567",
            "+1234567890123456",
            "+44abc",
            "0912345678",
            "whatsapp:",
        ] {
            assert!(e164(bad).is_err(), "{bad}");
        }
        assert!(parse(Channel::Whatsapp, None).is_err());
        assert_eq!(parse(Channel::Voice, None), Ok(None));
    }

    #[test]
    fn provider_forms_become_e164() {
        for given in [
            "351912345678",
            "whatsapp:+351912345678",
            "WhatsApp:+351 912 345 678",
            "tel:+351912345678",
            "00351912345678",
            "00 351 912 345 678",
            "+351 (912) 345.678",
        ] {
            assert_eq!(e164(given), Ok("+351912345678".to_owned()), "{given}");
        }
    }

    #[test]
    fn a_bad_number_names_the_accepted_forms() {
        let refused = e164("call me").expect_err("not a number");
        assert!(refused.to_string().contains("00351912345678"), "{refused}");
    }

    #[test]
    fn withheld_caller_ids_make_an_anonymous_voice_session() {
        for withheld in [
            "anonymous",
            "Anonymous",
            "RESTRICTED",
            "private",
            "Unknown",
            "unavailable",
            "+266696687",
            "+7378742833",
            "+8656696",
            "+2562533",
            "tel:+266696687",
        ] {
            assert_eq!(
                parse(Channel::Voice, Some(withheld)),
                Ok(None),
                "{withheld}"
            );
        }
        // Not on WHATSAPP: there the number is how the session is found.
        assert!(parse(Channel::Whatsapp, Some("anonymous")).is_err());
        assert_eq!(
            parse(Channel::Voice, Some("+351912345678")),
            Ok(Some("+351912345678".to_owned()))
        );
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
