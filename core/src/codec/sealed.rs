//! Attachment bytes at rest: a file sealed in segments under the attachment's own key.
//!
//! ```text
//! file    = magic "VGAT" | version 1 | prefix (16 random bytes) | segment*
//! segment = XChaCha20-Poly1305(key, nonce, plaintext ≤ 64 KiB, aad = attachment id) (+16-byte tag)
//! nonce   = prefix | segment index (u32 BE) | last (1 if the final segment, else 0) | 0 0 0
//! ```
//!
//! Every segment but the last holds exactly `SEGMENT` bytes of plaintext, so a reader finds the
//! segments from the file's length alone, and memory stays at one segment whatever the size.
//! The last segment is sealed as last: a truncated file (a whole segment cut off) does not
//! decrypt. A file being received (an upload on the hub, a download on a phone) holds only
//! whole middle segments, so the bytes it holds are a multiple of `SEGMENT` and it resumes
//! after them; a torn tail from a crash is cut off when it resumes.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Plaintext bytes per segment. Transfer chunks are a multiple of it.
pub const SEGMENT: usize = 64 * 1024;
const TAG: usize = 16;
const MAGIC: &[u8; 5] = b"VGAT\x01";
const HEADER: usize = MAGIC.len() + 16;
const SEALED_SEGMENT: u64 = (SEGMENT + TAG) as u64;

/// An attachment's own key (kept in the encrypted store, never in the file).
pub type FileKey = Zeroizing<[u8; 32]>;

pub fn new_key() -> FileKey {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, key.as_mut());
    key
}

fn damaged() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "attachment file damaged or sealed under another key",
    )
}

fn nonce(prefix: &[u8; 16], index: u64, last: bool) -> io::Result<XNonce> {
    let index = u32::try_from(index).map_err(|_| damaged())?;
    let mut n = [0u8; 24];
    n[..16].copy_from_slice(prefix);
    n[16..20].copy_from_slice(&index.to_be_bytes());
    n[20] = u8::from(last);
    Ok(XNonce::from(n))
}

/// The number of plaintext bytes a sealed file of `file_len` bytes holds, if it is complete.
pub fn plaintext_len(file_len: u64) -> Option<u64> {
    let body = file_len.checked_sub(HEADER as u64)?;
    let segments = body.div_ceil(SEALED_SEGMENT).max(1);
    body.checked_sub(segments * TAG as u64)
}

/// Seals one segment on its own (a backend that keeps segments as rows, not in a file):
/// `prefix` is the attachment's, `index` the segment's place, `last` whether it ends the
/// attachment.
pub fn seal_segment(
    key: &FileKey,
    prefix: &[u8; 16],
    id: Uuid,
    index: u64,
    last: bool,
    plaintext: &[u8],
) -> io::Result<Vec<u8>> {
    let mut buffer = Vec::with_capacity(plaintext.len() + TAG);
    buffer.extend_from_slice(plaintext);
    XChaCha20Poly1305::new(key.as_ref().into())
        .encrypt_in_place(&nonce(prefix, index, last)?, id.as_bytes(), &mut buffer)
        .map_err(|_| damaged())?;
    Ok(buffer)
}

/// Opens one segment sealed by `seal_segment`.
pub fn open_segment(
    key: &FileKey,
    prefix: &[u8; 16],
    id: Uuid,
    index: u64,
    last: bool,
    sealed: &[u8],
) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buffer = Zeroizing::new(sealed.to_vec());
    XChaCha20Poly1305::new(key.as_ref().into())
        .decrypt_in_place(&nonce(prefix, index, last)?, id.as_bytes(), &mut *buffer)
        .map_err(|_| damaged())?;
    Ok(buffer)
}

/// A random nonce prefix for a new attachment.
pub fn new_prefix() -> [u8; 16] {
    let mut prefix = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut prefix);
    prefix
}

/// The whole segments a partial file of `file_len` bytes holds.
pub fn whole_segments(file_len: u64) -> u64 {
    file_len.saturating_sub(HEADER as u64) / SEALED_SEGMENT
}

/// Writes a sealed file: bytes in, segments out. With a known total, each segment is sealed as
/// soon as it is full (a partial file then holds whole middle segments); without one, a full
/// segment waits for the next byte to learn whether it is the last.
pub struct SealedWriter<W: Write> {
    out: W,
    cipher: XChaCha20Poly1305,
    prefix: [u8; 16],
    aad: [u8; 16],
    buffer: Zeroizing<Vec<u8>>,
    index: u64,
    total: Option<u64>,
    written: u64,
}

