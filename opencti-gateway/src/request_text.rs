//! Reading the gateway's own requests (contact searches, supervisor commands) apart from
//! the desktop protocol's, by their top-level member.

use opencti_core::protocol::RequestId;

/// Whether `text` is a JSON object with the top-level member `key`.
pub(crate) fn has_member(text: &str, key: &str) -> bool {
    // Cheap first: most frames are commands and queries.
    text.contains(&format!("\"{}\"", key))
        && serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            .map(|object| object.contains_key(key))
            .unwrap_or(false)
}

/// The request's id, where one can be read, to answer a request that cannot.
pub(crate) fn request_id(text: &str) -> Option<RequestId> {
    let object = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok()?;
    RequestId::new(object.get("id")?.as_str()?).ok()
}
