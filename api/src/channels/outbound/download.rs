//! Fetching the files contacts send. Webhooks name a file rather than carry it: by an id the
//! provider's API resolves (WhatsApp media id, Telegram file_id, LINE message id, WeChat
//! media_id) or by a URL in the payload (Messenger, Instagram, Viber, Twilio, LINE's external
//! content). Each is fetched the way the provider documents, with the account's credentials
//! where the provider asks for them.
//!
//! A URL from a payload is someone else's address: without a base override it is fetched
//! only over HTTPS, from public addresses, through the same SSRF-safe fetcher that reads
//! knowledge URLs.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value as Json;
use url::Url;
use uuid::Uuid;

use super::super::model::Content;
use super::super::ChannelType;
use super::{credential, meta, telegram, twilio, wechat, Credentials, SendError, Sender};
use obrol_knowledge::web::{self, FetchPolicy, WebError};

const LINE_DATA_BASE: &str = "https://api-data.line.me";
/// A large video at a slow provider still arrives; a stuck download does not hold a worker.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// A file as the provider served it.
#[derive(Debug)]
pub struct Downloaded {
    pub bytes: Vec<u8>,
    /// The provider's Content-Type, without parameters.
    pub content_type: Option<String>,
}

/// How a request proves who we are.
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

impl Sender {
    /// Fetches the file of an inbound `Content::Media` received on account `account_id`,
    /// refusing anything larger than `max_bytes`.
    pub async fn download(
        &self,
        kind: ChannelType,
        account_id: Uuid,
        credentials: &Credentials,
        content: &Content,
        max_bytes: u64,
    ) -> Result<Downloaded, SendError> {
        let Content::Media {
            url,
            provider_media_id,
            ..
        } = content
        else {
            return Err(SendError::permanent("the message has no file"));
        };
        let url = url.as_deref().filter(|u| !u.is_empty());
        let media_id = provider_media_id.as_deref().filter(|id| !id.is_empty());
        match (kind, media_id, url) {
            (ChannelType::Whatsapp, Some(id), _) => {
                let token = credential(credentials, "access_token")?;
                // The id resolves to a short-lived URL, fetched with the same token.
                let lookup = self.endpoint(meta::GRAPH_BASE, &[meta::GRAPH_VERSION, id])?;
                let answer = self
                    .exchange(self.http.get(lookup).bearer_auth(token))
                    .await?;
                let found = answer
                    .body
                    .get("url")
                    .and_then(Json::as_str)
                    .filter(|_| answer.status.is_success());
                let Some(found) = found else {
                    return Err(refusal(
                        answer.status,
                        "WhatsApp did not give the file's URL",
                    ));
                };
                let file = self.rebased(found)?;
                self.fetch(file, Auth::Bearer(token), max_bytes).await
            }
            (ChannelType::Telegram, Some(id), _) => {
                let token = credential(credentials, "bot_token")?;
                let bot = format!("bot{token}");
                let mut lookup = self.endpoint(telegram::TELEGRAM_BASE, &[&bot, "getFile"])?;
                lookup.query_pairs_mut().append_pair("file_id", id);
                let answer = self.exchange(self.http.get(lookup)).await?;
                let path = answer
                    .body
                    .pointer("/result/file_path")
                    .and_then(Json::as_str)
                    .filter(|_| answer.status.is_success());
                let Some(path) = path else {
                    // Bots may download files up to 20 MB; larger ones are refused here.
                    let said = answer.body.get("description").and_then(Json::as_str);
                    return Err(refusal(
                        answer.status,
                        &format!(
                            "Telegram did not give the file{}",
                            said.map(|s| format!(": {s}")).unwrap_or_default()
                        ),
                    ));
                };
                let mut segments = vec!["file", bot.as_str()];
                segments.extend(path.split('/').filter(|s| !s.is_empty()));
                let file = self.endpoint(telegram::TELEGRAM_BASE, &segments)?;
                self.fetch(file, Auth::None, max_bytes).await
            }
            // LINE's own files come from its content API; "external" ones from their URL.
            (ChannelType::Line, _, Some(url)) => self.fetch_given(url, max_bytes).await,
            (ChannelType::Line, Some(id), None) => {
                let token = credential(credentials, "channel_access_token")?;
                let file =
                    self.endpoint(LINE_DATA_BASE, &["v2", "bot", "message", id, "content"])?;
                self.fetch(file, Auth::Bearer(token), max_bytes).await
            }
            // Every file has a media id (a picture also has a plain-HTTP URL, not used).
            (ChannelType::Wechat, Some(id), _) => {
                let app_id = credential(credentials, "app_id")?;
                let app_secret = credential(credentials, "app_secret")?;
                let slot = self.wechat_tokens.slot(account_id);
                let token = wechat::access_token(self, &slot, app_id, app_secret).await?;
                let mut file = self.endpoint(wechat::WECHAT_BASE, &["cgi-bin", "media", "get"])?;
                file.query_pairs_mut()
                    .append_pair("access_token", &token)
                    .append_pair("media_id", id);
                let downloaded = self.fetch(file, Auth::None, max_bytes).await?;
                // WeChat answers with JSON instead of the file for a video (its URL) and for
                // errors (HTTP 200 all the same).
                if !downloaded
                    .content_type
                    .as_deref()
                    .is_some_and(|t| t == "application/json" || t == "text/plain")
                {
                    return Ok(downloaded);
                }
                let answer: Json = serde_json::from_slice(&downloaded.bytes).unwrap_or(Json::Null);
                if let Some(video) = answer.get("video_url").and_then(Json::as_str) {
                    return self.fetch_given(video, max_bytes).await;
                }
                let code = answer.get("errcode").and_then(Json::as_i64).unwrap_or(-1);
                let message = answer.get("errmsg").and_then(Json::as_str).unwrap_or("");
                let reason = format!("WeChat did not give the file: {code}: {message}");
                if wechat::TOKEN_REJECTED.contains(&code) {
                    // Drop the token (unless a send already replaced it); the retry gets a new one.
                    let mut cached = slot.lock().await;
                    wechat::forget(&mut cached, &token);
                    return Err(SendError::retryable(reason, None));
                }
                if code == wechat::BUSY {
                    return Err(SendError::retryable(reason, None));
                }
                Err(SendError::permanent(reason))
            }
            // Twilio's media URLs answer with the account's credentials (and may redirect to
            // storage, where reqwest drops the Authorization header).
            (ChannelType::Sms, _, Some(url)) => {
                let sid = credential(credentials, "account_sid")?;
                let token = credential(credentials, "auth_token")?;
                let file = self.rebased(url)?;
                if self.base_override.is_none() {
                    let trusted = Url::parse(twilio::TWILIO_BASE).ok();
                    if file.scheme() != "https"
                        || file.host_str() != trusted.as_ref().and_then(|t| t.host_str())
                    {
                        return Err(SendError::permanent(
                            "the file's address is not Twilio's; it was not fetched",
                        ));
                    }
                }
                self.fetch(file, Auth::Basic(sid, token), max_bytes).await
            }
            (
                ChannelType::Messenger | ChannelType::Instagram | ChannelType::Viber,
                _,
                Some(url),
            ) => self.fetch_given(url, max_bytes).await,
            _ => Err(SendError::permanent(
                "the message names no file this channel lets us fetch",
            )),
        }
    }