impl<W: Write> SealedWriter<W> {
    /// Starts a new file: writes the header.
    pub fn create(mut out: W, key: &FileKey, id: Uuid, total: Option<u64>) -> io::Result<Self> {
        let mut prefix = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut prefix);
        out.write_all(MAGIC)?;
        out.write_all(&prefix)?;
        Ok(Self::with(out, key, id, prefix, 0, total))
    }

    fn with(
        out: W,
        key: &FileKey,
        id: Uuid,
        prefix: [u8; 16],
        index: u64,
        total: Option<u64>,
    ) -> Self {
        SealedWriter {
            out,
            cipher: XChaCha20Poly1305::new(key.as_ref().into()),
            prefix,
            aad: *id.as_bytes(),
            buffer: Zeroizing::new(Vec::with_capacity(SEGMENT + TAG)),
            index,
            total,
            written: index * SEGMENT as u64,
        }
    }

    /// Plaintext bytes taken so far (sealed or buffered).
    pub fn position(&self) -> u64 {
        self.written
    }

    /// Plaintext bytes sealed into the output so far: what `resume` finds once this writer is
    /// dropped (the bytes of a segment not yet full are not kept).
    pub fn sealed(&self) -> u64 {
        self.index * SEGMENT as u64
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let nonce = nonce(&self.prefix, self.index, last)?;
        self.cipher
            .encrypt_in_place(&nonce, &self.aad, &mut *self.buffer)
            .map_err(|_| damaged())?;
        self.out.write_all(&self.buffer)?;
        self.buffer.clear();
        self.index += 1;
        Ok(())
    }

    /// Takes more plaintext. With a known total, bytes past it are refused.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if let Some(total) = self.total
            && self.written + bytes.len() as u64 > total
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "more bytes than the attachment's size",
            ));
        }
        while !bytes.is_empty() {
            if self.buffer.len() == SEGMENT {
                // More follows: the full segment is not the last.
                self.seal(false)?;
            }
            let take = (SEGMENT - self.buffer.len()).min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            self.written += take as u64;
            bytes = &bytes[take..];
            if self.buffer.len() == SEGMENT && self.total.is_some_and(|t| self.written < t) {
                self.seal(false)?;
            }
        }
        Ok(())
    }

    /// Seals the last segment and returns the output. With a known total, fails unless every
    /// byte arrived.
    pub fn finish(mut self) -> io::Result<W> {
        if self.total.is_some_and(|t| t != self.written) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "fewer bytes than the attachment's size",
            ));
        }
        self.seal(true)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// The output, as it stands (a partial file's whole segments).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}

impl SealedWriter<File> {
    /// Reopens a partial file (whole middle segments of a file of `total` bytes) to append to
    /// it. A torn tail (a segment a crash cut) is cut off. Returns the writer and the plaintext
    /// bytes the file holds: where the transfer resumes.
    pub fn resume(mut file: File, key: &FileKey, id: Uuid, total: u64) -> io::Result<(Self, u64)> {
        let len = file.metadata()?.len();
        let mut header = [0u8; HEADER];
        file.seek(SeekFrom::Start(0))?;
        file.read_exact(&mut header)?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(damaged());
        }
        let prefix: [u8; 16] = header[MAGIC.len()..].try_into().expect("16 bytes");
        let mut segments = (len - HEADER as u64) / SEALED_SEGMENT;
        // A file whose every byte arrived is never resumed; keep one segment short of the end.
        let last_index = total.div_ceil(SEGMENT as u64).max(1) - 1;
        segments = segments.min(last_index);
        file.set_len(HEADER as u64 + segments * SEALED_SEGMENT)?;
        file.seek(SeekFrom::End(0))?;
        let writer = Self::with(file, key, id, prefix, segments, Some(total));
        let at = writer.written;
        Ok((writer, at))
    }
}

/// Reads a sealed file back, one segment in memory at a time.
pub struct SealedReader<R: Read> {
    input: R,
    cipher: XChaCha20Poly1305,
    prefix: [u8; 16],
    aad: [u8; 16],
    segments: u64,
    index: u64,
    plain: Zeroizing<Vec<u8>>,
    at: usize,
}

