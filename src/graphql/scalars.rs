//! Domain values as GraphQL scalars, so resolvers receive them parsed.
//!
//! A session ID travels as a `String` in the schema (integrators' clients
//! and the published `schema.graphql` stay as they are) but is read into a
//! [`SessionId`] as the arguments are: a malformed one is refused with
//! `BAD_USER_INPUT` before any resolver runs.

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, InputType, InputValueError, InputValueResult, OutputType, Positioned,
    ServerResult, Value,
};

use crate::domain::session_id::SessionId;
use crate::error::ErrorCode;

impl InputType for SessionId {
    type RawValueType = str;

    fn type_name() -> Cow<'static, str> {
        Cow::Borrowed("String")
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <String as InputType>::create_type_info(registry)
    }

    fn parse(value: Option<Value>) -> InputValueResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => SessionId::parse(&text).map_err(|e| {
                InputValueError::custom(e).with_extension("code", ErrorCode::BadUserInput.as_str())
            }),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.as_str().to_owned())
    }

    fn as_raw_value(&self) -> Option<&str> {
        Some(self.as_str())
    }
}

impl OutputType for SessionId {
    fn type_name() -> Cow<'static, str> {
        Cow::Borrowed("String")
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <String as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        _: &ContextSelectionSet<'_>,
        _: &Positioned<Field>,
    ) -> ServerResult<Value> {
        Ok(Value::String(self.as_str().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_reads_as_a_string_and_a_malformed_one_is_bad_input() {
        let id = SessionId::generate().expect("random");
        let read = <SessionId as InputType>::parse(Some(Value::String(id.to_string())));
        assert_eq!(read.expect("well-formed"), id);
        let error = <SessionId as InputType>::parse(Some(Value::String("cs_short".into())))
            .expect_err("malformed")
            .into_server_error(Default::default());
        assert!(
            error.message.contains("is not a session ID"),
            "{}",
            error.message
        );
        let code = error.extensions.as_ref().and_then(|e| e.get("code"));
        assert_eq!(code, Some(&Value::from("BAD_USER_INPUT")));
        assert!(<SessionId as InputType>::parse(Some(Value::from(5))).is_err());
    }
}
