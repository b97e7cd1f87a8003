//! Writes the deterministic tar once, teeing it into a SHA-256 and every requested compressor.
//!
//! Determinism: entries in [`crate::Scan`] order (raw path bytes), GNU headers with the fixed mtime,
//! uid/gid 0, empty user/group names, modes 0644/0755 (symlinks 0777, as git archive writes them),
//! long names through GNU `././@LongLink`; zstd single-threaded at [`crate::ZSTD_LEVEL`] with a
//! checksum; gzip at [`crate::GZIP_LEVEL`] with no file name, mtime 0 and OS byte 255. Each
//! compressor runs on its own thread (one per format). Outputs are written to temporary names and
//! renamed into place once complete; no fsync (the container's disk is ephemeral and the archive is
//! uploaded next; an fsync cost ~100 ms per file on a busy disk, more than packaging itself).
//!
//! Each kept file is read once: files up to [`IN_MEMORY_MAX`] are read whole (and redacted in
//! memory); larger ones are streamed, and only when secrets must be redacted AND one is found is a
//! large file read a second time (the tar header needs the redacted size before the content).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use crate::walk::{EntryKind, KeptEntry, Scan};
use crate::{display_path, ArchiveInfo, Format, PackageError, PackageOptions, REDACTION_MARKER};

/// Files up to this size are read into memory whole.
pub const IN_MEMORY_MAX: u64 = 8 * 1024 * 1024;

/// What was written, entry by entry (aligned with [`Scan::entries`]) and in total.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub(crate) tar_bytes: u64,
    pub(crate) tar_sha256: String,
    pub(crate) archives: Vec<ArchiveInfo>,
    /// Display paths of files in which a secret was replaced.
    pub(crate) redacted: Vec<String>,
    /// Per kept entry: archived size and SHA-256 (files only), and whether it was redacted.
    pub(crate) digests: Vec<(u64, Option<String>, bool)>,
}

/// Size of the tar-stream buffers handed to the compressor threads.
const CHUNK: usize = 256 * 1024;

/// One compressor on its own thread, fed whole buffers of the tar stream (so zstd and gzip run in
/// parallel; each is single-threaded, which keeps its output deterministic). The thread hashes
/// what it writes and returns the archive's size and SHA-256.
struct Lane {
    tmp: PathBuf,
    tx: Option<SyncSender<Arc<Vec<u8>>>>,
    handle: Option<JoinHandle<io::Result<(u64, String)>>>,
}

impl Lane {
    fn spawn(format: Format, tmp: PathBuf, file: File) -> io::Result<Lane> {
        let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(4);
        let handle = thread::Builder::new()
            .name(format!("genrun-{}", format.as_str()))
            .spawn(move || -> io::Result<(u64, String)> {
                let w = HashWriter {
                    inner: BufWriter::with_capacity(CHUNK, file),
                    hash: Sha256::new(),
                    n: 0,
                };
                let w = match format {
                    Format::TarZst => {
                        let mut enc = zstd::stream::write::Encoder::new(w, crate::ZSTD_LEVEL)?;
                        enc.include_checksum(true)?;
                        for c in rx {
                            enc.write_all(&c)?;
                        }
                        enc.finish()?
                    }
                    Format::TarGz => {
                        let mut enc = GzBuilder::new()
                            .operating_system(255)
                            .write(w, Compression::new(crate::GZIP_LEVEL));
                        for c in rx {
                            enc.write_all(&c)?;
                        }
                        enc.finish()?
                    }
                };
                let HashWriter { inner, hash, n } = w;
                inner.into_inner().map_err(|e| e.into_error())?;
                Ok((n, hex::encode(hash.finalize())))
            })?;
        Ok(Lane {
            tmp,
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Closes the feed and waits for the thread.
    fn join(&mut self) -> io::Result<(u64, String)> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("compressor thread panicked"))),
            None => Err(io::Error::other("compressor already stopped")),
        }
    }
}

/// Counts and hashes what passes through to the archive file.
struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    n: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The tee under the tar builder: hashes the tar stream and ships it to every lane. Remembers which
/// output failed so the error names it.
struct Sink {
    hash: Sha256,
    bytes: u64,
    buf: Vec<u8>,
    lanes: Vec<Lane>,
    failed: Option<PathBuf>,
}

