//! Per-tenant settings: record URL templates (so a badge links to the
//! record in the operator's admin), the attribution window, and overrides of
//! the channel timings. Stored as a JSON document; validated here on write.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use super::InvalidInput;
use super::channel::{Channel, ChannelPolicy};
use super::conversion::RecordType;

pub const DEFAULT_ATTRIBUTION_WINDOW_DAYS: u32 = 30;
pub const MAX_ATTRIBUTION_WINDOW_DAYS: u32 = 365;
const MIN_DURATION_SECONDS: i64 = 60;
const MAX_INACTIVITY_SECONDS: i64 = 365 * 24 * 3600;
const MAX_CONFIRMATION_SECONDS: i64 = 30 * 24 * 3600;
const MAX_TEMPLATE_CHARS: usize = 500;

/// Characters a record id keeps as-is inside a URL path segment or query
/// value (RFC 3986 unreserved); everything else is percent-encoded.
const RECORD_ID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A tenant's settings as stored. Absent fields mean "the product default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_window_days: Option<u32>,
    /// Record type name (`VISITOR`, …) → URL template with one `{id}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub record_url_templates: BTreeMap<String, String>,
    /// Channel name (`CHAT`, …) → overridden timings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub channels: BTreeMap<String, ChannelOverride>,
    /// Hosts call-to-action links may point to (`book.example.com`, or
    /// `*.example.com` for its subdomains); empty: any public host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_target_hosts: Vec<String>,
    /// Days after a conversation's last activity its personal data is kept;
    /// none: kept until erased by request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_retention_days: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactivity_timeout_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_window_seconds: Option<i64>,
}

/// A change to a tenant's settings; fields left `None` are kept.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    pub attribution_window_days: Option<u32>,
    /// `Some(template)` sets a template, `None` removes it.
    pub record_url_templates: Vec<(RecordType, Option<String>)>,
    pub channels: Vec<(Channel, ChannelOverride)>,
    /// `Some(hosts)` replaces the allowlist of link target hosts (an empty
    /// list allows any public host again).
    pub link_target_hosts: Option<Vec<String>>,
    /// `Some(Some(days))` sets the retention period, `Some(None)` removes
    /// it (chats are kept until erased by request).
    pub message_retention_days: Option<Option<i64>>,
}

/// Most entries in a tenant's allowlist of link target hosts.
pub const MAX_LINK_TARGET_HOSTS: usize = 100;

impl TenantSettings {
    /// Reads the stored document. Unknown fields are ignored so an older
    /// server can read a newer document.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    pub fn attribution_window_days(&self) -> u32 {
        self.attribution_window_days
            .unwrap_or(DEFAULT_ATTRIBUTION_WINDOW_DAYS)
    }

    pub fn attribution_window(&self) -> TimeDelta {
        TimeDelta::days(i64::from(self.attribution_window_days()))
    }

    /// The channel's rules: the product defaults with this tenant's overrides.
    pub fn policy(&self, channel: Channel) -> ChannelPolicy {
        let mut policy = ChannelPolicy::default_for(channel);
        if let Some(o) = self.channels.get(channel.as_str()) {
            if let Some(s) = o.inactivity_timeout_seconds {
                policy.inactivity_timeout = TimeDelta::seconds(s);
            }
            if let Some(s) = o.confirmation_window_seconds {
                policy.confirmation_window = TimeDelta::seconds(s);
            }
        }
        policy
    }

    pub fn url_template(&self, record_type: RecordType) -> Option<&str> {
        self.record_url_templates
            .get(record_type.as_str())
            .map(String::as_str)
    }

    /// The link to a record in the operator's admin, if a template is set.
    pub fn record_url(&self, record_type: RecordType, record_id: &str) -> Option<String> {
        let template = self.url_template(record_type)?;
        let id = utf8_percent_encode(record_id, RECORD_ID).to_string();
        Some(template.replacen("{id}", &id, 1))
    }

    /// The settings after `change`, or why the change is refused (nothing of
    /// a refused change applies).
    pub fn apply(&self, change: SettingsChange) -> Result<TenantSettings, InvalidInput> {
        let mut next = self.clone();
        if let Some(days) = change.attribution_window_days {
            if !(1..=MAX_ATTRIBUTION_WINDOW_DAYS).contains(&days) {
                return Err(InvalidInput::new(format!(
                    "attributionWindowDays must be between 1 and {MAX_ATTRIBUTION_WINDOW_DAYS}, not {days}"
                )));
            }
            next.attribution_window_days = Some(days);
        }
        for (record_type, template) in change.record_url_templates {
            match template {
                Some(t) => {
                    let t = parse_url_template(&t)?;
                    next.record_url_templates
                        .insert(record_type.as_str().to_owned(), t);
                }
                None => {
                    next.record_url_templates.remove(record_type.as_str());
                }
            }
        }
        if let Some(hosts) = change.link_target_hosts {
            if hosts.len() > MAX_LINK_TARGET_HOSTS {
                return Err(InvalidInput::new(format!(
                    "linkTargetHosts may list at most {MAX_LINK_TARGET_HOSTS} hosts"
                )));
            }
            let mut parsed = hosts
                .iter()
                .map(|h| super::public_url::parse_allowed_host(h))
                .collect::<Result<Vec<_>, _>>()?;
            parsed.sort();
            parsed.dedup();
            next.link_target_hosts = parsed;
        }
        if let Some(days) = change.message_retention_days {
            next.message_retention_days = days.map(super::erasure::retention_days).transpose()?;
        }
        for (channel, o) in change.channels {
            check_seconds(
                "inactivityTimeoutSeconds",
                o.inactivity_timeout_seconds,
                MAX_INACTIVITY_SECONDS,
            )?;
            check_seconds(
                "confirmationWindowSeconds",
                o.confirmation_window_seconds,
                MAX_CONFIRMATION_SECONDS,
            )?;
            let entry = next
                .channels
                .entry(channel.as_str().to_owned())
                .or_default();
            if o.inactivity_timeout_seconds.is_some() {
                entry.inactivity_timeout_seconds = o.inactivity_timeout_seconds;
            }
            if o.confirmation_window_seconds.is_some() {
                entry.confirmation_window_seconds = o.confirmation_window_seconds;
            }
        }
        Ok(next)
    }
}

