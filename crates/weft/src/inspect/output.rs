//! Where a command's output goes: kept whole for [`super::output`], or streamed to a writer in
//! blocks as it is produced, so that `runs show --json` of a run of 100,000 steps never holds
//! its 150 MB of JSON at once.

use std::io;

/// How much output is gathered before it is handed to the writer.
const BLOCK: usize = 64 * 1024;

/// A command's output, written with `say!` (as text) or [`super::render::json`] (as bytes).
pub(crate) struct Output<'a> {
    pending: Vec<u8>,
    /// Where full blocks go; `None` keeps everything in `pending`.
    sink: Option<&'a mut dyn io::Write>,
    /// The first error the sink returned: nothing more is written after it.
    failed: Option<io::Error>,
}

impl<'a> Output<'a> {
    /// Output kept whole, read back with [`Output::into_string`].
    pub(crate) fn kept() -> Self {
        Self {
            pending: Vec::new(),
            sink: None,
            failed: None,
        }
    }

    /// Output handed to `sink` in blocks of [`BLOCK`] bytes; [`Output::finish`] writes the
    /// rest.
    pub(crate) fn streamed(sink: &'a mut dyn io::Write) -> Self {
        Self {
            pending: Vec::with_capacity(BLOCK),
            sink: Some(sink),
            failed: None,
        }
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(error) = &self.failed {
            return Err(io::Error::new(error.kind(), error.to_string()));
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= BLOCK {
            self.hand_over()?;
        }
        Ok(())
    }

    fn hand_over(&mut self) -> io::Result<()> {
        let Some(sink) = self.sink.as_mut() else {
            return Ok(());
        };
        let written = sink.write_all(&self.pending);
        self.pending.clear();
        if let Err(error) = written {
            let kind = error.kind();
            let message = error.to_string();
            self.failed = Some(error);
            return Err(io::Error::new(kind, message));
        }
        Ok(())
    }

    /// Writes what is pending to the sink and flushes it: the first error the sink returned.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if self.failed.is_none() {
            let _ = self.hand_over();
        }
        if let Some(error) = self.failed.take() {
            return Err(error);
        }
        match self.sink.as_mut() {
            Some(sink) => sink.flush(),
            None => Ok(()),
        }
    }

    /// Everything written to output kept whole.
    pub(crate) fn into_string(self) -> String {
        debug_assert!(self.sink.is_none(), "streamed output was handed over");
        // Only `str`s and serde_json's output (UTF-8 in whole characters) are ever appended.
        String::from_utf8(self.pending)
            .unwrap_or_else(|bytes| String::from_utf8_lossy(bytes.as_bytes()).into_owned())
    }
}

impl std::fmt::Write for Output<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        // A reader that went away is reported once, by `finish`; the command goes on quietly.
        let _ = self.append(text.as_bytes());
        Ok(())
    }
}

impl io::Write for Output<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.append(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn streamed_output_reaches_the_sink_in_blocks_and_whole() {
        let mut sink = Vec::new();
        let mut out = Output::streamed(&mut sink);
        let line = "x".repeat(1000);
        for _ in 0..200 {
            writeln!(out, "{line}").unwrap();
        }
        // Blocks were handed over before the end, not all at once.
        let handed = out.pending.len();
        assert!(handed < BLOCK, "{handed} bytes still pending");
        out.finish().unwrap();
        assert_eq!(sink.len(), 200 * 1001);
    }

    #[test]
    fn a_failing_sink_is_reported_once_and_written_no_more() {
        struct Gone(usize);
        impl io::Write for Gone {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                self.0 += 1;
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut sink = Gone(0);
        let mut out = Output::streamed(&mut sink);
        let block = "y".repeat(BLOCK);
        writeln!(out, "{block}").unwrap();
        writeln!(out, "{block}").unwrap();
        assert!(io::Write::write_all(&mut out, b"more").is_err());
        let error = out.finish().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(sink.0, 1, "one attempt, then nothing");
    }

    #[test]
    fn kept_output_is_the_text_written() {
        let mut out = Output::kept();
        writeln!(out, "a {}", 1).unwrap();
        io::Write::write_all(&mut out, "é\n".as_bytes()).unwrap();
        assert_eq!(out.into_string(), "a 1\né\n");
    }
}