impl Sink {
    fn ship(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Arc::new(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        for lane in &mut self.lanes {
            let sent = lane.tx.as_ref().map(|tx| tx.send(chunk.clone()).is_ok());
            if sent != Some(true) {
                // The thread stopped: its own error says why.
                self.failed = Some(lane.tmp.clone());
                return Err(match lane.join() {
                    Err(e) => e,
                    Ok(_) => io::Error::other("compressor stopped early"),
                });
            }
        }
        Ok(())
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash.update(buf);
        self.bytes += buf.len() as u64;
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= CHUNK {
            self.ship()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        for lane in &mut self.lanes {
            if lane.handle.is_some() {
                let _ = lane.join();
            }
        }
    }
}

/// Temporary output files, removed unless committed.
struct Pending(Vec<(PathBuf, PathBuf)>);

impl Drop for Pending {
    fn drop(&mut self) {
        for (tmp, _) in &self.0 {
            let _ = fs::remove_file(tmp);
        }
    }
}

pub(crate) fn write(
    opts: &PackageOptions,
    scan: &Scan,
    formats: &[Format],
) -> Result<Written, PackageError> {
    let out = &opts.out_dir;
    fs::create_dir_all(out).map_err(|e| PackageError::io(out, e))?;
    let mut pending = Pending(Vec::new());
    let mut sink = Sink {
        hash: Sha256::new(),
        bytes: 0,
        buf: Vec::with_capacity(CHUNK),
        lanes: Vec::new(),
        failed: None,
    };
    for f in formats {
        let fin = out.join(f.file_name());
        let tmp = out.join(format!(".{}.tmp{}", f.file_name(), std::process::id()));
        let file = File::create(&tmp).map_err(|e| PackageError::io(&tmp, e))?;
        pending.0.push((tmp.clone(), fin));
        let lane = Lane::spawn(*f, tmp.clone(), file).map_err(|e| PackageError::io(&tmp, e))?;
        sink.lanes.push(lane);
    }

    let secrets = Secrets::new(&opts.redact);
    let mut builder = tar::Builder::new(sink);
    let mut digests = Vec::with_capacity(scan.entries.len());
    let mut redacted = Vec::new();
    for e in &scan.entries {
        let abs = scan.root.join(e.rel_path());
        let d = append(&mut builder, e, &abs, opts.mtime, &secrets).map_err(|err| match err {
            AppendError::Read(source) => PackageError::io(&abs, source),
            AppendError::Write(source) => {
                let p = builder
                    .get_mut()
                    .failed
                    .clone()
                    .unwrap_or_else(|| out.clone());
                PackageError::io(&p, source)
            }
        })?;
        if d.2 {
            redacted.push(display_path(&e.rel).0);
        }
        digests.push(d);
    }
    builder.finish().map_err(|e| {
        let p = builder
            .get_mut()
            .failed
            .clone()
            .unwrap_or_else(|| out.clone());
        PackageError::io(&p, e)
    })?;
    let mut sink = builder.into_inner().map_err(|e| PackageError::io(out, e))?;
    sink.ship()
        .map_err(|e| PackageError::io(sink.failed.as_deref().unwrap_or(out), e))?;
    let tar_sha256 = hex::encode(std::mem::take(&mut sink.hash).finalize());
    let tar_bytes = sink.bytes;
    let mut digests_out = Vec::new();
    for lane in &mut sink.lanes {
        let d = lane.join().map_err(|e| PackageError::io(&lane.tmp, e))?;
        digests_out.push(d);
    }

    let mut archives = Vec::new();
    for ((f, (tmp, fin)), (bytes, sha256)) in formats.iter().zip(pending.0.iter()).zip(digests_out)
    {
        fs::rename(tmp, fin).map_err(|e| PackageError::io(fin, e))?;
        archives.push(ArchiveInfo {
            format: *f,
            file_name: f.file_name().to_string(),
            path: fin.clone(),
            bytes,
            sha256,
        });
    }
    pending.0.clear();
    Ok(Written {
        tar_bytes,
        tar_sha256,
        archives,
        redacted,
        digests,
    })
}

enum AppendError {
    Read(io::Error),
    Write(io::Error),
}

fn header(kind: EntryType, size: u64, mode: u32, mtime: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append(
    b: &mut tar::Builder<Sink>,
    e: &KeptEntry,
    abs: &Path,
    mtime: u64,
    secrets: &Secrets,
) -> Result<(u64, Option<String>, bool), AppendError> {
    match e.kind {
        EntryKind::Dir => {
            let mut name = e.rel.clone();
            name.push(b'/');
            let mut h = header(EntryType::Directory, 0, 0o755, mtime);
            b.append_data(
                &mut h,
                Path::new(std::ffi::OsStr::from_bytes(&name)),
                io::empty(),
            )
            .map_err(AppendError::Write)?;
            Ok((0, None, false))
        }
        EntryKind::Symlink => {
            let target = e.target.as_deref().unwrap_or_default();
            let mut h = header(EntryType::Symlink, 0, 0o777, mtime);
            b.append_link(
                &mut h,
                e.rel_path(),
                Path::new(std::ffi::OsStr::from_bytes(target)),
            )
            .map_err(AppendError::Write)?;
            Ok((0, None, false))
        }
        EntryKind::File => {
            let mode = if e.executable { 0o755 } else { 0o644 };
            let mut f = open_no_follow(abs).map_err(AppendError::Read)?;
            let size = f.metadata().map_err(AppendError::Read)?.len();
            if size <= IN_MEMORY_MAX {
                let mut data = Vec::with_capacity(size as usize);
                f.read_to_end(&mut data).map_err(AppendError::Read)?;
                let (data, hit) = match secrets.redact_all(&data) {
                    Some(r) => (r, true),
                    None => (data, false),
                };
                let sha = hex::encode(Sha256::digest(&data));
                let mut h = header(EntryType::Regular, data.len() as u64, mode, mtime);
                b.append_data(&mut h, e.rel_path(), &data[..])
                    .map_err(AppendError::Write)?;
                return Ok((data.len() as u64, Some(sha), hit));
            }
            // Large file: stream. With secrets, first measure the redacted form.
            let (len, hit) = if secrets.is_empty() {
                (size, false)
            } else {
                let mut r = RedactReader::new(&mut f, secrets);
                let n = io::copy(&mut r, &mut io::sink()).map_err(AppendError::Read)?;
                let hit = r.hits > 0;
                drop(r);
                f = open_no_follow(abs).map_err(AppendError::Read)?;
                (n, hit)
            };
            let mut h = header(EntryType::Regular, len, mode, mtime);
            let mut hashing = Hashing {
                inner: if hit {
                    Box::new(RedactReader::new(f, secrets)) as Box<dyn Read + '_>
                } else {
                    Box::new(f)
                },
                hash: Sha256::new(),
                n: 0,
                err: None,
            };
            b.append_data(&mut h, e.rel_path(), (&mut hashing).take(len))
                .map_err(|w| match hashing.err.take() {
                    Some(r) => AppendError::Read(r),
                    None => AppendError::Write(w),
                })?;
            if hashing.n != len {
                return Err(AppendError::Read(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being packaged",
                )));
            }
            Ok((len, Some(hex::encode(hashing.hash.finalize())), hit))
        }
    }
}

fn open_no_follow(p: &Path) -> io::Result<File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("no longer a regular file"));
    }
    Ok(f)
}