fn check_seconds(field: &str, value: Option<i64>, max: i64) -> Result<(), InvalidInput> {
    match value {
        Some(s) if !(MIN_DURATION_SECONDS..=max).contains(&s) => Err(InvalidInput::new(format!(
            "{field} must be between {MIN_DURATION_SECONDS} and {max}, not {s}"
        ))),
        _ => Ok(()),
    }
}

/// A record URL template: a public http(s) URL (see
/// [`super::public_url`]) with exactly one `{id}`, in its path, query or
/// fragment (never in the host, where a record id could choose the site).
pub fn parse_url_template(template: &str) -> Result<String, InvalidInput> {
    let template = template.trim();
    let refuse = |why: &str| {
        InvalidInput::new(format!(
            "URL template {} {why}; use an http(s) URL with exactly one {{id}}, \
             e.g. https://admin.example.com/visitors/{{id}}",
            super::text::quoted(template)
        ))
    };
    if template.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(refuse("is too long"));
    }
    match template.matches("{id}").count() {
        1 => {}
        0 => return Err(refuse("has no {id}")),
        _ => return Err(refuse("has more than one {id}")),
    }
    if template
        .find("{id}")
        .is_some_and(|at| at < super::public_url::authority_end(template))
    {
        return Err(refuse("puts {id} before the path"));
    }
    super::public_url::parse(
        "URL template",
        &template.replace("{id}", "record-1"),
        MAX_TEMPLATE_CHARS,
    )?;
    Ok(template.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_need_http_and_exactly_one_id() {
        assert!(parse_url_template("https://admin.example.com/visitors/{id}").is_ok());
        assert!(parse_url_template("http://crm.example.com:8080/c?id={id}&tab=1").is_ok());
        for bad in [
            "https://admin.example.com/visitors",
            "https://admin.example.com/{id}/{id}",
            "ftp://files.example.com/{id}",
            "javascript:alert({id})",
            "/visitors/{id}",
            "https:///{id}",
            "not a url {id}",
            "https://{id}.example.com/",
            "https://admin.example.com@{id}/x",
            "https://admin.example.com:{id}/x",
            "https://10.0.0.1/visitors/{id}",
            "http://localhost:8080/visitors/{id}",
            "https://admin.example.com/\u{202E}/{id}",
        ] {
            assert!(parse_url_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn record_urls_encode_the_id() {
        let settings = TenantSettings::default()
            .apply(SettingsChange {
                record_url_templates: vec![(
                    RecordType::Visitor,
                    Some("https://admin.example.com/visitors/{id}".into()),
                )],
                ..Default::default()
            })
            .expect("valid");
        assert_eq!(
            settings.record_url(RecordType::Visitor, "v-1"),
            Some("https://admin.example.com/visitors/v-1".into())
        );
        assert_eq!(
            settings.record_url(RecordType::Visitor, "a b/../é?x"),
            Some("https://admin.example.com/visitors/a%20b%2F..%2F%C3%A9%3Fx".into())
        );
        assert_eq!(settings.record_url(RecordType::Booking, "b-1"), None);
    }

    #[test]
    fn removing_a_template_and_round_trip() {
        let with = TenantSettings::default()
            .apply(SettingsChange {
                attribution_window_days: Some(14),
                record_url_templates: vec![(
                    RecordType::Booking,
                    Some("https://x.example/b/{id}".into()),
                )],
                channels: vec![(
                    Channel::Chat,
                    ChannelOverride {
                        inactivity_timeout_seconds: Some(3600),
                        confirmation_window_seconds: None,
                    },
                )],
                link_target_hosts: Some(vec!["*.Example.com".into(), "book.example".into()]),
                message_retention_days: Some(Some(90)),
            })
            .expect("valid");
        let stored = TenantSettings::from_json(&with.to_json()).expect("json");
        assert_eq!(stored, with);
        assert_eq!(stored.link_target_hosts, ["*.example.com", "book.example"]);
        assert_eq!(stored.attribution_window(), TimeDelta::days(14));
        assert_eq!(
            stored.policy(Channel::Chat).inactivity_timeout,
            TimeDelta::hours(1)
        );
        assert_eq!(
            stored.policy(Channel::Chat).confirmation_window,
            TimeDelta::minutes(10)
        );
        let without = stored
            .apply(SettingsChange {
                record_url_templates: vec![(RecordType::Booking, None)],
                ..Default::default()
            })
            .expect("valid");
        assert_eq!(without.url_template(RecordType::Booking), None);
    }

    #[test]
    fn out_of_range_values_are_refused_whole() {
        let base = TenantSettings::default();
        assert!(
            base.apply(SettingsChange {
                attribution_window_days: Some(0),
                ..Default::default()
            })
            .is_err()
        );
        let too_short = ChannelOverride {
            inactivity_timeout_seconds: Some(10),
            confirmation_window_seconds: None,
        };
        assert!(
            base.apply(SettingsChange {
                attribution_window_days: Some(10),
                channels: vec![(Channel::Email, too_short)],
                ..Default::default()
            })
            .is_err()
        );
        assert_eq!(
            base.attribution_window_days(),
            DEFAULT_ATTRIBUTION_WINDOW_DAYS
        );
    }
}
