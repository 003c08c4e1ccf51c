//! Lenient scalar types for Okta's System Log.
//!
//! Real System Log output is loosely typed: `version` and `postalCode` arrive as strings or
//! numbers, `debugData` values are strings that hold booleans, and the OpenAPI examples
//! write numbers where production writes strings. These newtypes accept every form seen and
//! keep string data borrowed from the input where the JSON has no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A string that also accepts a JSON number or boolean (kept as its JSON text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'a> Str<'a> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, or `None` when it is empty or Okta's literal `"null"`.
    pub fn meaningful(&self) -> Option<&str> {
        match self.0.as_ref() {
            "" | "null" => None,
            s => Some(s),
        }
    }

    /// An owned copy that no longer borrows the input.
    pub fn into_owned(self) -> Str<'static> {
        Str(Cow::Owned(self.0.into_owned()))
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str(Cow::Borrowed(s))
    }
}

impl From<String> for Str<'static> {
    fn from(s: String) -> Self {
        Str(Cow::Owned(s))
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Str<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(if v { "true" } else { "false" })))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl schemars::JsonSchema for Str<'_> {
    fn schema_name() -> Cow<'static, str> {
        "LenientString".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A string; a number or boolean is accepted and kept as its JSON text.",
            "type": ["string", "number", "boolean"]
        })
    }
}

/// A number that also accepts a numeric string (`"394089"`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(transparent)]
pub struct Num(pub f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                v.trim()
                    .parse()
                    .map(Num)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl schemars::JsonSchema for Num {
    fn schema_name() -> Cow<'static, str> {
        "LenientNumber".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A number; a numeric string is accepted.",
            "type": ["number", "string"]
        })
    }
}

/// A boolean that also accepts `"true"` / `"false"` strings, as `debugData` writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Bool(pub bool);

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean or \"true\"/\"false\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Bool, E> {
                Ok(Bool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bool, E> {
                match v.trim() {
                    s if s.eq_ignore_ascii_case("true") => Ok(Bool(true)),
                    s if s.eq_ignore_ascii_case("false") => Ok(Bool(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl schemars::JsonSchema for Bool {
    fn schema_name() -> Cow<'static, str> {
        "LenientBool".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A boolean; the strings \"true\" and \"false\" are accepted.",
            "type": ["boolean", "string"]
        })
    }
}

/// A list that also accepts a single element in place of the array (Okta writes
/// `risk.reasons` both ways) and `null` as the empty list.
#[derive(Debug, Clone, PartialEq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array or a single element")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OneOrMany(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(OneOrMany(Vec::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(OneOrMany(out))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| OneOrMany(vec![t]))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                T::deserialize(de::value::BorrowedStrDeserializer::new(v)).map(|t| OneOrMany(vec![t]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StringDeserializer::new(v.to_owned())).map(|t| OneOrMany(vec![t]))
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for OneOrMany<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let item = generator.subschema_for::<T>();
        schemars::json_schema!({
            "description": "An array; a single element or null is accepted.",
            "anyOf": [ { "type": "array", "items": item }, item, { "type": "null" } ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_accepts_numbers_and_booleans_and_borrows_plain_strings() {
        let s: Str<'_> = serde_json::from_str("\"10013\"").unwrap();
        assert!(matches!(s.0, Cow::Borrowed("10013")));
        let n: Str<'_> = serde_json::from_str("10013").unwrap();
        assert_eq!(n.as_str(), "10013");
        let b: Str<'_> = serde_json::from_str("false").unwrap();
        assert_eq!(b.as_str(), "false");
        assert!(serde_json::from_str::<Str<'_>>("{}").is_err());
        assert_eq!(Str::from("null").meaningful(), None);
    }

    #[test]
    fn num_and_bool_accept_strings() {
        assert_eq!(serde_json::from_str::<Num>("\"394089\"").unwrap().0, 394089.0);
        assert!(serde_json::from_str::<Num>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Bool>("\"true\"").unwrap().0);
        assert!(!serde_json::from_str::<Bool>("false").unwrap().0);
        assert!(serde_json::from_str::<Bool>("\"maybe\"").is_err());
    }

    #[test]
    fn one_or_many_accepts_single_element_and_null() {
        let v: OneOrMany<Str<'_>> = serde_json::from_str("\"a\"").unwrap();
        assert_eq!(v.0.len(), 1);
        let v: OneOrMany<Str<'_>> = serde_json::from_str("[\"a\",\"b\"]").unwrap();
        assert_eq!(v.0.len(), 2);
        let v: Option<OneOrMany<Str<'_>>> = serde_json::from_str("null").unwrap();
        assert!(v.is_none());
    }
}
