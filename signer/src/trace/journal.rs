//! The trace journal: where a batch of trace records becomes durable.
//!
//! A request's record must be on disk before its answer is sent. Committing each batch to
//! SQLite costs several page writes and a sync that sometimes also flushes file-system
//! metadata (measured: ~330 µs a commit, outliers of several ms). The journal instead writes
//! each batch as one frame into a segment file that was filled with zeros when it was created,
//! then calls `fdatasync`: the file's size and block map never change, so the sync writes the
//! frame's own blocks and nothing else (measured ~100 µs, no outliers). SQLite is filled
//! behind it by the indexer (see `index`), and a segment is reused once everything in it is
//! in SQLite.
//!
//! Layout: a directory `<trace_db>.journal/` holding `segment-NNN.log` files of
//! [`SEGMENT_BYTES`] each. A frame starts on a [`BLOCK`] boundary, so a sync never rewrites a
//! block that holds an earlier, acknowledged frame:
//!
//! ```text
//! magic "STJ1" | payload length u32 | seq u64 | first_at u64 | last_at u64 | count u32 | crc32 u32
//! payload: the batch's records, JSON lines | zero padding to the next 4096-byte boundary
//! ```
//!
//! All integers are little-endian; the CRC-32 covers the header before it and the payload.
//! Sequence numbers grow by one per frame across the whole journal. Reading a segment follows
//! its frames from offset 0 while each is intact and has the sequence number after the
//! previous one: a torn frame, or the first leftover frame of the segment's previous use (which
//! always has a smaller number), ends it. Which file a frame is in does not matter; order comes
//! from the numbers.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Size of a segment file.
pub(super) const SEGMENT_BYTES: u64 = 8 << 20;
/// Frames start at multiples of this.
pub(super) const BLOCK: u64 = 4096;
const MAGIC: [u8; 4] = *b"STJ1";
const HEADER: usize = 40;

/// One batch of records as it is in the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Frame {
    /// Position in the journal (1, 2, ...).
    pub(super) seq: u64,
    /// Earliest record time in the batch.
    pub(super) first_at: u64,
    /// Latest record time in the batch.
    pub(super) last_at: u64,
    /// Number of records.
    pub(super) count: u32,
    /// The records, one JSON object per line, each line ending in `\n`.
    pub(super) records: String,
}

/// The journal directory of a trace database.
pub(super) fn directory(trace_db: &Path) -> PathBuf {
    let mut name = trace_db.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// A segment file opened for writing.
#[derive(Debug)]
pub(super) struct Segment {
    file: File,
    /// Where the next frame goes.
    offset: u64,
    /// The last sequence number written into it in its current use (0: none).
    pub(super) last_seq: u64,
}

impl Segment {
    /// Opens an existing segment for reuse: new frames are written from offset 0.
    pub(super) fn reuse(path: &Path) -> io::Result<Self> {
        let file = options().open(path)?;
        if file.metadata()?.len() < SEGMENT_BYTES {
            return Err(io::Error::other(format!(
                "{}: shorter than a segment",
                path.display()
            )));
        }
        Ok(Self {
            file,
            offset: 0,
            last_seq: 0,
        })
    }

    /// Creates `path` as a new segment filled with zeros, on disk (file and directory entry)
    /// before this returns.
    pub(super) fn create(path: &Path) -> io::Result<Self> {
        let mut file = options().create_new(true).open(path)?;
        let zeros = vec![0u8; 1 << 20];
        let mut written = 0;
        while written < SEGMENT_BYTES {
            file.write_all(&zeros)?;
            written += zeros.len() as u64;
        }
        file.sync_all()?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(Self {
            file,
            offset: 0,
            last_seq: 0,
        })
    }

    /// Starts the segment's next use: new frames are written from offset 0 (its frames must
    /// all be stored elsewhere by now).
    pub(super) fn rewind(&mut self) {
        self.offset = 0;
        self.last_seq = 0;
    }

    /// Whether an encoded frame of `len` bytes still fits.
    pub(super) fn fits(&self, len: usize) -> bool {
        self.offset + len as u64 <= SEGMENT_BYTES
    }

    /// Writes an encoded frame (from [`encode`]) and waits until it is on disk. On error
    /// nothing advances: the next frame is written at the same place.
    pub(super) fn append(&mut self, encoded: &[u8], seq: u64) -> io::Result<()> {
        self.file.write_all_at(encoded, self.offset)?;
        self.file.sync_data()?;
        self.offset += encoded.len() as u64;
        self.last_seq = seq;
        Ok(())
    }
}

fn options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// The path of segment number `index` in `dir`.
pub(super) fn segment_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("segment-{index:03}.log"))
}

