//! Redaction: secrets and personal data replaced before any output sees a record.
//!
//! The built-in detectors are hand-written scanners, not regular expressions: each is a fixed,
//! small shape (a key id's prefix and length, a JWT's three base64url parts, a card number's
//! digits and Luhn check), and a scanner that looks only at the bytes that can start a match
//! costs a fraction of a regex engine's pass per detector. A user's own pattern goes to
//! `regex-lite`, whose matcher is linear in the input: no pattern can make a line take
//! exponential time.
//!
//! A text line (a JSON string) is redacted in its unescaped form and escaped again; a JSON
//! record is walked token by token: string values are redacted the same way, and the value of
//! a secret-looking key (`"password": …`) is replaced whole, so the output stays valid JSON.
//! Replacement text names the detector: `[REDACTED:email]`.

use std::borrow::Cow;

use crate::config::filter::{Detector, Redaction};
use crate::counters::add;
use crate::telemetry::record;
use crate::telemetry::text::string_end;

/// The text that replaces a match.
fn replacement(d: Detector) -> &'static str {
    match d {
        Detector::AwsKey => "[REDACTED:aws-key]",
        Detector::Secret => "[REDACTED:secret]",
        Detector::Authorization => "[REDACTED:authorization]",
        Detector::Jwt => "[REDACTED:jwt]",
        Detector::Card => "[REDACTED:card]",
        Detector::Email => "[REDACTED:email]",
        Detector::Pattern => "[REDACTED:pattern]",
    }
}

/// Redactions made, per detector (indexed as [`Detector`]).
pub type Counts = [u64; 7];

fn has(rules: &Redaction, d: Detector) -> bool {
    rules.detectors.contains(&d)
}

/// Applies a [`Redaction`] and counts what it replaced.
#[derive(Debug, Default)]
pub struct Redactor {
    rules: Redaction,
    /// Literals one of which a line must contain for the user's pattern to match, if known.
    literals: Option<Vec<String>>,
    pub counts: Counts,
    found: Vec<(usize, usize, Detector)>,
}

impl Redactor {
    pub fn new(rules: Redaction) -> Redactor {
        let literals = rules
            .pattern
            .as_ref()
            .and_then(|p| literals::required(p.as_str()));
        Redactor {
            rules,
            literals,
            counts: Counts::default(),
            found: Vec::new(),
        }
    }

    /// A record's raw JSON text redacted, or `None` if nothing in it matched.
    pub fn record(&mut self, json: &str) -> Option<String> {
        if json.starts_with('"') {
            return self.string_literal(json);
        }
        if json.starts_with(['{', '[']) {
            return self.json(json);
        }
        None
    }

    /// A JSON string literal (quotes included) redacted, as a JSON string literal.
    fn string_literal(&mut self, literal: &str) -> Option<String> {
        let text = record::text(literal)?;
        match self.text(&text) {
            Cow::Borrowed(_) => None,
            Cow::Owned(redacted) => serde_json::to_string(&redacted).ok(),
        }
    }

