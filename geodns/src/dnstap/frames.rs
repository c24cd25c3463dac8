//! Frame Streams (the framing of dnstap files): a START control frame
//! naming the content type, one frame per message, a STOP control frame.

use std::io::Write;

/// The content type of dnstap data frames.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

const CONTROL_START: u32 = 2;
const CONTROL_STOP: u32 = 3;
const FIELD_CONTENT_TYPE: u32 = 1;

/// Writes a unidirectional Frame Stream to `out`.
pub struct FrameWriter<W: Write> {
    out: W,
}

impl<W: Write> FrameWriter<W> {
    /// Starts a stream of `CONTENT_TYPE` frames.
    pub fn start(mut out: W) -> std::io::Result<Self> {
        let mut control = Vec::with_capacity(12 + CONTENT_TYPE.len());
        control.extend_from_slice(&CONTROL_START.to_be_bytes());
        control.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        control.extend_from_slice(&length_of(CONTENT_TYPE).to_be_bytes());
        control.extend_from_slice(CONTENT_TYPE);
        write_control(&mut out, &control)?;
        Ok(Self { out })
    }

    /// Writes one data frame.
    pub fn frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.out.write_all(&length_of(payload).to_be_bytes())?;
        self.out.write_all(payload)
    }

    /// Pushes buffered frames out.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Ends the stream and gives back what it was written to.
    pub fn stop(mut self) -> std::io::Result<W> {
        write_control(&mut self.out, &CONTROL_STOP.to_be_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A control frame: an escape (a zero length), its length, its contents.
fn write_control(out: &mut impl Write, control: &[u8]) -> std::io::Result<()> {
    out.write_all(&0u32.to_be_bytes())?;
    out.write_all(&length_of(control).to_be_bytes())?;
    out.write_all(control)
}

fn length_of(bytes: &[u8]) -> u32 {
    // Payloads are DNS messages of at most 64 KiB plus a few fields.
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_start_frames_stop() {
        let mut writer = FrameWriter::start(Vec::new()).unwrap();
        writer.frame(b"abc").unwrap();
        let bytes = writer.stop().unwrap();
        let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 22];
        expected.extend_from_slice(CONTENT_TYPE);
        expected.extend_from_slice(&[0, 0, 0, 3, b'a', b'b', b'c']);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3]);
        assert_eq!(bytes, expected);
    }
}
