//! What each channel can carry, checked before a message is queued so that an agent hears
//! "this channel cannot do that" at once instead of a provider error minutes later. Limits are
//! the providers' documented ones; counts are in characters unless a provider counts bytes.

use std::collections::HashSet;

use url::Url;

use super::super::model::{Choice, MediaKind, OutboundContent};
use super::super::ChannelType;

/// Every channel: a quick-reply message has at most this many buttons...
const MAX_BUTTONS: usize = 3;
/// ...and a list at most this many options.
const MAX_OPTIONS: usize = 10;

/// How the channel is named to agents.
pub(super) fn channel_name(kind: ChannelType) -> &'static str {
    match kind {
        ChannelType::Whatsapp => "WhatsApp",
        ChannelType::Instagram => "Instagram",
        ChannelType::Messenger => "Messenger",
        ChannelType::Wechat => "WeChat",
        ChannelType::Line => "LINE",
        ChannelType::Telegram => "Telegram",
        ChannelType::Viber => "Viber",
        ChannelType::Sms => "SMS",
        ChannelType::LiveChat => "live chat",
    }
}

pub(super) fn check(kind: ChannelType, content: &OutboundContent) -> Result<(), String> {
    check_shape(content)?;
    // Live chat is rendered by our own widget: any well-formed content goes.
    if kind == ChannelType::LiveChat {
        return Ok(());
    }
    match content {
        OutboundContent::Text { body } => check_text(kind, body),
        OutboundContent::Media {
            media,
            url,
            mime_type,
            caption,
            ..
        } => check_media(kind, *media, url, mime_type, caption.as_deref()),
        OutboundContent::Template { variables, .. } => match kind {
            ChannelType::Whatsapp => check_template_variables(variables),
            _ => Err(format!(
                "templates are a WhatsApp feature; on {} send a text instead",
                channel_name(kind)
            )),
        },
        OutboundContent::QuickReplies { body, buttons } => check_buttons(kind, body, buttons),
        OutboundContent::List {
            body,
            button,
            options,
        } => check_list(kind, body, button, options),
    }
}

/// What no channel accepts: empty text, too many buttons or options, ids that cannot be told
/// apart when the contact's reply comes back.
fn check_shape(content: &OutboundContent) -> Result<(), String> {
    match content {
        OutboundContent::Text { body } => not_blank(body, "the message text is empty"),
        OutboundContent::Media { url, .. } => match Url::parse(url) {
            Ok(parsed) if matches!(parsed.scheme(), "https" | "http") && parsed.has_host() => {
                Ok(())
            }
            _ => Err("the file's URL must be an absolute http(s) URL".into()),
        },
        OutboundContent::Template {
            name,
            language,
            variables,
        } => {
            not_blank(name, "the template has no name")?;
            not_blank(language, "the template has no language")?;
            match variables.iter().position(|v| v.trim().is_empty()) {
                Some(index) => Err(format!("template variable {{{{{}}}}} is empty", index + 1)),
                None => Ok(()),
            }
        }
        OutboundContent::QuickReplies { body, buttons } => {
            not_blank(body, "the message text is empty")?;
            if buttons.is_empty() {
                return Err("add at least one button, or send a plain text".into());
            }
            if buttons.len() > MAX_BUTTONS {
                return Err(format!(
                    "a message carries at most {MAX_BUTTONS} buttons; use a list for up to \
                     {MAX_OPTIONS} options"
                ));
            }
            check_choices(buttons, "button")
        }
        OutboundContent::List {
            body,
            button,
            options,
        } => {
            not_blank(body, "the message text is empty")?;
            not_blank(
                button,
                "the list needs the text of the button that opens it",
            )?;
            if options.is_empty() {
                return Err("add at least one option to the list".into());
            }
            if options.len() > MAX_OPTIONS {
                return Err(format!("a list holds at most {MAX_OPTIONS} options"));
            }
            check_choices(options, "option")
        }
    }
}

/// WhatsApp refuses a template parameter with a line break, a tab or more than 4 spaces in
/// a row (error 132018).
fn check_template_variables(variables: &[String]) -> Result<(), String> {
    match variables
        .iter()
        .position(|v| v.contains(['\n', '\r', '\t']) || v.contains("     "))
    {
        Some(index) => Err(format!(
            "WhatsApp template variables cannot hold line breaks, tabs or more than 4 spaces in \
             a row ({{{{{}}}}} does)",
            index + 1
        )),
        None => Ok(()),
    }
}

fn check_choices(choices: &[Choice], what: &str) -> Result<(), String> {
    let mut seen = HashSet::new();
    for choice in choices {
        not_blank(&choice.id, &format!("every {what} needs an id"))?;
        not_blank(&choice.title, &format!("every {what} needs a title"))?;
        if !seen.insert(choice.id.as_str()) {
            return Err(format!(
                "two {what}s share the id '{}'; replies could not be told apart",
                quote(&choice.id)
            ));
        }
    }
    Ok(())
}

