#![no_main]
//! Global object ids come from clients in `node(id:)` and friends.
//!
//! Checks that `parse_global_id`, given the input as text and as the text
//! inside a base64url value (so the fuzzer reaches the `Type:uuid` grammar
//! directly), never panics, and that whatever it accepts re-encodes with
//! `global_id` to an id that parses to the same value. And, for a node type
//! and UUID built from the input bytes, that `global_id` output parses back
//! to exactly them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use convtrack::domain::cursor::{NodeType, global_id, parse_global_id};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

const NODE_TYPES: [NodeType; 3] = [
    NodeType::Conversation,
    NodeType::Message,
    NodeType::Conversion,
];

fn parse_and_reencode(text: &str) {
    if let Some((node_type, id)) = parse_global_id(text) {
        let again = global_id(node_type, id);
        assert_eq!(
            parse_global_id(&again),
            Some((node_type, id)),
            "{text:?} re-encoded as {again}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        parse_and_reencode(text);
    }
    parse_and_reencode(&URL_SAFE_NO_PAD.encode(data));

    if let Some((&[kind], rest)) = data.split_first_chunk::<1>()
        && let Some((id, _)) = rest.split_first_chunk::<16>()
    {
        let node_type = NODE_TYPES[usize::from(kind) % NODE_TYPES.len()];
        let id = Uuid::from_bytes(*id);
        let encoded = global_id(node_type, id);
        assert_eq!(
            parse_global_id(&encoded),
            Some((node_type, id)),
            "{encoded}"
        );
    }
});
