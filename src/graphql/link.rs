//! Call-to-action links and the confirmation flow.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::context::request;
use super::conversion::RecordConversionPayload;
use super::enums::{ConfirmationState, CtaAction};
use crate::domain::clock::from_micros;
use crate::domain::session_id::SessionId;
use crate::error::AppError;
use crate::service::confirmations::ConfirmationView;

/// A call-to-action link to create for a session.
#[derive(InputObject)]
pub struct CreateCtaLinkInput {
    /// The session the link belongs to.
    pub session_id: SessionId,
    /// What the AI asks the person to do.
    pub action: CtaAction,
    /// Where the link leads: an absolute http(s) URL (its query and fragment
    /// are kept).
    pub target_url: String,
}

/// The link to put in the AI's reply.
#[derive(SimpleObject)]
pub struct CreateCtaLinkPayload {
    /// The target URL with the link token added as `ai_session`.
    pub url: String,
    /// The signed link token (what the checkout passes to `recordConversion`).
    pub token: String,
    /// When conversions through this link stop being attributed: the
    /// session's start plus the tenant's attribution window.
    pub expires_at: DateTime<Utc>,
    /// The tracked redirect for the same link: `/l/{token}` on this server
    /// counts the click, then sends the person to `url`.
    pub tracked_path: String,
    /// `trackedPath` on the server's public origin
    /// (`https://track.example.com/l/…`), ready to send; null when the
    /// server was started without `--public-url` (README "Call-to-action
    /// links"). Never taken from the request's `Host`.
    pub tracked_url: Option<String>,
}

/// A confirmation to ask the person for.
#[derive(InputObject)]
pub struct RequestConfirmationInput {
    /// The session.
    pub session_id: SessionId,
    /// What is being confirmed; confirming records its outcome (a
    /// BOOKING_CONFIRMATION records BOOKING_CREATED).
    pub action: CtaAction,
    /// What the person is asked to confirm, as the agent phrased it (up to
    /// 2,000 characters).
    pub summary: String,
}

/// An open confirmation.
#[derive(SimpleObject)]
pub struct RequestConfirmationPayload {
    /// Pass it to `confirm`.
    pub id: ID,
    /// After this, confirming records nothing (`CONFIRMATION_EXPIRED`): the
    /// request time plus the channel's confirmation window.
    pub expires_at: DateTime<Utc>,
}

/// The person confirmed.
#[derive(InputObject)]
pub struct ConfirmInput {
    /// The id `requestConfirmation` returned.
    pub confirmation_id: ID,
    /// The id of the record the confirmed action created (e.g. the Booking).
    pub record_id: String,
}

/// The person declined what a confirmation asked.
#[derive(InputObject)]
pub struct CancelConfirmationInput {
    /// The id `requestConfirmation` returned.
    pub confirmation_id: ID,
    /// Why, as the agent puts it (up to 500 characters).
    pub reason: Option<String>,
}

/// The result of `cancelConfirmation`.
#[derive(SimpleObject)]
pub struct CancelConfirmationPayload {
    /// True when this call cancelled it; false when it already was.
    pub cancelled: bool,
}

/// A confirmation asked of the person in a conversation.
#[derive(SimpleObject)]
pub struct Confirmation {
    /// Its id (what `confirm` and `cancelConfirmation` take).
    pub id: ID,
    /// What was asked.
    pub action: CtaAction,
    /// What the person was asked to confirm, as the agent phrased it
    /// (empty once the person's data was erased).
    pub summary: String,
    /// Where it stands now.
    pub state: ConfirmationState,
    /// When the agent asked.
    pub requested_at: DateTime<Utc>,
    /// After this an unanswered one is `EXPIRED`.
    pub expires_at: DateTime<Utc>,
    /// When it was confirmed.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// When the person declined.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Why, as the agent put it.
    pub cancel_reason: Option<String>,
}

