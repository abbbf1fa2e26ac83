//! The README's first run: `weir demo` in a fresh directory serves its own
//! upstreams, and every command of the walk-through it prints (the same
//! text the README shows) answers as the comment under it says.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::process::{WEIR, capture};

const README: &str = include_str!("../../README.md");

/// The README's main command, its walk-through and the script behind the
/// command agree with what the binary does.
#[test]
fn readme_shows_the_demo_command_and_its_walkthrough() {
    assert!(
        README.lines().any(|l| l.trim() == "./weir demo"),
        "the README's quick start runs `./weir demo`"
    );
    assert!(
        README.contains(weir::tooling::demo::WALKTHROUGH),
        "the README shows host/src/tooling/demo/walkthrough.sh verbatim"
    );
    assert!(
        README.contains(weir::tooling::demo::MORE),
        "the README shows host/src/tooling/demo/more.sh verbatim"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weir");
    let text = std::fs::read_to_string(&script).expect("./weir exists");
    assert!(text.contains("cargo build --release"), "{text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "./weir is executable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_of_the_demo_walkthrough_answers_as_shown() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(WEIR)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let logs = capture(child.stderr.take().unwrap());
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let printed = tokio::time::timeout(Duration::from_secs(60), async {
        let (mut proxy, mut admin, mut text) = (None, None, String::new());
        let expected_lines = weir::tooling::demo::WALKTHROUGH.lines().count();
        let mut walkthrough = None;
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(a) = line.strip_prefix("listening on http://") {
                proxy = Some(a.parse().unwrap());
            } else if let Some(a) = line.strip_prefix("admin listening on http://") {
                admin = Some(a.parse().unwrap());
            } else if line.starts_with("Try these") {
                walkthrough = Some(Vec::new());
            } else if let Some(lines) = &mut walkthrough {
                lines.push(line);
                // A blank line follows "Try these".
                if lines.len() == expected_lines + 1 {
                    break;
                }
            }
        }
        let lines = walkthrough.expect("weir demo printed its walk-through");
        text.push_str(&lines[1..].join("\n"));
        text.push('\n');
        (proxy.unwrap(), admin.unwrap(), text)
    })
    .await
    .expect("weir demo started within 60 s");
    let (proxy, admin, text) = printed;
    assert!(dir.path().join("demo/weir.toml").exists());
    assert_eq!(
        text,
        weir::tooling::demo::walkthrough(Path::new("demo"), proxy, Some(admin)),
        "the demo prints the README's walk-through for its own addresses"
    );

    let more = weir::tooling::demo::for_addresses(
        weir::tooling::demo::MORE,
        Path::new("demo"),
        proxy,
        Some(admin),
    );
    let steps: Vec<_> = steps(&text).into_iter().chain(steps(&more)).collect();
    assert!(steps.len() >= 15, "{steps:?}");
    for (command, expected) in steps {
        let output = run_until(dir.path(), &command, expected.as_deref()).await;
        if let Err(output) = output {
            panic!(
                "`{command}`\nprinted:\n{output}\nexpected: {expected:?}\ngateway log:\n{}",
                tail(&logs.text(), 40)
            );
        }
    }
}

/// Each command of a walk-through and the text its `# →` comment promises.
fn steps(text: &str) -> Vec<(String, Option<String>)> {
    let mut steps: Vec<(String, Option<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(expected) = line.strip_prefix("# → ") {
            let last = steps.last_mut().expect("an expectation follows a command");
            last.1 = Some(expected.to_string());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            steps.push((line.to_string(), None));
        }
    }
    steps
}

/// Run `command` with `sh` in `dir` until its output shows `expected`
/// (whitespace aside, `…` standing for anything), for at most 5 s: the
/// hot-reload step is served once the watcher has swapped the pipeline.
async fn run_until(dir: &Path, command: &str, expected: Option<&str>) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let output = Command::new("sh")
            .args(["-c", command])
            .current_dir(dir)
            .output()
            .await
            .expect("sh runs");
        let printed = String::from_utf8_lossy(&output.stdout).into_owned();
        let shown = match expected {
            None => output.status.success(),
            Some(expected) => shows(&printed, expected),
        };
        if shown {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{printed}{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `printed` contains the parts of `expected` (split at `…`) in
/// order, ignoring whitespace.
fn shows(printed: &str, expected: &str) -> bool {
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    let printed = squeeze(printed);
    let mut rest = printed.as_str();
    for part in expected.split('…') {
        let part = squeeze(part);
        match rest.find(&part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn expectations_match_in_order_ignoring_whitespace() {
    assert!(shows("     60 200\n     40 429\n", "200 … 429"));
    assert!(!shows("     100 200\n", "200 … 429"));
    assert!(shows("{\"id\": 7}", "{\"id\":7}"));
    assert!(!shows("429 then 200", "200 … 429"));
}
