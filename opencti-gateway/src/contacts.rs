//! The contact search a desktop runs over its WebSocket: the agent's phone book, from the
//! gateway's [`Crm`](crate::Crm), for a CRM that lists contacts to call or transfer to
//! (Salesforce Voice's `getPhoneContacts`).
//!
//! The request is the gateway's own, next to the desktop protocol's commands and
//! queries: `{"id":"r7","contacts":{"search":"ada"}}`. The answer is a reply with the
//! same id: `{"reply":{"id":"r7","contacts":[{"number":"+44..","contact":{..}}]}}`, or
//! `{"reply":{"id":"r7","error":{..}}}`. One search runs at a time for a connection;
//! a search asked for while two wait is refused as `rate_limited`.

use std::sync::Arc;

use opencti_core::protocol::RequestId;
use opencti_core::{Error, ErrorBody, ErrorKind};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::crm::{Crm, PhoneContact};
use crate::request_text::{has_member, request_id};

/// The longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 100;

/// The most contacts one search answers.
pub const MAX_CONTACTS: usize = 50;

/// Searches that may wait behind the running one, per connection.
const QUEUED_SEARCHES: usize = 2;

/// `{"id":..,"contacts":{"search":..}}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactsRequest {
    /// The request's id, echoed in the reply.
    id: String,
    /// What to search.
    contacts: ContactsSearch,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ContactsSearch {
    /// Text found in a contact's name, number or company; empty lists every contact
    /// (up to the limit).
    #[serde(default)]
    search: String,
}

