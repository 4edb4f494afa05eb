//! The Extensions API (register, event/next, init/error, exit/error) and the Telemetry API's
//! subscribe call, validated as SPEC.md §2 and §4 say AWS and RIE validate them.
//!
//! Each request gets its own thread, because `/event/next` blocks until the scenario queues an
//! event for the extension. The scenario reads and drives everything through [`Api`].

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::delivery::{Subscription, Telemetry};
use crate::events::Stream;

/// Switches that change how the API answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// The file name the extension must register under.
    pub name: String,
    /// Lambda Managed Instances: SHUTDOWN-only registration, schema 2025-01-29 only.
    pub lmi: bool,
    /// Answer subscribe with 202 `Telemetry.NotSupported`, as RIE classic and `sam local` do.
    pub not_supported: bool,
    /// A schema version this host does not know (400 naming it).
    pub reject_schema: Option<String>,
    /// Record init/exit error reports but never answer them, as a wedged host would.
    pub hang_errors: bool,
}

/// An init/error or exit/error report.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    pub path: String,
    pub error_type: String,
    pub body: String,
}

#[derive(Default)]
struct State {
    identifier: Option<String>,
    registered_events: Vec<String>,
    init_done: bool,
    /// When each `/event/next` call arrived.
    next_calls: Vec<Instant>,
    waiting: bool,
    queue: VecDeque<String>,
    errors: Vec<ErrorReport>,
    subscribe_answers: Vec<(u16, String)>,
    closed: bool,
}

/// The API server's shared state.
pub struct Api {
    state: Mutex<State>,
    changed: Condvar,
    behaviour: Behaviour,
    pub telemetry: Arc<Telemetry>,
}

