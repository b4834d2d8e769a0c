//! The GraphQL API: thin resolvers that parse input, call a service and map
//! the result. Object types wrap table models; nothing here talks SQL.

mod activity;
mod checked;
mod context;
mod conversation;
mod conversion;
mod enums;
pub mod errors;
pub mod feed;
mod label;
pub mod limits;
mod link;
mod listed;
mod listed_page;
mod loaders;
mod message;
mod money;
mod node;
mod objects;
pub mod observe;
mod pagination;
mod policy;
mod privacy;
mod review;
mod scalars;
mod session;
mod shape;
mod stats;
mod tenant;
mod webhook;
mod webhook_delivery;

use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::domain::rate_limit::RateLimiter;

pub use context::RequestContext;

/// Every query the API answers.
#[derive(MergedObject, Default)]
pub struct Query(
    conversation::ConversationQuery,
    conversion::ConversionQuery,
    node::NodeQuery,
    policy::PolicyQuery,
    stats::StatsQuery,
    tenant::TenantQuery,
    feed::FeedQuery,
    webhook::WebhookQuery,
    webhook_delivery::WebhookDeliveryQuery,
    privacy::PrivacyQuery,
);

/// Every mutation the API answers.
#[derive(MergedObject, Default)]
pub struct Mutation(
    session::SessionMutation,
    conversion::ConversionMutation,
    review::ReviewMutation,
    link::LinkMutation,
    label::LabelMutation,
    tenant::TenantMutation,
    webhook::WebhookMutation,
    webhook_delivery::WebhookDeliveryMutation,
    privacy::PrivacyMutation,
);

/// Every subscription.
#[derive(MergedSubscription, Default)]
pub struct Subscription(feed::FeedSubscription, activity::ActivitySubscription);

pub type ApiSchema = Schema<Query, Mutation, Subscription>;

/// The schema with everything but per-request data, with the document
/// limits every request must meet.
pub fn schema_builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .extension(observe::OperationMetrics)
    .extension(limits::QueryLimits::default())
    .limit_depth(limits::MAX_DEPTH)
    .limit_complexity(limits::MAX_COMPLEXITY)
}

/// The origin people reach the server at (`--public-url`), if known.
#[derive(Debug, Clone, Default)]
pub struct PublicUrl(pub Option<String>);

/// The served schema, charging requests to `limiter`, with absolute link
/// URLs on `public_url`. Without introspection, suggestions ("Did you
/// mean") go too: they would reveal the schema piece by piece.
pub fn schema(
    introspection: bool,
    limiter: std::sync::Arc<RateLimiter>,
    public_url: PublicUrl,
) -> ApiSchema {
    let builder = schema_builder().data(limiter).data(public_url);
    if introspection {
        builder.finish()
    } else {
        builder
            .disable_introspection()
            .disable_suggestions()
            .finish()
    }
}

/// The SDL that `convtrack schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    schema_builder().finish().sdl()
}
