//! Delay warnings (`relay.delay_warning`, RFC 3461 `NOTIFY=DELAY`).
//!
//! A recipient still undelivered that long after its message arrived has
//! its sender told once, with a "delayed" DSN (RFC 3464 `Action: delayed`,
//! a 4.x.x status), queued in the commit that records the deferral and
//! marks the recipient as warned, so neither a later attempt nor a restart
//! repeats it. A recipient that was given `NOTIFY` without `DELAY` (or
//! `NOTIFY=NEVER`) gets none; without `NOTIFY` the warning is sent, as
//! Postfix's `delay_warning_time` does. Pure: the caller passes `now`.

use std::time::{Duration, SystemTime};

use sealpost_smtp::dsn::DsnAction;
use sealpost_store::{LeasedMessage, LeasedRecipient, MessageKind};

/// For a deferral of `r` retried at `retry_at`: the retry time, brought
/// forward to the warning time while a warning is still ahead (so the
/// warning goes out when it is due, not at the next retry after it), and
/// the report to queue now, if the warning is due.
pub(super) fn warning(
    after: Option<Duration>,
    message: &LeasedMessage,
    r: &LeasedRecipient,
    now: SystemTime,
    retry_at: SystemTime,
) -> (SystemTime, Option<DsnAction>) {
    let Some(after) = after else {
        return (retry_at, None);
    };
    // Real senders of real mail only: never about a report or a
    // notification, never to the null sender.
    let wanted = message.kind == MessageKind::Mail
        && message.sender.is_some()
        && r.notify.on_delay()
        && !r.delay_warned;
    if !wanted {
        return (retry_at, None);
    }
    let due = message.received_at + after;
    if now >= due {
        (retry_at, Some(DsnAction::Delayed))
    } else {
        (retry_at.min(due), None)
    }
}

#[cfg(test)]
mod tests {
    use sealpost_policy::EmailAddress;
    use sealpost_store::{ClientInfo, Notify, QueueId};

    use super::*;

    fn message(kind: MessageKind, received_at: SystemTime) -> LeasedMessage {
        LeasedMessage {
            id: QueueId::generate(),
            received_at,
            sender: Some(EmailAddress::parse("alice@corp.example").unwrap()),
            client: ClientInfo {
                ip: "192.0.2.1".parse().unwrap(),
                name: None,
                helo: None,
                protocol: "ESMTP".into(),
            },
            size: 10,
            body_8bit: false,
            smtputf8: false,
            env_id: None,
            ret: None,
            expires_at: received_at + Duration::from_secs(86400),
            kind,
            recipients: Vec::new(),
            content: None,
        }
    }

    fn recipient(notify: u8, warned: bool) -> LeasedRecipient {
        LeasedRecipient {
            idx: 0,
            address: EmailAddress::parse("bob@ext.example").unwrap(),
            orcpt: None,
            notify: Notify::from_bits(notify),
            attempts: 1,
            delay_warned: warned,
        }
    }

    #[test]
    fn warns_once_when_due_as_notify_allows() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Duration::from_secs(3600);
        let after = Some(4 * hour);
        let mail = message(MessageKind::Mail, t0);
        let retry = t0 + 6 * hour;
        let due =
            |notify, warned, now| warning(after, &mail, &recipient(notify, warned), now, retry);

        // Not yet due: the retry is brought forward to the warning time.
        assert_eq!(due(0, false, t0 + hour), (t0 + 4 * hour, None));
        // Due: no NOTIFY, or NOTIFY with DELAY.
        assert_eq!(
            due(0, false, t0 + 5 * hour),
            (retry, Some(DsnAction::Delayed))
        );
        let delay_failure = Notify::DELAY | Notify::FAILURE;
        assert_eq!(
            due(delay_failure, false, t0 + 5 * hour).1,
            Some(DsnAction::Delayed)
        );
        // Once only; never for NEVER or NOTIFY without DELAY.
        assert_eq!(due(0, true, t0 + 5 * hour), (retry, None));
        assert_eq!(due(Notify::NEVER, false, t0 + 5 * hour), (retry, None));
        assert_eq!(due(Notify::FAILURE, false, t0 + 5 * hour), (retry, None));
        // Off, and never about our own reports.
        assert_eq!(
            warning(None, &mail, &recipient(0, false), t0 + 5 * hour, retry),
            (retry, None)
        );
        let dsn = message(MessageKind::Dsn, t0);
        assert_eq!(
            warning(after, &dsn, &recipient(0, false), t0 + 5 * hour, retry),
            (retry, None)
        );
    }
}