impl From<ConfirmationView> for Confirmation {
    fn from(c: ConfirmationView) -> Self {
        Confirmation {
            id: ID(c.id.to_string()),
            action: c.action.into(),
            summary: c.summary,
            state: c.state.into(),
            requested_at: c.requested_at,
            expires_at: c.expires_at,
            confirmed_at: c.confirmed_at,
            cancelled_at: c.cancelled_at,
            cancel_reason: c.cancel_reason,
        }
    }
}

#[derive(Default)]
pub struct LinkMutation;

#[Object]
impl LinkMutation {
    /// Creates the signed link the AI puts in its reply (roles AGENT, ADMIN).
    async fn create_cta_link(
        &self,
        ctx: &Context<'_>,
        input: CreateCtaLinkInput,
    ) -> Result<CreateCtaLinkPayload> {
        let r = request(ctx)?;
        let session_id = input.session_id;
        let issued = r
            .services
            .create_cta_link(
                &r.caller,
                &session_id,
                input.action.into(),
                &input.target_url,
            )
            .await?;
        let tracked_path = format!("/l/{}", issued.token);
        let tracked_url = ctx
            .data_opt::<super::PublicUrl>()
            .and_then(|public| public.0.as_deref())
            .map(|origin| format!("{origin}{tracked_path}"));
        Ok(CreateCtaLinkPayload {
            url: issued.url,
            tracked_url,
            tracked_path,
            token: issued.token,
            expires_at: from_micros(issued.link.expires_at),
        })
    }

    /// Opens a confirmation for an outcome the agent completes itself (roles
    /// AGENT, ADMIN). It expires after the channel's confirmation window.
    async fn request_confirmation(
        &self,
        ctx: &Context<'_>,
        input: RequestConfirmationInput,
    ) -> Result<RequestConfirmationPayload> {
        let r = request(ctx)?;
        let session_id = input.session_id;
        let opened = r
            .services
            .request_confirmation(&r.caller, &session_id, input.action.into(), &input.summary)
            .await?;
        Ok(RequestConfirmationPayload {
            id: ID(opened.id.to_string()),
            expires_at: from_micros(opened.expires_at),
        })
    }

    /// Records the confirmed outcome with source CONFIRMATION (roles
    /// CHECKOUT, AGENT, ADMIN). Confirming again with the same `recordId`
    /// returns the first result (`created: false`); with another it is
    /// `CONFLICT`, naming the recorded one. After the window nothing is
    /// recorded (`CONFIRMATION_EXPIRED`); after `cancelConfirmation`, it is
    /// `CONFLICT`.
    async fn confirm(
        &self,
        ctx: &Context<'_>,
        input: ConfirmInput,
    ) -> Result<RecordConversionPayload> {
        let r = request(ctx)?;
        // An id that is not one of ours is as unknown as a missing one.
        let id = Uuid::parse_str(input.confirmation_id.trim())
            .map_err(|_| AppError::NotFound("confirmation"))?;
        let recorded = r.services.confirm(&r.caller, id, &input.record_id).await?;
        Ok(RecordConversionPayload::of(recorded)?)
    }

    /// Records that the person declined (roles AGENT, ADMIN): the
    /// confirmation can no longer be confirmed (`CONFLICT`). Cancelling
    /// twice is harmless (`cancelled: false`); cancelling a confirmed one
    /// is `CONFLICT`.
    async fn cancel_confirmation(
        &self,
        ctx: &Context<'_>,
        input: CancelConfirmationInput,
    ) -> Result<CancelConfirmationPayload> {
        let r = request(ctx)?;
        let id = Uuid::parse_str(input.confirmation_id.trim())
            .map_err(|_| AppError::NotFound("confirmation"))?;
        let cancelled = r
            .services
            .cancel_confirmation(&r.caller, id, input.reason.as_deref())
            .await?;
        Ok(CancelConfirmationPayload { cancelled })
    }
}
