//! Command-line switches of the emulator.

pub const USAGE: &str = "usage: lambda-emulator [OPTIONS] EXTENSION
  --invokes N             invocations to run (default 3)
  --lines N               function lines per invocation (default 2)
  --lmi                   Lambda Managed Instances: SHUTDOWN-only, schema 2025-01-29, sparse reports
  --not-supported         answer subscribe with 202 Telemetry.NotSupported, like RIE and sam local
  --reject-schema V       answer a subscribe with schemaVersion V with 400, as an older host would
  --hang-errors           record init/exit error reports but never answer them
  --register-as NAME      accept registration only under NAME (default: the executable's file name)
  --json-logs             the function logs JSON objects (AWS_LAMBDA_LOG_FORMAT=JSON)
  --log-style S           function lines as a managed runtime writes them, levels cycling debug, info,
                          warn, error and none: python, node, dotnet, java, log4j2, json, powertools
  --secrets               every function line also carries an AWS key id, password=, a bearer token,
                          a JWT, a card number and an e-mail address
  --outcomes LIST         every Nth invocation fails: error:N, timeout:N (status timeout, the
                          environment lives on), crash:N (Runtime.ExitError), slow:N (+2000 ms)
  --xray-sampled N        every Nth invocation's trace header says Sampled=1, the others Sampled=0
  --freeze                SIGSTOP the extension between invocations, SIGCONT at the next
  --error-invoke K        invocation K ends with status error
  --timeout-invoke K      invocation K times out; the environment then shuts down (reason timeout)
  --shutdown-reason R     spindown (default), timeout or failure
  --shutdown-ms N         SHUTDOWN budget before SIGKILL (default 2000)
  --drop-last-report      never produce the last invocation's platform.report (a lost report)
  --sigterm-twice         SIGTERM the extension before SHUTDOWN and again after it
  --other-extension       another extension logs a line per invocation
  --inject FILE           after invocation 1, POST FILE's bytes to the extension's listener (repeatable)
  --inject-bytes N        after invocation 1, POST a body of N bytes
  --inject-deep N         after invocation 1, POST an array nested N deep
  --attack NAME           after invocation 1, attack the extension's listener as a hostile local client
                          (repeatable): huge-length, overflow-length, stall-body, stall-413,
                          hold:N (N idle connections, closed after invocation 2), big-header:BYTES,
                          tiny-events:BYTES; stalled connections stay open until the end
  --nofile N              start the extension with an open-file limit of N (soft and hard),
                          as Lambda's 1024
  --stall-stderr          give the extension a stderr pipe that is full and never read
  --term-twice-early      after the last invocation, SIGTERM twice before any SHUTDOWN; SHUTDOWN
                          is sent only if the extension has not exited within the budget
  --blast FILE            after invocation 1, POST a 1000-event batch built from FILE's events
                          --blast-posts times (default 50), timed until every event is printed
                          (needs TELEMETRY_RELAY_STDOUT_FORMAT=json: one line per event)
  --blast-posts N         see --blast
  --wait-relay            before SHUTDOWN, wait until every function line so far is on the extension's stdout
  --backend MODE          run a test backend on 127.0.0.1 for the extension's network outputs:
                          healthy, status:N, fail:N:K (N for the first K requests), hang,
                          reset (closes each connection after one answer) or down;
                          '{backend}' in --env values becomes its URL, '{backend_address}' its host:port
  --env KEY=VALUE         extra environment for the extension (repeatable)
  --quiet                 do not pass the extension's output through
  --json PATH             write the full report as JSON";

/// What to emulate.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub extension: String,
    pub invokes: u64,
    pub lines: u64,
    pub lmi: bool,
    pub not_supported: bool,
    pub reject_schema: Option<String>,
    pub hang_errors: bool,
    pub register_as: Option<String>,
    pub json_logs: bool,
    pub log_style: Option<String>,
    pub secrets: bool,
    pub outcomes: Vec<(String, u64)>,
    pub xray_sampled: Option<u64>,
    pub freeze: bool,
    pub error_invoke: Option<u64>,
    pub timeout_invoke: Option<u64>,
    pub shutdown_reason: String,
    pub shutdown_ms: u64,
    pub other_extension: bool,
    pub drop_last_report: bool,
    pub sigterm_twice: bool,
    pub inject: Vec<String>,
    pub inject_bytes: Option<usize>,
    pub inject_deep: Option<usize>,
    pub attacks: Vec<crate::attack::Attack>,
    pub nofile: Option<u64>,
    pub stall_stderr: bool,
    pub term_twice_early: bool,
    pub blast: Option<String>,
    pub blast_posts: usize,
    pub wait_relay: bool,
    pub env: Vec<(String, String)>,
    pub backend: Option<String>,
    pub quiet: bool,
    pub json: Option<String>,
}

