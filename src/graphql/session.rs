//! Session mutations: `startSession`, `appendMessage`, `closeSession`.

use async_graphql::{Context, InputObject, Object, Result, SimpleObject};

use super::context::request;
use super::enums::{Channel, MessageRole};
use super::label::{self, LabelInput};
use super::message::Message;
use super::objects::Conversation;
use crate::domain::session_id::SessionId;
use crate::service::sessions::StartSession;

/// A conversation beginning (or continuing) on a channel.
#[derive(InputObject)]
pub struct StartSessionInput {
    /// The channel.
    pub channel: Channel,
    /// The logged-in member's id, if the person is signed in. An open EMAIL
    /// or WHATSAPP conversation is continued only for the same user id (or
    /// when either has none): another signed-in person on the same address
    /// or number starts their own.
    pub user_id: Option<String>,
    /// The logged-in member's name.
    pub user_name: Option<String>,
    /// Who is on the other end, normalised (README "Provider input"):
    ///
    /// - EMAIL (required): the address, lower-cased; a `From` header
    ///   (`"Maria Silva" <Maria@Example.com>`) or a `mailto:` URI gives its
    ///   address.
    /// - WHATSAPP (required) and VOICE: the number, stored in E.164
    ///   (`+351912345678`); `+351 912 345 678`, `351912345678` (Meta's
    ///   bare international digits), `00351912345678`,
    ///   `whatsapp:+351912345678` (Twilio) and `tel:+351912345678` are
    ///   accepted. Anything else is `BAD_USER_INPUT` naming these forms.
    /// - VOICE: a withheld caller id (`anonymous`, `restricted`, `private`,
    ///   `unknown`, `unavailable`, any case; Twilio's `+266696687`,
    ///   `+7378742833`, `+8656696`, `+2562533`) starts a session with no
    ///   contact.
    /// - CHAT: optional free text, kept as given.
    pub contact: Option<String>,
    /// EMAIL only (required there): the thread's id or its subject. Reply
    /// and forward prefixes (`Re:`, `RE[2]:`, `Fwd:`, `Fw:`, `AW:`, `WG:`,
    /// `SV:`, `TR:`, `Antw:`, repeated), case and runs of whitespace are
    /// left out, so `Re: Tour next week` continues `Tour next week`. A new
    /// thread starts a new session.
    pub thread_key: Option<String>,
    /// Makes the call safe to retry (up to 255 characters, per tenant,
    /// kept at least 24 hours): the same key with the same input returns
    /// the first answer (the same `sessionId`); with another input it is
    /// `IDEMPOTENCY_KEY_REUSED`.
    pub idempotency_key: Option<String>,
    /// Labels to split outcomes by (`ConversionStats.byLabel`), e.g.
    /// `prompt` = `v7`: up to 10, each key once. A continued conversation
    /// takes them as `setSessionLabels` would.
    pub labels: Option<Vec<LabelInput>>,
}

/// The result of `startSession`.
#[derive(SimpleObject)]
pub struct StartSessionPayload {
    /// The conversation.
    pub conversation: Conversation,
    /// Its session ID, to pass to every later call and link.
    pub session_id: SessionId,
    /// True when an open EMAIL / WHATSAPP conversation was continued instead
    /// of a new one started.
    pub resumed: bool,
}

/// A message to add to a session's thread.
#[derive(InputObject)]
pub struct AppendMessageInput {
    /// The session.
    pub session_id: SessionId,
    /// Who wrote it.
    pub role: MessageRole,
    /// The text, as it was said. Up to 32 KiB (UTF-8) is kept whole; longer
    /// text is stored cut at 32 KiB on a character boundary
    /// (`Message.truncated`), never refused for its length.
    pub content: String,
    /// Makes the call safe to retry (up to 255 characters, per tenant,
    /// kept at least 24 hours): the same key with the same input returns
    /// the first answer (the same message `id` and `position`); with another input it is
    /// `IDEMPOTENCY_KEY_REUSED`.
    pub idempotency_key: Option<String>,
}

/// The result of `appendMessage`.
#[derive(SimpleObject)]
pub struct AppendMessagePayload {
    /// The stored message.
    pub message: Message,
    /// The conversation, with its opening message, count and last activity updated.
    pub conversation: Conversation,
}

/// A session to close.
#[derive(InputObject)]
pub struct CloseSessionInput {
    /// The session.
    pub session_id: SessionId,
}

/// The result of `closeSession`.
#[derive(SimpleObject)]
pub struct CloseSessionPayload {
    /// The closed conversation.
    pub conversation: Conversation,
}

#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Starts a session when a chat window opens or an email, WhatsApp
    /// message or call begins (roles AGENT, ADMIN). On EMAIL and WHATSAPP an
    /// open session of the same person is resumed when the channel's rule says so.
    async fn start_session(
        &self,
        ctx: &Context<'_>,
        input: StartSessionInput,
    ) -> Result<StartSessionPayload> {
        let r = request(ctx)?;
        let started = r
            .services
            .start_session(
                &r.caller,
                StartSession {
                    channel: input.channel.into(),
                    user_id: input.user_id,
                    user_name: input.user_name,
                    contact: input.contact,
                    thread_key: input.thread_key,
                    idempotency_key: input.idempotency_key,
                    labels: label::parsed(input.labels)?,
                },
            )
            .await?;
        Ok(StartSessionPayload {
            session_id: started.conversation.session_id.clone(),
            conversation: Conversation(started.conversation),
            resumed: started.resumed,
        })
    }

    /// Adds a message to a session's thread (roles AGENT, ADMIN).
    async fn append_message(
        &self,
        ctx: &Context<'_>,
        input: AppendMessageInput,
    ) -> Result<AppendMessagePayload> {
        let r = request(ctx)?;
        let session_id = input.session_id;
        let (message, conversation) = r
            .services
            .append_message(
                &r.caller,
                &session_id,
                input.role.into(),
                input.content,
                input.idempotency_key.as_deref(),
            )
            .await?;
        Ok(AppendMessagePayload {
            message: Message(message),
            conversation: Conversation(conversation),
        })
    }

    /// Closes a session (roles AGENT, ADMIN). Closing a closed session is harmless.
    async fn close_session(
        &self,
        ctx: &Context<'_>,
        input: CloseSessionInput,
    ) -> Result<CloseSessionPayload> {
        let r = request(ctx)?;
        let session_id = input.session_id;
        let conversation = r.services.close_session(&r.caller, &session_id).await?;
        Ok(CloseSessionPayload {
            conversation: Conversation(conversation),
        })
    }
}
