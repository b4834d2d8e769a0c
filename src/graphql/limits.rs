//! Limits every document must meet before any resolver runs. Each refusal
//! answers `QUERY_TOO_COMPLEX` with a message naming the limit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
    NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    ErrorExtensions, Request, ServerError, ServerResult, ValidationResult, Variables,
};

use super::checked::{Checked, CheckedDocuments};
use super::context::RequestContext;
use super::errors::refusal;
use super::shape::{
    ForbiddenCharacter, ShapeError, forbidden_in_document, forbidden_in_variables, measure,
};
use crate::domain::locked;
use crate::domain::query_text::count_tokens;
use crate::domain::rate_limit::RateLimiter;
use crate::error::ErrorCode;

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

/// Deepest nesting of selection sets, fragment spreads counted as levels
/// (the GraphQL engine's own recursion limit, which this check replaces).
pub const MAX_NESTING: usize = 32;
/// Most selections a document may expand to, fragment spreads counted as
/// the fragments they stand for.
pub const MAX_EXPANDED_SELECTIONS: u64 = 2_000;

/// Most complexity one connection field is counted at. Far above
/// [`MAX_COMPLEXITY`], and low enough that the engine's plain (unchecked)
/// sum over a document's fields can never overflow and wrap round to a
/// small number that would pass the limit.
const CONNECTION_COMPLEXITY_CAP: usize = 1 << 32;

/// A connection's complexity: `first` (or the field's default page) times
/// its selection, capped: a client may send `first: 2147483647`.
pub fn connection_complexity(first: Option<i32>, default: u64, child: usize) -> usize {
    let rows = first.map_or(default, |n| u64::try_from(n).unwrap_or(0));
    usize::try_from(rows)
        .unwrap_or(usize::MAX)
        .saturating_mul(child)
        .min(CONNECTION_COMPLEXITY_CAP)
}

fn too_complex(message: impl Into<String>) -> ServerError {
    refusal(ErrorCode::QueryTooComplex, message).into_server_error(Default::default())
}

fn bad_input(message: impl Into<String>) -> ServerError {
    refusal(ErrorCode::BadUserInput, message).into_server_error(Default::default())
}

/// Installs [`DocumentLimits`] on each request; documents that passed are
/// kept for the schema's later requests.
#[derive(Default)]
pub struct QueryLimits {
    documents: Arc<CheckedDocuments>,
}

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimits {
            expanded: AtomicU64::new(0),
            documents: self.documents.clone(),
            alone: AtomicBool::new(false),
            validated: Mutex::new(None),
        })
    }
}

/// The limits of one request (a fresh one per request and per subscription).
pub struct DocumentLimits {
    /// The document's size with its fragments expanded.
    expanded: AtomicU64,
    documents: Arc<CheckedDocuments>,
    /// Whether the request has neither variables nor an operation name, so
    /// that its validation depends on the document's text alone.
    alone: AtomicBool,
    /// Where the kept document's validation result is (or goes).
    validated: Mutex<Option<Arc<OnceLock<ValidationResult>>>>,
}

impl DocumentLimits {
    /// Charges `units` to the request's key; refused when its budget is spent.
    fn charge(&self, ctx: &ExtensionContext<'_>, units: u64) -> Result<(), ServerError> {
        let (Some(limiter), Some(request)) = (
            ctx.data_opt::<Arc<RateLimiter>>(),
            ctx.data_opt::<Arc<RequestContext>>(),
        ) else {
            return Ok(());
        };
        let now = request.services.clock.now();
        limiter
            .charge(request.caller.key_id, units as f64, now)
            .map_err(rate_limited)
    }
}

