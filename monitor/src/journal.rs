//! The event journal: where an accepted body becomes durable before its answer.
//!
//! Inserting a body's events into SQLite's five indexes costs far more than writing them
//! once, in order, to a file. So ingest appends each body's accepted events as one frame to
//! the journal (one `write(2)`; with durability `"power"` followed by `fdatasync`) and answers;
//! the indexer ([`crate::indexer`]) fills SQLite behind it in large transactions, each storing
//! the sequence number of the last frame it holds (the checkpoint). On start, the frames past
//! the checkpoint are indexed before the windows are rebuilt, so nothing acknowledged is lost.
//!
//! Layout: a folder `journal/` in the data folder holding segment files named after the
//! sequence number of their first frame (`00000000000000000001.log`, 20 digits, so name order
//! is sequence order). A segment is closed once it passes [`SEGMENT_BYTES`] and deleted once
//! every frame in it is indexed ([`remove_indexed`]), so the journal's size is bounded by the
//! indexer's backlog plus one segment. A frame:
//!
//! ```text
//! magic "MEJ1" | payload length u32 | seq u64 | crc32 u32 (of the 16 bytes before it and the payload)
//! payload: one record a line: marks ("-" or detector names joined by ",") SP late ("0"|"1") SP the line as received
//! ```
//!
//! Integers are little-endian. Reading follows a segment's frames while each is whole, has a
//! good CRC and the sequence number after the previous one; a torn frame (a write cut short
//! by `kill -9` or a power loss) ends the segment and is cut off when the writer opens it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::config::Durability;
use crate::store::StoreError;

/// A segment is closed (a new one started) once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// The journal's folder inside the data folder.
pub const FOLDER: &str = "journal";
/// The largest payload a frame may carry (a body is capped well below it).
pub const MAX_PAYLOAD: usize = 1 << 30;
const MAGIC: [u8; 4] = *b"MEJ1";
const HEADER: usize = 20;

/// One frame read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its sequence number (1, 2, ...).
    pub seq: u64,
    /// Its records (see the module documentation), valid UTF-8.
    pub payload: String,
}

fn journal_error(path: &Path, error: &io::Error) -> StoreError {
    StoreError::Journal {
        path: path.to_owned(),
        detail: error.to_string(),
    }
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

/// The segments of `dir` as `(first sequence number, path)`, in order; files of other names
/// are ignored.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(journal_error(dir, &e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| journal_error(dir, &e))?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .filter(|n| n.len() == 20)
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            found.push((first, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Encodes a frame into `out` (cleared first).
pub fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) -> Result<(), StoreError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|_| payload.len() <= MAX_PAYLOAD)
        .ok_or(StoreError::FrameTooLarge(payload.len()))?;
    out.clear();
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(out);
    crc.update(payload);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Where a segment's bytes are read from: its file, or (for fuzzing) a copy in memory.
pub trait ReadAt {
    /// Fills `buf` from `offset`, or fails.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// The chain of whole frames at the start of a segment's bytes (what crash recovery reads),
/// stopping at the first that is not whole or does not follow its predecessor.
pub fn frames_in(bytes: &[u8]) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut offset = 0;
    while let Ok(Some((frame, next))) = read_frame(bytes, bytes.len() as u64, offset) {
        if frames.last().is_some_and(|last| frame.seq != last.seq + 1) {
            break;
        }
        frames.push(frame);
        offset = next;
    }
    frames
}

/// Reads the frame at `offset` of a segment of `size` bytes: `Some((frame, next offset))`
/// when a whole frame with a good CRC and valid UTF-8 is there, `None` otherwise.
pub fn read_frame<S: ReadAt + ?Sized>(
    source: &S,
    size: u64,
    offset: u64,
) -> io::Result<Option<(Frame, u64)>> {
    let mut header = [0u8; HEADER];
    if offset.saturating_add(HEADER as u64) > size {
        return Ok(None);
    }
    source.read_exact_at(&mut header, offset)?;
    let (covered, crc_bytes) = header.split_at(16);
    let field = |range: std::ops::Range<usize>| covered.get(range).unwrap_or_default();
    if field(0..4) != MAGIC {
        return Ok(None);
    }
    let len = field(4..8)
        .try_into()
        .map(u32::from_le_bytes)
        .unwrap_or(u32::MAX) as usize;
    let seq = field(8..16).try_into().map(u64::from_le_bytes).unwrap_or(0);
    let crc = crc_bytes.try_into().map(u32::from_le_bytes).unwrap_or(0);
    let end = offset.saturating_add((HEADER + len) as u64);
    if len > MAX_PAYLOAD || end > size || seq == 0 {
        return Ok(None);
    }
    let mut payload = vec![0u8; len];
    source.read_exact_at(&mut payload, offset + HEADER as u64)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(covered);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Ok(None);
    }
    Ok(String::from_utf8(payload)
        .ok()
        .map(|payload| (Frame { seq, payload }, end)))
}

