//! Opaque identifiers the API hands out: global object ids for `node(id)`
//! and keyset cursors for pagination. Both are base64url text so clients
//! treat them as opaque; both are parsed strictly.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::InvalidInput;

/// The object types that `node(id)` can return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    Conversation,
    Message,
    Conversion,
}

impl NodeType {
    fn as_str(self) -> &'static str {
        match self {
            NodeType::Conversation => "Conversation",
            NodeType::Message => "Message",
            NodeType::Conversion => "Conversion",
        }
    }
}

/// The text behind an opaque value, with its `tag:` prefix removed; `None`
/// for anything that is not one of ours with that tag.
fn untag<'a>(decoded: &'a str, tag: &str) -> Option<&'a str> {
    decoded.strip_prefix(tag)?.strip_prefix(':')
}

/// The text inside a base64url value.
fn unwrap(value: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(value.trim()).ok()?).ok()
}

pub fn global_id(node_type: NodeType, id: Uuid) -> String {
    // Written without `format!`: one per listed row.
    let name = node_type.as_str();
    let mut raw = [0u8; 64];
    let uuid_at = name.len() + 1;
    raw[..name.len()].copy_from_slice(name.as_bytes());
    raw[name.len()] = b':';
    let written = id.hyphenated().encode_lower(&mut raw[uuid_at..]).len();
    URL_SAFE_NO_PAD.encode(&raw[..uuid_at + written])
}

/// Reads a global id. Anything that is not one is "not found", never a crash.
pub fn parse_global_id(value: &str) -> Option<(NodeType, Uuid)> {
    let decoded = unwrap(value)?;
    let (name, id) = decoded.split_once(':')?;
    let node_type = [
        NodeType::Conversation,
        NodeType::Message,
        NodeType::Conversion,
    ]
    .into_iter()
    .find(|t| t.as_str() == name)?;
    Some((node_type, Uuid::parse_str(id).ok()?))
}

/// Position in the newest-first conversation list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationCursor {
    pub started_at: i64,
    pub id: Uuid,
}

impl ConversationCursor {
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("c1:{}:{}", self.started_at, self.id.simple()))
    }

    pub fn decode(value: &str) -> Result<Self, InvalidInput> {
        let read = || {
            let decoded = unwrap(value)?;
            let (started_at, id) = untag(&decoded, "c1")?.split_once(':')?;
            Some(Self {
                started_at: started_at.parse().ok()?,
                id: Uuid::parse_str(id).ok()?,
            })
        };
        read().ok_or_else(|| InvalidInput::new("after is not a cursor from this list"))
    }
}

/// Position in a tenant's conversions (the event-feed cursor).
pub fn encode_conversion_cursor(feed_seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{feed_seq}"))
}

pub fn decode_conversion_cursor(value: &str) -> Result<i64, InvalidInput> {
    unwrap(value)
        .and_then(|d| untag(&d, "v1")?.parse().ok())
        .ok_or_else(|| InvalidInput::new("after is not a cursor from this list"))
}

/// Where an event stands in its tenant's feed: the feed is ordered by the
/// writing transaction's id, then by the sequence number the row took.
/// On SQLite (one writer at a time) and for events written before
/// transaction ids were kept, `xid` is 0 and `seq` alone orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedPosition {
    pub xid: i64,
    pub seq: i64,
}

/// Position in a tenant's event feed: the last conversion a client saw.
/// It names its tenant, so a cursor of another tenant is refused rather
/// than silently read as a position in this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub tenant_id: Uuid,
    pub position: FeedPosition,
}

impl EventCursor {
    /// `e1:` for positions without a transaction id, the only form older
    /// servers wrote, so their cursors read back as the same position.
    pub fn encode(self) -> String {
        let FeedPosition { xid, seq } = self.position;
        let tenant = self.tenant_id.simple();
        URL_SAFE_NO_PAD.encode(if xid == 0 {
            format!("e1:{tenant}:{seq}")
        } else {
            format!("e2:{tenant}:{xid}:{seq}")
        })
    }

    /// Reads a cursor a client sends back; it must be one of `tenant_id`'s.
    pub fn decode_for(value: &str, tenant_id: Uuid) -> Result<Self, InvalidInput> {
        let read = || {
            let decoded = unwrap(value)?;
            let (tenant, position) = match untag(&decoded, "e1") {
                Some(rest) => {
                    let (tenant, seq) = rest.split_once(':')?;
                    (tenant, (0, seq.parse().ok()?))
                }
                None => {
                    let (tenant, rest) = untag(&decoded, "e2")?.split_once(':')?;
                    let (xid, seq) = rest.split_once(':')?;
                    (tenant, (xid.parse().ok()?, seq.parse().ok()?))
                }
            };
            Some(Self {
                tenant_id: Uuid::parse_str(tenant).ok()?,
                position: FeedPosition {
                    xid: position.0,
                    seq: position.1,
                },
            })
        };
        read()
            .filter(|c| c.tenant_id == tenant_id && c.position.xid >= 0 && c.position.seq >= 0)
            .ok_or_else(|| {
                InvalidInput::new(
                    "after is not an event cursor of this tenant; pass the cursor of the last event you received",
                )
            })
    }
}

