//! Writing event lines to a file or stdout from a background thread, so that a slow disk never
//! slows a verification. A full queue (65,536 lines) drops the line and counts it.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use super::EventTarget;

/// The file writer: a queue in front of a thread.
#[derive(Debug)]
pub struct FileWriter {
    sender: SyncSender<String>,
    dropped: AtomicU64,
}

fn write_loop(mut out: Box<dyn Write + Send>, receiver: Receiver<String>) {
    while let Ok(line) = receiver.recv() {
        let _ = writeln!(out, "{line}");
        while let Ok(line) = receiver.try_recv() {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}

impl FileWriter {
    /// Opens the target (a file is created if missing and appended to) and starts the writer.
    pub fn open(target: &EventTarget) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            EventTarget::Stdout => Box::new(std::io::BufWriter::new(std::io::stdout())),
            EventTarget::File(path) => Box::new(std::io::BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )),
        };
        let (sender, receiver) = sync_channel(65_536);
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || write_loop(out, receiver))?;
        Ok(Self {
            sender,
            dropped: AtomicU64::new(0),
        })
    }

    /// Lines dropped because the writer fell behind or stopped.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues one line (never blocks; counts a drop if the writer is behind).
    pub fn emit(&self, line: String) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.sender.try_send(line)
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
