//! What unit tests share: environments for the config, and the third-party validators `make test`
//! installs in `target/py`.

use std::path::{Path, PathBuf};

/// The project's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// An environment for `Config::parse` and its parts; a later pair wins over an earlier one of
/// the same name (and an empty value counts as unset, as in the real environment).
pub fn env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The venv's python, or `None` after saying loudly that `what` is skipped; under `CI=true` a
/// missing venv fails the test instead.
pub fn python(what: &str) -> Option<PathBuf> {
    let python = root().join("target/py/bin/python");
    if python.exists() {
        return Some(python);
    }
    let why = format!("{} missing; `make test` installs it", python.display());
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "cannot run {what} under CI=true: {why}"
    );
    eprintln!("SKIPPED ({what}): {why}; under CI=true this fails");
    None
}

/// Runs `tests/validate/<script>` with `args` and the JSON `input` in a temporary file (its
/// path is the last argument); its stdout, or a panic with what it printed.
pub fn validate(python: &Path, script: &str, args: &[&str], input: &serde_json::Value) -> String {
    let file = std::env::temp_dir().join(format!(
        "telemetry-relay-{script}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&file, input.to_string()).unwrap();
    let output = std::process::Command::new(python)
        .arg(root().join("tests/validate").join(script))
        .args(args)
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
