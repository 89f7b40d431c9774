//! The guides are executable: every shell block of `README.md` and `docs/*.md` that a user is
//! meant to run is run here, in order, in a temporary folder, with the built `shaken` first on
//! `PATH` (in place of the install step). A guide that drifts from the code fails CI.
//!
//! The rules a guide follows:
//! - a fenced block whose info string starts with `sh`, `bash` or `shell` is run;
//! - `sh skip` marks a block the runner leaves out: one that installs or builds, needs a real
//!   network or carrier, or runs for minutes (fuzzing, benchmarks). Keep those few;
//! - every fenced block names its language, so a shell block cannot hide as a plain one;
//! - the blocks of one file run as one `bash` script (`set -euo pipefail`), so a variable or a
//!   background service started in one block is there for the next; what a guide starts in the
//!   background is stopped when its script ends.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tempdir;

/// One fenced code block of a Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// The line of its opening fence, 1-based.
    line: usize,
    /// The info string after the fence (`sh`, `sh skip`, `json`, ...).
    info: String,
    /// Its text, with the fence's indentation removed.
    text: String,
}

impl Block {
    /// Whether the block is a shell block.
    fn is_shell(&self) -> bool {
        matches!(
            self.info.split_whitespace().next(),
            Some("sh" | "bash" | "shell")
        )
    }

    /// Whether the runner runs it: a shell block without the `skip` marker.
    fn runs(&self) -> bool {
        self.is_shell() && !self.info.split_whitespace().any(|word| word == "skip")
    }
}

/// The fenced blocks of a Markdown text (backtick fences, possibly indented inside a list).
fn blocks(markdown: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut open: Option<(Block, usize)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let block = Block {
                        line: index + 1,
                        info: info.trim().to_owned(),
                        text: String::new(),
                    };
                    open = Some((block, indent));
                }
            }
            Some((block, fence_indent)) => {
                if trimmed.trim_end() == "```" {
                    if let Some((block, _)) = open.take() {
                        found.push(block);
                    }
                } else {
                    let strip = indent.min(*fence_indent);
                    block.text.push_str(line.get(strip..).unwrap_or(line));
                    block.text.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "a fenced block is never closed");
    found
}

/// The script that runs `blocks` of `file` in order: each block announced on stderr (so a
/// failure names its block), background jobs stopped at the end.
fn script(file: &str, blocks: &[Block]) -> String {
    let mut script = String::from(
        "set -euo pipefail\n\
         trap 'status=$?; jobs -p | xargs -r kill 2>/dev/null; wait; exit $status' EXIT\n",
    );
    for block in blocks.iter().filter(|b| b.runs()) {
        let _ = writeln!(script, "echo '>>> {file}:{}' >&2", block.line);
        script.push_str(&block.text);
    }
    script.push_str("echo '>>> end' >&2\n");
    script
}

/// How a guide's run failed.
#[derive(Debug)]
struct Failure {
    /// `file:line` of the block that was running.
    block: String,
    /// The script's exit status.
    status: Option<i32>,
    /// The end of its standard output and error.
    output: String,
}

