//! Who said a message, how it is labelled in the thread, and how long it may be.

use std::str::FromStr;

use super::InvalidInput;

/// Longest visitor message, in characters: what a person can plausibly type.
pub const MAX_VISITOR_CHARS: usize = 4_000;
/// Longest AI or tool message, in bytes of UTF-8.
pub const MAX_OTHER_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageRole {
    Visitor,
    AiAgent,
    Tool,
}

impl MessageRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::Visitor => "VISITOR",
            MessageRole::AiAgent => "AI_AGENT",
            MessageRole::Tool => "TOOL",
        }
    }

    /// The label the admin thread shows next to the message.
    pub fn label(self) -> &'static str {
        match self {
            MessageRole::Visitor => "Visitor",
            MessageRole::AiAgent => "AI agent",
            MessageRole::Tool => "Tool",
        }
    }
}

impl FromStr for MessageRole {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            MessageRole::Visitor,
            MessageRole::AiAgent,
            MessageRole::Tool,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| {
            InvalidInput::new(format!("unknown message role {}", super::text::quoted(s)))
        })
    }
}

/// Why a message's content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("content must not be empty")]
    Empty,
    #[error("{0}")]
    TooLarge(String),
    #[error(
        "content contains the control character U+{0:04X}; only tabs and line breaks may appear among the text"
    )]
    ControlCharacter(u32),
}

/// Checks a message's content against its role's limit. Content is kept as
/// sent (no trimming): it is a transcript.
pub fn check_content(role: MessageRole, content: &str) -> Result<(), ContentError> {
    if content.trim().is_empty() {
        return Err(ContentError::Empty);
    }
    if let Some(c) = super::text::forbidden_control(content) {
        return Err(ContentError::ControlCharacter(u32::from(c)));
    }
    match role {
        MessageRole::Visitor if content.chars().count() > MAX_VISITOR_CHARS => {
            Err(ContentError::TooLarge(format!(
                "a VISITOR message may be at most {MAX_VISITOR_CHARS} characters"
            )))
        }
        MessageRole::AiAgent | MessageRole::Tool if content.len() > MAX_OTHER_BYTES => {
            Err(ContentError::TooLarge(format!(
                "an {} message may be at most {MAX_OTHER_BYTES} bytes",
                role.as_str()
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(MessageRole::Visitor.label(), "Visitor");
        assert_eq!(MessageRole::AiAgent.label(), "AI agent");
        assert_eq!(MessageRole::Tool.label(), "Tool");
    }

    #[test]
    fn visitor_limit_counts_characters_not_bytes() {
        let at_limit = "é".repeat(MAX_VISITOR_CHARS);
        assert_eq!(check_content(MessageRole::Visitor, &at_limit), Ok(()));
        let over = "a".repeat(MAX_VISITOR_CHARS + 1);
        assert!(matches!(
            check_content(MessageRole::Visitor, &over),
            Err(ContentError::TooLarge(_))
        ));
    }

    #[test]
    fn content_keeps_lines_but_refuses_nul() {
        assert_eq!(check_content(MessageRole::Visitor, "hi\n\tthere"), Ok(()));
        assert_eq!(
            check_content(MessageRole::Visitor, "hi\0"),
            Err(ContentError::ControlCharacter(0))
        );
    }

    #[test]
    fn ai_and_tool_limit_counts_bytes() {
        let at_limit = "a".repeat(MAX_OTHER_BYTES);
        assert_eq!(check_content(MessageRole::AiAgent, &at_limit), Ok(()));
        let over = "é".repeat(MAX_OTHER_BYTES / 2 + 1);
        assert!(check_content(MessageRole::Tool, &over).is_err());
        assert_eq!(
            check_content(MessageRole::AiAgent, " \n"),
            Err(ContentError::Empty)
        );
    }
}
