//! Conversation windows (PRODUCT.md §2): how long after the contact's last message each
//! channel lets the business write freely, and what it allows after that. Pure functions of
//! the channel, the contact's last inbound message and the current time, so tests can put the
//! clock anywhere.

use chrono::{DateTime, Duration, Utc};

use crate::channels::ChannelType;
use crate::error::ApiError;

/// What the business wants to send, as far as the rules care.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendKind {
    /// An approved WhatsApp template.
    pub template: bool,
    /// Messenger's HUMAN_AGENT tag.
    pub human_agent_tag: bool,
}

/// Free-form replies are allowed until the contact's last message is this old.
pub fn free_form_window(kind: ChannelType) -> Option<Duration> {
    match kind {
        ChannelType::Whatsapp | ChannelType::Instagram | ChannelType::Messenger => {
            Some(Duration::hours(24))
        }
        ChannelType::Wechat => Some(Duration::hours(48)),
        ChannelType::Line
        | ChannelType::Telegram
        | ChannelType::Viber
        | ChannelType::Sms
        | ChannelType::LiveChat => None,
    }
}

/// Messenger's HUMAN_AGENT tag allows a human reply for this long.
pub const HUMAN_AGENT_WINDOW: Duration = Duration::days(7);

/// When free-form messages stop being allowed (None: never, on this channel; Some(past):
/// already closed, or the contact never wrote).
pub fn closes_at(kind: ChannelType, last_inbound: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    let window = free_form_window(kind)?;
    Some(match last_inbound {
        Some(at) => at + window,
        None => DateTime::<Utc>::MIN_UTC,
    })
}

/// Whether `send` may go out now; the error says what would be allowed instead. Checked
/// before anything is queued or any provider is called.
pub fn check(
    kind: ChannelType,
    last_inbound: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    send: SendKind,
) -> Result<(), ApiError> {
    if send.template && kind != ChannelType::Whatsapp {
        return Err(ApiError::validation(
            "message templates are a WhatsApp feature; send text on this channel",
        ));
    }
    if send.human_agent_tag && kind != ChannelType::Messenger {
        return Err(ApiError::validation(
            "the HUMAN_AGENT tag exists only on Facebook Messenger",
        ));
    }
    let Some(closes) = closes_at(kind, last_inbound) else {
        return Ok(());
    };
    if now < closes {
        return Ok(());
    }
    let since = match last_inbound {
        Some(at) => format!("the contact last wrote at {}", at.to_rfc3339()),
        None => "the contact has not written on this channel".to_string(),
    };
    match kind {
        ChannelType::Whatsapp if send.template => Ok(()),
        ChannelType::Whatsapp => Err(ApiError::WindowClosed(format!(
            "the 24-hour window is closed ({since}); only an approved template may be sent"
        ))),
        ChannelType::Messenger => {
            let tagged_until = last_inbound.map(|at| at + HUMAN_AGENT_WINDOW);
            match tagged_until {
                Some(until) if now < until && send.human_agent_tag => Ok(()),
                Some(until) if now < until => Err(ApiError::WindowClosed(format!(
                    "the 24-hour window is closed ({since}); a human agent may still reply with \
                     the HUMAN_AGENT tag until {}",
                    until.to_rfc3339()
                ))),
                _ => Err(ApiError::WindowClosed(format!(
                    "the 24-hour window and the 7-day HUMAN_AGENT window are closed ({since}); \
                     wait for the contact to write"
                ))),
            }
        }
        ChannelType::Instagram => Err(ApiError::WindowClosed(format!(
            "the 24-hour window is closed ({since}); Instagram allows no message until the \
             contact writes again"
        ))),
        ChannelType::Wechat => Err(ApiError::WindowClosed(format!(
            "the 48-hour window is closed ({since}); only broadcasts may reach this follower \
             (at most 4 a month)"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours_ago: i64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        Some(now - Duration::hours(hours_ago))
    }

    fn code(result: Result<(), ApiError>) -> &'static str {
        match result {
            Ok(()) => "OK",
            Err(err) => err.code(),
        }
    }

    const TEXT: SendKind = SendKind {
        template: false,
        human_agent_tag: false,
    };
    const TEMPLATE: SendKind = SendKind {
        template: true,
        human_agent_tag: false,
    };
    const TAGGED: SendKind = SendKind {
        template: false,
        human_agent_tag: true,
    };

    #[test]
    fn whatsapp_allows_text_for_24_hours_then_only_templates() {
        let now = Utc::now();
        let w = ChannelType::Whatsapp;
        assert_eq!(code(check(w, at(23, now), now, TEXT)), "OK");
        let edge = Some(now - Duration::hours(24) + Duration::seconds(1));
        assert_eq!(code(check(w, edge, now, TEXT)), "OK");
        assert_eq!(code(check(w, at(24, now), now, TEXT)), "WINDOW_CLOSED");
        assert_eq!(code(check(w, at(25, now), now, TEXT)), "WINDOW_CLOSED");
        assert_eq!(code(check(w, None, now, TEXT)), "WINDOW_CLOSED");
        assert_eq!(code(check(w, at(25, now), now, TEMPLATE)), "OK");
        assert_eq!(code(check(w, None, now, TEMPLATE)), "OK");
        let err = check(w, at(25, now), now, TEXT).unwrap_err();
        assert!(err.message().contains("approved template"), "{err:?}");
    }

    #[test]
    fn messenger_human_agent_tag_extends_to_seven_days() {
        let now = Utc::now();
        let m = ChannelType::Messenger;
        assert_eq!(code(check(m, at(2, now), now, TEXT)), "OK");
        assert_eq!(code(check(m, at(30, now), now, TEXT)), "WINDOW_CLOSED");
        assert!(check(m, at(30, now), now, TEXT)
            .unwrap_err()
            .message()
            .contains("HUMAN_AGENT"));
        assert_eq!(code(check(m, at(30, now), now, TAGGED)), "OK");
        assert_eq!(code(check(m, at(7 * 24 - 1, now), now, TAGGED)), "OK");
        assert_eq!(
            code(check(m, at(7 * 24, now), now, TAGGED)),
            "WINDOW_CLOSED"
        );
        assert_eq!(code(check(m, at(2, now), now, TEMPLATE)), "VALIDATION");
    }

    #[test]
    fn instagram_and_wechat_close_and_others_never_do() {
        let now = Utc::now();
        let i = ChannelType::Instagram;
        assert_eq!(code(check(i, at(23, now), now, TEXT)), "OK");
        assert_eq!(code(check(i, at(24, now), now, TEXT)), "WINDOW_CLOSED");
        assert_eq!(code(check(i, at(1, now), now, TAGGED)), "VALIDATION");
        let w = ChannelType::Wechat;
        assert_eq!(code(check(w, at(47, now), now, TEXT)), "OK");
        assert_eq!(code(check(w, at(48, now), now, TEXT)), "WINDOW_CLOSED");
        assert!(check(w, at(49, now), now, TEXT)
            .unwrap_err()
            .message()
            .contains("4 a month"));
        for kind in [
            ChannelType::Line,
            ChannelType::Telegram,
            ChannelType::Viber,
            ChannelType::Sms,
            ChannelType::LiveChat,
        ] {
            assert_eq!(code(check(kind, at(24 * 365, now), now, TEXT)), "OK");
            assert_eq!(code(check(kind, None, now, TEXT)), "OK");
            assert_eq!(code(check(kind, None, now, TEMPLATE)), "VALIDATION");
        }
    }
}
