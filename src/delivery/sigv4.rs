//! AWS Signature Version 4, headers form, for the AWS destinations (Firehose, and OTLP to
//! X-Ray and CloudWatch Logs), on `ring`'s SHA-256 and HMAC: the AWS SDK for Rust and the
//! `aws-sigv4` crate bring an async runtime with them, and the algorithm is four HMACs over a
//! canonical form of the request.
//!
//! Run on the output's sender thread, just before each attempt (the date is part of the
//! signature, and a request retried minutes later needs a fresh one). What is signed follows
//! botocore, which the tests compare against byte for byte: every header the request sends
//! except hop-by-hop ones, tracing headers and `user-agent` (a proxy may change those), plus
//! `host`, `x-amz-date` and, with temporary credentials, `x-amz-security-token`; the payload
//! hash is always computed (no `UNSIGNED-PAYLOAD`). The path is percent-encoded once more as
//! every service but S3 expects, after dot segments and repeated slashes are removed.

use std::time::SystemTime;

use ring::{digest, hmac};

use crate::config::aws::SigV4;
use crate::config::outputs::{Secret, split_origin};
use crate::telemetry::time::civil;

/// Headers never signed (botocore's list): hop-by-hop, tracing, and the client's name.
const UNSIGNED: [&str; 14] = [
    "baggage",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// The headers to add to a request so that AWS accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `x-amz-date`: `YYYYMMDDTHHMMSSZ`.
    pub date: String,
    /// `x-amz-security-token`, with temporary credentials (Lambda's always are).
    pub token: Option<String>,
    pub authorization: String,
}

impl Signed {
    /// `(name, value)` of each header to add.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            Some(("x-amz-date", self.date.as_str())),
            self.token.as_deref().map(|t| ("x-amz-security-token", t)),
            Some(("authorization", self.authorization.as_str())),
        ]
        .into_iter()
        .flatten()
    }
}

/// The signer of a destination that is signed.
pub fn signer(sig: Option<&SigV4>) -> Option<Signer> {
    sig.cloned().map(Signer::new)
}

/// Signs requests for one service in one region; keeps the day's signing key.
pub struct Signer {
    sig: SigV4,
    /// `(YYYYMMDD, key)`: the key derived from the secret for that day's scope.
    key: Option<(String, hmac::Key)>,
}

impl Signer {
    pub fn new(sig: SigV4) -> Signer {
        Signer { sig, key: None }
    }

