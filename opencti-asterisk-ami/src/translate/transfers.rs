//! Transfers and conference: Asterisk's transfer events, and what the connector's
//! consultation, transfer and conference actions lead the next events to mean.

use opencti_core::{Address, CallId, CommandId, Event};

use super::{address, EventOut, Pending, Translator};

impl Translator<'_> {
    pub(super) fn blind_transfer(
        &mut self,
        transferer: &str,
        extension: &str,
        out: &mut dyn EventOut,
    ) {
        let Some(leg) = self.book.legs.get_mut(transferer) else {
            return;
        };
        let Some(call) = leg.primary.clone() else {
            return;
        };
        leg.transferred = true;
        self.emit(
            out,
            Event::CallTransferred {
                call,
                to: address(extension),
            },
            None,
        );
    }

    pub(super) fn attended_transfer(&mut self, transferer: &str, out: &mut dyn EventOut) {
        let Some(leg) = self.book.legs.get_mut(transferer) else {
            return;
        };
        leg.transferred = true;
        let consult = leg.consult.clone();
        let primary = leg.primary.clone();
        let to = consult.as_ref().and_then(|c| c.to.clone());
        if let Some(c) = consult {
            self.emit(
                out,
                Event::CallTransferred {
                    call: c.call,
                    to: to.clone(),
                },
                None,
            );
        }
        if let Some(call) = primary {
            self.emit(out, Event::CallTransferred { call, to }, None);
        }
    }

    /// The connector sent an `Atxfer` on `call`'s leg to consult `to`.
    pub(crate) fn expect_consult(&mut self, call: &CallId, to: Option<Address>) {
        if let Some(leg) = self.leg_of_mut(call) {
            leg.pending = Pending::Consult { to };
        }
    }

    /// The connector hangs up `call`'s leg to complete its consultation transfer.
    pub(crate) fn expect_complete_transfer(&mut self, call: &CallId) {
        if let Some(leg) = self.leg_of_mut(call) {
            leg.pending = Pending::CompleteTransfer;
        }
    }

    /// The connector redirects the parties of the consultation `call` (and of the call
    /// it is about) into a ConfBridge room.
    pub(crate) fn expect_conference(&mut self, call: &CallId) {
        if let Some(leg) = self.leg_of_mut(call) {
            leg.pending = Pending::Conference;
        }
    }

    /// The connector sent `CancelAtxfer` for the consultation `call`.
    pub(crate) fn expect_cancel_consult(&mut self, call: &CallId) {
        if let Some(leg) = self.leg_of_mut(call) {
            leg.pending = Pending::CancelConsult;
        }
    }

    /// `call` was transferred by a `Redirect` of its held party (no transfer event comes
    /// from Asterisk for that): emit `call_transferred` now.
    pub(crate) fn redirect_transferred(
        &mut self,
        call: &CallId,
        to: Address,
        command: CommandId,
        out: &mut dyn EventOut,
    ) {
        if let Some(leg) = self.leg_of_mut(call) {
            leg.transferred = true;
            leg.held_party = None;
        }
        self.emit(
            out,
            Event::CallTransferred {
                call: call.clone(),
                to: Some(to),
            },
            Some(command),
        );
    }
}
