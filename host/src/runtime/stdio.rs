//! A plugin's stdout and stderr go to the gateway's log, line by line,
//! tagged with the plugin's name: a Python traceback or a JavaScript
//! `console.error` is the first place a plugin author looks. Lines count
//! against the plugin's log budget, like the `log` capability's.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::budget::{MAX_LOG_LINE as MAX_LINE, PluginBudget};

/// Which stream.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// stdout: logged at info.
    Stdout,
    /// stderr: logged at warn.
    Stderr,
}

/// A plugin output stream that writes to the log.
pub struct LogOutput {
    budget: Arc<PluginBudget>,
    stream: Stream,
}

impl LogOutput {
    /// Output of the plugin of `budget` on `stream`.
    pub fn new(budget: Arc<PluginBudget>, stream: Stream) -> Self {
        LogOutput { budget, stream }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    /// Written in the calling thread, at once: the default adapter hands
    /// each write to a task of its own and waits for it, about 25 µs a
    /// `println!`, which let a plugin's 10,000 lines take most of a hook's
    /// deadline. Writing a line to the log never blocks.
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(SyncLines(self.writer()))
    }
}

impl LogOutput {
    fn writer(&self) -> LineWriter {
        LineWriter {
            budget: self.budget.clone(),
            stream: self.stream,
            pending: Vec::new(),
        }
    }
}

/// [`LineWriter`] as a WASI output stream that is always ready.
struct SyncLines(LineWriter);

#[async_trait::async_trait]
impl wasmtime_wasi::p2::OutputStream for SyncLines {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        self.0.pending.extend_from_slice(&bytes);
        self.0.drain_lines();
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for SyncLines {
    async fn ready(&mut self) {}
}

impl Drop for SyncLines {
    /// A last line without its newline is still logged.
    fn drop(&mut self) {
        if !self.0.pending.is_empty() {
            let line = std::mem::take(&mut self.0.pending);
            self.0.emit(&line);
        }
    }
}

struct LineWriter {
    budget: Arc<PluginBudget>,
    stream: Stream,
    pending: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        if !self.budget.admit_log(line.len()) {
            return;
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let plugin = &**self.budget.plugin();
        match self.stream {
            Stream::Stdout => {
                tracing::info!(target: "weir::plugin", plugin, stream = "stdout", "{text}")
            }
            Stream::Stderr => {
                tracing::warn!(target: "weir::plugin", plugin, stream = "stderr", "{text}")
            }
        }
    }

    fn drain_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            self.emit(&line);
        }
        if self.pending.len() > MAX_LINE {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        self.drain_lines();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
        Poll::Ready(Ok(()))
    }
}