    /// Plain text with every match replaced.
    pub fn text<'t>(&mut self, text: &'t str) -> Cow<'t, str> {
        self.found.clear();
        let rules = &self.rules;
        let found = &mut self.found;
        if has(rules, Detector::AwsKey) {
            aws_keys(text, found);
        }
        let (secret, authorization) = (
            has(rules, Detector::Secret),
            has(rules, Detector::Authorization),
        );
        if secret || authorization {
            key_values(text, found, secret, authorization);
        }
        if authorization {
            bearer_tokens(text, found);
        }
        if has(rules, Detector::Jwt) {
            jwts(text, found);
        }
        if has(rules, Detector::Card) {
            cards(text, found);
        }
        if has(rules, Detector::Email) {
            emails(text, found);
        }
        let may_match = |literals: &[String]| literals.iter().any(|l| text.contains(l.as_str()));
        if let Some(pattern) = &rules.pattern
            && self.literals.as_deref().is_none_or(may_match)
        {
            found.extend(
                pattern
                    .find_iter(text)
                    .filter(|m| !m.is_empty())
                    .map(|m| (m.start(), m.end(), Detector::Pattern)),
            );
        }
        if self.found.is_empty() {
            return Cow::Borrowed(text);
        }
        // Earliest first; of two starting together, the longer.
        self.found
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for &(start, end, detector) in &self.found {
            if start < at {
                continue;
            }
            out.push_str(text.get(at..start).unwrap_or_default());
            out.push_str(replacement(detector));
            count(&mut self.counts, detector);
            at = end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        Cow::Owned(out)
    }

    /// A JSON object or array, walked token by token.
    fn json(&mut self, json: &str) -> Option<String> {
        let bytes = json.as_bytes();
        let mut out = String::new();
        let mut copied = 0;
        let mut changed = false;
        // The key whose value comes next, if it asks for the whole value to go.
        let mut whole_value: Option<Detector> = None;
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'"' => {
                    let end = i + string_end(bytes.get(i..).unwrap_or_default());
                    let literal = json.get(i..end).unwrap_or_default();
                    let is_key = bytes
                        .get(end..)
                        .unwrap_or_default()
                        .iter()
                        .find(|b| !b.is_ascii_whitespace())
                        == Some(&b':');
                    let replacement = if is_key {
                        whole_value = record::text(literal).and_then(|k| self.whole_value_of(&k));
                        None
                    } else if let Some(d) = whole_value.take() {
                        count(&mut self.counts, d);
                        Some(format!("\"{}\"", replacement(d)))
                    } else {
                        self.string_literal(literal)
                    };
                    if let Some(r) = replacement {
                        out.push_str(json.get(copied..i).unwrap_or_default());
                        out.push_str(&r);
                        copied = end;
                        changed = true;
                    }
                    i = end;
                }
                b'-' | b'0'..=b'9' => {
                    let end = i + bytes
                        .get(i..)
                        .unwrap_or_default()
                        .iter()
                        .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                        .unwrap_or(bytes.len() - i);
                    let number = json.get(i..end).unwrap_or_default();
                    let detector = whole_value.take().or_else(|| {
                        let card = has(&self.rules, Detector::Card) && is_card(number);
                        card.then_some(Detector::Card)
                    });
                    if let Some(d) = detector {
                        count(&mut self.counts, d);
                        out.push_str(json.get(copied..i).unwrap_or_default());
                        out.push('"');
                        out.push_str(replacement(d));
                        out.push('"');
                        copied = end;
                        changed = true;
                    }
                    i = end;
                }
                b'{' | b'[' | b',' | b'}' | b']' => {
                    whole_value = None;
                    i += 1;
                }
                _ => i += 1,
            }
        }
        if !changed {
            return None;
        }
        out.push_str(json.get(copied..).unwrap_or_default());
        Some(out)
    }

    /// Whether the value of key `key` goes whole, and as what.
    fn whole_value_of(&self, key: &str) -> Option<Detector> {
        if has(&self.rules, Detector::Secret) && is_secret_key(key) {
            Some(Detector::Secret)
        } else if has(&self.rules, Detector::Authorization) && is_authorization_key(key) {
            Some(Detector::Authorization)
        } else {
            None
        }
    }
}

/// One more redaction by `d`.
fn count(counts: &mut Counts, d: Detector) {
    if let Some(n) = counts.get_mut(d.index()) {
        add(n, 1);
    }
}

type Found = Vec<(usize, usize, Detector)>;

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// AWS access key ids: a four-letter prefix naming the kind of id, then 16 of `A-Z2-7`.
fn aws_keys(text: &str, found: &mut Found) {
    const PREFIXES: [&[u8]; 4] = [b"AKIA", b"ASIA", b"ABIA", b"ACCA"];
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('A') {
        let Some(candidate) = bytes.get(i..i + 20) else {
            break;
        };
        let prefix = candidate.get(..4).unwrap_or_default();
        let boundary_before = i == 0 || bytes.get(i - 1).is_none_or(|&b| !is_word(b));
        let boundary_after = bytes.get(i + 20).is_none_or(|&b| !is_word(b));
        if PREFIXES.contains(&prefix)
            && boundary_before
            && boundary_after
            && candidate
                .get(4..)
                .unwrap_or_default()
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            found.push((i, i + 20, Detector::AwsKey));
        }
    }
}

