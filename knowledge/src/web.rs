//! Fetching web pages and Google Docs/Sheets share links, without becoming an SSRF proxy.
//!
//! Every hop (the first request and each redirect) is resolved here, all its addresses must
//! be public unless the policy allows private ones, and the connection is pinned to the
//! address that was checked, so a DNS answer cannot change between the check and the
//! connection. Bodies are read in pieces and cut off at the size cap; the whole fetch has a
//! deadline, which also ends pages that trickle forever.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use url::Url;

#[derive(Clone, Debug)]
pub struct FetchPolicy {
    /// Allows loopback and private addresses (tests; never in production).
    pub allow_private: bool,
    pub timeout: Duration,
    pub max_bytes: u64,
    pub max_redirects: usize,
    /// Where Google Docs/Sheets exports are fetched from (`https://docs.google.com`).
    pub google_base: String,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            timeout: Duration::from_secs(20),
            max_bytes: 5 * 1024 * 1024,
            max_redirects: 5,
            google_base: "https://docs.google.com".into(),
        }
    }
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum WebError {
    #[error("The address is not a valid http(s) URL: {0}.")]
    InvalidUrl(String),
    #[error(
        "The address {0} points to a private or local network, which Obrol does not fetch \
         from."
    )]
    PrivateAddress(String),
    #[error("The host {0} could not be found.")]
    UnknownHost(String),
    #[error("The page did not answer within {0} seconds.")]
    TimedOut(u64),
    #[error("The page is larger than {0} MB.")]
    TooLarge(u64),
    #[error("The page redirected more than {0} times.")]
    TooManyRedirects(usize),
    #[error("The server answered with HTTP status {0}.")]
    Status(u16),
    #[error("The page could not be fetched: {0}.")]
    Network(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlKind {
    Web,
    GoogleDoc,
    GoogleSheet,
}

/// What a knowledge URL is and where its content is fetched from. A Google Docs or Sheets
/// share link is fetched through its public export endpoint as plain text or CSV.
pub fn classify(raw: &str, google_base: &str) -> Result<(UrlKind, Url), WebError> {
    let url = Url::parse(raw.trim()).map_err(|e| WebError::InvalidUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WebError::InvalidUrl(format!(
            "the scheme {} is not allowed",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(WebError::InvalidUrl("it has no host".into()));
    }
    if url.host_str() == Some("docs.google.com") {
        let segments: Vec<&str> = url.path_segments().map(|s| s.collect()).unwrap_or_default();
        let id_after_d = |kind: &str| -> Option<&str> {
            let at = segments.iter().position(|s| *s == kind)?;
            (segments.get(at + 1) == Some(&"d"))
                .then(|| segments.get(at + 2).copied())
                .flatten()
                .filter(|id| {
                    !id.is_empty()
                        && id
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        let base = google_base.trim_end_matches('/');
        if let Some(id) = id_after_d("document") {
            let export = Url::parse(&format!("{base}/document/d/{id}/export?format=txt"))
                .map_err(|e| WebError::InvalidUrl(e.to_string()))?;
            return Ok((UrlKind::GoogleDoc, export));
        }
        if let Some(id) = id_after_d("spreadsheets") {
            let gid = url
                .fragment()
                .into_iter()
                .chain(url.query())
                .flat_map(|s| s.split('&'))
                .find_map(|kv| kv.strip_prefix("gid="))
                .filter(|g| g.chars().all(|c| c.is_ascii_digit()) && !g.is_empty())
                .unwrap_or("0");
            let export = Url::parse(&format!(
                "{base}/spreadsheets/d/{id}/export?format=csv&gid={gid}"
            ))
            .map_err(|e| WebError::InvalidUrl(e.to_string()))?;
            return Ok((UrlKind::GoogleSheet, export));
        }
    }
    Ok((UrlKind::Web, url))
}

/// Whether an address is one a server on the internet may be fetched from.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 192 && b == 0)                 // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19))   // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

pub struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub final_url: Url,
}

/// Resolves the URL's host and checks every address it has.
async fn checked_address(url: &Url, policy: &FetchPolicy) -> Result<SocketAddr, WebError> {
    let host = url
        .host_str()
        .ok_or_else(|| WebError::InvalidUrl("it has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| WebError::InvalidUrl("it has no port".into()))?;
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| WebError::UnknownHost(host.clone()))?
        .collect();
    let first = *addresses
        .first()
        .ok_or_else(|| WebError::UnknownHost(host.clone()))?;
    if !policy.allow_private && addresses.iter().any(|a| !is_public(a.ip())) {
        return Err(WebError::PrivateAddress(host));
    }
    Ok(first)
}

pub async fn fetch(url: &Url, policy: &FetchPolicy) -> Result<Fetched, WebError> {
    let seconds = policy.timeout.as_secs().max(1);
    tokio::time::timeout(policy.timeout, fetch_inner(url.clone(), policy))
        .await
        .map_err(|_| WebError::TimedOut(seconds))?
}

async fn fetch_inner(mut url: Url, policy: &FetchPolicy) -> Result<Fetched, WebError> {
    for _ in 0..=policy.max_redirects {
        let address = checked_address(&url, policy).await?;
        let host = url.host_str().unwrap_or_default().to_string();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, address)
            .connect_timeout(policy.timeout)
            .user_agent("Obrol-Knowledge/1.0 (+https://github.com/obrol)")
            .build()
            .map_err(|e| WebError::Network(e.to_string()))?;
        let mut response = client
            .get(url.clone())
            .header(
                reqwest::header::ACCEPT,
                "text/html,application/xhtml+xml,text/plain,text/csv,application/pdf;q=0.9,*/*;q=0.5",
            )
            .send()
            .await
            .map_err(|e| WebError::Network(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(WebError::Status(status.as_u16()))?;
            let next = url
                .join(location)
                .map_err(|e| WebError::InvalidUrl(e.to_string()))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(WebError::InvalidUrl(format!(
                    "it redirects to the scheme {}",
                    next.scheme()
                )));
            }
            url = next;
            continue;
        }
        if !status.is_success() {
            return Err(WebError::Status(status.as_u16()));
        }
        let too_large = WebError::TooLarge(policy.max_bytes.div_ceil(1024 * 1024));
        if response
            .content_length()
            .is_some_and(|n| n > policy.max_bytes)
        {
            return Err(too_large);
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| WebError::Network(e.without_url().to_string()))?
        {
            if bytes.len() as u64 + chunk.len() as u64 > policy.max_bytes {
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        return Ok(Fetched {
            bytes,
            content_type,
            final_url: url,
        });
    }
    Err(WebError::TooManyRedirects(policy.max_redirects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_share_links_become_exports() {
        let base = "https://docs.google.com";
        let (kind, url) = classify(
            "https://docs.google.com/document/d/1AbC-d_9/edit?usp=sharing",
            base,
        )
        .unwrap();
        assert_eq!(kind, UrlKind::GoogleDoc);
        assert_eq!(
            url.as_str(),
            "https://docs.google.com/document/d/1AbC-d_9/export?format=txt"
        );
        let (kind, url) = classify(
            "https://docs.google.com/spreadsheets/d/XyZ/edit#gid=42",
            base,
        )
        .unwrap();
        assert_eq!(kind, UrlKind::GoogleSheet);
        assert_eq!(
            url.as_str(),
            "https://docs.google.com/spreadsheets/d/XyZ/export?format=csv&gid=42"
        );
        assert_eq!(
            classify("https://example.com/faq", base).unwrap().0,
            UrlKind::Web
        );
        assert!(classify("file:///etc/passwd", base).is_err());
        assert!(classify("not a url", base).is_err());
    }

    #[test]
    fn private_ranges_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_by_default() {
        let url = Url::parse("http://127.0.0.1:9/").unwrap();
        let err = fetch(&url, &FetchPolicy::default()).await.err().unwrap();
        assert_eq!(err, WebError::PrivateAddress("127.0.0.1".into()));
        let url = Url::parse("http://localhost:9/").unwrap();
        assert!(matches!(
            fetch(&url, &FetchPolicy::default()).await,
            Err(WebError::PrivateAddress(_))
        ));
    }
}
