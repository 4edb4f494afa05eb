//! The extension process as Lambda runs it: started with the Lambda environment, its stdout
//! and stderr captured line by line (they go to CloudWatch and come back as `extension`
//! records), frozen and thawed with SIGSTOP/SIGCONT, SIGKILLed at the SHUTDOWN deadline, and
//! measured (peak RSS from `VmHWM`, CPU time from every thread's `schedstat`).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    Stdout,
    Stderr,
}

/// Called for every line the extension writes, without its `\n`.
pub type OnLine = Arc<dyn Fn(Pipe, &str) + Send + Sync>;

/// A running (or finished) extension.
pub struct Extension {
    pub pid: u32,
    pub started: Instant,
    exited: Receiver<(ExitStatus, Instant)>,
    readers: Vec<std::thread::JoinHandle<()>>,
    usage: Arc<Usage>,
    /// The read end of a stalled stderr, kept open and never read.
    _stalled: Option<std::io::PipeReader>,
}

/// The highest figures sampled while the process ran.
#[derive(Default)]
pub struct Usage {
    peak_rss_kb: AtomicU64,
    cpu_us: AtomicU64,
    running: AtomicBool,
}

impl Usage {
    fn sample(&self, pid: u32) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
        if let Some(kb) = hwm {
            self.peak_rss_kb.fetch_max(kb, Ordering::Relaxed);
        }
        let mut cpu_ns = 0u64;
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let stat =
                    std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
                cpu_ns += stat
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        if cpu_ns > 0 {
            self.cpu_us.fetch_max(cpu_ns / 1000, Ordering::Relaxed);
        }
    }
}

impl Extension {
    /// Starts `path` with `env` (on top of a clean environment), capturing its output;
    /// `on_exit` runs once the process has exited.
    pub fn spawn(
        path: &str,
        env: &[(String, String)],
        nofile: Option<u64>,
        stall_stderr: bool,
        on_line: OnLine,
        on_exit: Box<dyn FnOnce() + Send>,
    ) -> std::io::Result<Extension> {
        let started = Instant::now();
        // An open-file limit is set by a shell that then becomes the extension (same pid).
        let mut command = match nofile {
            Some(n) => {
                let mut sh = Command::new("/bin/sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\""))
                    .arg(path);
                sh
            }
            None => Command::new(path),
        };
        // A stalled stderr: a pipe filled to capacity whose read end is kept and never read.
        let (stderr, stalled) = if stall_stderr {
            let (reader, mut writer) = std::io::pipe()?;
            let capacity = 65536; // Linux's default pipe size
            std::io::Write::write_all(&mut writer, &vec![b'.'; capacity])?;
            (Stdio::from(writer), Some(reader))
        } else {
            (Stdio::piped(), None)
        };
        let mut child = command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let pid = child.id();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(read_lines(out, Pipe::Stdout, on_line.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(read_lines(err, Pipe::Stderr, on_line));
        }
        let usage = Arc::new(Usage::default());
        usage.running.store(true, Ordering::Relaxed);
        let sampler = usage.clone();
        std::thread::spawn(move || {
            while sampler.running.load(Ordering::Relaxed) {
                sampler.sample(pid);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let (tx, exited) = mpsc::channel();
        let waiter_usage = usage.clone();
        std::thread::spawn(move || {
            let status = wait(&mut child);
            waiter_usage.running.store(false, Ordering::Relaxed);
            let _ = tx.send((status, Instant::now()));
            on_exit();
        });
        Ok(Extension {
            pid,
            started,
            exited,
            readers,
            usage,
            _stalled: stalled,
        })
    }

    /// Takes a sample now (the process is idle in `/next` at the moments this is called).
    pub fn sample(&self) {
        self.usage.sample(self.pid);
    }

    /// Sends a signal by name (`STOP`, `CONT`, `TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .stderr(Stdio::null())
            .status();
    }

    /// Waits (up to `limit`) until no SIGTERM is pending for the process: two signals sent
    /// back to back merge into one when the first has not been taken yet (standard signals do
    /// not queue), so a test of "a second SIGTERM" must let the first land.
    pub fn wait_term_taken(&self, limit: Duration) {
        const SIGTERM_BIT: u64 = 1 << (15 - 1);
        let pending = |line: &str, key: &str| {
            line.strip_prefix(key)
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
                .is_some_and(|mask| mask & SIGTERM_BIT != 0)
        };
        let guard = Instant::now() + limit;
        while Instant::now() < guard {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.pid)) else {
                return;
            };
            if !status
                .lines()
                .any(|l| pending(l, "ShdPnd:") || pending(l, "SigPnd:"))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&self, limit: Duration) -> Option<(ExitStatus, Instant)> {
        self.exited.recv_timeout(limit).ok()
    }

    /// Waits until both pipes are closed and read.
    pub fn finish_output(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }

    /// `Threads` and `VmRSS` (KiB) from `/proc/PID/status` now.
    pub fn threads_and_rss(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        (field("Threads:"), field("VmRSS:"))
    }

    /// Peak RSS in KiB and CPU time in ms, as sampled.
    pub fn usage(&self) -> (u64, f64) {
        (
            self.usage.peak_rss_kb.load(Ordering::Relaxed),
            self.usage.cpu_us.load(Ordering::Relaxed) as f64 / 1000.0,
        )
    }
}

fn wait(child: &mut Child) -> ExitStatus {
    loop {
        if let Ok(status) = child.wait() {
            return status;
        }
    }
}

fn read_lines(
    pipe: impl Read + Send + 'static,
    which: Pipe,
    on_line: OnLine,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            on_line(which, text.strip_suffix('\n').unwrap_or(&text));
            line.clear();
        }
    })
}

/// Holds the lines an extension wrote, for the report and for tests.
#[derive(Default)]
pub struct Output {
    pub stdout: Mutex<Vec<String>>,
    pub stderr: Mutex<Vec<String>>,
    /// Notified on every line, for waits on what the extension printed.
    changed: Condvar,
}

impl Output {
    pub fn push(&self, which: Pipe, line: &str) {
        let lines = match which {
            Pipe::Stdout => &self.stdout,
            Pipe::Stderr => &self.stderr,
        };
        lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line.to_string());
        self.changed.notify_all();
    }

    /// Waits until `done` holds for the stdout lines so far, or `until`; whether it held.
    pub fn wait_stdout(&self, until: Instant, done: impl Fn(&[String]) -> bool) -> bool {
        let mut lines = self.stdout.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if done(&lines) {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            lines = self
                .changed
                .wait_timeout(lines, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn stdout_len(&self) -> usize {
        self.stdout.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
