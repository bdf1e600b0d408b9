//! The macro behind every validated text newtype (ids and outbound values).
//!
//! Each type holds an `Arc<str>` so that cloning an id into an event or a snapshot costs a
//! reference count, not an allocation. Construction is the only way in, and it checks.

/// Defines a validated, cheaply cloneable text newtype.
///
/// `check` is a `fn(&str) -> Result<(), String>` that explains what is wrong; the length
/// bounds are checked first (in bytes).
macro_rules! validated_text {
    (
        $(#[$meta:meta])*
        $name:ident, what = $what:literal, max = $max:expr, check = $check:expr
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// The longest value accepted, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates `value`; the error names what was wrong.
            pub fn new(value: impl AsRef<str>) -> $crate::Result<Self> {
                let value = value.as_ref();
                if value.is_empty() {
                    return Err($crate::Error::bad_input(concat!($what, " must not be empty")));
                }
                if value.len() > Self::MAX_LEN {
                    return Err($crate::Error::bad_input(format!(
                        "{} is {} bytes long; at most {} are allowed",
                        $what,
                        value.len(),
                        Self::MAX_LEN
                    )));
                }
                let check: fn(&str) -> Result<(), String> = $check;
                if let Err(why) = check(value) {
                    return Err($crate::Error::bad_input(format!(
                        "{} {:?} is not valid: {}",
                        $what,
                        $crate::text::shorten(value),
                        why
                    )));
                }
                Ok($name(std::sync::Arc::from(value)))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $crate::Error;
            fn try_from(s: &str) -> $crate::Result<Self> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::Error;
            fn try_from(s: String) -> $crate::Result<Self> {
                Self::new(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }

        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": $max,
                    "description": concat!("A ", $what, ", validated on construction.")
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                $name::new(&*s).map_err(|e| serde::de::Error::custom(e.message()))
            }
        }
    };
}

pub(crate) use validated_text;

/// The first characters of `value`, for error messages that must stay short.
pub(crate) fn shorten(value: &str) -> &str {
    const SHOWN: usize = 40;
    if value.len() <= SHOWN {
        return value;
    }
    let mut end = SHOWN;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// Refuses control characters (C0, DEL, C1): they are what injects headers and lines.
pub(crate) fn no_control(value: &str) -> Result<(), String> {
    // Printable ASCII, the common case, settled a byte at a time without decoding.
    if value.bytes().all(|b| matches!(b, b' '..=b'~')) {
        return Ok(());
    }
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("control character {:?} is not allowed", c)),
        None => Ok(()),
    }
}

/// An identifier: printable, no white space, no control or invisible formatting
/// characters (which would let two different ids look alike).
pub(crate) fn identifier(value: &str) -> Result<(), String> {
    // Printable ASCII but the space, the common case (channel names, ids, numbers),
    // settled a byte at a time without decoding.
    if value.bytes().all(|b| matches!(b, b'!'..=b'~')) {
        return Ok(());
    }
    match value
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || is_invisible_format(*c))
    {
        Some(c) => Err(format!(
            "character {:?} is not allowed in an identifier (no white space, control or invisible formatting characters)",
            c
        )),
        None => Ok(()),
    }
}

/// Zero-width and bidirectional formatting characters.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_shortcuts_agree_with_the_character_rules() {
        for b in 0u8..=0x7f {
            let c = char::from(b);
            let text = format!("a{c}b");
            let bad_id = c.is_control() || c.is_whitespace();
            assert_eq!(identifier(&text).is_err(), bad_id, "{c:?} in an identifier");
            assert_eq!(
                no_control(&text).is_err(),
                c.is_control(),
                "{c:?} in a value"
            );
        }
        assert!(identifier("Local/1001@agents-00000003;1").is_ok());
        assert!(identifier("a\u{200B}b").is_err());
        assert!(identifier("caf\u{e9}").is_ok());
        assert!(no_control("caf\u{e9} \u{85}").is_err());
    }
}