    /// `url` with the base override's scheme, host and port, when there is one (tests).
    fn rebased(&self, url: &str) -> Result<Url, SendError> {
        let mut parsed =
            Url::parse(url).map_err(|_| SendError::permanent("the file's URL is not valid"))?;
        if let Some(base) = self
            .base_override
            .as_deref()
            .and_then(|b| Url::parse(b).ok())
        {
            let _ = parsed.set_scheme(base.scheme());
            let _ = parsed.set_host(base.host_str());
            let _ = parsed.set_port(base.port());
        }
        Ok(parsed)
    }

    /// A URL taken from a webhook payload: rebased in tests, else fetched only from public
    /// HTTPS addresses, re-checked at every redirect.
    async fn fetch_given(&self, url: &str, max_bytes: u64) -> Result<Downloaded, SendError> {
        if self.base_override.is_some() {
            let url = self.rebased(url)?;
            return self.fetch(url, Auth::None, max_bytes).await;
        }
        let parsed =
            Url::parse(url).map_err(|_| SendError::permanent("the file's URL is not valid"))?;
        if parsed.scheme() != "https" {
            return Err(SendError::permanent(
                "the file's URL is not HTTPS; it was not fetched",
            ));
        }
        let policy = FetchPolicy {
            allow_private: false,
            timeout: DOWNLOAD_TIMEOUT,
            max_bytes,
            ..FetchPolicy::default()
        };
        match web::fetch(&parsed, &policy).await {
            Ok(fetched) => Ok(Downloaded {
                bytes: fetched.bytes,
                content_type: fetched.content_type.as_deref().map(bare_type),
            }),
            Err(WebError::Status(code)) => Err(refusal(
                StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
                "the provider did not serve the file",
            )),
            Err(
                err @ (WebError::TimedOut(_) | WebError::Network(_) | WebError::UnknownHost(_)),
            ) => Err(SendError::retryable(err.to_string(), None)),
            Err(err) => Err(SendError::permanent(err.to_string())),
        }
    }

