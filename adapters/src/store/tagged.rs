//! A stored event read as its domain enum without building the enum's JSON first.
//!
//! Domain events are externally tagged enums: `{event_type: payload}`. Building that object
//! means copying the payload's whole tree, once for every read model that decodes the event;
//! in a rebuild the copies (allocating, then freeing, each map and string) were a tenth of the
//! CPU. [`Tagged`] hands serde the variant name and the payload by reference instead, as
//! `serde_json` does for an object of one key.

use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, VariantAccess, Visitor,
};
use serde_json::{Error, Value};

/// A variant name and its content, deserialized as the externally tagged enum they make.
pub(crate) struct Tagged<'a> {
    pub variant: &'a str,
    pub content: &'a Value,
}

impl<'de> Deserializer<'de> for Tagged<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> EnumAccess<'de> for Tagged<'de> {
    type Error = Error;
    type Variant = Content<'de>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Content<'de>), Error> {
        let name = IntoDeserializer::<Error>::into_deserializer(self.variant);
        Ok((seed.deserialize(name)?, Content(self.content)))
    }
}

/// A variant's content, by reference.
pub(crate) struct Content<'a>(&'a Value);

impl<'de> VariantAccess<'de> for Content<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        serde::Deserialize::deserialize(self.0)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_struct("", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::{json, Value};

    use super::Tagged;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Sample {
        Struct {
            id: String,
            amount: i64,
            note: Option<String>,
        },
        Newtype(u32),
        Tuple(u8, String),
        Unit,
    }

    /// What building the object and decoding it gives, value or error message.
    fn by_object(variant: &str, content: &Value) -> Result<Sample, String> {
        serde_json::from_value(json!({ variant: content })).map_err(|e| e.to_string())
    }

    fn by_reference(variant: &str, content: &Value) -> Result<Sample, String> {
        Sample::deserialize(Tagged { variant, content }).map_err(|e| e.to_string())
    }

    #[test]
    fn decodes_every_kind_of_variant_as_the_tagged_object_would() {
        let cases = [
            (
                "Struct",
                json!({"id": "inv-1", "amount": 11_500, "note": null}),
            ),
            ("Struct", json!({"id": "inv-1", "amount": -3})),
            ("Newtype", json!(7)),
            ("Tuple", json!([1, "x"])),
            ("Unit", Value::Null),
        ];
        for (variant, content) in &cases {
            let decoded = by_reference(variant, content);
            assert!(decoded.is_ok(), "{variant} {content}: {decoded:?}");
            assert_eq!(decoded, by_object(variant, content), "{variant} {content}");
        }
    }

    #[test]
    fn refuses_what_the_tagged_object_refuses() {
        let cases = [
            ("Missing", json!({})),
            ("Struct", json!({"id": "inv-1"})),
            ("Struct", json!({"id": 5, "amount": 1})),
            ("Struct", json!("not an object")),
            ("Newtype", json!("seven")),
            ("Unit", json!({"x": 1})),
        ];
        for (variant, content) in &cases {
            assert!(
                by_reference(variant, content).is_err(),
                "{variant} {content}"
            );
            assert!(by_object(variant, content).is_err(), "{variant} {content}");
        }
    }
}