/// A reader that hashes what passes through and keeps its own read errors apart from write errors.
struct Hashing<'a> {
    inner: Box<dyn Read + 'a>,
    hash: Sha256,
    n: u64,
    err: Option<io::Error>,
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hash.update(&buf[..n]);
                self.n += n as u64;
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                self.err = Some(e);
                Err(io::Error::new(kind, "read failed"))
            }
        }
    }
}

/// The secret values to redact: non-empty, deduplicated, longest first (the longest secret starting
/// at a position wins; matches do not overlap; scanning is left to right).
pub(crate) struct Secrets {
    list: Vec<Vec<u8>>,
    first: [bool; 256],
    max_len: usize,
}

impl Secrets {
    pub(crate) fn new(values: &[String]) -> Secrets {
        let mut list: Vec<Vec<u8>> = values
            .iter()
            .filter(|v| !v.is_empty())
            .map(|v| v.as_bytes().to_vec())
            .collect();
        list.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        list.dedup();
        let mut first = [false; 256];
        for s in &list {
            first[usize::from(s[0])] = true;
        }
        let max_len = list.first().map(|s| s.len()).unwrap_or(0);
        Secrets {
            list,
            first,
            max_len,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Redacts `data` in one go; `None` when nothing matched.
    pub(crate) fn redact_all(&self, data: &[u8]) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        let (consumed, hits) = self.process(data, true, &mut out);
        debug_assert_eq!(consumed, data.len());
        (hits > 0).then_some(out)
    }

    /// Emits the redacted form of `data[..consumed]` into `out`. Without `eof`, stops where a secret
    /// could still extend past the end of `data`.
    fn process(&self, data: &[u8], eof: bool, out: &mut Vec<u8>) -> (usize, u64) {
        let limit = if eof {
            data.len()
        } else {
            data.len().saturating_sub(self.max_len.saturating_sub(1))
        };
        let mut hits = 0;
        let mut i = 0;
        let mut copied = 0;
        while i < limit {
            if self.first[usize::from(data[i])] {
                if let Some(s) = self.list.iter().find(|s| data[i..].starts_with(s)) {
                    out.extend_from_slice(&data[copied..i]);
                    out.extend_from_slice(REDACTION_MARKER);
                    i += s.len();
                    copied = i;
                    hits += 1;
                    continue;
                }
            }
            i += 1;
        }
        let end = i.min(data.len()).max(copied);
        out.extend_from_slice(&data[copied..end]);
        (end, hits)
    }
}

/// Streaming redaction with a carry-over of `max_len - 1` bytes between chunks.
struct RedactReader<'s, R> {
    inner: R,
    secrets: &'s Secrets,
    pending: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
    hits: u64,
}

