//! What Asterisk's configuration does not allow, read at every (re)connect: a command
//! offered on the desk must be one that works on this PBX.
//!
//! The connector's capabilities follow from its config (a hold context, a conference
//! context, an outbound context); whether those contexts exist is Asterisk's dialplan's
//! business. A `Redirect` or `Originate` into a context that is not there drops the
//! customer or fails late, so the commands that need a missing context are withheld
//! from the line, with the reason, until a later read finds it (at a reconnect, or the
//! link's periodic re-read, `Timeouts::dialplan_recheck`).

use opencti_core::{CommandKind, ErrorKind, Withheld};

use crate::client::AmiClient;
use crate::config::AmiConfig;
use crate::line::action;

/// Whether `context` (and, if given, `exten` in it) is in the dialplan; `None` when
/// Asterisk did not say (the AMI user may lack the class `ShowDialPlan` needs).
async fn in_dialplan(client: &AmiClient, context: &str, exten: Option<&str>) -> Option<bool> {
    let mut headers = vec![("Context", context)];
    if let Some(exten) = exten {
        headers.push(("Extension", exten));
    }
    let request = action("ShowDialPlan", &headers).ok()?;
    match client.send_list(request).await {
        Ok(list) => Some(!list.items.is_empty()),
        Err(e) if e.kind() == ErrorKind::Rejected && e.message().contains("Did not find") => {
            Some(false)
        }
        Err(e) => {
            tracing::debug!(error = %e, context, "AMI: ShowDialPlan failed; dialplan not checked");
            None
        }
    }
}

/// The commands the dialplan cannot carry out for `config`, with why.
pub(crate) async fn by_dialplan(client: &AmiClient, config: &AmiConfig) -> Vec<Withheld> {
    let mut withheld = Vec::new();
    let mut withhold = |commands: &[CommandKind], reason: String| {
        for &command in commands {
            withheld.push(Withheld {
                command,
                reason: reason.clone(),
            });
        }
    };
    let outbound = &config.outbound_context;
    if in_dialplan(client, outbound, None).await == Some(false) {
        withhold(
            &[
                CommandKind::MakeCall,
                CommandKind::Consult,
                CommandKind::BlindTransfer,
            ],
            format!(
                "the outbound context {outbound:?} is not in Asterisk's dialplan; add it \
                 (extensions.conf) or configure the context agents dial from"
            ),
        );
    }
    if let Some(hold) = &config.hold {
        for exten in [&hold.music_exten, &hold.wait_exten] {
            if in_dialplan(client, &hold.context, Some(exten)).await == Some(false) {
                withhold(
                    &[CommandKind::Hold, CommandKind::Retrieve],
                    format!(
                        "the hold context {:?} has no extension {exten:?} in Asterisk's dialplan; \
                         add it (see the connector's README) or turn hold off",
                        hold.context
                    ),
                );
                break;
            }
        }
    }
    if let Some(conference) = &config.conference_context {
        if in_dialplan(client, conference, None).await == Some(false) {
            withhold(
                &[CommandKind::CompleteConference, CommandKind::DropParty],
                format!(
                    "the conference context {conference:?} is not in Asterisk's dialplan; add it \
                     (an extension pattern that runs ConfBridge) or turn conference off"
                ),
            );
        }
    }
    withheld
}