/// The segment files in `dir`, in name order.
pub(super) fn segments(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("segment-") && name.ends_with(".log") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Encodes a frame into `out` (cleared first), padded to a [`BLOCK`] boundary.
pub(super) fn encode(frame: &Frame, out: &mut Vec<u8>) -> io::Result<()> {
    let len = u32::try_from(frame.records.len())
        .map_err(|_| io::Error::other("trace batch larger than 4 GiB"))?;
    out.clear();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&frame.seq.to_le_bytes());
    out.extend_from_slice(&frame.first_at.to_le_bytes());
    out.extend_from_slice(&frame.last_at.to_le_bytes());
    out.extend_from_slice(&frame.count.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(out);
    crc.update(frame.records.as_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(frame.records.as_bytes());
    out.resize(round_up(out.len() as u64) as usize, 0);
    Ok(())
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// A frame header as read.
struct Header {
    len: u32,
    seq: u64,
    first_at: u64,
    last_at: u64,
    count: u32,
    crc: u32,
}

fn parse_header(bytes: &[u8; HEADER]) -> Option<Header> {
    let u32_at = |i: usize| {
        bytes
            .get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |i: usize| {
        bytes
            .get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if bytes.get(..4) != Some(MAGIC.as_slice()) {
        return None;
    }
    Some(Header {
        len: u32_at(4)?,
        seq: u64_at(8)?,
        first_at: u64_at(16)?,
        last_at: u64_at(24)?,
        count: u32_at(32)?,
        crc: u32_at(36)?,
    })
}

/// What reading one segment found.
#[derive(Debug, Default)]
pub(super) struct SegmentScan {
    /// The intact frames numbered above the `after` given, in order.
    pub(super) frames: Vec<Frame>,
    /// The last sequence number of the segment's chain of intact frames (0: none).
    pub(super) last_seq: u64,
}

/// Where a segment's bytes are read from: its file, or (for inspection and fuzzing) a copy in
/// memory.
pub(super) trait Source {
    /// Its length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl Source for File {
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }
}

impl Source for [u8] {
    fn len(&self) -> io::Result<u64> {
        Ok(<[u8]>::len(self) as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// Reads the chain of intact frames of the segment at `path`, keeping (and reading the records
/// of) those numbered above `after`. Stops at the first frame that is not intact or does not
/// follow its predecessor; never fails on content, only on I/O.
pub(super) fn read_segment(path: &Path, after: u64) -> io::Result<SegmentScan> {
    read_chain(&File::open(path)?, after)
}

/// [`read_segment`] over any [`Source`].
pub(super) fn read_chain<S: Source + ?Sized>(source: &S, after: u64) -> io::Result<SegmentScan> {
    let size = source.len()?;
    let mut scan = SegmentScan::default();
    let mut offset = 0u64;
    let mut header = [0u8; HEADER];
    while offset + HEADER as u64 <= size {
        source.read_at(&mut header, offset)?;
        let Some(h) = parse_header(&header) else {
            break;
        };
        let end = offset + HEADER as u64 + u64::from(h.len);
        if end > size
            || (scan.last_seq != 0 && h.seq != scan.last_seq.wrapping_add(1))
            || h.seq == 0
        {
            break;
        }
        if h.seq > after {
            let mut payload = vec![0u8; h.len as usize];
            source.read_at(&mut payload, offset + HEADER as u64)?;
            let mut crc = crc32fast::Hasher::new();
            if let Some((covered, _)) = header.split_first_chunk::<36>() {
                crc.update(covered);
            }
            crc.update(&payload);
            if crc.finalize() != h.crc {
                break;
            }
            let Ok(records) = String::from_utf8(payload) else {
                break;
            };
            scan.frames.push(Frame {
                seq: h.seq,
                first_at: h.first_at,
                last_at: h.last_at,
                count: h.count,
                records,
            });
        }
        scan.last_seq = h.seq;
        offset = round_up(end);
    }
    Ok(scan)
}

/// The intact frames numbered above `after` in every segment of `dir`, in sequence order.
pub(super) fn read_after(dir: &Path, after: u64) -> io::Result<Vec<Frame>> {
    let mut frames = Vec::new();
    for path in segments(dir)? {
        frames.extend(read_segment(&path, after)?.frames);
    }
    frames.sort_by_key(|f| f.seq);
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, text: &str) -> Frame {
        Frame {
            seq,
            first_at: 100 + seq,
            last_at: 200 + seq,
            count: u32::try_from(text.lines().count()).unwrap(),
            records: text.to_owned(),
        }
    }

    fn write(segment: &mut Segment, frame: &Frame) {
        let mut buf = Vec::new();
        encode(frame, &mut buf).unwrap();
        assert_eq!(buf.len() as u64 % BLOCK, 0);
        segment.append(&buf, frame.seq).unwrap();
    }

    #[test]
    fn frames_read_back_in_order_and_only_above_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 0);
        let mut segment = Segment::create(&path).unwrap();
        let big = "x".repeat(5000) + "\n";
        for seq in 1..=5 {
            let text = if seq == 3 {
                big.clone()
            } else {
                format!("{{\"n\":{seq}}}\n")
            };
            write(&mut segment, &frame(seq, &text));
        }
        let all = read_segment(&path, 0).unwrap();
        assert_eq!(all.last_seq, 5);
        assert_eq!(
            all.frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(all.frames[2].records, big);
        assert_eq!(all.frames[0], frame(1, "{\"n\":1}\n"));
        let later = read_segment(&path, 3).unwrap();
        assert_eq!(
            later.frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            [4, 5]
        );
        assert_eq!(later.last_seq, 5);
    }

    #[test]
    fn a_damaged_frame_ends_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 0);
        let mut segment = Segment::create(&path).unwrap();
        for seq in 1..=3 {
            write(&mut segment, &frame(seq, "{\"a\":1}\n"));
        }
        // Flip one payload byte of frame 2 (at block 1): frames 2 and 3 are not read.
        let file = options().open(&path).unwrap();
        file.write_all_at(b"b", BLOCK + HEADER as u64 + 2).unwrap();
        let scan = read_segment(&path, 0).unwrap();
        assert_eq!(scan.frames.len(), 1);
        assert_eq!(scan.last_seq, 1);
    }

    #[test]
    fn leftovers_of_a_reused_segment_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 0);
        let mut segment = Segment::create(&path).unwrap();
        for seq in 1..=4 {
            write(&mut segment, &frame(seq, "{\"old\":true}\n"));
        }
        drop(segment);
        // Reused: frames 10 and 11 overwrite blocks 0 and 1; old frames 3 and 4 follow.
        let mut segment = Segment::reuse(&path).unwrap();
        write(&mut segment, &frame(10, "{\"new\":1}\n"));
        write(&mut segment, &frame(11, "{\"new\":2}\n"));
        let scan = read_segment(&path, 0).unwrap();
        assert_eq!(
            scan.frames.iter().map(|f| f.seq).collect::<Vec<_>>(),
            [10, 11]
        );
        assert_eq!(scan.last_seq, 11);
    }

    #[test]
    fn frames_from_several_segments_are_merged_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Segment::create(&segment_path(dir.path(), 0)).unwrap();
        let mut b = Segment::create(&segment_path(dir.path(), 1)).unwrap();
        write(&mut b, &frame(1, "1\n"));
        write(&mut b, &frame(2, "2\n"));
        write(&mut a, &frame(3, "3\n"));
        let frames = read_after(dir.path(), 1).unwrap();
        assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), [2, 3]);
        assert!(read_after(&dir.path().join("absent"), 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_new_segment_is_full_size_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 7);
        Segment::create(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), SEGMENT_BYTES);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(Segment::create(&path).is_err(), "never overwrites");
        assert_eq!(segments(dir.path()).unwrap(), vec![path]);
    }
}
