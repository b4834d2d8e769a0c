//! Limits every document must meet before any resolver runs. Each refusal
//! answers `QUERY_TOO_COMPLEX` with a message naming the limit.

use std::sync::Arc;

use async_graphql::ValidationResult;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, ServerError, ServerResult, Variables};

use super::context::RequestContext;
use crate::domain::query_text::count_tokens;
use crate::domain::rate_limit::RateLimiter;

/// Deepest nesting of fields.
pub const MAX_DEPTH: usize = 10;
/// Most complexity: a field costs 1, a connection `first ×` its selection.
pub const MAX_COMPLEXITY: usize = 20_000;
/// Most aliased fields in a document.
pub const MAX_ALIASES: usize = 15;
/// Most directives in a document.
pub const MAX_DIRECTIVES: usize = 20;
/// Most lexical tokens in a document.
pub const MAX_TOKENS: usize = 3_000;

pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";

pub fn too_complex(message: impl Into<String>) -> ServerError {
    async_graphql::Error::new(message)
        .extend_with(|_, e| e.set("code", QUERY_TOO_COMPLEX))
        .into_server_error(Default::default())
}

/// Installs [`DocumentLimits`] on each request.
pub struct QueryLimits;

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimits)
    }
}

pub struct DocumentLimits;

#[derive(Default)]
struct Counts {
    aliases: usize,
    directives: usize,
}

fn count_selection_set(set: &Positioned<SelectionSet>, counts: &mut Counts) {
    for item in &set.node.items {
        match &item.node {
            Selection::Field(field) => {
                counts.aliases += usize::from(field.node.alias.is_some());
                counts.directives += field.node.directives.len();
                count_selection_set(&field.node.selection_set, counts);
            }
            Selection::FragmentSpread(spread) => counts.directives += spread.node.directives.len(),
            Selection::InlineFragment(inline) => {
                counts.directives += inline.node.directives.len();
                count_selection_set(&inline.node.selection_set, counts);
            }
        }
    }
}

/// Aliases and directives of a whole document, fragments included.
fn count(document: &ExecutableDocument) -> Counts {
    let mut counts = Counts::default();
    for (_, operation) in document.operations.iter() {
        counts.directives += operation.node.directives.len();
        count_selection_set(&operation.node.selection_set, &mut counts);
    }
    for fragment in document.fragments.values() {
        counts.directives += fragment.node.directives.len();
        count_selection_set(&fragment.node.selection_set, &mut counts);
    }
    counts
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if count_tokens(query, MAX_TOKENS) > MAX_TOKENS {
            return Err(too_complex(format!(
                "the document has more than {MAX_TOKENS} tokens"
            )));
        }
        let document = next.run(ctx, query, variables).await?;
        let counts = count(&document);
        if counts.aliases > MAX_ALIASES {
            return Err(too_complex(format!(
                "the document has {} aliases; at most {MAX_ALIASES} are allowed",
                counts.aliases
            )));
        }
        if counts.directives > MAX_DIRECTIVES {
            return Err(too_complex(format!(
                "the document has {} directives; at most {MAX_DIRECTIVES} are allowed",
                counts.directives
            )));
        }
        Ok(document)
    }

    /// Charges the query's complexity to its key's budget, after validation
    /// computed it and before anything runs.
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if let (Some(limiter), Some(request)) = (
            ctx.data_opt::<Arc<RateLimiter>>(),
            ctx.data_opt::<Arc<RequestContext>>(),
        ) {
            let cost = result.complexity.max(1) as f64;
            let now = request.services.clock.now();
            if let Err(wait) = limiter.charge(request.caller.key_id, cost, now) {
                return Err(vec![rate_limited(wait)]);
            }
        }
        Ok(result)
    }
}

pub const RATE_LIMITED: &str = "RATE_LIMITED";

fn rate_limited(retry_after_seconds: u64) -> ServerError {
    async_graphql::Error::new(format!(
        "this API key's request budget is spent; retry after {retry_after_seconds} s (each request costs its complexity)"
    ))
    .extend_with(|_, e| {
        e.set("code", RATE_LIMITED);
        e.set("retryAfter", retry_after_seconds);
    })
    .into_server_error(Default::default())
}

/// The engine's own depth and complexity refusals, given the contract's
/// code and a message naming the limit.
pub fn engine_refusal(message: &str) -> Option<String> {
    match message {
        "Query is nested too deep." => Some(format!(
            "the query is nested deeper than {MAX_DEPTH} levels"
        )),
        "Query is too complex." => Some(format!(
            "the query's complexity exceeds {MAX_COMPLEXITY} (a connection costs `first` times its selection); ask for fewer rows or fields"
        )),
        _ => None,
    }
}