/// The last `limit` bytes of `text`, on a character boundary.
fn tail(text: &str, limit: usize) -> &str {
    let mut start = text.len().saturating_sub(limit);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs the runnable blocks of `markdown` (named `file` in messages) as one script in a new
/// temporary folder, with the built `shaken` first on `PATH`, within `timeout`. The script runs
/// in its own process group, which is stopped when it ends or times out.
fn run(file: &str, markdown: &str, timeout: Duration) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;

    let work = tempdir();
    let home = tempdir();
    let script_path = home.path().join("guide.sh");
    std::fs::write(&script_path, script(file, &blocks(markdown))).unwrap();
    let stdout_path = home.path().join("stdout");
    let stderr_path = home.path().join("stderr");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_shaken"));
    let bin_dir = binary.parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg(&script_path)
        .current_dir(work.path())
        .env("PATH", path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("bash runs");
    let group = child.id();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > timeout {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever the guide left running (or the whole script, on a timeout) stops here.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
    if status.is_none() {
        let _ = child.wait();
    }
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let last = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(">>> "))
        .unwrap_or("(before the first block)")
        .to_owned();
    match status {
        Some(status) if status.success() && last == "end" => Ok(()),
        status => Err(Failure {
            block: last,
            status: status.and_then(|s| s.code()),
            output: format!(
                "--- stdout (end) ---\n{}\n--- stderr (end) ---\n{}",
                tail(&stdout, 3000),
                tail(&stderr, 6000)
            ),
        }),
    }
}

/// The repository's root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every guide file: `README.md` and `docs/*.md`, relative to the root.
fn guide_files() -> Vec<String> {
    let mut files = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Runs the guide `file`, failing the test with the failing block and the output's end.
fn run_guide(file: &str) {
    let markdown = std::fs::read_to_string(root().join(file)).unwrap();
    assert!(
        blocks(&markdown).iter().any(Block::runs),
        "{file} has no block to run"
    );
    if let Err(failure) = run(file, &markdown, Duration::from_secs(300)) {
        panic!(
            "the guide {file} fails at the block starting at {} (exit status {:?}):\n{}",
            failure.block, failure.status, failure.output
        );
    }
}

/// The guide files that have blocks to run, each with a test below.
const RUN: &[&str] = &[
    "README.md",
    "docs/guides.md",
    "docs/ca-tools.md",
    "docs/signer.md",
    "docs/verifier.md",
    "docs/passport-cli.md",
    "docs/lab.md",
    "docs/optout.md",
    "docs/lists.md",
    "docs/marketing.md",
    "docs/analyst.md",
    "docs/sip.md",
];

#[test]
fn readme() {
    run_guide("README.md");
}

#[test]
fn guides() {
    run_guide("docs/guides.md");
}

#[test]
fn ca_tools() {
    run_guide("docs/ca-tools.md");
}

#[test]
fn signer() {
    run_guide("docs/signer.md");
}

#[test]
fn verifier() {
    run_guide("docs/verifier.md");
}

#[test]
fn lab() {
    run_guide("docs/lab.md");
}

#[test]
fn optout() {
    run_guide("docs/optout.md");
}

#[test]
fn passport_cli() {
    run_guide("docs/passport-cli.md");
}

#[test]
fn lists() {
    run_guide("docs/lists.md");
}

#[test]
fn marketing() {
    run_guide("docs/marketing.md");
}

#[test]
fn analyst() {
    run_guide("docs/analyst.md");
}

#[test]
fn sip() {
    run_guide("docs/sip.md");
}

/// Every file with a block to run has its test above, every fenced block names its language,
/// and the skipped blocks stay few.
#[test]
fn every_guide_with_commands_is_run() {
    let mut skipped = Vec::new();
    for file in guide_files() {
        let markdown = std::fs::read_to_string(root().join(&file)).unwrap();
        let blocks = blocks(&markdown);
        for block in &blocks {
            assert!(
                !block.info.is_empty(),
                "{file}:{}: a fenced block without a language (write `sh`, `sh skip`, `json`, `text`...)",
                block.line
            );
            if block.is_shell() && !block.runs() {
                skipped.push(format!("{file}:{}", block.line));
            }
        }
        let runs = blocks.iter().any(Block::runs);
        assert_eq!(
            runs,
            RUN.contains(&file.as_str()),
            "{file}: has blocks to run = {runs}, but RUN says otherwise"
        );
    }
    assert!(
        skipped.len() <= 4,
        "too many skipped shell blocks: {skipped:?}"
    );
    // And every file of RUN has its test: its run_guide call is in this file.
    let this_file = include_str!("guides.rs");
    for file in RUN {
        assert!(
            this_file.contains(&format!("run_guide(\"{file}\");")),
            "{file} is in RUN but no test runs it"
        );
    }
}

/// The parser finds fences, indented ones too, and the markers.
#[test]
fn blocks_are_found_with_their_markers() {
    let markdown = "text\n```sh\necho one\n```\n- item\n\n  ```sh skip\n  cargo install --path .\n  ```\n```json\n{}\n```\n";
    let found = blocks(markdown);
    assert_eq!(found.len(), 3);
    assert_eq!(found[0].line, 2);
    assert_eq!(found[0].text, "echo one\n");
    assert!(found[0].runs());
    assert_eq!(found[1].info, "sh skip");
    assert_eq!(found[1].text, "cargo install --path .\n");
    assert!(found[1].is_shell() && !found[1].runs());
    assert!(!found[2].is_shell() && !found[2].runs());
}

/// A deliberately broken block fails the runner, which names that block; the blocks before it
/// ran, in order, in one shell (a variable carries over); a skipped block is not run.
#[test]
fn a_broken_block_fails_the_runner() {
    let good = "# Guide\n\n```sh\nGREETING=hello\nshaken --version\n```\n\n```sh skip\nexit 7\n```\n\n```sh\ntest \"$GREETING\" = hello\necho \"$GREETING\" > said.txt\n```\n";
    assert!(run("good.md", good, Duration::from_secs(60)).is_ok());

    let broken =
        format!("{good}\n```sh\nshaken ca no-such-command\n```\n\n```sh\necho never\n```\n");
    let failure = run("broken.md", &broken, Duration::from_secs(60)).unwrap_err();
    assert_eq!(failure.block, "broken.md:17", "{failure:?}");
    assert_eq!(failure.status, Some(2), "{failure:?}");
    assert!(failure.output.contains("no-such-command"), "{failure:?}");
}

/// A block that never ends is stopped at the timeout, with everything it started.
#[test]
fn a_hanging_block_is_stopped() {
    let hanging = "```sh\nsleep 300 &\nsleep 300\n```\n";
    let started = Instant::now();
    let failure = run("hanging.md", hanging, Duration::from_secs(2)).unwrap_err();
    assert_eq!(failure.block, "hanging.md:1");
    assert_eq!(failure.status, None);
    assert!(started.elapsed() < Duration::from_secs(60));
}
