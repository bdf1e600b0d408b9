//! Validated values that reach a switch: what to dial, DTMF digits, reason codes, call
//! data, and the addresses and names the switch reports.
//!
//! Construction refuses control characters and out-of-range input, so a value that
//! reaches a wire protocol (AMI, SIP) cannot inject a header or a line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::text::{no_control, validated_text};
use crate::{Error, Result};

fn dialable(value: &str) -> Result<(), String> {
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+*#@._:;=%-~".contains(*c)))
    {
        Some(c) => Err(format!(
            "character {:?} is not dialable (allowed: letters, digits and + * # @ . _ : ; = % - ~)",
            c
        )),
        None => Ok(()),
    }
}

fn dtmf(value: &str) -> Result<(), String> {
    match value
        .chars()
        .find(|c| !(c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')))
    {
        Some(c) => Err(format!(
            "{:?} is not a DTMF digit (allowed: 0-9, *, #, A-D)",
            c
        )),
        None => Ok(()),
    }
}

fn reason(value: &str) -> Result<(), String> {
    no_control(value)?;
    if value.trim() != value {
        return Err("leading or trailing white space is not allowed".into());
    }
    Ok(())
}

fn data_key(value: &str) -> Result<(), String> {
    let mut chars = value.chars();
    if let Some(first) = chars.next() {
        if !(first.is_ascii_alphabetic() || first == '_') {
            return Err(format!("must start with a letter or '_', not {:?}", first));
        }
    }
    match chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        Some(c) => Err(format!(
            "character {:?} is not allowed (letters, digits, '_', '.', '-')",
            c
        )),
        None => Ok(()),
    }
}

validated_text!(
    /// A destination to dial: a number (`+441632960001`, `2001`, `*72`) or a SIP URI
    /// (`sip:2001@pbx.example`).
    ///
    /// Only letters, digits and `+ * # @ . _ : ; = % - ~` are accepted: no white space,
    /// no control characters, and none of the separators (`&`, `,`, `|`, `/`) that would
    /// let a value reach beyond its field in a dial string.
    ///
    /// ```
    /// use opencti_core::Dialable;
    /// assert!(Dialable::new("+441632960001").is_ok());
    /// assert!(Dialable::new("sip:2001@pbx.example;transport=tcp").is_ok());
    /// assert!(Dialable::new("2001&PJSIP/evil").is_err());
    /// ```
    Dialable, what = "destination", max = 256, check = dialable
);

validated_text!(
    /// DTMF digits to send: `0-9`, `*`, `#`, `A-D`; 1 to 64 of them.
    ///
    /// ```
    /// use opencti_core::DtmfDigits;
    /// assert!(DtmfDigits::new("1234#").is_ok());
    /// assert!(DtmfDigits::new("12x").is_err());
    /// ```
    DtmfDigits, what = "DTMF digits", max = 64, check = dtmf
);

validated_text!(
    /// A reason code: why an agent is not ready or logs out, or a wrap-up disposition
    /// (`lunch`, `Break`, `sale-closed`). No control characters, no leading or trailing
    /// white space, at most 64 bytes.
    ReasonCode, what = "reason code", max = 64, check = reason
);

validated_text!(
    /// A call-data key (a channel variable, a CRM attached-data key): starts with a letter
    /// or `_`, then letters, digits, `_`, `.`, `-`; at most 64 bytes.
    CallDataKey, what = "call-data key", max = 64, check = data_key
);

validated_text!(
    /// A call-data value: any text without control characters, at most 1024 bytes.
    CallDataValue, what = "call-data value", max = 1024, check = no_control
);

validated_text!(
    /// An address as the switch reports it (a caller id number, a SIP URI): no control
    /// characters, at most 256 bytes. Reported, not dialled: see [`Dialable`] for that.
    Address, what = "address", max = 256, check = no_control
);

validated_text!(
    /// A display name as the switch reports it: no control characters, at most 128 bytes.
    DisplayName, what = "display name", max = 128, check = no_control
);

/// Data attached to a call (CRM keys, IVR results): at most [`CallData::MAX_ENTRIES`]
/// entries, ordered by key.
///
/// On the wire it is a JSON object of strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CallData(BTreeMap<CallDataKey, CallDataValue>);

#[cfg(feature = "schema")]
impl schemars::JsonSchema for CallData {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CallData".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let value = generator.subschema_for::<CallDataValue>();
        schemars::json_schema!({
            "type": "object",
            "maxProperties": CallData::MAX_ENTRIES,
            "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_.-]{0,63}$" },
            "additionalProperties": value
        })
    }
}

impl CallData {
    /// The most entries one call may carry.
    pub const MAX_ENTRIES: usize = 64;

