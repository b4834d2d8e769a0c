//! Erasing a person: whose conversations an erasure request names, and how
//! long a tenant keeps chats before they are erased on their own.

use std::fmt;
use std::str::FromStr;

use super::InvalidInput;
use super::session_id::SessionId;
use super::{contact, text};

/// Longest reason an erasure records.
pub const MAX_REASON_CHARS: usize = 500;
/// Longest retention period a tenant may set: ten years.
pub const MAX_RETENTION_DAYS: u32 = 3_650;

/// What an erasure matched on. Only the kind is kept, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureScope {
    /// Conversations with this contact (email address or phone number).
    Contact,
    /// Conversations of this signed-in user id.
    UserId,
    /// One session.
    SessionId,
    /// Conversations past the tenant's retention period.
    Retention,
}

impl ErasureScope {
    pub const ALL: [ErasureScope; 4] = [
        ErasureScope::Contact,
        ErasureScope::UserId,
        ErasureScope::SessionId,
        ErasureScope::Retention,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErasureScope::Contact => "CONTACT",
            ErasureScope::UserId => "USER_ID",
            ErasureScope::SessionId => "SESSION_ID",
            ErasureScope::Retention => "RETENTION",
        }
    }
}

impl fmt::Display for ErasureScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErasureScope {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErasureScope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| InvalidInput::new(format!("unknown erasure scope {}", text::quoted(s))))
    }
}

/// The person an erasure request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    /// Every stored form the contact may have, lower-cased (see
    /// [`contact_forms`]).
    Contact(Vec<String>),
    UserId(String),
    SessionId(SessionId),
}

impl Person {
    /// Exactly one of the three identifiers, checked.
    pub fn named(
        contact: Option<&str>,
        user_id: Option<&str>,
        session_id: Option<&str>,
    ) -> Result<Person, InvalidInput> {
        match (contact, user_id, session_id) {
            (Some(c), None, None) => Ok(Person::Contact(contact_forms(c)?)),
            (None, Some(u), None) => Ok(Person::UserId(text::required("userId", u, 200)?)),
            (None, None, Some(s)) => SessionId::parse(s)
                .map(Person::SessionId)
                .map_err(|e| InvalidInput::new(e.to_string())),
            _ => Err(InvalidInput::new(
                "give exactly one of contact, userId or sessionId",
            )),
        }
    }

    pub fn scope(&self) -> ErasureScope {
        match self {
            Person::Contact(_) => ErasureScope::Contact,
            Person::UserId(_) => ErasureScope::UserId,
            Person::SessionId(_) => ErasureScope::SessionId,
        }
    }
}

/// The forms a contact is stored in on some channel, lower-cased as the
/// stored contact is compared: an email address (EMAIL), a number in
/// E.164 (WHATSAPP, VOICE), or the text as given, trimmed (CHAT takes any
/// short text, in any case). Both lower-casings are kept: SQLite's
/// `lower` folds ASCII letters only, PostgreSQL's every letter.
pub fn contact_forms(given: &str) -> Result<Vec<String>, InvalidInput> {
    let as_given = text::required("contact", given, 320)?;
    let mut forms: Vec<String> = Vec::new();
    for form in [
        Some(as_given.clone()),
        contact::email(&as_given).ok(),
        contact::e164(&as_given).ok(),
    ]
    .into_iter()
    .flatten()
    {
        for folded in [form.to_lowercase(), form.to_ascii_lowercase()] {
            if !forms.contains(&folded) {
                forms.push(folded);
            }
        }
    }
    Ok(forms)
}

/// Why an erasure was made, as the audit log keeps it.
pub fn reason(given: &str) -> Result<String, InvalidInput> {
    text::multiline("reason", given, MAX_REASON_CHARS)
}

/// A retention period as a tenant sets it.
pub fn retention_days(days: i64) -> Result<u32, InvalidInput> {
    u32::try_from(days)
        .ok()
        .filter(|d| (1..=MAX_RETENTION_DAYS).contains(d))
        .ok_or_else(|| {
            InvalidInput::new(format!(
                "messageRetentionDays must be between 1 and {MAX_RETENTION_DAYS}, not {days}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_contact_matches_in_any_case() {
        assert_eq!(
            contact_forms("  Maria@Example.COM ").expect("valid"),
            ["maria@example.com"]
        );
    }

    #[test]
    fn a_phone_contact_matches_as_typed_and_in_e164() {
        assert_eq!(
            contact_forms("+351 912-345-678").expect("valid"),
            ["+351 912-345-678", "+351912345678"]
        );
        assert_eq!(
            contact_forms("+351912345678").expect("valid"),
            ["+351912345678"]
        );
    }

    #[test]
    fn a_chat_contact_is_free_text() {
        assert_eq!(
            contact_forms("Maria at desk 4").expect("valid"),
            ["maria at desk 4"]
        );
        // Both foldings, for SQLite's ASCII-only lower() and PostgreSQL's.
        assert_eq!(contact_forms("ÉMILE").expect("valid"), ["émile", "Émile"]);
        assert!(contact_forms("   ").is_err());
    }

    #[test]
    fn a_request_names_exactly_one_identifier() {
        assert!(matches!(
            Person::named(Some("a@b.co"), None, None),
            Ok(Person::Contact(_))
        ));
        assert_eq!(
            Person::named(None, Some(" u-1 "), None),
            Ok(Person::UserId("u-1".into()))
        );
        assert!(Person::named(None, None, None).is_err());
        assert!(Person::named(Some("a@b.co"), Some("u-1"), None).is_err());
        assert!(Person::named(None, None, Some("not a session")).is_err());
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        assert_eq!(
            reason(" GDPR art. 17 request ").expect("valid"),
            "GDPR art. 17 request"
        );
        assert!(reason("").is_err());
        assert!(reason(&"x".repeat(MAX_REASON_CHARS + 1)).is_err());
    }

    #[test]
    fn retention_is_one_day_to_ten_years() {
        assert_eq!(retention_days(30), Ok(30));
        assert!(retention_days(0).is_err());
        assert!(retention_days(-1).is_err());
        assert!(retention_days(3_651).is_err());
    }

    #[test]
    fn scopes_read_back_as_written() {
        for scope in ErasureScope::ALL {
            assert_eq!(scope.as_str().parse::<ErasureScope>(), Ok(scope));
        }
    }
}