/// Position in a conversation's thread (the message's sequence number).
pub fn encode_message_cursor(seq: i32) -> String {
    URL_SAFE_NO_PAD.encode(format!("m1:{seq}"))
}

pub fn decode_message_cursor(value: &str) -> Result<i32, InvalidInput> {
    unwrap(value)
        .and_then(|d| untag(&d, "m1")?.parse().ok())
        .ok_or_else(|| InvalidInput::new("after is not a cursor from this thread"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        let gid = global_id(NodeType::Conversion, id);
        assert_eq!(parse_global_id(&gid), Some((NodeType::Conversion, id)));
        assert_eq!(parse_global_id("not base64!"), None);
        assert_eq!(parse_global_id(&URL_SAFE_NO_PAD.encode("Tenant:abc")), None);
        assert_eq!(parse_global_id(&id.to_string()), None);
    }

    #[test]
    fn global_ids_are_the_type_and_hyphenated_uuid_in_base64url() {
        let id = Uuid::from_u128(0x0192_f3a4_5b6c_7d8e_9fa0_b1c2_d3e4_f506);
        for node_type in [
            NodeType::Conversation,
            NodeType::Message,
            NodeType::Conversion,
        ] {
            let text = format!(
                "{}:0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506",
                node_type.as_str()
            );
            assert_eq!(global_id(node_type, id), URL_SAFE_NO_PAD.encode(text));
        }
    }

    #[test]
    fn conversation_cursor_round_trips() {
        let cursor = ConversationCursor {
            started_at: 1_750_000_000_123_456,
            id: Uuid::now_v7(),
        };
        assert_eq!(ConversationCursor::decode(&cursor.encode()), Ok(cursor));
        assert!(ConversationCursor::decode("garbage").is_err());
        assert!(ConversationCursor::decode(&encode_message_cursor(3)).is_err());
    }

    #[test]
    fn event_cursors_belong_to_one_tenant() {
        let tenant = Uuid::now_v7();
        for xid in [0, 7_412_993] {
            let cursor = EventCursor {
                tenant_id: tenant,
                position: FeedPosition { xid, seq: 41 },
            };
            assert_eq!(
                EventCursor::decode_for(&cursor.encode(), tenant),
                Ok(cursor)
            );
            assert!(EventCursor::decode_for(&cursor.encode(), Uuid::now_v7()).is_err());
        }
        assert!(EventCursor::decode_for("garbage", tenant).is_err());
        assert!(EventCursor::decode_for(&encode_conversion_cursor(41), tenant).is_err());
    }

    #[test]
    fn cursors_without_a_transaction_id_keep_their_first_form() {
        let tenant = Uuid::now_v7();
        let written_before = URL_SAFE_NO_PAD.encode(format!("e1:{}:41", tenant.simple()));
        let read = EventCursor::decode_for(&written_before, tenant).map(|c| c.position);
        assert_eq!(read, Ok(FeedPosition { xid: 0, seq: 41 }));
        let cursor = EventCursor {
            tenant_id: tenant,
            position: FeedPosition { xid: 0, seq: 41 },
        };
        assert_eq!(cursor.encode(), written_before);
    }

    #[test]
    fn feed_positions_order_by_transaction_then_sequence() {
        let at = |xid, seq| FeedPosition { xid, seq };
        assert!(at(0, 900) < at(5, 1));
        assert!(at(5, 1) < at(5, 2));
        assert!(at(5, 2) < at(6, 1));
        let e2 = |text: &str| URL_SAFE_NO_PAD.encode(text);
        let tenant = Uuid::now_v7();
        let t = tenant.simple();
        assert!(EventCursor::decode_for(&e2(&format!("e2:{t}:-1:3")), tenant).is_err());
        assert!(EventCursor::decode_for(&e2(&format!("e2:{t}:3")), tenant).is_err());
    }

    #[test]
    fn conversion_cursor_round_trips() {
        assert_eq!(
            decode_conversion_cursor(&encode_conversion_cursor(9)),
            Ok(9)
        );
        assert!(decode_conversion_cursor(&encode_message_cursor(9)).is_err());
    }

    #[test]
    fn message_cursor_round_trips() {
        assert_eq!(decode_message_cursor(&encode_message_cursor(42)), Ok(42));
        assert!(decode_message_cursor("m1:x").is_err());
    }
}
