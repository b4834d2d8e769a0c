#![no_main]
//! Pagination cursors come back from clients as `after` arguments.
//!
//! Checks that, for the input taken both as text and as the text inside a
//! base64url value (so the fuzzer reaches the `tag:...` grammar directly):
//! - every decoder (`EventCursor::decode_for`, `ConversationCursor::decode`,
//!   `decode_message_cursor`, `decode_conversion_cursor`) returns instead of
//!   panicking;
//! - whatever decodes re-encodes to a cursor that decodes to the same value
//!   (and an event cursor only ever decodes for its own tenant, with
//!   `seq >= 0`).
//!
//! And, for values built from the input bytes, that each encoding decodes
//! back to its value with its own decoder and is refused by the others.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use convtrack::domain::cursor::{
    ConversationCursor, EventCursor, decode_conversion_cursor, decode_message_cursor,
    encode_conversion_cursor, encode_message_cursor,
};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

/// The tenant whose event cursors decoding text is tried against.
const TENANT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

fn decode_all(text: &str) {
    if let Ok(cursor) = EventCursor::decode_for(text, TENANT) {
        assert_eq!(cursor.tenant_id, TENANT, "{text:?}");
        assert!(cursor.seq >= 0, "{text:?} gave {cursor:?}");
        assert_eq!(
            EventCursor::decode_for(&cursor.encode(), TENANT),
            Ok(cursor),
            "{text:?}"
        );
    }
    if let Ok(cursor) = ConversationCursor::decode(text) {
        assert_eq!(
            ConversationCursor::decode(&cursor.encode()),
            Ok(cursor),
            "{text:?}"
        );
    }
    if let Ok(seq) = decode_message_cursor(text) {
        assert_eq!(
            decode_message_cursor(&encode_message_cursor(seq)),
            Ok(seq),
            "{text:?}"
        );
    }
    if let Ok(seq) = decode_conversion_cursor(text) {
        assert_eq!(
            decode_conversion_cursor(&encode_conversion_cursor(seq)),
            Ok(seq),
            "{text:?}"
        );
    }
}

/// Which decoders accept `encoded`: event (for `tenant`), conversation,
/// message, conversion.
fn accepted_by(encoded: &str, tenant: Uuid) -> [bool; 4] {
    [
        EventCursor::decode_for(encoded, tenant).is_ok(),
        ConversationCursor::decode(encoded).is_ok(),
        decode_message_cursor(encoded).is_ok(),
        decode_conversion_cursor(encoded).is_ok(),
    ]
}

fn round_trips(bytes: &[u8; 28]) {
    let (id, rest) = bytes.split_first_chunk::<16>().expect("28 bytes");
    let (wide, narrow) = rest.split_first_chunk::<8>().expect("12 bytes");
    let id = Uuid::from_bytes(*id);
    let other_tenant = Uuid::from_u128(id.as_u128() ^ 1);
    let wide = i64::from_be_bytes(*wide);
    let narrow = i32::from_be_bytes(narrow.try_into().expect("4 bytes"));

    let event = EventCursor {
        tenant_id: id,
        seq: wide,
    };
    let encoded = event.encode();
    let expected = (wide >= 0).then_some(event);
    assert_eq!(
        EventCursor::decode_for(&encoded, id).ok(),
        expected,
        "{encoded}"
    );
    assert!(
        EventCursor::decode_for(&encoded, other_tenant).is_err(),
        "{encoded} read for tenant {other_tenant}"
    );
    assert_eq!(
        accepted_by(&encoded, id),
        [wide >= 0, false, false, false],
        "{encoded}"
    );

    let conversation = ConversationCursor {
        started_at: wide,
        id,
    };
    let encoded = conversation.encode();
    assert_eq!(
        ConversationCursor::decode(&encoded),
        Ok(conversation),
        "{encoded}"
    );
    assert_eq!(
        accepted_by(&encoded, id),
        [false, true, false, false],
        "{encoded}"
    );

    let encoded = encode_message_cursor(narrow);
    assert_eq!(decode_message_cursor(&encoded), Ok(narrow), "{encoded}");
    assert_eq!(
        accepted_by(&encoded, id),
        [false, false, true, false],
        "{encoded}"
    );

    let encoded = encode_conversion_cursor(wide);
    assert_eq!(decode_conversion_cursor(&encoded), Ok(wide), "{encoded}");
    assert_eq!(
        accepted_by(&encoded, id),
        [false, false, false, true],
        "{encoded}"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        decode_all(text);
    }
    decode_all(&URL_SAFE_NO_PAD.encode(data));

    if let Some((bytes, _)) = data.split_first_chunk::<28>() {
        round_trips(bytes);
    }
});
