//! Who may do what. Each API key has one role; the matrix below is the only
//! place that decides whether a role may perform an operation.

use std::fmt;
use std::str::FromStr;

use super::InvalidInput;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The operator's admin front-end: everything within its tenant.
    Admin,
    /// The AI agent runtime.
    Agent,
    /// Checkout, tour-form and sign-up backends.
    Checkout,
    /// CRMs, BI and bots that read and subscribe.
    Integrator,
}

/// Something a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Start, append to and close sessions.
    ManageSessions,
    /// Record conversions.
    RecordConversions,
    /// Read one conversation the caller already knows (by id or session ID).
    ReadConversation,
    /// Browse: the list, reverse lookups by record, `node`.
    BrowseConversations,
    /// Read tool-call messages of a thread.
    ReadToolCalls,
    /// Read the channel rules.
    ReadChannelPolicies,
    /// Read and change the tenant's settings.
    ManageTenant,
    /// Review unattributed conversions.
    ReviewUnattributed,
    /// Subscribe to (or poll) the conversion event feed.
    FollowConversionFeed,
    /// Watch the conversation list live (`conversationActivity`).
    WatchConversations,
    /// Restate or retract a recorded conversion (the sale changed).
    AdjustConversions,
    /// Create, change and delete webhook endpoints; read their deliveries.
    ManageWebhooks,
    /// Erase a person's data, read everything held about a person, and
    /// export the tenant's conversations and conversions.
    ManagePersonalData,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Agent, Role::Checkout, Role::Integrator];

    pub fn may(self, operation: Operation) -> bool {
        use Operation::*;
        match self {
            Role::Admin => true,
            Role::Agent => matches!(
                operation,
                ManageSessions | RecordConversions | ReadConversation | ReadChannelPolicies
            ),
            // The systems that know when a sale changes: the checkout, and
            // the CRM or billing integration.
            Role::Checkout => matches!(operation, RecordConversions | AdjustConversions),
            Role::Integrator => matches!(
                operation,
                ReadConversation
                    | BrowseConversations
                    | ReadChannelPolicies
                    | FollowConversionFeed
                    | AdjustConversions
            ),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Agent => "AGENT",
            Role::Checkout => "CHECKOUT",
            Role::Integrator => "INTEGRATOR",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == upper)
            .ok_or_else(|| {
                InvalidInput::new(format!(
                    "unknown role {}; use ADMIN, AGENT, CHECKOUT or INTEGRATOR",
                    super::text::quoted(s)
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Operation::*;
    use super::*;

    #[test]
    fn checkout_may_only_record_and_adjust() {
        assert!(Role::Checkout.may(RecordConversions));
        assert!(Role::Checkout.may(AdjustConversions));
        for op in [
            ManageSessions,
            ReadConversation,
            BrowseConversations,
            ReadToolCalls,
            ReadChannelPolicies,
        ] {
            assert!(!Role::Checkout.may(op), "{op:?}");
        }
    }

    #[test]
    fn agent_runs_sessions_but_does_not_browse() {
        assert!(Role::Agent.may(ManageSessions));
        assert!(Role::Agent.may(RecordConversions));
        assert!(Role::Agent.may(ReadConversation));
        assert!(!Role::Agent.may(BrowseConversations));
        assert!(!Role::Agent.may(ReadToolCalls));
    }

    #[test]
    fn integrator_reads_and_adjusts_sales() {
        assert!(Role::Integrator.may(AdjustConversions));
        assert!(!Role::Agent.may(AdjustConversions));
        assert!(Role::Integrator.may(BrowseConversations));
        assert!(!Role::Integrator.may(ManageSessions));
        assert!(!Role::Integrator.may(RecordConversions));
        assert!(!Role::Integrator.may(ReadToolCalls));
        assert!(!Role::Integrator.may(ManageTenant));
        assert!(!Role::Agent.may(ManageTenant));
        assert!(Role::Integrator.may(FollowConversionFeed));
        assert!(!Role::Agent.may(FollowConversionFeed));
    }

    #[test]
    fn roles_parse_case_insensitively() {
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }
}