impl Api {
    pub fn new(behaviour: Behaviour, telemetry: Arc<Telemetry>) -> Arc<Api> {
        Arc::new(Api {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            behaviour,
            telemetry,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves until the process ends. Only `/event/next` blocks, so only it gets a thread:
    /// a thread per call would add its start-up to every call the extension makes.
    pub fn serve(self: Arc<Self>, server: Server) {
        for request in server.incoming_requests() {
            let hangs = self.behaviour.hang_errors && request.url().ends_with("/error");
            if request.url().ends_with("/event/next") || hangs {
                let api = self.clone();
                std::thread::spawn(move || api.handle(request));
            } else {
                self.handle(request);
            }
        }
    }

    /// Waits until `ready` holds of the state or `limit` passes; returns whether it held.
    fn wait_for(&self, limit: Duration, ready: impl Fn(&State) -> bool) -> bool {
        let until = Instant::now() + limit;
        let mut state = self.lock();
        while !ready(&state) {
            let now = Instant::now();
            if now >= until {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, until - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        true
    }

    /// Waits for a registration (or an error report); returns the registered events.
    pub fn wait_registered(&self, limit: Duration) -> Option<Vec<String>> {
        self.wait_for(limit, |s| {
            s.identifier.is_some() || !s.errors.is_empty() || s.closed
        });
        let state = self.lock();
        state
            .identifier
            .as_ref()
            .map(|_| state.registered_events.clone())
    }

    /// Waits for the extension's `n`th `/event/next` call; returns when it arrived.
    pub fn wait_next_call(&self, n: usize, limit: Duration) -> Option<Instant> {
        self.wait_for(limit, |s| {
            s.next_calls.len() >= n || !s.errors.is_empty() || s.closed
        });
        self.lock().next_calls.get(n - 1).copied()
    }

    pub fn registered_events(&self) -> Vec<String> {
        self.lock().registered_events.clone()
    }

    pub fn next_calls(&self) -> usize {
        self.lock().next_calls.len()
    }

    /// Init is over: registration and subscription close (RIE-LMI answers 403 after this).
    pub fn end_init(&self) {
        self.lock().init_done = true;
    }

    /// Queues an event for the extension's `/event/next`.
    pub fn send_event(&self, event: Value) {
        self.lock().queue.push_back(event.to_string());
        self.changed.notify_all();
    }

    /// The extension is gone: release any blocked `/next`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    pub fn errors(&self) -> Vec<ErrorReport> {
        self.lock().errors.clone()
    }

    pub fn subscribe_answers(&self) -> Vec<(u16, String)> {
        self.lock().subscribe_answers.clone()
    }

    fn handle(&self, mut request: Request) {
        let mut body = String::new();
        let _ = request.as_reader().take(1 << 20).read_to_string(&mut body);
        let header = |name: &'static str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.equiv(name))
                .map(|h| h.value.as_str().to_string())
        };
        let path = request.url().to_string();
        let method = request.method().clone();
        let identifier = header("Lambda-Extension-Identifier");
        let (status, answer, id_header) = match (method, path.as_str()) {
            (Method::Post, "/2020-01-01/extension/register") => self.register(
                header("Lambda-Extension-Name"),
                header("Content-Type"),
                header("Lambda-Extension-Accept-Feature"),
                &body,
            ),
            (Method::Get, "/2020-01-01/extension/event/next") => {
                let (status, answer) = self.next(identifier);
                (status, answer, None)
            }
            (
                Method::Post,
                p @ ("/2020-01-01/extension/init/error" | "/2020-01-01/extension/exit/error"),
            ) => {
                let report = ErrorReport {
                    path: p.rsplit('/').nth(1).unwrap_or_default().to_string() + "/error",
                    error_type: header("Lambda-Extension-Function-Error-Type").unwrap_or_default(),
                    body,
                };
                self.lock().errors.push(report);
                self.changed.notify_all();
                if self.behaviour.hang_errors {
                    // Not a wait for anything: the host is wedged, this answer comes too late.
                    std::thread::sleep(Duration::from_secs(60));
                }
                (202, json!({"status": "OK"}).to_string(), None)
            }
            (Method::Put, "/2022-07-01/telemetry") => {
                let (status, answer) = self.subscribe(identifier, &body);
                self.lock().subscribe_answers.push((status, answer.clone()));
                (status, answer, None)
            }
            _ => (404, String::new(), None),
        };
        let mut response = Response::from_string(answer).with_status_code(status);
        if let Ok(h) = Header::from_bytes("Content-Type", "application/json") {
            response = response.with_header(h);
        }
        if let Some(Ok(h)) =
            id_header.map(|id: String| Header::from_bytes("Lambda-Extension-Identifier", id))
        {
            response = response.with_header(h);
        }
        let _ = request.respond(response);
    }

    fn register(
        &self,
        name: Option<String>,
        content_type: Option<String>,
        features: Option<String>,
        body: &str,
    ) -> (u16, String, Option<String>) {
        let refuse = |status: u16, kind: &str, message: &str| {
            (
                status,
                json!({"errorType": kind, "errorMessage": message}).to_string(),
                None,
            )
        };
        if !content_type.is_some_and(|c| c.starts_with("application/json")) {
            return refuse(
                415,
                "UnsupportedMediaType",
                "Content-Type must be application/json",
            );
        }
        if name.as_deref() != Some(self.behaviour.name.as_str()) {
            return refuse(
                403,
                "Extension.InvalidExtensionName",
                "name must equal the executable's file name",
            );
        }
        let events: Option<Vec<String>> = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| serde_json::from_value(v.get("events")?.clone()).ok());
        let Some(events) = events else {
            return refuse(
                403,
                "InvalidRequestFormat",
                "body must be {\"events\":[...]}",
            );
        };
        let allowed = |e: &String| e == "SHUTDOWN" || (e == "INVOKE" && !self.behaviour.lmi);
        if !events.iter().all(allowed) {
            return refuse(403, "Extension.InvalidEventType", "unsupported event type");
        }
        let mut state = self.lock();
        if state.init_done {
            return refuse(
                403,
                "Extension.RegistrationClosed",
                "registration is closed",
            );
        }
        if state.identifier.is_some() {
            return refuse(403, "Extension.InvalidExtensionState", "already registered");
        }
        let id = "4c1e0d9a-7b3f-48e2-a61d-0c97f3b2e8d4".to_string();
        state.identifier = Some(id.clone());
        state.registered_events = events;
        self.changed.notify_all();
        let account = features.is_some_and(|f| f.split(',').any(|f| f.trim() == "accountId"));
        (200, registration(account).to_string(), Some(id))
    }

    fn next(&self, identifier: Option<String>) -> (u16, String) {
        let mut state = self.lock();
        if identifier.is_none() || identifier != state.identifier {
            let body = json!({"errorType": "Extension.InvalidExtensionIdentifier", "errorMessage": "Invalid Lambda-Extension-Identifier"});
            return (403, body.to_string());
        }
        state.next_calls.push(Instant::now());
        state.waiting = true;
        self.changed.notify_all();
        while state.queue.is_empty() && !state.closed {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.waiting = false;
        match state.queue.pop_front() {
            Some(event) => (200, event),
            None => (500, String::new()),
        }
    }

    fn subscribe(&self, identifier: Option<String>, body: &str) -> (u16, String) {
        let bad = |message: String| {
            (
                400,
                json!({"errorType": "ValidationError", "errorMessage": message}).to_string(),
            )
        };
        {
            let state = self.lock();
            if identifier.is_none() || identifier != state.identifier {
                let body = json!({"errorType": "Extension.InvalidExtensionIdentifier", "errorMessage": "Invalid Lambda-Extension-Identifier"});
                return (403, body.to_string());
            }
            if self.behaviour.lmi && state.init_done {
                let body = json!({"errorType": "Telemetry.SubscriptionClosed", "errorMessage": "subscriptions are closed after Init"});
                return (403, body.to_string());
            }
        }
        if self.behaviour.not_supported {
            let body = json!({"errorMessage": "Telemetry API is not supported", "errorType": "Telemetry.NotSupported"});
            return (202, body.to_string());
        }
        if let Some(schema) = &self.behaviour.reject_schema
            && body.contains(&format!("\"{schema}\""))
        {
            return bad(format!("unsupported schemaVersion {schema:?}"));
        }
        match parse_subscription(body, self.behaviour.lmi) {
            Ok(subscription) => {
                self.telemetry.subscribe(subscription);
                (200, "\"OK\"".to_string())
            }
            Err(message) => bad(message),
        }
    }
}

/// The register answer; `accountId` only when the extension asked for it (SPEC.md §2.1).
fn registration(account: bool) -> Value {
    let mut answer = json!({
        "functionName": crate::FUNCTION_NAME,
        "functionVersion": "$LATEST",
        "handler": "bootstrap",
    });
    if account {
        answer["accountId"] = json!("123456789012");
    }
    answer
}

/// Validates a subscribe body the way AWS does (SPEC.md §4).
pub fn parse_subscription(body: &str, lmi: bool) -> Result<Subscription, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let schema = v
        .get("schemaVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let schemas: &[&str] = if lmi {
        &["2025-01-29"]
    } else {
        &["2022-07-01", "2022-12-13", "2025-01-29"]
    };
    if !schemas.contains(&schema) {
        return Err(format!(
            "unsupported schemaVersion {schema:?}; supported: {schemas:?}"
        ));
    }
    let names: Vec<&str> = v
        .get("types")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut streams = Vec::new();
    for name in &names {
        let stream = match *name {
            "platform" => Stream::Platform,
            "function" => Stream::Function,
            "extension" => Stream::Extension,
            other => return Err(format!("unknown type {other:?}")),
        };
        streams.push(stream);
    }
    if streams.is_empty() {
        return Err("types must be a non-empty list".to_string());
    }
    let buffering = v.get("buffering");
    let number = |key: &str, default: u64, min: u64, max: u64| -> Result<u64, String> {
        match buffering.and_then(|b| b.get(key)) {
            None => Ok(default),
            Some(n) => n
                .as_u64()
                .filter(|n| (min..=max).contains(n))
                .ok_or(format!("buffering.{key} must be from {min} to {max}")),
        }
    };
    let max_items = number("maxItems", 10_000, 1000, 10_000)?;
    let max_bytes = number("maxBytes", 262_144, 262_144, 1_048_576)?;
    let timeout_ms = number("timeoutMs", 1000, 25, 30_000)?;
    let destination = v.get("destination").ok_or("destination is required")?;
    if destination.get("protocol").and_then(Value::as_str) != Some("HTTP") {
        return Err("destination.protocol must be HTTP".to_string());
    }
    let uri = destination
        .get("URI")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let rest = uri
        .strip_prefix("http://")
        .ok_or("destination.URI must be http://")?;
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or("destination.URI needs a port")?;
    if host != "sandbox.localdomain" && host != "sandbox" {
        return Err("Only 'sandbox.localdomain' hostname is supported.".to_string());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| "destination port is not a number".to_string())?;
    if port == 9001 || port == 0 {
        return Err(format!("destination port {port} is reserved"));
    }
    Ok(Subscription {
        url: format!("http://127.0.0.1:{port}/{path}"),
        port,
        streams,
        max_items: max_items as usize,
        max_bytes: max_bytes as usize,
        timeout: Duration::from_millis(timeout_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(schema: &str, types: &str, buffering: &str, uri: &str) -> String {
        format!(
            r#"{{"schemaVersion":"{schema}","types":{types},"buffering":{buffering},"destination":{{"protocol":"HTTP","URI":"{uri}"}}}}"#
        )
    }

    #[test]
    fn register_answer_has_the_fields_of_the_captured_one() {
        let fixture: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/register-response.json"
        ))
        .unwrap();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&registration(true)), keys(&fixture));
        assert!(registration(false).get("accountId").is_none());
    }

    #[test]
    fn accepts_what_aws_accepts() {
        let ok = body(
            "2025-01-29",
            r#"["platform","function"]"#,
            r#"{"maxItems":1000,"maxBytes":262144,"timeoutMs":25}"#,
            "http://sandbox.localdomain:4243/",
        );
        let sub = parse_subscription(&ok, true).unwrap();
        assert_eq!(sub.url, "http://127.0.0.1:4243/");
        assert_eq!(sub.timeout, Duration::from_millis(25));
    }

    #[test]
    fn rejects_what_aws_rejects() {
        let cases = [
            (
                body(
                    "2022-12-13",
                    r#"["platform"]"#,
                    "{}",
                    "http://sandbox:4243/",
                ),
                true,
            ),
            (
                body(
                    "2021-01-01",
                    r#"["platform"]"#,
                    "{}",
                    "http://sandbox:4243/",
                ),
                false,
            ),
            (
                body("2025-01-29", "[]", "{}", "http://sandbox:4243/"),
                false,
            ),
            (
                body("2025-01-29", r#"["logs"]"#, "{}", "http://sandbox:4243/"),
                false,
            ),
            (
                body(
                    "2025-01-29",
                    r#"["platform"]"#,
                    r#"{"timeoutMs":10}"#,
                    "http://sandbox:4243/",
                ),
                false,
            ),
            (
                body(
                    "2025-01-29",
                    r#"["platform"]"#,
                    r#"{"maxItems":999}"#,
                    "http://sandbox:4243/",
                ),
                false,
            ),
            (
                body(
                    "2025-01-29",
                    r#"["platform"]"#,
                    r#"{"maxBytes":2000000}"#,
                    "http://sandbox:4243/",
                ),
                false,
            ),
            (
                body(
                    "2025-01-29",
                    r#"["platform"]"#,
                    "{}",
                    "http://localhost:4243/",
                ),
                false,
            ),
            (
                body(
                    "2025-01-29",
                    r#"["platform"]"#,
                    "{}",
                    "http://sandbox:9001/",
                ),
                false,
            ),
            (
                body(
                    "2025-01-29",
                    r#"["platform"]"#,
                    "{}",
                    "https://sandbox:4243/",
                ),
                false,
            ),
        ];
        for (body, lmi) in cases {
            assert!(parse_subscription(&body, lmi).is_err(), "{body}");
        }
    }
}