/// The chain of whole frames of one segment: `(last sequence number or 0, end offset)`.
fn scan_end(file: &File, path: &Path) -> Result<(u64, u64), StoreError> {
    let size = file.metadata().map_err(|e| journal_error(path, &e))?.len();
    let mut offset = 0;
    let mut last = 0;
    while let Some((frame, next)) =
        read_frame(file, size, offset).map_err(|e| journal_error(path, &e))?
    {
        if last != 0 && frame.seq != last + 1 {
            break;
        }
        last = frame.seq;
        offset = next;
    }
    Ok((last, offset))
}

fn open_segment(path: &Path, create: bool) -> Result<File, StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(create);
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| journal_error(path, &e))
}

/// Appends frames; one per process, behind the ingest lock.
#[derive(Debug)]
pub struct JournalWriter {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    offset: u64,
    next_seq: u64,
    sync: bool,
    buffer: Vec<u8>,
    segment_bytes: u64,
}

impl JournalWriter {
    /// Opens the journal in `dir` (created 0700 when missing) for appending after its last
    /// whole frame, cutting off a torn one. `indexed` is the store's checkpoint: numbering
    /// goes on after it even when the journal is empty.
    pub fn open(dir: &Path, durability: Durability, indexed: u64) -> Result<Self, StoreError> {
        crate::store::create_folder(dir)?;
        let sync = durability == Durability::Power;
        let found = segments(dir)?;
        let (path, file, offset, next_seq) = match found.last() {
            Some((first, path)) => {
                let file = open_segment(path, false)?;
                let (last, end) = scan_end(&file, path)?;
                file.set_len(end).map_err(|e| journal_error(path, &e))?;
                let next = if last == 0 { *first } else { last + 1 };
                (path.clone(), file, end, next.max(indexed + 1))
            }
            None => {
                let path = dir.join(segment_name(indexed + 1));
                let file = open_segment(&path, true)?;
                (path, file, 0, indexed + 1)
            }
        };
        let mut writer = Self {
            dir: dir.to_owned(),
            path,
            file,
            offset,
            next_seq,
            sync,
            buffer: Vec::new(),
            segment_bytes: SEGMENT_BYTES,
        };
        // A segment named after a number below the next one to write cannot take it when
        // it is empty (numbering jumped past it with the checkpoint): start a fresh one.
        if writer.offset == 0 && !writer.path.ends_with(segment_name(writer.next_seq)) {
            writer.rotate()?;
        }
        if sync {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| journal_error(dir, &e))?;
        }
        Ok(writer)
    }

    /// The sequence number of the last frame written (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    fn rotate(&mut self) -> Result<(), StoreError> {
        let path = self.dir.join(segment_name(self.next_seq));
        let file = open_segment(&path, true)?;
        file.set_len(0).map_err(|e| journal_error(&path, &e))?;
        if self.sync {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| journal_error(&self.dir, &e))?;
        }
        self.path = path;
        self.file = file;
        self.offset = 0;
        Ok(())
    }

    /// Writes `payload` as the next frame and returns its sequence number. When this returns
    /// `Ok` the frame is in the operating system (and, with durability `"power"`, on disk);
    /// on error nothing advances and the next frame overwrites whatever was partly written.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, StoreError> {
        if self.offset > 0 && self.offset + (HEADER + payload.len()) as u64 > self.segment_bytes {
            self.rotate()?;
        }
        let seq = self.next_seq;
        let mut buffer = std::mem::take(&mut self.buffer);
        encode(seq, payload, &mut buffer)?;
        let written = self.file.write_all_at(&buffer, self.offset).and_then(|()| {
            if self.sync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        let len = buffer.len() as u64;
        // Keep the buffer's capacity for the next body, unless one huge body inflated it.
        if buffer.capacity() <= 64 << 20 {
            self.buffer = buffer;
        }
        written.map_err(|e| journal_error(&self.path, &e))?;
        self.offset += len;
        self.next_seq += 1;
        Ok(seq)
    }
}

