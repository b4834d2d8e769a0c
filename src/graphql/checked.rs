//! Documents that passed every document check, kept by their text. A
//! client (the admin console, an integrator's poller) sends the same few
//! documents again and again; parsing and measuring one costs more than a
//! list page's rows. A kept document is copied out, never shared: the
//! engine edits the copy it runs (skipped fields are removed).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::ValidationResult;
use async_graphql::parser::types::ExecutableDocument;

use crate::domain::locked;

/// Most documents kept; the oldest goes first.
pub const MAX_KEPT: usize = 128;
/// Longest document text kept, in bytes: with [`MAX_KEPT`], a bound on the
/// memory the cache holds whatever clients send.
pub const MAX_KEPT_TEXT: usize = 4096;

/// A document that passed the checks, with what the checks measured.
#[derive(Clone)]
pub struct Checked {
    pub document: Arc<ExecutableDocument>,
    /// Its size with fragments expanded, which the request is charged.
    pub expanded: u64,
    /// What the engine's validation found, once it passed for a request
    /// of this document without variables or an operation name (nothing
    /// else it reads changes between requests); such requests reuse it.
    pub validated: Arc<OnceLock<ValidationResult>>,
}

/// The kept documents, shared by every request of one schema.
#[derive(Default)]
pub struct CheckedDocuments(Mutex<Kept>);

#[derive(Default)]
struct Kept {
    by_text: HashMap<Box<str>, Checked>,
    /// Texts, oldest first.
    order: VecDeque<Box<str>>,
}

impl CheckedDocuments {
    pub fn get(&self, text: &str) -> Option<Checked> {
        locked(&self.0).by_text.get(text).cloned()
    }

    /// Keeps `checked` under `text`, unless the text is too long to keep.
    pub fn keep(&self, text: &str, checked: Checked) {
        if text.len() > MAX_KEPT_TEXT {
            return;
        }
        let mut kept = locked(&self.0);
        if kept.by_text.contains_key(text) {
            return;
        }
        if kept.order.len() >= MAX_KEPT
            && let Some(oldest) = kept.order.pop_front()
        {
            kept.by_text.remove(&oldest);
        }
        kept.order.push_back(text.into());
        kept.by_text.insert(text.into(), checked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(text: &str) -> Checked {
        Checked {
            document: Arc::new(async_graphql::parser::parse_query(text).expect("parses")),
            expanded: 1,
            validated: Arc::default(),
        }
    }

    #[test]
    fn the_oldest_document_goes_when_the_cache_is_full() {
        let cache = CheckedDocuments::default();
        let text = |n: usize| format!("{{ f{n} }}");
        for n in 0..=MAX_KEPT {
            cache.keep(&text(n), checked(&text(n)));
        }
        assert!(cache.get(&text(0)).is_none(), "the oldest was dropped");
        assert!(cache.get(&text(1)).is_some());
        assert!(cache.get(&text(MAX_KEPT)).is_some());
        assert_eq!(locked(&cache.0).by_text.len(), MAX_KEPT);
    }

    #[test]
    fn a_long_document_is_not_kept() {
        let cache = CheckedDocuments::default();
        let long = format!("{{ f{} }}", "x".repeat(MAX_KEPT_TEXT));
        cache.keep(&long, checked(&long));
        assert!(cache.get(&long).is_none());
    }
}
