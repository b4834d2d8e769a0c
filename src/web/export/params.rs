//! The query string of an export: the list's filters, checked whole before
//! a byte is sent.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::channel::Channel;
use crate::domain::conversion::ConversionKind;
use crate::domain::label::{Label, MAX_LABELS};
use crate::domain::session_id::SessionId;
use crate::error::AppError;
use crate::service::export::ConversionFilter;
use crate::service::listing::ConversationFilter;

/// What an export was asked to narrow to.
#[derive(Debug, Default, PartialEq)]
pub struct ExportParams {
    /// From this instant on (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Before this instant (exclusive).
    pub to: Option<DateTime<Utc>>,
    pub channels: Option<Vec<Channel>>,
    pub badges: Option<Vec<ConversionKind>>,
    pub converted: Option<bool>,
    pub session_id: Option<SessionId>,
    /// Conversations with every one of these labels.
    pub labels: Vec<Label>,
}

const KNOWN: &str = "from, to, channel, badge, converted, sessionId, label";

/// Reads the parameters; an unknown, repeated (but for `channel` and
/// `badge`) or malformed one is refused.
pub fn parse(pairs: &[(String, String)]) -> Result<ExportParams, AppError> {
    let mut params = ExportParams::default();
    for (name, value) in pairs {
        match name.as_str() {
            "from" => set_once(&mut params.from, "from", instant(value, "from")?)?,
            "to" => set_once(&mut params.to, "to", instant(value, "to")?)?,
            "channel" => extend(&mut params.channels, names(value, "channel")?),
            "badge" => extend(&mut params.badges, names(value, "badge")?),
            "converted" => set_once(&mut params.converted, "converted", boolean(value)?)?,
            "search" => {
                return Err(bad(
                    "search is not available in exports (SQLite reads a search's matches again \
                     for every page, so a deep export would cost the square of its size); \
                     export with the other filters"
                        .to_owned(),
                ));
            }
            "label" => params.labels.push(label(value)?),
            "sessionId" => {
                let id = SessionId::parse(value).map_err(|e| bad(format!("sessionId: {e}")))?;
                set_once(&mut params.session_id, "sessionId", id)?;
            }
            other => {
                return Err(bad(format!(
                    "unknown export parameter {}; the parameters are {KNOWN}",
                    crate::domain::text::quoted(other)
                )));
            }
        }
    }
    if params.labels.len() > MAX_LABELS {
        return Err(bad(format!("at most {MAX_LABELS} label parameters")));
    }
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from >= to
    {
        return Err(bad("from must be before to".to_owned()));
    }
    Ok(params)
}

impl ExportParams {
    /// The list's filter: conversations started in the range.
    pub fn conversations(&self) -> ConversationFilter {
        ConversationFilter {
            badges: self.badges.clone(),
            converted: self.converted,
            channels: self.channels.clone(),
            started_after: self.from,
            started_before: self.to,
            session_id: self.session_id.clone(),
            labels: self.labels.clone(),
            ..ConversationFilter::default()
        }
    }

    /// Conversions recorded in the range; `badge` names their kinds and
    /// `converted` whether they were credited to a conversation. The
    /// conversations' own filter, `sessionId`, is refused.
    pub fn conversions(&self) -> Result<ConversionFilter, AppError> {
        if self.session_id.is_some() {
            return Err(bad(
                "sessionId narrows the conversations export only".to_owned()
            ));
        }
        if !self.labels.is_empty() {
            return Err(bad("label narrows the conversations export only".to_owned()));
        }
        Ok(ConversionFilter {
            kinds: self.badges.clone(),
            channels: self.channels.clone(),
            attributed: self.converted,
            recorded_after: self.from,
            recorded_before: self.to,
        })
    }
}

fn bad(message: String) -> AppError {
    AppError::BadInput(message)
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), AppError> {
    if slot.is_some() {
        return Err(bad(format!("{name} may be given once")));
    }
    *slot = Some(value);
    Ok(())
}