impl<R: Read> SealedReader<R> {
    /// `file_len`: the sealed file's length in bytes.
    pub fn new(mut input: R, file_len: u64, key: &FileKey, id: Uuid) -> io::Result<Self> {
        plaintext_len(file_len).ok_or_else(damaged)?;
        let mut header = [0u8; HEADER];
        input.read_exact(&mut header)?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(damaged());
        }
        let body = file_len - HEADER as u64;
        Ok(SealedReader {
            input,
            cipher: XChaCha20Poly1305::new(key.as_ref().into()),
            prefix: header[MAGIC.len()..].try_into().expect("16 bytes"),
            aad: *id.as_bytes(),
            segments: body.div_ceil(SEALED_SEGMENT).max(1),
            index: 0,
            plain: Zeroizing::new(Vec::with_capacity(SEGMENT + TAG)),
            at: 0,
        })
    }

    fn next_segment(&mut self) -> io::Result<bool> {
        if self.index == self.segments {
            return Ok(false);
        }
        self.plain.clear();
        self.plain.resize(SEGMENT + TAG, 0);
        let mut filled = 0;
        while filled < self.plain.len() {
            match self.input.read(&mut self.plain[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        self.plain.truncate(filled);
        let last = self.index + 1 == self.segments;
        if filled < TAG || (!last && filled != SEGMENT + TAG) {
            return Err(damaged());
        }
        let nonce = nonce(&self.prefix, self.index, last)?;
        self.cipher
            .decrypt_in_place(&nonce, &self.aad, &mut *self.plain)
            .map_err(|_| damaged())?;
        self.index += 1;
        self.at = 0;
        Ok(true)
    }
}

impl<R: Read> Read for SealedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            if !self.next_segment()? {
                return Ok(0);
            }
        }
        let n = (self.plain.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Opens a sealed file for reading from plaintext byte `offset`, a multiple of `SEGMENT`
/// (where transfer chunks start): the segments before it are skipped, not read.
pub fn open_at(
    path: &Path,
    key: &FileKey,
    id: Uuid,
    offset: u64,
) -> io::Result<SealedReader<io::BufReader<File>>> {
    if !offset.is_multiple_of(SEGMENT as u64) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a read starts at a segment boundary",
        ));
    }
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = SealedReader::new(io::BufReader::new(file.try_clone()?), len, key, id)?;
    let skip = (offset / SEGMENT as u64).min(reader.segments);
    file.seek(SeekFrom::Start(HEADER as u64 + skip * SEALED_SEGMENT))?;
    reader.input = io::BufReader::new(file);
    reader.index = skip;
    Ok(reader)
}

/// Opens a sealed file for reading.
pub fn open(path: &Path, key: &FileKey, id: Uuid) -> io::Result<SealedReader<io::BufReader<File>>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    SealedReader::new(io::BufReader::new(file), len, key, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(len: usize, total: bool) {
        let key = new_key();
        let id = Uuid::new_v4();
        let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let mut w =
            SealedWriter::create(Vec::new(), &key, id, total.then_some(len as u64)).unwrap();
        for part in plain.chunks(10_000) {
            w.write_all(part).unwrap();
        }
        let sealed = w.finish().unwrap();
        assert_eq!(plaintext_len(sealed.len() as u64), Some(len as u64));
        let mut back = Vec::new();
        SealedReader::new(&sealed[..], sealed.len() as u64, &key, id)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, plain);
        // Cut off the last segment: refused, not read short.
        if sealed.len() > HEADER + SEALED_SEGMENT as usize {
            let cut = &sealed[..HEADER + SEALED_SEGMENT as usize];
            let mut out = Vec::new();
            let r = SealedReader::new(cut, cut.len() as u64, &key, id)
                .unwrap()
                .read_to_end(&mut out);
            assert!(r.is_err());
        }
    }

    #[test]
    fn sealed_files_round_trip_at_segment_edges() {
        for len in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            3 * SEGMENT,
            3 * SEGMENT + 7,
        ] {
            roundtrip(len, true);
            roundtrip(len, false);
        }
    }

    #[test]
    fn a_flipped_byte_or_another_key_is_refused() {
        let key = new_key();
        let id = Uuid::new_v4();
        let mut w = SealedWriter::create(Vec::new(), &key, id, None).unwrap();
        w.write_all(&[7u8; 1000]).unwrap();
        let mut sealed = w.finish().unwrap();
        let mut out = Vec::new();
        assert!(
            SealedReader::new(&sealed[..], sealed.len() as u64, &new_key(), id)
                .unwrap()
                .read_to_end(&mut out)
                .is_err()
        );
        sealed[HEADER + 3] ^= 1;
        assert!(
            SealedReader::new(&sealed[..], sealed.len() as u64, &key, id)
                .unwrap()
                .read_to_end(&mut out)
                .is_err()
        );
    }
}