/// Text limits per channel (message text, and the text above buttons or a list).
fn check_text(kind: ChannelType, text: &str) -> Result<(), String> {
    let name = channel_name(kind);
    let max_chars = match kind {
        ChannelType::Whatsapp | ChannelType::Telegram => 4096,
        ChannelType::Messenger => 2000,
        ChannelType::Line => 5000,
        ChannelType::Viber => 7000,
        // Twilio splits longer texts, up to 1,600 characters in all.
        ChannelType::Sms => 1600,
        ChannelType::Instagram => {
            // Instagram counts UTF-8 bytes, not characters.
            return at_most_bytes(text, 1000, || {
                format!("{name} messages hold at most 1,000 bytes of text")
            });
        }
        ChannelType::Wechat | ChannelType::LiveChat => return Ok(()),
    };
    at_most(text, max_chars, || {
        format!(
            "{name} messages hold at most {} characters",
            thousands(max_chars)
        )
    })
}

const MB: u64 = 1024 * 1024;

/// The largest file a channel takes, by what it is (WhatsApp's media limits, Telegram's for
/// files sent by URL, Twilio's for MMS, ...). Live chat takes what the upload limit allows.
pub(super) fn max_media_bytes(kind: ChannelType, media: MediaKind) -> u64 {
    match (kind, media) {
        (ChannelType::Whatsapp, MediaKind::Image) => 5 * MB,
        (ChannelType::Whatsapp, MediaKind::Sticker) => MB / 2,
        (ChannelType::Whatsapp, MediaKind::Video | MediaKind::Audio) => 16 * MB,
        (ChannelType::Whatsapp, MediaKind::Document) => 100 * MB,
        (ChannelType::Messenger, _) => 25 * MB,
        (ChannelType::Instagram, MediaKind::Image) => 8 * MB,
        (ChannelType::Instagram, _) => 25 * MB,
        (ChannelType::Telegram, MediaKind::Image) => 5 * MB,
        (ChannelType::Telegram, _) => 20 * MB,
        (ChannelType::Line, _) => 10 * MB,
        (ChannelType::Viber, MediaKind::Image) => MB,
        (ChannelType::Viber, _) => 50 * MB,
        (ChannelType::Sms, _) => 5 * MB,
        (ChannelType::Wechat, _) => 10 * MB,
        (ChannelType::LiveChat, _) => 100 * MB,
    }
}

fn check_media(
    kind: ChannelType,
    media: MediaKind,
    url: &str,
    mime_type: &str,
    caption: Option<&str>,
) -> Result<(), String> {
    let name = channel_name(kind);
    let what = media_name(media);
    match (kind, media) {
        (ChannelType::Wechat, _) => {
            return Err(
                "WeChat sends files only after they are uploaded to WeChat, which Obrol \
                        does not do yet; send a link as text instead"
                    .into(),
            )
        }
        (ChannelType::Whatsapp | ChannelType::Telegram, _) => {}
        (_, MediaKind::Sticker) => {
            return Err(format!(
                "{name} cannot send a sticker from a file; send it as an image instead"
            ))
        }
        (ChannelType::Line, MediaKind::Document) => {
            return Err("LINE cannot send documents; send a link as text instead".into())
        }
        (ChannelType::Line, MediaKind::Video | MediaKind::Audio) => {
            return Err(format!(
                "LINE needs a preview image for a video and the length of an audio clip, which \
                 Obrol does not keep yet; send the {what} as a link instead"
            ))
        }
        _ => {}
    }
    if kind == ChannelType::Line {
        if !url.starts_with("https://") {
            return Err("LINE fetches files only over HTTPS".into());
        }
        if !matches!(mime_type, "image/jpeg" | "image/jpg" | "image/png") {
            return Err("LINE sends images only as JPEG or PNG".into());
        }
    }
    if kind == ChannelType::Instagram
        && media == MediaKind::Document
        && mime_type != "application/pdf"
    {
        return Err("Instagram sends documents only as PDF".into());
    }
    let Some(caption) = caption.filter(|c| !c.trim().is_empty()) else {
        return Ok(());
    };
    let caption_max = match (kind, media) {
        (ChannelType::Whatsapp, MediaKind::Image | MediaKind::Video | MediaKind::Document) => 1024,
        (ChannelType::Telegram, media) if media != MediaKind::Sticker => 1024,
        (ChannelType::Viber, MediaKind::Image) => 768,
        (ChannelType::Sms, _) => 1600,
        // LINE sends the caption as a text right after the file, in the same request.
        (ChannelType::Line, _) => 5000,
        _ => {
            return Err(format!(
                "{name} sends {} without a caption; send the caption as its own message",
                with_article(media)
            ))
        }
    };
    at_most(caption, caption_max, || {
        format!(
            "{name} captions hold at most {} characters",
            thousands(caption_max)
        )
    })
}

