//! GraphQL faces of the domain's enums. Each mirrors its domain type
//! (`remote`), so the rules stay in `domain/` and the docs live here.

use async_graphql::Enum;

use crate::domain;

/// Where a conversation happens.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::channel::Channel")]
pub enum Channel {
    /// Website chat widget: one session per chat window.
    Chat,
    /// Email: one session per sender and thread, until 48 h without activity.
    Email,
    /// WhatsApp: one session per phone number, until 24 h without activity.
    Whatsapp,
    /// Phone call: one session per call.
    Voice,
}

/// Who wrote a message.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::message::MessageRole")]
pub enum MessageRole {
    /// The person talking to the assistant. Labelled "Visitor".
    Visitor,
    /// The AI assistant. Labelled "AI agent".
    AiAgent,
    /// A tool call or tool result of the assistant; hidden unless asked for.
    Tool,
}

/// A business outcome a conversation led to.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::conversion::ConversionKind")]
pub enum ConversionKind {
    /// A tour was booked (a Visitor record). Lavender badge "Tour booked".
    TourBooked,
    /// A new customer was created (a Coworker record). Green badge "Customer created".
    CustomerCreated,
    /// A membership contract was created (a CoworkerContract record). Blue badge "Contract created".
    ContractCreated,
    /// A booking was made (a Booking record). Teal badge "Booking created".
    BookingCreated,
    /// A day pass was bought (a CoworkerProduct record). Peach badge "Day pass purchased".
    DayPassPurchased,
}

/// The kind of record in the operator's system an outcome created.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::conversion::RecordType")]
pub enum RecordType {
    /// A visitor who booked a tour.
    Visitor,
    /// A customer (member).
    Coworker,
    /// A membership contract.
    CoworkerContract,
    /// A room or desk booking.
    Booking,
    /// A purchased product such as a day pass.
    CoworkerProduct,
}

/// Badge colours of the AI Conversations list.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::conversion::BadgeColour")]
pub enum BadgeColour {
    /// Tour booked.
    Lavender,
    /// Customer created.
    Green,
    /// Contract created.
    Blue,
    /// Booking created.
    Teal,
    /// Day pass purchased.
    Peach,
}

/// How a conversion reached convtrack.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::conversion::ConversionSource")]
pub enum ConversionSource {
    /// Recorded with the session ID.
    Direct,
    /// Recorded with the token of a call-to-action link.
    Link,
    /// Recorded by confirming a confirmation the agent requested.
    Confirmation,
}

/// How `startSession` treats a new start on a channel.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::channel::SessionRule")]
pub enum SessionRule {
    /// Every `startSession` opens a new conversation.
    NewEveryStart,
    /// The open conversation with the same sender and thread is resumed.
    SameSenderAndThread,
    /// The open conversation with the same phone number is resumed.
    SamePhoneNumber,
}

/// What the AI asks the person to do in a call-to-action link.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::link::CtaAction")]
pub enum CtaAction {
    /// "Get a day pass": leads to DAY_PASS_PURCHASED.
    DayPass,
    /// "Sign up for [Plan]": leads to CONTRACT_CREATED (and CUSTOMER_CREATED for a new customer).
    MembershipSignup,
    /// "Request a tour for [Office]": leads to TOUR_BOOKED.
    TourRequest,
    /// A booking confirmation link: leads to BOOKING_CREATED.
    BookingConfirmation,
}

/// What a feed event or a history entry reports about a conversion.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::adjustment::ConversionChange")]
pub enum ConversionChange {
    /// It was recorded.
    Recorded,
    /// Its value changed (`restateConversion`).
    Restated,
    /// It was withdrawn (`retractConversion`): no longer counted.
    Retracted,
    /// An operator credited it anyway (`attributeConversion`): it was
    /// unattributed and now counts as attributed, with a badge.
    Attributed,
    /// An operator took it out of the review queue (`dismissConversion`);
    /// it stays unattributed.
    Dismissed,
}

/// Whether a conversion still counts.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::adjustment::ConversionStatus")]
pub enum ConversionStatus {
    /// It counts: a badge, "converted", the stats.
    Active,
    /// Withdrawn (`retractConversion`): no badge, not counted in the stats
    /// or in "converted"; kept here with the value it had.
    Retracted,
}

/// The role of an API key (see README "Keys, roles and tenants").
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::role::Role")]
pub enum KeyRole {
    /// The operator's admin front-end.
    Admin,
    /// The AI agent runtime.
    Agent,
    /// A checkout, tour-form or sign-up backend.
    Checkout,
    /// A CRM, BI tool or bot.
    Integrator,
}

/// Where a confirmation stands.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "domain::confirmation::ConfirmationState")]
pub enum ConfirmationState {
    /// Waiting for the person's answer, within its window.
    Open,
    /// Confirmed: its outcome is recorded.
    Confirmed,
    /// The person declined (`cancelConfirmation`).
    Cancelled,
    /// Its window passed unanswered.
    Expired,
}