    /// Signs `method url` with `headers` (those the request sends; `host` is derived from the
    /// URL, as it will be sent, when absent) and `body`, as at `now`.
    pub fn sign(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        now: SystemTime,
    ) -> Signed {
        let seconds = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (y, mo, d, h, mi, s) = civil(seconds);
        let date = format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z");
        let day = date.get(..8).unwrap_or_default().to_string();
        let token = self
            .sig
            .credentials
            .session_token
            .as_ref()
            .map(|t| t.0.clone());

        let mut signed: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), canonical_value(v)))
            .filter(|(n, _)| !UNSIGNED.contains(&n.as_str()))
            .filter(|(n, _)| n != "x-amz-date" && n != "x-amz-security-token")
            .collect();
        if !signed.iter().any(|(n, _)| n == "host") {
            signed.push(("host".to_string(), host(url)));
        }
        signed.push(("x-amz-date".to_string(), date.clone()));
        if let Some(t) = &token {
            signed.push(("x-amz-security-token".to_string(), canonical_value(t)));
        }
        // Sorted by name, the values of a repeated name joined in the order they are sent.
        signed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut canonical_headers = String::new();
        let mut names = String::new();
        let mut last: Option<&str> = None;
        for (name, value) in &signed {
            if last == Some(name) {
                canonical_headers.pop();
                canonical_headers.push(',');
            } else {
                if last.is_some() {
                    names.push(';');
                }
                names.push_str(name);
                canonical_headers.push_str(name);
                canonical_headers.push(':');
            }
            canonical_headers.push_str(value);
            canonical_headers.push('\n');
            last = Some(name);
        }

        let (path, query) = path_and_query(url);
        let canonical_request = format!(
            "{}\n{}\n{}\n{canonical_headers}\n{names}\n{}",
            method.to_ascii_uppercase(),
            canonical_path(path),
            canonical_query(query),
            hex(digest::digest(&digest::SHA256, body).as_ref()),
        );
        let SigV4 {
            service, region, ..
        } = &self.sig;
        let scope = format!("{day}/{region}/{service}/aws4_request");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
            hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref())
        );
        let signature = hex(hmac::sign(self.key(&day), string_to_sign.as_bytes()).as_ref());
        let Secret(access_key) = &self.sig.credentials.access_key_id;
        Signed {
            authorization: format!(
                "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={names}, \
                 Signature={signature}"
            ),
            date,
            token,
        }
    }

    /// The headers a POST of `body` to `url` with `headers` (those the request sends) must
    /// add, signed now: `host` (set by us, so that what is signed is what is sent), the date,
    /// the session token and the signature.
    pub fn headers_for_post(
        &mut self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        // `sign` signs the host it derives from the URL, the one set here.
        let signed = self.sign("POST", url, headers, body, SystemTime::now());
        let mut out = vec![("host", host(url))];
        out.extend(signed.headers().map(|(n, v)| (n, v.to_string())));
        out
    }

    /// The signing key of `day`: HMAC chained over date, region, service and `aws4_request`.
    fn key(&mut self, day: &str) -> &hmac::Key {
        if self.key.as_ref().is_none_or(|(d, _)| d != day) {
            let Secret(secret) = &self.sig.credentials.secret_access_key;
            let mut key = format!("AWS4{secret}").into_bytes();
            for part in [day, &self.sig.region, &self.sig.service, "aws4_request"] {
                let k = hmac::Key::new(hmac::HMAC_SHA256, &key);
                key = hmac::sign(&k, part.as_bytes()).as_ref().to_vec();
            }
            self.key = Some((day.to_string(), hmac::Key::new(hmac::HMAC_SHA256, &key)));
        }
        match &self.key {
            Some((_, key)) => key,
            // Set just above.
            None => unreachable!(),
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// A header value as signed: trimmed, each run of spaces and tabs one space.
fn canonical_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `scheme://[userinfo@]host[:port]` → `(authority, scheme)`.
fn authority(url: &str) -> (&str, &str) {
    let (origin, _) = split_origin(url);
    let (scheme, authority) = origin.split_once("://").unwrap_or(("", origin));
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (authority, scheme)
}

/// The `host` header as it is sent: lower case, without the scheme's default port.
pub fn host(url: &str) -> String {
    let (authority, scheme) = authority(url);
    let authority = authority.to_ascii_lowercase();
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return authority,
    };
    match authority.strip_suffix(default) {
        Some(host) => host.to_string(),
        None => authority,
    }
}

/// The path and query of a URL as sent (without any fragment).
fn path_and_query(url: &str) -> (&str, &str) {
    let (_, rest) = split_origin(url);
    let rest = rest.split('#').next().unwrap_or_default();
    rest.split_once('?').unwrap_or((rest, ""))
}

/// Dot segments and empty segments removed (RFC 3986 5.2.4, plus the repeated slashes AWS
/// ignores), then every byte but the unreserved ones and `/` percent-encoded.
fn canonical_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    encode(out.as_bytes(), b"/")
}

/// Each `name=value` pair decoded and encoded again in canonical form, sorted.
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(name), b""), encode(&decode(value), b""))
        })
        .collect();
    pairs.sort();
    let pairs: Vec<String> = pairs.into_iter().map(|(n, v)| format!("{n}={v}")).collect();
    pairs.join("&")
}

/// Percent-encodes every byte but `A–Z a–z 0–9 - _ . ~` and those in `keep`.
fn encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes; a `%` not followed by two hex digits stays as it is.
fn decode(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |at: usize| b.get(at).and_then(|&h| char::from(h).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