/// Names of keys whose values are secrets.
fn is_secret_key(key: &str) -> bool {
    const WORDS: [&str; 12] = [
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "private_key",
        "privatekey",
        "credential",
        "access_key",
    ];
    // No lowercase copy: log lines have many `:`s (times) and `=`s, each a candidate key.
    let key = key.as_bytes();
    WORDS.iter().any(|w| {
        let w = w.as_bytes();
        let first = w.first().copied().unwrap_or_default();
        key.windows(w.len()).any(|part| {
            part.first().map(u8::to_ascii_lowercase) == Some(first) && part.eq_ignore_ascii_case(w)
        })
    })
}

fn is_authorization_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("authorization") || key.eq_ignore_ascii_case("proxy-authorization")
}

/// `key=value`, `key: value`, `"key": "value"` in text, for authorization keys and (with
/// `secret`) secret-looking ones, in one pass: the value goes, the key stays. A quoted value
/// runs to its quote; an unquoted one to the next space or separator (an authorization value
/// takes its scheme's credentials too).
fn key_values(text: &str, found: &mut Found, secret: bool, authorization: bool) {
    let bytes = text.as_bytes();
    // Bytes, not chars: a pattern of two chars is searched a char at a time.
    let separators = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| matches!(b, b'=' | b':'))
        .map(|(at, _)| at);
    for sep in separators {
        // The key: word characters (and `-`, `.`) right before, past one closing quote.
        let mut key_end = sep;
        while key_end > 0 && bytes.get(key_end - 1) == Some(&b' ') {
            key_end -= 1;
        }
        if key_end > 0 && matches!(bytes.get(key_end - 1), Some(b'"' | b'\'')) {
            key_end -= 1;
        }
        let mut key_start = key_end;
        while key_start > 0
            && bytes
                .get(key_start - 1)
                .is_some_and(|&b| is_word(b) || b == b'-' || b == b'.')
        {
            key_start -= 1;
        }
        let key = text.get(key_start..key_end).unwrap_or_default();
        let detector = if key.is_empty() {
            continue;
        } else if authorization && is_authorization_key(key) {
            Detector::Authorization
        } else if secret && is_secret_key(key) {
            Detector::Secret
        } else {
            continue;
        };
        let mut start = sep + 1;
        while bytes.get(start) == Some(&b' ') {
            start += 1;
        }
        let quote = bytes
            .get(start)
            .copied()
            .filter(|&b| b == b'"' || b == b'\'');
        if quote.is_some() {
            start += 1;
        }
        let stops: &[u8] = match quote {
            Some(q) => &[q, b'\n', b'\r'],
            None => b" \t\n\r,;&\"'}])",
        };
        let run_end = |from: usize| {
            bytes
                .get(from..)
                .unwrap_or_default()
                .iter()
                .position(|b| stops.contains(b))
                .map_or(bytes.len(), |p| from + p)
        };
        let mut end = run_end(start);
        // Unquoted credentials follow their scheme after one space (`Bearer <token>`), and
        // SigV4's parts are separated by `, `.
        if quote.is_none() && detector == Detector::Authorization {
            if bytes.get(end) == Some(&b' ') {
                end = run_end(end + 1);
            }
            while bytes.get(end) == Some(&b',') && bytes.get(end + 1) == Some(&b' ') {
                end = run_end(end + 2);
            }
        }
        if end > start {
            found.push((start, end, detector));
        }
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// `Bearer <token>` and `Basic <credentials>` anywhere: the scheme stays, the token goes.
fn bearer_tokens(text: &str, found: &mut Found) {
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices(' ') {
        let word_start = bytes
            .get(..i)
            .unwrap_or_default()
            .iter()
            .rposition(|b| !b.is_ascii_alphabetic())
            .map_or(0, |p| p + 1);
        let scheme = text.get(word_start..i).unwrap_or_default();
        if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("basic")) {
            continue;
        }
        let start = i + 1;
        let len = bytes
            .get(start..)
            .unwrap_or_default()
            .iter()
            .position(|&b| !is_token_char(b))
            .unwrap_or(bytes.len() - start);
        if len >= 8 {
            found.push((start, start + len, Detector::Authorization));
        }
    }
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// JSON Web Tokens: three base64url parts, the first two JSON objects (`eyJ` is `{"`).
fn jwts(text: &str, found: &mut Found) {
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices("eyJ") {
        if i > 0 && bytes.get(i - 1).is_some_and(|&b| is_base64url(b)) {
            continue;
        }
        let part = |from: usize| {
            bytes
                .get(from..)
                .unwrap_or_default()
                .iter()
                .position(|&b| !is_base64url(b))
                .unwrap_or(bytes.len() - from)
        };
        let header = part(i);
        let payload_at = i + header + 1;
        if header < 10 || bytes.get(i + header) != Some(&b'.') {
            continue;
        }
        let payload = part(payload_at);
        let signature_at = payload_at + payload + 1;
        if payload < 10 || bytes.get(payload_at + payload) != Some(&b'.') {
            continue;
        }
        let end = signature_at + part(signature_at);
        found.push((i, end, Detector::Jwt));
    }
}

/// Card numbers: 13 to 19 digits, alone or in groups split by single spaces or dashes, with a
/// card network's prefix and a valid Luhn check digit (so timestamps and ids rarely match).
fn cards(text: &str, found: &mut Found) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes.get(i).is_some_and(u8::is_ascii_digit)
            && (i == 0 || bytes.get(i - 1).is_none_or(|&b| !is_word(b)));
        if !starts {
            i += 1;
            continue;
        }
        let mut end = i;
        // Up to 19 digits are kept; a longer run is no card, but is still stepped over.
        let mut digits = [0u8; 19];
        let mut n = 0;
        while let Some(&b) = bytes.get(end) {
            if b.is_ascii_digit() {
                if let Some(d) = digits.get_mut(n) {
                    *d = b;
                }
                n += 1;
                end += 1;
            } else if matches!(b, b' ' | b'-') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
            {
                end += 1;
            } else {
                break;
            }
        }
        let boundary_after = bytes.get(end).is_none_or(|&b| !is_word(b));
        let digits = std::str::from_utf8(digits.get(..n).unwrap_or_default()).unwrap_or_default();
        if boundary_after && n <= 19 && is_card(digits) {
            found.push((i, end, Detector::Card));
        }
        i = end.max(i + 1);
    }
}

