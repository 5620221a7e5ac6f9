//! Writing results: JSON lines to stdout, notes to stderr.
//!
//! Nothing here panics on a closed stream (`println!` would): a write to a closed stdout is
//! an `io::ErrorKind::BrokenPipe` error, which the exit mapping treats as success.

use std::io::{self, BufWriter, Stdout, Write};

use crate::json::Json;

/// Buffered stdout that prints one JSON document per line (indented when `pretty`).
pub struct Out {
    stdout: BufWriter<Stdout>,
    pretty: bool,
}

impl Out {
    /// Stdout, compact or `pretty`.
    pub fn new(pretty: bool) -> Out {
        Out {
            stdout: BufWriter::new(io::stdout()),
            pretty,
        }
    }

    /// Writes `json` and a newline (buffered; see [`Out::flush`]).
    pub fn json(&mut self, json: &Json) -> io::Result<()> {
        self.line(&json.to_text(self.pretty))
    }

    /// Writes `text` and a newline (buffered).
    pub fn line(&mut self, text: &str) -> io::Result<()> {
        self.stdout.write_all(text.as_bytes())?;
        self.stdout.write_all(b"\n")
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }
}

/// Prints a note to stderr; a failure to write it is ignored (there is nowhere to report it).
pub fn note(text: &str) {
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}