impl Options {
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut o = Options {
            invokes: 3,
            lines: 2,
            shutdown_reason: "spindown".to_string(),
            shutdown_ms: 2000,
            blast_posts: 50,
            ..Options::default()
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            let number = |v: String| {
                v.parse::<u64>()
                    .map_err(|_| format!("{arg}: {v:?} is not a number"))
            };
            match arg.as_str() {
                "--invokes" => o.invokes = number(value()?)?,
                "--lines" => o.lines = number(value()?)?,
                "--lmi" => o.lmi = true,
                "--not-supported" => o.not_supported = true,
                "--reject-schema" => o.reject_schema = Some(value()?),
                "--register-as" => o.register_as = Some(value()?),
                "--hang-errors" => o.hang_errors = true,
                "--json-logs" => o.json_logs = true,
                "--log-style" => {
                    let style = value()?;
                    o.json_logs = matches!(style.as_str(), "json" | "powertools");
                    o.log_style = Some(style);
                }
                "--secrets" => o.secrets = true,
                "--outcomes" => {
                    for part in value()?.split(',') {
                        let (kind, every) = part
                            .split_once(':')
                            .ok_or(format!("--outcomes {part:?} is not KIND:N"))?;
                        if !matches!(kind, "error" | "timeout" | "crash" | "slow") {
                            return Err(format!("--outcomes: unknown outcome {kind:?}"));
                        }
                        o.outcomes
                            .push((kind.to_string(), number(every.to_string())?.max(1)));
                    }
                }
                "--xray-sampled" => o.xray_sampled = Some(number(value()?)?.max(1)),
                "--freeze" => o.freeze = true,
                "--error-invoke" => o.error_invoke = Some(number(value()?)?),
                "--timeout-invoke" => o.timeout_invoke = Some(number(value()?)?),
                "--shutdown-reason" => o.shutdown_reason = value()?,
                "--shutdown-ms" => o.shutdown_ms = number(value()?)?,
                "--other-extension" => o.other_extension = true,
                "--drop-last-report" => o.drop_last_report = true,
                "--sigterm-twice" => o.sigterm_twice = true,
                "--inject" => o.inject.push(value()?),
                "--inject-bytes" => o.inject_bytes = Some(number(value()?)? as usize),
                "--inject-deep" => o.inject_deep = Some(number(value()?)? as usize),
                "--attack" => o.attacks.push(crate::attack::Attack::parse(&value()?)?),
                "--nofile" => o.nofile = Some(number(value()?)?),
                "--stall-stderr" => o.stall_stderr = true,
                "--term-twice-early" => o.term_twice_early = true,
                "--blast" => o.blast = Some(value()?),
                "--blast-posts" => o.blast_posts = number(value()?)? as usize,
                "--wait-relay" => o.wait_relay = true,
                "--env" => {
                    let v = value()?;
                    let (k, v) = v
                        .split_once('=')
                        .ok_or(format!("--env {v:?} is not KEY=VALUE"))?;
                    o.env.push((k.to_string(), v.to_string()));
                }
                "--backend" => o.backend = Some(value()?),
                "--quiet" => o.quiet = true,
                "--json" => o.json = Some(value()?),
                "-h" | "--help" => return Err("help".to_string()),
                other if other.starts_with('-') => return Err(format!("unknown option {other}")),
                _ => o.extension = arg,
            }
        }
        if o.extension.is_empty() {
            return Err("the extension's path is missing".to_string());
        }
        Ok(o)
    }
}
