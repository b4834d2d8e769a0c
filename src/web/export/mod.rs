//! `GET /export/{conversations,conversions}.{ndjson,csv}` (ADMIN key):
//! every row the filters match, streamed a page at a time, so an export
//! of any size holds one page in memory and starts at once. The first page
//! is read before the answer starts, so a refused key or a failing
//! database gets a proper error status; a failure later cuts the transfer
//! short (the chunked body never ends cleanly), never ends it as if whole.

mod params;
mod rows;

use axum::Extension;
use std::collections::VecDeque;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use super::auth::Authenticated;
use super::error::{app_error_response, error_response};
use super::{AppState, request_id_of};
use crate::domain::cursor::{ConversationCursor, FeedPosition};
use crate::error::{AppError, ErrorCode};
use crate::service::export::{ConversionFilter, EXPORT_PAGE, after_conversation};
use crate::service::listing::ConversationFilter;
use crate::service::{Caller, Services};
use rows::Format;

/// A page to read: what is exported, with its filter, after where.
#[derive(Clone)]
enum Page {
    Conversations {
        filter: ConversationFilter,
        after: Option<ConversationCursor>,
    },
    Conversions {
        filter: ConversionFilter,
        after: Option<FeedPosition>,
    },
}

pub async fn download(
    State(state): State<AppState>,
    Extension(auth): Extension<Authenticated>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Response {
    let request_id = request_id_of(&headers);
    let Some((what, format)) = file_of(&file) else {
        return error_response(
            ErrorCode::NotFound,
            "no such export; the exports are conversations.ndjson, conversations.csv, \
             conversions.ndjson and conversions.csv",
        );
    };
    // The role first: a key that may not export learns nothing more.
    if let Err(e) = state.services.may_export(&auth.caller) {
        return app_error_response(&e, &request_id);
    }
    let first = match first_page(what, query.as_deref()) {
        Ok(first) => first,
        Err(e) => return app_error_response(&e, &request_id),
    };
    let services = state.services.clone();
    let caller = auth.caller;
    let (chunks, next) = match read(&services, &caller, format, first).await {
        Ok(first) => first,
        Err(e) => return app_error_response(&e, &request_id),
    };
    let pages = stream::unfold((chunks, next), move |(mut chunks, mut next)| {
        let services = services.clone();
        async move {
            loop {
                if let Some(chunk) = chunks.pop_front() {
                    return Some((Ok(chunk), (chunks, next)));
                }
                match read(&services, &caller, format, next?).await {
                    Ok(read) => (chunks, next) = read,
                    Err(e) => {
                        e.log();
                        let cut = std::io::Error::other("the export stopped: a page failed");
                        return Some((Err(cut), (VecDeque::new(), None)));
                    }
                }
            }
        }
    });
    let today = state.services.clock.now().format("%Y-%m-%d");
    (
        StatusCode::OK,
        download_headers(what, format, &today.to_string()),
        Body::from_stream(pages),
    )
        .into_response()
}

/// The first page of the export `what`, narrowed as the query string says.
fn first_page(what: &str, query: Option<&str>) -> Result<Page, AppError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let params = params::parse(&pairs)?;
    Ok(if what == "conversations" {
        Page::Conversations {
            filter: params.conversations(),
            after: None,
        }
    } else {
        Page::Conversions {
            filter: params.conversions()?,
            after: None,
        }
    })
}

/// A download's type and file name (`conversations-2026-12-07.csv`).
fn download_headers(what: &str, format: Format, today: &str) -> [(HeaderName, HeaderValue); 3] {
    let (content_type, extension) = match format {
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let disposition = format!("attachment; filename=\"{what}-{today}.{extension}\"");
    [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
        ),
    ]
}

/// `conversations.csv` → ("conversations", CSV).
fn file_of(file: &str) -> Option<(&'static str, Format)> {
    let (name, extension) = file.split_once('.')?;
    let what = match name {
        "conversations" => "conversations",
        "conversions" => "conversions",
        _ => return None,
    };
    let format = match extension {
        "ndjson" => Format::Ndjson,
        "csv" => Format::Csv,
        _ => return None,
    };
    Some((what, format))
}

/// Bytes per chunk sent, about: blocks this small the allocator reuses
/// page after page. With a chunk per page (300 to 500 kB) the server's
/// memory grew by 30 MB over an export, large blocks kept after use.
const CHUNK_BYTES: usize = 64 * 1024;

/// A page written out as chunks of about [`CHUNK_BYTES`].
struct Chunks {
    full: VecDeque<Bytes>,
    current: String,
}

impl Chunks {
    fn new() -> Self {
        Self {
            full: VecDeque::new(),
            current: String::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8),
        }
    }

    /// Where the next row goes.
    fn next_row(&mut self) -> &mut String {
        if self.current.len() >= CHUNK_BYTES {
            let full = std::mem::replace(
                &mut self.current,
                String::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8),
            );
            self.full.push_back(Bytes::from(full));
        }
        &mut self.current
    }

    fn finish(mut self) -> VecDeque<Bytes> {
        if !self.current.is_empty() {
            self.full.push_back(Bytes::from(self.current));
        }
        self.full
    }
}

/// Reads a page and writes it out (the first with the CSV header), with
/// the page after it, if any.
async fn read(
    services: &Services,
    caller: &Caller,
    format: Format,
    page: Page,
) -> Result<(VecDeque<Bytes>, Option<Page>), AppError> {
    let mut text = Chunks::new();
    match page {
        Page::Conversations { filter, after } => {
            if after.is_none() {
                rows::preamble(format, &rows::CONVERSATION_COLUMNS, text.next_row());
            }
            let listed = services
                .export_conversations_page(caller, after, &filter)
                .await?;
            let conversions = listed.conversions.unwrap_or_default();
            for conversation in &listed.page.items {
                let of = conversions.get(&conversation.id).map(Vec::as_slice);
                rows::write_conversation(format, conversation, of.unwrap_or(&[]), text.next_row());
            }
            let next = match listed.page.items.last() {
                Some(last) if listed.page.has_next_page => Some(Page::Conversations {
                    filter,
                    after: Some(after_conversation(last)),
                }),
                _ => None,
            };
            Ok((text.finish(), next))
        }
        Page::Conversions { filter, after } => {
            if after.is_none() {
                rows::preamble(format, &rows::CONVERSION_COLUMNS, text.next_row());
            }
            let found = services
                .export_conversions_page(caller, after, &filter)
                .await?;
            for exported in &found {
                rows::write_conversion(format, exported, text.next_row());
            }
            let full = found.len() as u64 == EXPORT_PAGE;
            let next = match found.last() {
                Some(last) if full => Some(Page::Conversions {
                    filter,
                    after: Some(last.conversion.position),
                }),
                _ => None,
            };
            Ok((text.finish(), next))
        }
    }
}