    /// Empty call data.
    pub fn new() -> Self {
        CallData(BTreeMap::new())
    }

    /// Sets `key` to `value`; fails when the map is full.
    pub fn insert(&mut self, key: CallDataKey, value: CallDataValue) -> Result<()> {
        if self.0.len() >= Self::MAX_ENTRIES && !self.0.contains_key(&key) {
            return Err(Self::too_many(self.0.len() + 1));
        }
        self.0.insert(key, value);
        Ok(())
    }

    /// Builds call data from string pairs, validating each.
    ///
    /// ```
    /// use opencti_core::CallData;
    /// let data = CallData::from_pairs([("account", "A-1001"), ("ivr.choice", "2")]).unwrap();
    /// assert_eq!(data.get("account").unwrap().as_str(), "A-1001");
    /// assert!(CallData::from_pairs([("bad key", "x")]).is_err());
    /// ```
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut data = CallData::new();
        for (k, v) in pairs {
            data.insert(CallDataKey::new(k)?, CallDataValue::new(v)?)?;
        }
        Ok(data)
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&CallDataValue> {
        self.0.get(key)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&CallDataKey, &CallDataValue)> {
        self.0.iter()
    }

    /// Merges `other` into `self` (its values win); fails, unchanged, if the result would
    /// hold too many entries.
    pub fn merge(&mut self, other: &CallData) -> Result<()> {
        let added = other.0.keys().filter(|k| !self.0.contains_key(*k)).count();
        if self.0.len() + added > Self::MAX_ENTRIES {
            return Err(Self::too_many(self.0.len() + added));
        }
        for (k, v) in &other.0 {
            self.0.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    fn too_many(n: usize) -> Error {
        Error::bad_input(format!(
            "call data would hold {} entries; at most {} are allowed",
            n,
            CallData::MAX_ENTRIES
        ))
    }
}

impl<'de> Deserialize<'de> for CallData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CallData;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "an object of at most {} string entries",
                    CallData::MAX_ENTRIES
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<CallData, A::Error> {
                let mut data = CallData::new();
                while let Some((k, v)) = map.next_entry::<CallDataKey, CallDataValue>()? {
                    data.insert(k, v)
                        .map_err(|e| serde::de::Error::custom(e.message()))?;
                }
                Ok(data)
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_type_refuses_line_breaks_and_nul() {
        for bad in ["a\rb", "a\nb", "a\0b"] {
            assert!(Dialable::new(bad).is_err());
            assert!(DtmfDigits::new(bad).is_err());
            assert!(ReasonCode::new(bad).is_err());
            assert!(CallDataKey::new(bad).is_err());
            assert!(CallDataValue::new(bad).is_err());
            assert!(Address::new(bad).is_err());
            assert!(DisplayName::new(bad).is_err());
        }
    }

    #[test]
    fn dtmf_and_reason_rules() {
        assert!(DtmfDigits::new("0123456789*#ABCD").is_ok());
        assert!(DtmfDigits::new("a").is_err());
        assert!(DtmfDigits::new("1".repeat(65)).is_err());
        assert!(ReasonCode::new("Lunch break").is_ok());
        assert!(ReasonCode::new(" lunch").is_err());
        let err = DtmfDigits::new("12x").unwrap_err();
        assert!(err.message().contains("'x' is not a DTMF digit"), "{}", err);
    }

    #[test]
    fn call_data_is_bounded_on_insert_merge_and_json() {
        let mut data = CallData::new();
        for i in 0..CallData::MAX_ENTRIES {
            data.insert(
                CallDataKey::new(format!("k{}", i)).unwrap(),
                CallDataValue::new("v").unwrap(),
            )
            .unwrap();
        }
        assert!(data
            .insert(
                CallDataKey::new("extra").unwrap(),
                CallDataValue::new("v").unwrap()
            )
            .is_err());
        // Replacing an existing key is fine when full.
        assert!(data
            .insert(
                CallDataKey::new("k0").unwrap(),
                CallDataValue::new("w").unwrap()
            )
            .is_ok());
        let extra = CallData::from_pairs([("extra", "v")]).unwrap();
        assert!(data.merge(&extra).is_err());
        assert_eq!(data.len(), CallData::MAX_ENTRIES);

        let json: String = format!(
            "{{{}}}",
            (0..65)
                .map(|i| format!("\"k{}\":\"v\"", i))
                .collect::<Vec<_>>()
                .join(",")
        );
        let err = serde_json::from_str::<CallData>(&json).unwrap_err();
        assert!(err.to_string().contains("at most 64"), "{}", err);
        let err = serde_json::from_str::<CallData>(r#"{"ok":"a\nb"}"#).unwrap_err();
        assert!(err.to_string().contains("control character"), "{}", err);
    }
}
