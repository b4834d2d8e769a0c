//! A call-to-action link the AI sent, and how often it was followed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cta_link")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub conversation_id: Uuid,
    /// `DAY_PASS`, `MEMBERSHIP_SIGNUP`, `TOUR_REQUEST` or `BOOKING_CONFIRMATION`.
    pub action: String,
    /// Where the link leads, as given at creation (without the token).
    pub target_url: String,
    pub issued_at: i64,
    /// End of the attribution window of the link's session.
    pub expires_at: i64,
    pub first_followed_at: Option<i64>,
    pub last_followed_at: Option<i64>,
    pub follow_count: i32,
    /// When the link first led to a conversion (kept for the stats funnel).
    pub first_converted_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