fn check_buttons(kind: ChannelType, body: &str, buttons: &[Choice]) -> Result<(), String> {
    let name = channel_name(kind);
    match kind {
        ChannelType::Sms => return Err("SMS cannot carry buttons; send the options as text".into()),
        ChannelType::Wechat => {
            return Err(
                "WeChat customer-service messages cannot carry buttons; send the options as text"
                    .into(),
            )
        }
        // The interactive body of WhatsApp reply buttons is shorter than a plain text.
        ChannelType::Whatsapp => at_most(body, 1024, || {
            "WhatsApp messages with buttons hold at most 1,024 characters".into()
        })?,
        _ => check_text(kind, body)?,
    }
    for button in buttons {
        let (title_max, id_max) = match kind {
            ChannelType::Whatsapp => (Some(20), Limit::Chars(256)),
            ChannelType::Messenger | ChannelType::Instagram => (Some(20), Limit::Chars(1000)),
            ChannelType::Line => (Some(20), Limit::Chars(300)),
            ChannelType::Telegram => (None, Limit::Bytes(64)),
            _ => (None, Limit::None),
        };
        if let Some(max) = title_max {
            at_most(&button.title, max, || {
                format!(
                    "{name} button titles hold at most {max} characters: '{}'",
                    quote(&button.title)
                )
            })?;
        }
        id_max.check(&button.id, || {
            format!("{name} button ids hold at most {}", id_max.describe())
        })?;
    }
    Ok(())
}

fn check_list(
    kind: ChannelType,
    body: &str,
    button: &str,
    options: &[Choice],
) -> Result<(), String> {
    let name = channel_name(kind);
    match kind {
        ChannelType::Sms => return Err("SMS cannot carry a list; send the options as text".into()),
        ChannelType::Wechat => {
            return Err(
                "WeChat customer-service messages cannot carry a list; send the options as text"
                    .into(),
            )
        }
        _ => check_text(kind, body)?,
    }
    if kind == ChannelType::Whatsapp {
        at_most(button, 20, || {
            "WhatsApp list buttons hold at most 20 characters".into()
        })?;
    }
    for option in options {
        let (title_max, id_max) = match kind {
            ChannelType::Whatsapp => (Some(24), Limit::Chars(200)),
            ChannelType::Messenger | ChannelType::Instagram => (Some(20), Limit::Chars(1000)),
            ChannelType::Line => (Some(20), Limit::Chars(300)),
            ChannelType::Telegram => (None, Limit::Bytes(64)),
            _ => (None, Limit::None),
        };
        if let Some(max) = title_max {
            at_most(&option.title, max, || {
                format!(
                    "{name} list options hold at most {max} characters: '{}'",
                    quote(&option.title)
                )
            })?;
        }
        id_max.check(&option.id, || {
            format!("{name} option ids hold at most {}", id_max.describe())
        })?;
        // Only WhatsApp shows descriptions; elsewhere they are left out.
        if let (ChannelType::Whatsapp, Some(description)) = (kind, &option.description) {
            at_most(description, 72, || {
                format!(
                    "WhatsApp option descriptions hold at most 72 characters: '{}'",
                    quote(description)
                )
            })?;
        }
    }
    Ok(())
}

/// A length limit on an id, counted the way the provider counts it.
#[derive(Clone, Copy)]
enum Limit {
    None,
    Chars(usize),
    Bytes(usize),
}

impl Limit {
    fn check(self, text: &str, message: impl FnOnce() -> String) -> Result<(), String> {
        match self {
            Limit::None => Ok(()),
            Limit::Chars(max) => at_most(text, max, message),
            Limit::Bytes(max) => at_most_bytes(text, max, message),
        }
    }

    fn describe(self) -> String {
        match self {
            Limit::None => "any length".into(),
            Limit::Chars(max) => format!("{} characters", thousands(max)),
            Limit::Bytes(max) => format!("{} bytes", thousands(max)),
        }
    }
}

fn not_blank(text: &str, message: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err(message.to_string())
    } else {
        Ok(())
    }
}

fn at_most(text: &str, max: usize, message: impl FnOnce() -> String) -> Result<(), String> {
    let count = text.chars().count();
    if count > max {
        Err(format!("{} (this one has {})", message(), thousands(count)))
    } else {
        Ok(())
    }
}

fn at_most_bytes(text: &str, max: usize, message: impl FnOnce() -> String) -> Result<(), String> {
    if text.len() > max {
        Err(format!(
            "{} (this one has {})",
            message(),
            thousands(text.len())
        ))
    } else {
        Ok(())
    }
}

fn media_name(media: MediaKind) -> &'static str {
    match media {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio clip",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
    }
}

fn with_article(media: MediaKind) -> &'static str {
    match media {
        MediaKind::Image => "an image",
        MediaKind::Video => "a video",
        MediaKind::Audio => "an audio clip",
        MediaKind::Document => "a document",
        MediaKind::Sticker => "a sticker",
    }
}

/// A user's text inside an error message, kept short.
fn quote(text: &str) -> String {
    super::shorten(text, 40)
}

/// 4096 → "4,096", as the limits are written in the providers' documentation.
fn thousands(number: usize) -> String {
    let digits = number.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