fn refuse_text(found: ForbiddenCharacter) -> ServerError {
    bad_input(format!(
        "{} contains the control character U+{:04X}; text inputs may hold tabs and line breaks but no other control characters",
        found.place,
        u32::from(found.character)
    ))
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimits {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let alone = request.variables.is_empty() && request.operation_name.is_none();
        self.alone.store(alone, Ordering::Relaxed);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        _engine_parse: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Some(checked) = self.documents.get(query) {
            if let Some(found) = forbidden_in_variables(variables.iter()) {
                return Err(refuse_text(found));
            }
            self.expanded.store(checked.expanded, Ordering::Relaxed);
            *locked(&self.validated) = Some(checked.validated);
            return Ok((*checked.document).clone());
        }
        if count_tokens(query, MAX_TOKENS) > MAX_TOKENS {
            return Err(too_complex(format!(
                "the document has more than {MAX_TOKENS} tokens"
            )));
        }
        if let Some(found) = forbidden_in_variables(variables.iter()) {
            return Err(refuse_text(found));
        }
        // Parsed here, not by the engine's own step (`next`): that step's
        // recursion-depth check walks fragment spreads as they expand, 2^n
        // work for a chain of n doubling fragments, before any extension
        // could look. The measure below makes the same check in one pass.
        let document = async_graphql::parser::parse_query(query)?;
        let shape = measure(&document).map_err(|ShapeError::FragmentCycle(name)| {
            bad_input(format!(
                "fragment {name} spreads itself (directly or through other fragments)"
            ))
        })?;
        self.expanded.store(shape.expanded, Ordering::Relaxed);
        if shape.expanded > MAX_EXPANDED_SELECTIONS {
            // Refused before validation walks it, and still paid for: a
            // client probing the limit spends its budget doing so.
            self.charge(ctx, MAX_EXPANDED_SELECTIONS)?;
            return Err(too_complex(format!(
                "the document expands to more than {MAX_EXPANDED_SELECTIONS} selections (each fragment spread counts as the whole fragment)"
            )));
        }
        if shape.aliases > MAX_ALIASES {
            return Err(too_complex(format!(
                "the document has {} aliases; at most {MAX_ALIASES} are allowed",
                shape.aliases
            )));
        }
        if shape.directives > MAX_DIRECTIVES {
            return Err(too_complex(format!(
                "the document has {} directives; at most {MAX_DIRECTIVES} are allowed",
                shape.directives
            )));
        }
        if shape.nesting > MAX_NESTING {
            return Err(too_complex(format!(
                "the document nests selections deeper than {MAX_NESTING} levels (fragment spreads included)"
            )));
        }
        if let Some(found) = forbidden_in_document(&document) {
            return Err(refuse_text(found));
        }
        let checked = Checked {
            document: Arc::new(document.clone()),
            expanded: shape.expanded,
            validated: Arc::default(),
        };
        *locked(&self.validated) = Some(checked.validated.clone());
        self.documents.keep(query, checked);
        Ok(document)
    }

    /// Charges the query to its key's budget after validation computed its
    /// complexity and before anything runs: its complexity or its expanded
    /// size, whichever is larger. A kept document asked without variables
    /// or an operation name is validated once: the engine's rules cost a
    /// list request more than its rows did.
    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let kept = locked(&self.validated)
            .clone()
            .filter(|_| self.alone.load(Ordering::Relaxed));
        let result = match kept.as_ref().and_then(|kept| kept.get()) {
            Some(result) => *result,
            None => {
                let result = next.run(ctx).await?;
                if let Some(kept) = kept {
                    let _ = kept.set(result);
                }
                result
            }
        };
        let cost = (result.complexity.max(1) as u64).max(self.expanded.load(Ordering::Relaxed));
        self.charge(ctx, cost).map_err(|e| vec![e])?;
        Ok(result)
    }
}

fn rate_limited(retry_after_seconds: u64) -> ServerError {
    refusal(
        ErrorCode::RateLimited,
        format!(
            "this API key's request budget is spent; retry after {retry_after_seconds} s (each request costs its complexity)"
        ),
    )
    .extend_with(|_, e| e.set("retryAfter", retry_after_seconds))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_complexity_is_capped_so_sums_cannot_wrap() {
        assert_eq!(connection_complexity(None, 50, 3), 150);
        assert_eq!(connection_complexity(Some(-5), 50, 3), 0);
        let huge = connection_complexity(Some(i32::MAX), 50, usize::MAX);
        assert_eq!(huge, CONNECTION_COMPLEXITY_CAP);
        // 2,000 selections (the expansion limit) of capped connections.
        assert!(huge.checked_mul(2_000).is_some());
    }
}