/// Reads frames in sequence order, across segments, from a given number on.
#[derive(Debug)]
pub struct JournalReader {
    dir: PathBuf,
    current: Option<(PathBuf, File, u64)>,
    next_seq: u64,
}

impl JournalReader {
    /// A reader of the frames numbered above `after` in `dir`.
    pub fn new(dir: &Path, after: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            current: None,
            next_seq: after + 1,
        }
    }

    /// The next frame's number.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Opens the segment that holds frame `next_seq` and positions on it.
    fn locate(&mut self) -> Result<bool, StoreError> {
        let found = segments(&self.dir)?;
        let Some((_, path)) = found
            .iter()
            .rev()
            .find(|(first, _)| *first <= self.next_seq)
        else {
            return Ok(false);
        };
        let file = File::open(path).map_err(|e| journal_error(path, &e))?;
        let size = file.metadata().map_err(|e| journal_error(path, &e))?.len();
        let mut offset = 0;
        while let Some((frame, next)) =
            read_frame(&file, size, offset).map_err(|e| journal_error(path, &e))?
        {
            if frame.seq >= self.next_seq {
                break;
            }
            offset = next;
        }
        self.current = Some((path.clone(), file, offset));
        Ok(true)
    }

    fn read_here(&mut self) -> Result<Option<Frame>, StoreError> {
        let Some((path, file, offset)) = &mut self.current else {
            return Ok(None);
        };
        let size = file.metadata().map_err(|e| journal_error(path, &e))?.len();
        match read_frame(file, size, *offset).map_err(|e| journal_error(path, &e))? {
            Some((frame, next)) if frame.seq == self.next_seq => {
                *offset = next;
                self.next_seq += 1;
                Ok(Some(frame))
            }
            _ => Ok(None),
        }
    }

    /// The next frame if it is numbered at most `upto` and whole on disk; `None` otherwise.
    /// A frame the writer reported written (`upto`) that cannot be found is an error: the
    /// journal lost it.
    pub fn next(&mut self, upto: u64) -> Result<Option<Frame>, StoreError> {
        if self.next_seq > upto {
            return Ok(None);
        }
        if let Some(frame) = self.read_here()? {
            return Ok(Some(frame));
        }
        // The frame is in a later segment (the writer rotated), or nothing is open yet.
        if self.locate()? {
            if let Some(frame) = self.read_here()? {
                return Ok(Some(frame));
            }
        }
        Err(StoreError::JournalGap {
            dir: self.dir.clone(),
            seq: self.next_seq,
        })
    }
}

