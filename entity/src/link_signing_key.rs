//! Keys that sign link tokens when the operator sets no secret.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "link_signing_key")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// base64url.
    pub secret: String,
    pub created_at: i64,
    /// Set when a newer key took over signing; it still verifies.
    pub retired_at: Option<i64>,
}

// The secret opens and forges every link token this key sealed; `{:?}` of a
// row (a log line, a test failure) shows which key it is, not the secret.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            kid,
            secret: _,
            created_at,
            retired_at,
        } = self;
        f.debug_struct("Model")
            .field("kid", kid)
            .field("secret", &format_args!("[redacted]"))
            .field("created_at", created_at)
            .field("retired_at", retired_at)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_kid_but_not_the_secret() {
        let row = Model {
            kid: "k1d-visible".to_owned(),
            secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA".to_owned(),
            created_at: 1,
            retired_at: None,
        };
        let debug = format!("{row:?}");
        assert!(!debug.contains(&row.secret), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");
        assert!(debug.contains("k1d-visible"), "{debug}");
    }
}
