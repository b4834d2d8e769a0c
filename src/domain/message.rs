//! Who said a message, how it is labelled in the thread, and how long it may be.

use std::str::FromStr;

use super::InvalidInput;

/// Longest message kept, in bytes of UTF-8, whoever wrote it: longer
/// content is stored cut here rather than refused, so that nothing a
/// visitor pastes breaks the agent's pipeline.
pub const MAX_CONTENT_BYTES: usize = 32 * 1024;

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
    #[error(
        "content contains the control character U+{0:04X}; only tabs and line breaks may appear among the text"
    )]
    ControlCharacter(u32),
}

/// A message's content as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    pub content: String,
    /// Cut to [`MAX_CONTENT_BYTES`].
    pub truncated: bool,
}

/// Checks a message's content and cuts it to [`MAX_CONTENT_BYTES`] on a
/// character boundary. Content is otherwise kept as sent (no trimming): it
/// is a transcript.
pub fn fit_content(mut content: String) -> Result<Fitted, ContentError> {
    if content.trim().is_empty() {
        return Err(ContentError::Empty);
    }
    if let Some(c) = super::text::forbidden_control(&content) {
        return Err(ContentError::ControlCharacter(u32::from(c)));
    }
    let truncated = content.len() > MAX_CONTENT_BYTES;
    if truncated {
        let mut end = MAX_CONTENT_BYTES;
        while !content.is_char_boundary(end) {
            end -= 1;
        }
        content.truncate(end);
    }
    Ok(Fitted { content, truncated })
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
    fn content_up_to_the_limit_is_kept_whole() {
        let at_limit = "a".repeat(MAX_CONTENT_BYTES);
        let fitted = fit_content(at_limit.clone()).expect("fits");
        assert_eq!(
            fitted,
            Fitted {
                content: at_limit,
                truncated: false
            }
        );
        let visitor_paste = "é".repeat(5_000);
        assert!(!fit_content(visitor_paste).expect("fits").truncated);
    }

    #[test]
    fn longer_content_is_cut_on_a_character_boundary() {
        // 'é' is two bytes: an odd limit would split one.
        let long = format!("a{}", "é".repeat(MAX_CONTENT_BYTES));
        let fitted = fit_content(long).expect("cut, not refused");
        assert!(fitted.truncated);
        assert_eq!(fitted.content.len(), MAX_CONTENT_BYTES - 1);
        assert!(fitted.content.ends_with('é'));
        let emoji = "👩🏽‍💻".repeat(MAX_CONTENT_BYTES);
        let fitted = fit_content(emoji).expect("cut");
        assert!(fitted.content.len() <= MAX_CONTENT_BYTES);
        assert!(fitted.content.len() > MAX_CONTENT_BYTES - 4);
    }

    #[test]
    fn content_keeps_lines_but_refuses_nul_and_blank() {
        assert_eq!(
            fit_content("hi\n\tthere".into()).map(|f| f.content),
            Ok("hi\n\tthere".to_owned())
        );
        assert_eq!(
            fit_content("hi\0".into()),
            Err(ContentError::ControlCharacter(0))
        );
        assert_eq!(fit_content(" \n".into()), Err(ContentError::Empty));
    }
}