/// Deletes the segments of `dir` whose frames are all numbered at most `indexed` (never the
/// newest segment, which the writer appends to). Returns how many were deleted.
pub fn remove_indexed(dir: &Path, indexed: u64) -> Result<usize, StoreError> {
    let found = segments(dir)?;
    let mut removed = 0;
    for pair in found.windows(2) {
        if let [(_, path), (next_first, _)] = pair {
            if *next_first <= indexed + 1 {
                std::fs::remove_file(path).map_err(|e| journal_error(path, &e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The bytes the journal's segments take on disk.
pub fn size_bytes(dir: &Path) -> u64 {
    segments(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|(_, path)| std::fs::metadata(path).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    fn read_all(dir: &Path, after: u64, upto: u64) -> Vec<Frame> {
        let mut reader = JournalReader::new(dir, after);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next(upto).unwrap() {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn frames_come_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = JournalWriter::open(dir.path(), Durability::Process, 0).unwrap();
        assert_eq!(writer.last_seq(), 0);
        for n in 1..=3 {
            assert_eq!(writer.append(format!("r{n}\n").as_bytes()).unwrap(), n);
        }
        drop(writer);
        let mut writer = JournalWriter::open(dir.path(), Durability::Power, 0).unwrap();
        assert_eq!(writer.append(b"r4\n").unwrap(), 4);
        let frames = read_all(dir.path(), 1, 4);
        assert_eq!(
            frames
                .iter()
                .map(|f| f.payload.as_str())
                .collect::<Vec<_>>(),
            ["r2\n", "r3\n", "r4\n"]
        );
        // Not past what the writer reported.
        assert_eq!(read_all(dir.path(), 0, 2).len(), 2);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = JournalWriter::open(dir.path(), Durability::Process, 0).unwrap();
        writer.append(b"one\n").unwrap();
        writer.append(b"two\n").unwrap();
        let path = writer.path.clone();
        drop(writer);
        // Cut the second frame short, as a kill during its write would.
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 2).unwrap();
        let mut writer = JournalWriter::open(dir.path(), Durability::Process, 0).unwrap();
        assert_eq!(writer.last_seq(), 1);
        assert_eq!(writer.append(b"again\n").unwrap(), 2);
        let frames = read_all(dir.path(), 0, 2);
        assert_eq!(frames[1].payload, "again\n");
        // A damaged byte ends the chain too.
        file.write_all_at(b"X", 22).unwrap();
        assert!(matches!(
            JournalReader::new(dir.path(), 0).next(2),
            Err(StoreError::JournalGap { seq: 1, .. })
        ));
    }

    #[test]
    fn frames_in_memory_read_like_frames_on_disk() {
        let mut bytes = Vec::new();
        let mut frame = Vec::new();
        for (seq, text) in [(4, "a\n"), (5, "b\n"), (7, "c\n")] {
            encode(seq, text.as_bytes(), &mut frame).unwrap();
            bytes.extend_from_slice(&frame);
        }
        let frames = frames_in(&bytes);
        assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), [4, 5]);
        assert!(frames_in(&bytes[..bytes.len() / 2]).len() < 2);
        assert!(frames_in(b"MEJ1\xff\xff\xff\xff").is_empty());
    }

    #[test]
    fn segments_rotate_and_indexed_ones_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = JournalWriter::open(dir.path(), Durability::Process, 0).unwrap();
        writer.segment_bytes = 1000;
        let big = vec![b'x'; 500];
        for _ in 0..5 {
            writer.append(&big).unwrap();
        }
        // A frame plus its header is more than half a segment: one frame per segment.
        let names: Vec<u64> = segments(dir.path()).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(names, [1, 2, 3, 4, 5]);
        assert_eq!(read_all(dir.path(), 0, 5).len(), 5);
        assert_eq!(remove_indexed(dir.path(), 3).unwrap(), 3);
        let names: Vec<u64> = segments(dir.path()).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(names, [4, 5]);
        assert_eq!(read_all(dir.path(), 3, 5).len(), 2);
        // Never the newest.
        assert_eq!(remove_indexed(dir.path(), 5).unwrap(), 1);
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
        // Numbering goes on after the checkpoint even when the journal is emptied.
        drop(writer);
        std::fs::remove_dir_all(dir.path()).unwrap();
        let mut writer = JournalWriter::open(dir.path(), Durability::Process, 9).unwrap();
        assert_eq!(writer.append(b"x\n").unwrap(), 10);
        assert_eq!(read_all(dir.path(), 9, 10).len(), 1);
    }
}
