//! `GET /export/{conversations,conversions}.{ndjson,csv}` (ADMIN key):
//! every row the filters match, streamed a page at a time, so an export
//! of any size holds one page in memory and starts at once. The first page
//! is read before the answer starts, so a refused key or a failing
//! database gets a proper error status; a failure later cuts the transfer
//! short (the chunked body never ends cleanly), never ends it as if whole.

mod params;
mod rows;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
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
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let first = match params::parse(&pairs) {
        Ok(p) if what == "conversations" => Page::Conversations {
            filter: p.conversations(),
            after: None,
        },
        Ok(p) => match p.conversions() {
            Ok(filter) => Page::Conversions {
                filter,
                after: None,
            },
            Err(e) => return app_error_response(&e, &request_id),
        },
        Err(e) => return app_error_response(&e, &request_id),
    };
    let services = state.services.clone();
    let caller = auth.caller;
    let (text, next) = match read(&services, &caller, format, first).await {
        Ok(first) => first,
        Err(e) => return app_error_response(&e, &request_id),
    };
    let pages = stream::unfold((Some(text), next), move |(written, next)| {
        let services = services.clone();
        async move {
            if let Some(text) = written {
                return Some((Ok(Bytes::from(text)), (None, next)));
            }
            match read(&services, &caller, format, next?).await {
                Ok((text, next)) => Some((Ok(Bytes::from(text)), (None, next))),
                Err(e) => {
                    e.log();
                    let cut = std::io::Error::other("the export stopped: a page failed");
                    Some((Err(cut), (None, None)))
                }
            }
        }
    });
    let content_type = match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
    };
    let disposition = format!(
        "attachment; filename=\"{what}-{}.{}\"",
        services_today(&state.services),
        if format == Format::Csv {
            "csv"
        } else {
            "ndjson"
        }
    );
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        Body::from_stream(pages),
    )
        .into_response()
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

fn services_today(services: &Services) -> String {
    services.clock.now().format("%Y-%m-%d").to_string()
}

/// Reads a page and writes it out (the first with the CSV header), with
/// the page after it, if any.
async fn read(
    services: &Services,
    caller: &Caller,
    format: Format,
    page: Page,
) -> Result<(String, Option<Page>), AppError> {
    let mut text = String::new();
    match page {
        Page::Conversations { filter, after } => {
            if after.is_none() {
                rows::preamble(format, &rows::CONVERSATION_COLUMNS, &mut text);
            }
            let listed = services
                .export_conversations_page(caller, after, &filter)
                .await?;
            let conversions = listed.conversions.unwrap_or_default();
            for conversation in &listed.page.items {
                let of = conversions.get(&conversation.id).map(Vec::as_slice);
                rows::write_conversation(format, conversation, of.unwrap_or(&[]), &mut text);
            }
            let next = match listed.page.items.last() {
                Some(last) if listed.page.has_next_page => Some(Page::Conversations {
                    filter,
                    after: Some(after_conversation(last)),
                }),
                _ => None,
            };
            Ok((text, next))
        }
        Page::Conversions { filter, after } => {
            if after.is_none() {
                rows::preamble(format, &rows::CONVERSION_COLUMNS, &mut text);
            }
            let found = services
                .export_conversions_page(caller, after, &filter)
                .await?;
            for exported in &found {
                rows::write_conversion(format, exported, &mut text);
            }
            let full = found.len() as u64 == EXPORT_PAGE;
            let next = match found.last() {
                Some(last) if full => Some(Page::Conversions {
                    filter,
                    after: Some(last.conversion.position),
                }),
                _ => None,
            };
            Ok((text, next))
        }
    }
}