/// Whether `digits` (only digits) is a card number.
fn is_card(digits: &str) -> bool {
    let n = digits.len();
    if !(13..=19).contains(&n) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let prefix = |len: usize| digits.get(..len).and_then(|p| p.parse::<u32>().ok());
    let network = digits.starts_with('4') // Visa
        || prefix(2).is_some_and(|p| (51..=55).contains(&p) || matches!(p, 34 | 37 | 36 | 38 | 35 | 65))
        || prefix(4).is_some_and(|p| (2221..=2720).contains(&p) || p == 6011)
        || prefix(3).is_some_and(|p| (644..=649).contains(&p) || (300..=305).contains(&p));
    network && luhn(digits)
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// E-mail addresses: a local part, `@`, and a domain with a dot and a top-level name of letters.
fn emails(text: &str, found: &mut Found) {
    let bytes = text.as_bytes();
    let local = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-');
    for (at, _) in text.match_indices('@') {
        let start = bytes
            .get(..at)
            .unwrap_or_default()
            .iter()
            .rposition(|&b| !local(b))
            .map_or(0, |p| p + 1);
        let mut end = at
            + 1
            + bytes
                .get(at + 1..)
                .unwrap_or_default()
                .iter()
                .position(|&b| !domain(b))
                .unwrap_or(bytes.len() - at - 1);
        // A sentence's full stop is not part of the domain.
        while end > at + 1 && matches!(bytes.get(end - 1), Some(b'.' | b'-')) {
            end -= 1;
        }
        let host = text.get(at + 1..end).unwrap_or_default();
        let tld = host.rsplit('.').next().unwrap_or_default();
        let valid = start < at
            && host.contains('.')
            && !host.starts_with('.')
            && tld.len() >= 2
            && tld.bytes().all(|b| b.is_ascii_alphabetic());
        if valid {
            found.push((start, end, Detector::Email));
        }
    }
}

mod literals;

#[cfg(test)]
mod tests;
