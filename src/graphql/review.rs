//! `attributeConversion` and `dismissConversion`: an operator's review of
//! the conversions kept unattributed.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};

use super::context::request;
use super::conversion::conversion_id;
use super::objects::Conversion;
use crate::service::conversions::{Adjusted, Review};

/// Which unattributed conversion, and why this decision.
#[derive(InputObject)]
pub struct ReviewConversionInput {
    /// The conversion's `id` (from `unattributedConversions`).
    pub conversion_id: ID,
    /// Why, as the history should show it, e.g. "confirmed on the phone"
    /// (1 to 500 characters).
    pub reason: String,
}

/// The result of a review.
#[derive(SimpleObject)]
pub struct ReviewConversionPayload {
    /// The conversion as it is now.
    pub conversion: Conversion,
    /// False when it already was so (attributed, or dismissed): nothing
    /// changed and no event was added.
    pub created: bool,
}

impl From<Adjusted> for ReviewConversionPayload {
    fn from(adjusted: Adjusted) -> Self {
        ReviewConversionPayload {
            conversion: Conversion(adjusted.conversion),
            created: adjusted.created,
        }
    }
}

#[derive(Default)]
pub struct ReviewMutation;

impl ReviewMutation {
    async fn review(
        ctx: &Context<'_>,
        input: ReviewConversionInput,
        review: Review,
    ) -> Result<ReviewConversionPayload> {
        let r = request(ctx)?;
        let id = conversion_id(&input.conversion_id);
        let reviewed = r
            .services
            .review_conversion(&r.caller, id, review, &input.reason)
            .await?;
        Ok(reviewed.into())
    }
}

#[Object]
impl ReviewMutation {
    /// Credits an unattributed conversion to its conversation anyway
    /// (ADMIN): it gets its badge, makes the conversation "converted" if it
    /// was not, and counts in `conversionStats` as attributed (its kind,
    /// source and revenue; it leaves `unattributed`). The decision joins
    /// `Conversion.adjustments` (`ATTRIBUTED`, with the reason, the role,
    /// the key's prefix and the time) and is an `ATTRIBUTED` event of the
    /// feed and of webhooks (`conversion.attributed`). A conversion already
    /// attributed changes nothing (`created: false`); a retracted one, or
    /// one without a conversation, is a `CONFLICT`.
    async fn attribute_conversion(
        &self,
        ctx: &Context<'_>,
        input: ReviewConversionInput,
    ) -> Result<ReviewConversionPayload> {
        Self::review(ctx, input, Review::Attribute).await
    }

    /// Takes an unattributed conversion out of the review queue (ADMIN):
    /// it stays unattributed and is kept for audit (`dismissed: true`; still
    /// counted as unattributed), no longer listed by
    /// `unattributedConversions`. The decision joins
    /// `Conversion.adjustments` (`DISMISSED`) and is a `DISMISSED` event of
    /// the feed. A dismissed conversion may still be attributed later; an
    /// attributed one cannot be dismissed (`CONFLICT`).
    async fn dismiss_conversion(
        &self,
        ctx: &Context<'_>,
        input: ReviewConversionInput,
    ) -> Result<ReviewConversionPayload> {
        Self::review(ctx, input, Review::Dismiss).await
    }
}