/// The reply to a contact search: `{"reply":{"id":..,"contacts":[..]}}` or
/// `{"reply":{"id":..,"error":{..}}}`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ContactsReply {
    reply: ContactsOutcome,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct ContactsOutcome {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<RequestId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contacts: Option<Vec<PhoneContact>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

impl ContactsReply {
    fn found(id: RequestId, contacts: Vec<PhoneContact>) -> Self {
        ContactsReply {
            reply: ContactsOutcome {
                id: Some(id),
                contacts: Some(contacts),
                error: None,
            },
        }
    }

    fn failed(id: Option<RequestId>, error: Error) -> Self {
        ContactsReply {
            reply: ContactsOutcome {
                id,
                contacts: None,
                error: Some(error.to_body()),
            },
        }
    }

    /// The reply as a text frame's JSON.
    pub(crate) fn to_json(&self) -> String {
        // Serialising our own types cannot fail; an empty object is the harmless fallback.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// Whether `text` is a contact search rather than a desktop request: only the gateway's
/// own request has a top-level `contacts` member.
pub(crate) fn is_contacts_request(text: &str) -> bool {
    has_member(text, "contacts")
}

/// One connection's searcher: takes requests in order and answers each on `replies`.
pub(crate) struct Searcher {
    requests: mpsc::Sender<String>,
    replies: mpsc::Sender<ContactsReply>,
}

impl Searcher {
    /// Starts the searcher of one connection; it ends when the connection drops it.
    pub(crate) fn start(crm: Arc<dyn Crm>, replies: mpsc::Sender<ContactsReply>) -> Self {
        let (requests, mut incoming) = mpsc::channel::<String>(QUEUED_SEARCHES);
        let out = replies.clone();
        tokio::spawn(async move {
            while let Some(text) = incoming.recv().await {
                let reply = answer(crm.as_ref(), &text).await;
                if out.send(reply).await.is_err() {
                    break;
                }
            }
        });
        Searcher { requests, replies }
    }

    /// Queues the search in `text`, or answers at once that too many wait.
    pub(crate) fn ask(&self, text: String) {
        if let Err(mpsc::error::TrySendError::Full(text)) = self.requests.try_send(text) {
            let id = request_id(&text);
            let busy = Error::new(
                ErrorKind::RateLimited,
                "a contact search is already running and more wait; ask again when they end",
            );
            let _ = self.replies.try_send(ContactsReply::failed(id, busy));
        }
    }
}

async fn answer(crm: &dyn Crm, text: &str) -> ContactsReply {
    let request = match serde_json::from_str::<ContactsRequest>(text) {
        Ok(request) => request,
        Err(error) => {
            let refusal = Error::new(
                ErrorKind::BadInput,
                format!(
                    "a contact search is {{\"id\":\"..\",\"contacts\":{{\"search\":\"..\"}}}}: {}",
                    error
                ),
            );
            return ContactsReply::failed(request_id(text), refusal);
        }
    };
    let id = match RequestId::new(&request.id) {
        Ok(id) => id,
        Err(error) => return ContactsReply::failed(None, error),
    };
    let search = request.contacts.search.trim();
    if search.chars().count() > MAX_SEARCH_CHARS {
        let refusal = Error::new(
            ErrorKind::BadInput,
            format!(
                "a contact search of {} characters; at most {} are accepted",
                search.chars().count(),
                MAX_SEARCH_CHARS
            ),
        );
        return ContactsReply::failed(Some(id), refusal);
    }
    match crm.search(search, MAX_CONTACTS).await {
        Ok(mut contacts) => {
            contacts.truncate(MAX_CONTACTS);
            ContactsReply::found(id, contacts)
        }
        Err(error) => {
            tracing::warn!(%error, "contact search failed");
            ContactsReply::failed(Some(id), error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::Contact;
    use crate::NoCrm;

    struct Book(Vec<PhoneContact>);

    #[async_trait::async_trait]
    impl Crm for Book {
        async fn lookup(&self, _: &str) -> opencti_core::Result<Option<Contact>> {
            Ok(None)
        }
        async fn log_call(&self, _: &crate::CallLogEntry) -> opencti_core::Result<()> {
            Ok(())
        }
        async fn set_disposition(
            &self,
            _: &opencti_core::AgentId,
            _: &[opencti_core::CallId],
            _: &str,
        ) -> opencti_core::Result<()> {
            Ok(())
        }
        async fn search(
            &self,
            text: &str,
            limit: usize,
        ) -> opencti_core::Result<Vec<PhoneContact>> {
            if text == "fail" {
                return Err(Error::new(ErrorKind::Other, "the CRM is down"));
            }
            // More than asked for, to prove the gateway cuts the list itself.
            Ok(self.0.iter().cycle().take(limit + 5).cloned().collect())
        }
    }

    fn book() -> Book {
        Book(vec![PhoneContact {
            number: "+441632960001".into(),
            contact: Contact {
                name: "Ada Lovelace".into(),
                company: None,
                account: None,
                tier: None,
                notes: None,
            },
        }])
    }

    fn json(reply: &ContactsReply) -> serde_json::Value {
        serde_json::from_str(&reply.to_json()).unwrap()
    }

    #[test]
    fn only_a_top_level_contacts_member_makes_a_contact_search() {
        assert!(is_contacts_request(
            r#"{"id":"r1","contacts":{"search":"a"}}"#
        ));
        assert!(!is_contacts_request(
            r#"{"id":"r1","command":{"type":"make_call","to":"1","call_data":{"contacts":"x"}}}"#
        ));
        assert!(!is_contacts_request(r#"{"contacts" "#));
    }

    #[tokio::test]
    async fn a_search_answers_the_contacts_under_its_id_and_no_more_than_the_limit() {
        let reply = json(&answer(&book(), r#"{"id":"r1","contacts":{"search":"ada"}}"#).await);
        assert_eq!(reply["reply"]["id"], "r1");
        let contacts = reply["reply"]["contacts"].as_array().unwrap();
        assert_eq!(contacts.len(), MAX_CONTACTS);
        assert_eq!(contacts[0]["number"], "+441632960001");
        assert_eq!(contacts[0]["contact"]["name"], "Ada Lovelace");
    }

    #[tokio::test]
    async fn a_crm_without_a_phone_book_answers_none() {
        let reply = json(&answer(&NoCrm, r#"{"id":"r2","contacts":{}}"#).await);
        assert_eq!(reply["reply"]["contacts"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn bad_searches_are_refused_with_what_was_wrong() {
        let long = format!(
            r#"{{"id":"r3","contacts":{{"search":"{}"}}}}"#,
            "x".repeat(MAX_SEARCH_CHARS + 1)
        );
        let reply = json(&answer(&book(), &long).await);
        assert_eq!(reply["reply"]["id"], "r3");
        assert_eq!(reply["reply"]["error"]["kind"], "bad_input");
        assert!(reply["reply"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 100"));

        let unknown = json(&answer(&book(), r#"{"id":"r4","contacts":{"serch":"a"}}"#).await);
        assert_eq!(unknown["reply"]["id"], "r4");
        assert_eq!(unknown["reply"]["error"]["kind"], "bad_input");
        assert!(unknown["reply"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("serch"));

        let failing = json(&answer(&book(), r#"{"id":"r5","contacts":{"search":"fail"}}"#).await);
        assert_eq!(failing["reply"]["error"]["kind"], "other");
        assert_eq!(failing["reply"]["error"]["message"], "the CRM is down");
    }

    #[tokio::test]
    async fn searches_beyond_the_queue_are_refused_not_held() {
        struct Slow;
        #[async_trait::async_trait]
        impl Crm for Slow {
            async fn lookup(&self, _: &str) -> opencti_core::Result<Option<Contact>> {
                Ok(None)
            }
            async fn log_call(&self, _: &crate::CallLogEntry) -> opencti_core::Result<()> {
                Ok(())
            }
            async fn set_disposition(
                &self,
                _: &opencti_core::AgentId,
                _: &[opencti_core::CallId],
                _: &str,
            ) -> opencti_core::Result<()> {
                Ok(())
            }
            async fn search(&self, _: &str, _: usize) -> opencti_core::Result<Vec<PhoneContact>> {
                std::future::pending().await
            }
        }
        let (replies, mut out) = mpsc::channel(16);
        let searcher = Searcher::start(Arc::new(Slow), replies);
        for n in 0..10 {
            searcher.ask(format!(r#"{{"id":"s{}","contacts":{{}}}}"#, n));
        }
        let mut refused = 0;
        while let Ok(Some(reply)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), out.recv()).await
        {
            assert_eq!(json(&reply)["reply"]["error"]["kind"], "rate_limited");
            refused += 1;
        }
        // Nothing has run yet when the ten are asked (one thread): two wait, eight are refused.
        assert_eq!(refused, 8, "one is taken, two wait, the rest are refused");
    }
}