fn extend<T: PartialEq>(slot: &mut Option<Vec<T>>, values: Vec<T>) {
    let all = slot.get_or_insert_with(Vec::new);
    for value in values {
        if !all.contains(&value) {
            all.push(value);
        }
    }
}

/// An RFC 3339 instant, or a date (its midnight, UTC).
fn instant(value: &str, name: &str) -> Result<DateTime<Utc>, AppError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            bad(format!(
                "{name} must be a date (2026-12-01) or an RFC 3339 time (2026-12-01T09:30:00Z)"
            ))
        })
}

/// Comma-separated names of a closed list, any case.
fn names<T: std::str::FromStr>(value: &str, name: &str) -> Result<Vec<T>, AppError>
where
    T::Err: std::fmt::Display,
{
    let parsed: Vec<T> = value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.to_ascii_uppercase()
                .parse::<T>()
                .map_err(|e| bad(format!("{name}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if parsed.is_empty() {
        return Err(bad(format!("{name} is empty")));
    }
    Ok(parsed)
}

/// A `label` parameter: `key=value`.
fn label(value: &str) -> Result<Label, AppError> {
    let (key, value) = value.split_once('=').ok_or_else(|| {
        bad(format!(
            "label must be key=value, not {}",
            crate::domain::text::quoted(value)
        ))
    })?;
    Label::new(key, value).map_err(|e| bad(e.to_string()))
}

fn boolean(value: &str) -> Result<bool, AppError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad("converted must be true or false".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
        query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn message(query: &[(&str, &str)]) -> String {
        match parse(&pairs(query)) {
            Err(AppError::BadInput(m)) => m,
            other => panic!("{query:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn no_parameters_export_everything() {
        assert_eq!(parse(&[]).expect("parsed"), ExportParams::default());
    }

    #[test]
    fn dates_are_midnights_and_times_are_kept() {
        let p = parse(&pairs(&[
            ("from", "2026-12-01"),
            ("to", "2026-12-05T09:30:00+01:00"),
        ]))
        .expect("parsed");
        assert_eq!(
            p.from.expect("from").to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(p.to.expect("to").to_rfc3339(), "2026-12-05T08:30:00+00:00");
    }

    #[test]
    fn lists_take_commas_repeats_and_any_case() {
        let p = parse(&pairs(&[
            ("channel", "chat,WhatsApp"),
            ("channel", "EMAIL"),
            ("badge", "tour_booked"),
            ("converted", "true"),
        ]))
        .expect("parsed");
        assert_eq!(
            p.channels,
            Some(vec![Channel::Chat, Channel::Whatsapp, Channel::Email])
        );
        assert_eq!(p.badges, Some(vec![ConversionKind::TourBooked]));
        assert_eq!(p.converted, Some(true));
        assert_eq!(p.conversions().expect("filter").attributed, Some(true));
        assert_eq!(p.conversations().converted, Some(true));
    }

    #[test]
    fn bad_parameters_are_named() {
        assert!(message(&[("limit", "5")]).contains("\"limit\""));
        assert!(message(&[("from", "yesterday")]).starts_with("from must be"));
        assert!(message(&[("from", "2026-12-01"), ("from", "2026-12-02")]).contains("once"));
        assert!(message(&[("from", "2026-12-02"), ("to", "2026-12-02")]).contains("before"));
        assert!(message(&[("channel", "FAX")]).starts_with("channel:"));
        assert!(message(&[("badge", ",")]).contains("empty"));
        assert!(message(&[("converted", "yes")]).contains("true or false"));
        assert!(message(&[("sessionId", "nope")]).starts_with("sessionId:"));
        assert!(message(&[("search", "parking")]).starts_with("search is not available"));
        let one = "cs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let session = parse(&pairs(&[("sessionId", one)])).expect("parsed");
        assert_eq!(
            session
                .conversations()
                .session_id
                .map(|s| s.as_str().to_owned()),
            Some(one.to_owned())
        );
        assert!(session.conversions().is_err());
    }
}