impl<'s, R: Read> RedactReader<'s, R> {
    fn new(inner: R, secrets: &'s Secrets) -> Self {
        RedactReader {
            inner,
            secrets,
            pending: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            eof: false,
            hits: 0,
        }
    }
}

impl<R: Read> Read for RedactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.out.len() {
            if self.eof && self.pending.is_empty() {
                return Ok(0);
            }
            self.out.clear();
            self.out_pos = 0;
            if !self.eof {
                let mut chunk = [0u8; 64 * 1024];
                let n = self.inner.read(&mut chunk)?;
                if n == 0 {
                    self.eof = true;
                } else {
                    self.pending.extend_from_slice(&chunk[..n]);
                }
            }
            let (consumed, hits) = self.secrets.process(&self.pending, self.eof, &mut self.out);
            self.hits += hits;
            self.pending.drain(..consumed);
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(v: &[&str]) -> Secrets {
        Secrets::new(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn redact_all_replaces_every_occurrence_longest_first() {
        let s = secrets(&["abc", "abcdef", ""]);
        assert_eq!(
            s.redact_all(b"x abcdef abc abcabc").unwrap(),
            b"x [REDACTED] [REDACTED] [REDACTED][REDACTED]".to_vec()
        );
        assert!(s.redact_all(b"ab cd").is_none());
        assert!(secrets(&[""]).redact_all(b"anything").is_none());
    }

    #[test]
    fn streaming_redaction_equals_in_memory_across_chunk_boundaries() {
        let secret = "sk-live-0123456789";
        let s = secrets(&[secret, "tok"]);
        let mut data = Vec::new();
        for i in 0..40_000u32 {
            data.extend_from_slice(format!("line {i} ").as_bytes());
            if i % 997 == 0 {
                data.extend_from_slice(secret.as_bytes());
            }
            if i % 1999 == 0 {
                data.extend_from_slice(b"tok");
            }
        }
        let want = s.redact_all(&data).unwrap();
        // A reader that returns odd-sized pieces makes secrets straddle chunk boundaries.
        struct Odd<'a>(&'a [u8], usize);
        impl Read for Odd<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.1 = self.1 % 13 + 1;
                let n = self.1.min(buf.len()).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = RedactReader::new(Odd(&data, 0), &s);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, want);
        assert!(r.hits > 40);
    }
}