    /// GETs a file from an address we trust (the provider's API, or the override).
    async fn fetch(
        &self,
        url: Url,
        auth: Auth<'_>,
        max_bytes: u64,
    ) -> Result<Downloaded, SendError> {
        let request = self.http.get(url).timeout(DOWNLOAD_TIMEOUT);
        let request = match auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
        };
        let mut response = request.send().await.map_err(|err| {
            if err.is_builder() {
                SendError::permanent("the file's request could not be built")
            } else {
                SendError::retryable("the provider could not be reached for the file", None)
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(status, "the provider did not serve the file"));
        }
        let too_large = || {
            SendError::permanent(format!(
                "the file is larger than {} MB, the most Obrol keeps",
                max_bytes / (1024 * 1024)
            ))
        };
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(too_large());
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(bare_type);
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if (bytes.len() + chunk.len()) as u64 > max_bytes {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => return Err(SendError::retryable("the file's download broke off", None)),
            }
        }
        Ok(Downloaded {
            bytes,
            content_type,
        })
    }
}

/// A provider's refusal: 429 and 5xx pass with time; a missing or forbidden file does not.
fn refusal(status: StatusCode, what: &str) -> SendError {
    let reason = format!("{what} (HTTP {})", status.as_u16());
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        SendError::retryable(reason, None)
    } else {
        SendError::permanent(reason)
    }
}

/// "image/jpeg" from "IMAGE/JPEG; charset=binary".
pub fn bare_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::super::model::MediaKind;
    use super::*;

    fn at(url: &str) -> Content {
        Content::Media {
            media: MediaKind::Image,
            url: Some(url.into()),
            provider_media_id: None,
            mime_type: None,
            filename: None,
            caption: None,
        }
    }

    /// Without a test override, addresses from payloads are not trusted: only public HTTPS,
    /// and Twilio's files only from Twilio.
    #[tokio::test]
    async fn payload_urls_reach_only_public_https_hosts() {
        let sender = Sender::new(None, Duration::from_secs(5));
        let none = Credentials::new();
        for (kind, url, said) in [
            (
                ChannelType::Messenger,
                "http://scontent.example/p.jpg",
                "not HTTPS",
            ),
            (
                ChannelType::Viber,
                "https://127.0.0.1/p.jpg",
                "private or local",
            ),
            (
                ChannelType::Instagram,
                "https://[::1]:8443/p.jpg",
                "private or local",
            ),
            (
                ChannelType::Line,
                "https://10.1.2.3/p.jpg",
                "private or local",
            ),
        ] {
            let refused = sender
                .download(kind, Uuid::nil(), &none, &at(url), 1024)
                .await
                .unwrap_err();
            assert!(!refused.retryable, "{url}");
            assert!(refused.reason.contains(said), "{url}: {}", refused.reason);
        }
        let twilio = match json!({ "account_sid": "AC1", "auth_token": "t" }) {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        for url in [
            "https://attacker.example/2010-04-01/Accounts/AC1/Media/ME1",
            "http://api.twilio.com/2010-04-01/Accounts/AC1/Media/ME1",
        ] {
            let refused = sender
                .download(ChannelType::Sms, Uuid::nil(), &twilio, &at(url), 1024)
                .await
                .unwrap_err();
            assert!(
                refused.reason.contains("not Twilio's"),
                "{url}: {}",
                refused.reason
            );
        }
    }
}
