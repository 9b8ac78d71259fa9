//! What the hub must never undo, kept where a restore does not reach: every erasure and every
//! device revocation is written to a journal beside the hub's key (`<data>-key/`, which is
//! kept apart from the data's backups), one line per action, synced before the action is
//! reported done. A hub restored from an older copy (`vigie backup`, `pg_dump`) finds in it
//! what the copy predates, and does it again when it opens, before it serves anything: the
//! erased case is erased again, the revoked phone is refused again, and told to wipe even
//! when the copy predates its enrolment.
//!
//! A line is `erase <record> <unix ms> <tag>` or `revoke <device> <unix ms> <tag>`: ids only,
//! never personal data (who erased and why stay in the audit log). The tag is an HMAC-SHA256
//! of the rest under a key derived from the hub's key, so a line that is not the hub's (edited,
//! damaged) is told apart: it is ignored with a warning, and the hub still starts.
//!
//! No journal is kept, and the hub says so when it opens, when the key comes without a
//! directory (`VIGIE_HUB_KEY`, `--key-hex`), for an unencrypted hub (no key), or when the key's
//! directory cannot be written.

use crate::auth::{AuthError, DeviceInfo, Token};
use crate::backend::{Backend, ChangeOrderMark, incarnation_of, unhex};
use crate::console::storage::ConsoleStorage;
use crate::console::view::View;
use crate::hub_key::{HubKey, KEY_FILE_NAME, KeyOptions, default_key_file, hex};
use crate::{Database, HubOpenError};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uuid::Uuid;
use vigie_core::sync::{
    HubBundleReport, HubError, HubLimits, HubTransaction, Principal, QuarantineView,
};
use vigie_core::{Error, ReferenceData, ReferenceFile, User};

/// The journal's file, in the directory of the hub's key file (`hub.key`, the key's default
/// name); a key file of another name keeps `<its name>.irreversible.journal`, so that hubs
/// whose keys share a directory keep one journal each (`beside_key`).
pub const JOURNAL_FILE: &str = "irreversible.journal";

/// Beside the journal: which embedded hub it is kept for (`home_of`), the one that made it or,
/// once that one's directory is gone, the one served with this key since. A copy of that hub's data opened with the same key (a backup looked into,
/// as README says) reads the journal, and does again what it holds, but does not write to it:
/// an erasure journaled from a copy was done again on the hub itself at its next start, a
/// revocation wiped a phone and its unsent work, neither decided on the hub
/// (`kept_for_another`).
pub const HOME_FILE: &str = "journal.home";

/// Beside the journal, for a database several machines share (PostgreSQL): the hub's
/// incarnation and how far its change order had gone when this machine last looked. A
/// database found behind it was restored from an older copy (`pg_restore`), which keeps no
/// mark of its own as `vigie backup` does.
pub const CHANGE_ORDER_FILE: &str = "change-order.mark";

/// What a machine keeps of the database it shares: the last mark it saw, and the incarnations
/// it saw replaced (a database back on one of them was restored from a copy taken before).
struct KeptMark {
    mark: ChangeOrderMark,
    retired: Vec<[u8; 16]>,
}

/// The incarnations a mark remembers as replaced: a restore goes back a few at most.
const RETIRED_KEPT: usize = 32;

/// The databases a machine keeps a mark of (the hub's, copies opened beside it).
const MARKS_KEPT: usize = 8;

/// How often a serving machine keeps the database's mark (`watch_change_order`): a restore to
/// a copy taken less than this before the machine last kept it goes unseen by it (devices
/// ahead of the copy still find it).
const MARK_EVERY_MS: i64 = 30_000;

/// The file named `name` that the hub whose key is `key_file` keeps beside it: `name` itself
/// for the key's default name, else prefixed with the key file's name (two hubs' keys in one
/// directory must not share a journal: each would take the other's lines for damage, and a
/// new hub there for one given another's key).
pub fn beside_key(key_file: &Path, name: &str) -> PathBuf {
    let dir = match key_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match key_file.file_name().and_then(|n| n.to_str()) {
        Some(KEY_FILE_NAME) | None => dir.join(name),
        Some(key_name) => dir.join(format!("{key_name}.{name}")),
    }
}

/// The key file of the hub in `data` with these key options, which its journal is kept beside;
/// `Err` says why it keeps none.
fn journal_key_file(data: &Path, key: &KeyOptions) -> Result<PathBuf, String> {
    if key.unencrypted {
        return Err("the hub is unencrypted (no key, so no key directory)".into());
    }
    if key.key_hex.is_some() {
        return Err("the key is given without a key file (VIGIE_HUB_KEY or --key-hex)".into());
    }
    let file = key
        .key_file
        .clone()
        .unwrap_or_else(|| default_key_file(data));
    Ok(file)
}

/// Where the hub in `data` with these key options keeps its journal; `Err` says why it keeps
/// none.
pub fn journal_path(data: &Path, key: &KeyOptions) -> Result<PathBuf, String> {
    Ok(beside_key(&journal_key_file(data, key)?, JOURNAL_FILE))
}

/// The embedded hub's data directory as its journal's home file names it; none on PostgreSQL,
/// whose copies are other databases `pg_restore` fills (a database's address has spellings
/// enough to refuse the hub itself, and may carry its password).
fn home_of(database: &Database) -> Option<String> {
    match database {
        Database::Embedded { data, .. } => {
            let data = std::fs::canonicalize(data).unwrap_or_else(|_| data.clone());
            Some(format!("embedded {}\n", data.display()))
        }
        Database::Postgres { .. } => None,
    }
}

/// Whether the home file's text names a data directory that holds a hub still: not one gone
/// (a disk lost, the hub moved), whose journal a hub restored elsewhere takes over.
fn home_holds_a_hub(named: &str) -> bool {
    named
        .trim_end()
        .strip_prefix("embedded ")
        .is_some_and(|data| Path::new(data).join("hub.db").exists())
}

/// The hub the journal `database`'s key keeps is kept for, when it is another than
/// `database` that holds a hub still (`database` is a copy of its data opened with its key):
/// erasures and revocations are made on that hub, not on a copy, whose journal lines it would
/// do again when it next starts. `None` for the hub itself, for a hub whose home is gone (it
/// takes the journal over when it is next served), while no hub is named (a journal from
/// before homes were kept), with no journal, and on PostgreSQL.
pub fn kept_for_another(database: &Database) -> Option<String> {
    let (data, key) = match database {
        Database::Embedded { data, key } | Database::Postgres { data, key, .. } => (data, key),
    };
    let this = home_of(database)?;
    let home = beside_key(&journal_key_file(data, key).ok()?, HOME_FILE);
    let named = std::fs::read_to_string(home).ok()?;
    (named != this && home_holds_a_hub(&named)).then(|| named.trim_end().to_string())
}

/// The journal the key found for a hub in `data` keeps, if it records any action: the key
/// served a hub that erased records or revoked devices. Read without the key: any line that is
/// no comment counts, but those the journal of another key file in the same directory holds
/// (an earlier version's `irreversible.journal`, whose lines that hub has taken into its own:
/// they are not a lost key's).
pub(crate) fn journal_with_actions(data: &Path, key: &KeyOptions) -> Option<PathBuf> {
    let journal = journal_path(data, key).ok()?;
    let text = std::fs::read_to_string(&journal).ok()?;
    let mut actions = text.lines().filter(|line| is_action_line(line)).peekable();
    actions.peek()?;
    let others = held_by_other_keys(&journal);
    actions
        .any(|line| !others.contains(line))
        .then_some(journal)
}

/// The lines the journals of other key files beside `journal` hold (`<name>.irreversible.journal`):
/// lines an earlier version's `irreversible.journal` held, that hub has taken into its own.
fn held_by_other_keys(journal: &Path) -> HashSet<String> {
    let suffix = format!(".{JOURNAL_FILE}");
    let mut held = HashSet::new();
    let Some(entries) = journal.parent().and_then(|dir| std::fs::read_dir(dir).ok()) else {
        return held;
    };
    for path in entries.flatten().map(|entry| entry.path()) {
        let named_for_a_key = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() > suffix.len() && n.ends_with(&suffix));
        if named_for_a_key
            && path != journal
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            held.extend(
                text.lines()
                    .filter(|l| is_action_line(l))
                    .map(str::to_string),
            );
        }
    }
    held
}

/// Whether a journal's line holds an action (empty lines and `#` comments do not).
fn is_action_line(line: &str) -> bool {
    !line.is_empty() && !line.starts_with('#')
}

/// The journal's first line, for whoever opens it.
const HEADER: &str = "# Vigie: erasures and device revocations this hub must never undo, \
                      redone when it opens. Keep with the key, apart from backups of the data; \
                      never edit.\n";

/// Why a copy of the hub opened with its key takes no erasure or revocation (`Journaled`).
pub const ON_A_COPY: &str = "this is a copy of the hub opened with its key (a backup looked \
     into): erasures and device revocations are made on the hub, which would do again at its \
     next start what is done here";

/// What the audit log says of an action done again (`ERASE_REASONS`' kind of code).
pub const REAPPLIED: &str = "reapplied_after_restore";

type HmacSha256 = hmac::Hmac<hmac_sha2::Sha256>;

/// An action the hub must never undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A record erased (a child case, or an id a tombstone stands for).
    Erase(Uuid),
    /// A device revoked.
    Revoke(Uuid),
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Erase(_) => "erase",
            Action::Revoke(_) => "revoke",
        }
    }

    fn id(self) -> Uuid {
        match self {
            Action::Erase(id) | Action::Revoke(id) => id,
        }
    }
}

/// The journal of one hub: its file and the key its lines are tagged with.
pub struct Journal {
    file: PathBuf,
    /// `CHANGE_ORDER_FILE`, beside it.
    marks: PathBuf,
    /// `HOME_FILE`, beside it.
    home: PathBuf,
    key: [u8; 32],
}

/// What a journal holds: its actions, in order, and the numbers of the lines that were not
/// the hub's (ignored).
#[derive(Debug, Default)]
pub struct Read {
    pub actions: Vec<Action>,
    /// When each record was erased (its first erasure line's time, Unix ms): an erasure done
    /// again after a restore keeps its date.
    pub erased_at: HashMap<Uuid, i64>,
    pub refused_lines: Vec<usize>,
}

impl Journal {
    /// The journal kept beside `key_file`, its lines tagged under a key derived from
    /// `hub_key`.
    pub fn new(key_file: &Path, hub_key: &HubKey) -> Journal {
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(&hub_key.0)
            .expect("HMAC takes any key length");
        hmac::Mac::update(&mut mac, b"vigie irreversible journal key v1");
        Journal {
            file: beside_key(key_file, JOURNAL_FILE),
            marks: beside_key(key_file, CHANGE_ORDER_FILE),
            home: beside_key(key_file, HOME_FILE),
            key: hmac::Mac::finalize(mac).into_bytes().into(),
        }
    }

    /// Where the hub opened as `database` keeps its journal; `Err` says why it keeps none.
    pub fn of(database: &Database) -> Result<Journal, String> {
        let (data, key) = match database {
            Database::Embedded { data, key } | Database::Postgres { data, key, .. } => (data, key),
        };
        let key_file = journal_key_file(data, key)?;
        match key.resolve(data, true) {
            Ok(Some(hub_key)) => Ok(Journal::new(&key_file, &hub_key)),
            Ok(None) => Err("the hub has no key".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    fn tag(&self, body: &str) -> String {
        let mut mac =
            <HmacSha256 as hmac::KeyInit>::new_from_slice(&self.key).expect("any key length");
        hmac::Mac::update(&mut mac, body.as_bytes());
        hmac::Mac::finalize(mac)
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The file beside the journal where this machine keeps the last `ChangeOrderMark` it saw
    /// of a database it shares (`watch_change_order`).
    fn mark_file(&self) -> &Path {
        &self.marks
    }

    /// The marks this machine last kept, one per database: empty without a file, `Err` for a
    /// file that is not whole or not tagged by this hub.
    fn kept_marks(&self) -> Result<Vec<KeptMark>, ()> {
        let text = match std::fs::read_to_string(self.mark_file()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(_) => return Err(()),
        };
        let parse = |line: &str| -> Option<KeptMark> {
            let (body, tag) = line.rsplit_once(' ')?;
            if self.tag(body) != tag {
                return None;
            }
            let mut words = body.split(' ');
            if words.next()? != "mark" {
                return None;
            }
            let database = String::from_utf8(unhex(words.next()?)?).ok()?;
            let incarnation = incarnation_of(words.next()?)?;
            let sequence = words.next()?.parse().ok()?;
            let retired = match words.next()? {
                "-" => Vec::new(),
                list => list
                    .split(',')
                    .map(incarnation_of)
                    .collect::<Option<Vec<_>>>()?,
            };
            words.next().is_none().then_some(KeptMark {
                mark: ChangeOrderMark {
                    database,
                    incarnation,
                    sequence,
                },
                retired,
            })
        };
        text.lines()
            .map(parse)
            .collect::<Option<Vec<_>>>()
            .ok_or(())
    }

    /// Keeps `marks` in place of the last (written aside, then named: a crash leaves one or
    /// the other, whole).
    fn keep_marks(&self, marks: &[KeptMark]) -> std::io::Result<()> {
        let mut text = String::new();
        for kept in marks {
            let retired = match kept.retired.is_empty() {
                true => "-".to_string(),
                false => kept
                    .retired
                    .iter()
                    .map(|i| hex(i))
                    .collect::<Vec<_>>()
                    .join(","),
            };
            let body = format!(
                "mark {} {} {} {retired}",
                hex(kept.mark.database.as_bytes()),
                hex(&kept.mark.incarnation),
                kept.mark.sequence
            );
            text.push_str(&format!("{body} {}\n", self.tag(&body)));
        }
        // Two processes of one machine keeping their marks at once (a command beside `vigie
        // serve`) each write a file of their own aside: the last whole one stays.
        write_aside_then_name(self.mark_file(), ".change-order.", &text)
    }

    /// Before a key file of another name than `hub.key` kept its own journal, every key's was
    /// `irreversible.journal` (and its mark `change-order.mark`) beside it, as an earlier
    /// version (or one rolled back to) still writes: the lines this hub's key tagged there
    /// that its own journal lacks are appended to it, and the mark is taken when the hub has
    /// none of its own (a hub upgraded would otherwise lose what it must never undo). Lines of
    /// another hub stay where they are. Returns how many journal lines were taken, and whether
    /// the mark was.
    fn adopt_former_files(&self) -> std::io::Result<(usize, bool)> {
        let tagged = |name: &str| -> std::io::Result<Vec<String>> {
            let former = self.file.with_file_name(name);
            if former == self.file || former == self.marks {
                return Ok(Vec::new());
            }
            let text = match std::fs::read(&former) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            Ok(text
                .lines()
                .filter(|line| is_action_line(line))
                .filter(|line| {
                    line.rsplit_once(' ')
                        .is_some_and(|(body, tag)| self.tag(body) == tag)
                })
                .map(str::to_string)
                .collect())
        };
        let held = match std::fs::read(&self.file) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let held: HashSet<&str> = held.lines().collect();
        let missing: Vec<String> = tagged(JOURNAL_FILE)?
            .into_iter()
            .filter(|line| !held.contains(line.as_str()))
            .collect();
        if !missing.is_empty() {
            self.prepare()?;
            self.append_lines(&missing)?;
        }
        let mark = !self.marks.exists() && {
            let lines = tagged(CHANGE_ORDER_FILE)?;
            if !lines.is_empty() {
                let mut text = lines.join("\n");
                text.push('\n');
                write_aside_then_name(&self.marks, ".change-order.", &text)?;
            }
            !lines.is_empty()
        };
        Ok((missing.len(), mark))
    }

    /// Makes the journal if there is none (owner-only, with its header), so that each later
    /// action only appends; fails if it cannot be written.
    pub fn prepare(&self) -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&self.file)?;
        if out.metadata()?.len() == 0 {
            out.write_all(HEADER.as_bytes())?;
            out.sync_all()?;
            // The new file's name is made durable with it.
            if let Some(dir) = self.file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Appends one action, done at `at_ms`, and syncs it to the disk before returning. One
    /// `write` of a whole line on a file opened to append: processes appending at once (a
    /// command beside `vigie serve`) never mix their lines.
    pub fn append(&self, action: Action, at_ms: i64) -> std::io::Result<()> {
        let body = format!("{} {} {at_ms}", action.word(), action.id());
        self.append_lines(&[format!("{body} {}", self.tag(&body))])
    }

    /// Appends whole lines in one `write`, synced before it returns.
    fn append_lines(&self, lines: &[String]) -> std::io::Result<()> {
        let mut line = String::new();
        for one in lines {
            line.push_str(one);
            line.push('\n');
        }
        let mut out = std::fs::OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.file)?;
        // A line cut by a crash is ended first: the new one must stand on a line of its own,
        // or it would be read as part of the damaged one and ignored.
        let torn = {
            use std::io::{Read, Seek, SeekFrom};
            let len = out.metadata()?.len();
            let mut last = [0u8; 1];
            len > 0 && {
                out.seek(SeekFrom::Start(len - 1))?;
                out.read_exact(&mut last)?;
                last[0] != b'\n'
            }
        };
        let line = if torn { format!("\n{line}") } else { line };
        out.write_all(line.as_bytes())?;
        out.sync_data()
    }

    /// Every action the journal holds, in order (none if there is no journal).
    pub fn read(&self) -> std::io::Result<Read> {
        let text = match std::fs::read(&self.file) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::default()),
            Err(e) => return Err(e),
        };
        let mut read = Read::default();
        // Read only if a line is not this hub's.
        let mut others: Option<HashSet<String>> = None;
        for (n, line) in text.lines().enumerate() {
            if !is_action_line(line) {
                continue;
            }
            match self.parse(line) {
                Some((action, at_ms)) => {
                    if let Action::Erase(id) = action {
                        read.erased_at.entry(id).or_insert(at_ms);
                    }
                    read.actions.push(action)
                }
                // Another hub's, from the file every key's journal was once kept in, that
                // hub keeps in its own: no damage.
                None if others
                    .get_or_insert_with(|| held_by_other_keys(&self.file))
                    .contains(line) => {}
                None => read.refused_lines.push(n + 1),
            }
        }
        Ok(read)
    }

    /// The action a line records and when (Unix ms), if the line is whole and tagged by this
    /// hub.
    fn parse(&self, line: &str) -> Option<(Action, i64)> {
        let (body, tag) = line.rsplit_once(' ')?;
        // Both are hex of one length: comparing them in constant time is not needed (the tag
        // guards against damage and edits, not against someone timing the hub's start).
        if self.tag(body) != tag {
            return None;
        }
        let mut words = body.split(' ');
        let (word, id, at) = (words.next()?, words.next()?, words.next()?);
        if words.next().is_some() {
            return None;
        }
        let at = at.parse::<i64>().ok()?;
        let id = Uuid::parse_str(id).ok()?;
        match word {
            "erase" => Some((Action::Erase(id), at)),
            "revoke" => Some((Action::Revoke(id), at)),
            _ => None,
        }
    }
}

/// Writes `text` to `file` through a file aside of this write's own (owner-only, a random name
/// beginning `prefix`, in the same directory), synced, then named `file`: a crash leaves the
/// old file or the new one, whole.
fn write_aside_then_name(file: &Path, prefix: &str, text: &str) -> std::io::Result<()> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut aside = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".new")
        .tempfile_in(dir)?;
    aside.write_all(text.as_bytes())?;
    aside.as_file().sync_all()?;
    aside.persist(file).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Opens the journal of the hub just opened as `database` (`backend`), does again whatever it
/// holds that the storage no longer reflects, and returns the hub that journals each new
/// erasure and revocation. Without a journal the hub works as before, and a warning says that
/// a restore would undo those actions. `restored`: the files are a backup's, opened for the
/// first time.
pub fn keep(
    database: &Database,
    backend: Box<dyn Backend>,
    restored: bool,
    serving: bool,
) -> Result<Box<dyn Backend>, HubOpenError> {
    let journal = match Journal::of(database) {
        Ok(journal) => journal,
        Err(why) => {
            tracing::warn!(
                "no journal of irreversible actions: {why}. Erasures and device revocations \
                 will not survive a restore of this hub from a backup, and a PostgreSQL \
                 database restored with pg_restore goes unseen (devices that only received \
                 since the copy would miss records)"
            );
            return Ok(backend);
        }
    };
    match journal.adopt_former_files() {
        Ok((0, false)) => {}
        Ok((lines, mark)) => tracing::warn!(
            file = %journal.file.display(),
            lines,
            mark,
            "what this hub kept under the names every key's had (irreversible.journal, \
             change-order.mark) is now kept under its key file's name"
        ),
        Err(e) => tracing::warn!(
            file = %journal.file.display(),
            error = %e,
            "the journal this hub kept under the name every key's had (irreversible.journal) \
             could not be taken into its own"
        ),
    }
    let read = journal.read().map_err(|e| {
        HubOpenError::Io(std::io::Error::new(
            e.kind(),
            format!(
                "cannot read the journal of irreversible actions {}: {e}",
                journal.file.display()
            ),
        ))
    })?;
    for line in &read.refused_lines {
        tracing::warn!(
            file = %journal.file.display(),
            line,
            "a line of the journal of irreversible actions is not this hub's (damaged or \
             edited): ignored"
        );
    }
    let existed = journal.file.exists();
    let prepared = journal.prepare();
    // Compared before anything is done again: an erasure redone takes places in the change
    // order, and would bring a database restored from a copy back level with the mark.
    if prepared.is_ok() {
        watch_change_order(&journal, &*backend).map_err(HubOpenError::Store)?;
    }
    let revoked_unknown = reapply(&*backend, &read.actions, &read.erased_at)?;
    // The backup's own history shows none of what was done after it was taken: only the
    // journal left behind knows (an operator moving to a new machine copied the key alone,
    // and the copy synced a revoked phone and gave back a child erased since). Said at every
    // opening until the operator removes the note beside the journal: the first command run
    // (an export, a check) may not be the one they read.
    let note = journal.file.with_extension("journal.restored-without-it");
    if !existed
        && restored
        && let Err(e) = std::fs::write(&note, "restored from a backup without this journal\n")
    {
        tracing::warn!(file = %note.display(), error = %e, "cannot write the note");
    }
    if note.exists() {
        tracing::warn!(
            file = %journal.file.display(),
            note = %note.display(),
            "this hub was restored from a backup with no journal of irreversible actions \
             beside its key: the children erased and the devices revoked after the backup was \
             taken are back (erased cases in its records and exports, revoked phones syncing). \
             Stop it, put the journal of the hub the backup came from at this file's place (it \
             is beside that hub's key file) and start it again, or erase and revoke them again \
             now; then remove the note"
        );
    } else if !existed && has_irreversible_history(&*backend) {
        tracing::warn!(
            file = %journal.file.display(),
            "this hub has erased records or revoked devices but no journal of irreversible \
             actions (it was lost, or the key was moved without it): a new one starts now, \
             with the erasures and revocations this hub's storage holds. Keep the journal with \
             the key"
        );
    }
    // The hub that made the journal is the one it is kept for, and the one served when no
    // other holding a hub is named (a journal from before homes were kept, a hub moved or
    // restored elsewhere after its disk was lost); a copy served to be looked into is not.
    let copy_of = kept_for_another(database);
    if let (Ok(()), Some(named), None) = (&prepared, home_of(database), &copy_of)
        && (serving || !existed)
        && std::fs::read_to_string(&journal.home).ok().as_deref() != Some(named.as_str())
        && let Err(e) = write_aside_then_name(&journal.home, ".journal-home-", &named)
    {
        tracing::warn!(file = %journal.home.display(), error = %e, "cannot write the file");
    }
    if let Some(home) = &copy_of {
        tracing::warn!(
            hub = %home,
            "a copy of the hub opened with its key (a backup looked into): it takes no erasure \
             or device revocation, which the hub would do again at its next start"
        );
    }
    if let Err(e) = prepared {
        tracing::warn!(
            file = %journal.file.display(),
            error = %e,
            "the journal of irreversible actions cannot be written: erasures and device \
             revocations will not survive a restore of this hub from a backup"
        );
        return Ok(backend);
    }
    let journaled = Journaled {
        inner: backend,
        journal,
        copy_of,
        revoked_unknown,
        marked_ms: std::sync::atomic::AtomicI64::new(chrono::Utc::now().timestamp_millis()),
    };
    let shared = matches!(database, Database::Postgres { .. });
    journal_what_it_lacks(&journaled, &read, shared)?;
    Ok(Box::new(journaled))
}

/// Journals each erasure and revocation the storage holds and the journal does not, dated as
/// the storage dates it: each is journaled once committed, and a process killed between the
/// two (or a journal that could not be written then, or lost) left a child erased or a phone
/// revoked that a restore from a backup would bring back, with nothing saying so. On a shared
/// database (`shared`: PostgreSQL) the other machines' actions are lacking too, as they should:
/// journaled here as well, said in one line, not warned of one by one.
fn journal_what_it_lacks(
    journaled: &Journaled,
    read: &Read,
    shared: bool,
) -> Result<(), HubOpenError> {
    let erased = journaled.inner.erasures()?;
    let revoked: HashSet<Uuid> = read
        .actions
        .iter()
        .filter_map(|action| match action {
            Action::Revoke(id) => Some(*id),
            Action::Erase(_) => None,
        })
        .collect();
    let lacking = erased
        .into_iter()
        .filter(|(id, _)| !read.erased_at.contains_key(id))
        .map(|(id, at_ms)| (Action::Erase(id), at_ms))
        .chain(
            journaled
                .inner
                .devices()?
                .into_iter()
                .filter(|d| !revoked.contains(&d.device))
                .filter_map(|d| Some((Action::Revoke(d.device), d.revoked_ms?))),
        );
    let mut journaled_now = 0usize;
    for (action, at_ms) in lacking {
        if let Err(why) = journaled.note_at([action], at_ms) {
            tracing::warn!(id = %action.id(), "an irreversible action could not be journaled: {why}");
            return Ok(());
        }
        journaled_now += 1;
        if !shared {
            tracing::warn!(
                id = %action.id(),
                action = action.word(),
                "journaled now: an action the journal of irreversible actions lacked (the \
                 process was stopped before it wrote it, or the journal was lost)"
            );
        }
    }
    if shared && journaled_now > 0 {
        tracing::info!(
            actions = journaled_now,
            "journaled now: erasures and revocations the shared database holds that this \
             machine's journal lacked (done through other machines since it last opened)"
        );
    }
    Ok(())
}

/// Compares how far the shared database's change order has gone with what this machine saw of
/// it last, and keeps the database's: a database behind it (the same incarnation, a smaller
/// place) was restored from an older copy, and takes a new incarnation, so that every device
/// that synced before offers again what it holds (records, and photos whose upload ended after
/// the copy), and walks its scope again (the places it was told are given out again). Run
/// whenever the hub opens (the command README asks for on every machine after a `pg_restore`)
/// and, while it serves, every `MARK_EVERY_MS` (a restore under running hubs).
fn watch_change_order(journal: &Journal, backend: &dyn Backend) -> Result<(), Error> {
    let Some(mut now) = backend.change_order_mark()? else {
        return Ok(());
    };
    let mut marks = journal.kept_marks().unwrap_or_else(|()| {
        tracing::warn!(
            file = %journal.mark_file().display(),
            "the mark of the database's change order is damaged or not this hub's: a restore \
             of the database from a copy taken before now goes unseen by this machine"
        );
        Vec::new()
    });
    let kept = marks
        .iter()
        .position(|k| k.mark.database == now.database)
        .map(|at| marks.remove(at));
    let mut retired = kept.as_ref().map(|k| k.retired.clone()).unwrap_or_default();
    // Behind the mark under the same incarnation, or back on one this machine saw replaced (a
    // second restore of a copy from before the first). Another incarnation than the mark's is
    // otherwise another machine's new one: taken up. A database this machine never opened
    // that holds the incarnation of one it did, behind it, is a copy of it (restored under
    // another name, or to be looked into): it takes an incarnation of its own, and the other
    // database's mark is left as it was.
    let restored = match &kept {
        Some(kept) if kept.mark.incarnation == now.incarnation => {
            (now.sequence < kept.mark.sequence).then(|| kept.mark.sequence - now.sequence)
        }
        Some(kept) => {
            if !retired.contains(&kept.mark.incarnation) {
                retired.push(kept.mark.incarnation);
            }
            retired.contains(&now.incarnation).then_some(0)
        }
        None => marks
            .iter()
            .find(|other| {
                (other.mark.incarnation == now.incarnation && now.sequence < other.mark.sequence)
                    || other.retired.contains(&now.incarnation)
            })
            .map(|other| other.mark.sequence.saturating_sub(now.sequence)),
    };
    if let Some(behind) = restored {
        if backend.take_new_incarnation(now.incarnation)? {
            tracing::warn!(
                behind,
                "this hub's database is behind what this machine saw of it: it was restored \
                 from an older copy. It takes a new incarnation: every device that synced \
                 before offers again what it holds, records and photos"
            );
            // The console's journal was restored with the rest: what it held since the copy
            // is gone, which its next line says, as an embedded hub's does (the copy's time
            // unknown: a `pg_dump` keeps none the hub can read).
            crate::console::journal(backend, None, "hub_restored", None, "");
        }
        if !retired.contains(&now.incarnation) {
            retired.push(now.incarnation);
        }
        now = backend.change_order_mark()?.unwrap_or(now);
    }
    retired.retain(|i| *i != now.incarnation);
    let excess = retired.len().saturating_sub(RETIRED_KEPT);
    retired.drain(..excess);
    marks.insert(0, KeptMark { mark: now, retired });
    marks.truncate(MARKS_KEPT);
    if let Err(e) = journal.keep_marks(&marks) {
        tracing::warn!(
            file = %journal.mark_file().display(),
            error = %e,
            "the mark of the database's change order cannot be kept: a restore of the database \
             may go unseen by this machine"
        );
    }
    Ok(())
}

/// Whether the hub has revoked a device or erased a record (its registry, its audit log): a
/// journal missing then was lost, not never needed. Read only when there is no journal.
fn has_irreversible_history(backend: &dyn Backend) -> bool {
    if backend
        .devices()
        .is_ok_and(|devices| devices.iter().any(|d| d.revoked_ms.is_some()))
    {
        return true;
    }
    let mut before = None;
    loop {
        let Ok(page) = backend.console().audit_log(before, 1000) else {
            return false;
        };
        if page
            .iter()
            .any(|(_, e)| matches!(e.action.as_str(), "case_erase" | "erase_unheld"))
        {
            return true;
        }
        match page.last() {
            Some((id, _)) if page.len() == 1000 => before = Some(*id),
            _ => return false,
        }
    }
}

/// Does again each journaled action the storage does not reflect (a restore from an older
/// copy undid it): records not erased are erased (by the hub, whatever their area now), devices
/// not revoked are revoked. Each is logged (ids only) and written to the audit log. Returns
/// the devices journaled as revoked that the storage does not know (enrolled after the copy it
/// was restored from).
fn reapply(
    backend: &dyn Backend,
    actions: &[Action],
    erased_at: &HashMap<Uuid, i64>,
) -> Result<std::collections::HashSet<Uuid>, HubOpenError> {
    let mut erase: Vec<Uuid> = Vec::new();
    let mut revoke: Vec<Uuid> = Vec::new();
    for action in actions {
        match *action {
            Action::Erase(id) if !erase.contains(&id) => erase.push(id),
            Action::Revoke(id) if !revoke.contains(&id) => revoke.push(id),
            _ => {}
        }
    }
    let mut erased = Vec::new();
    if !erase.is_empty() {
        backend.write(&mut |tx: &mut dyn HubTransaction| {
            erased.clear();
            for &id in &erase {
                if tx.is_erased(id)? {
                    continue;
                }
                match vigie_core::sync::erase_again(tx, id, erased_at.get(&id).copied()) {
                    Ok(_) => erased.push(id),
                    // Not a child case: nothing the hub ever erased (refused before any write).
                    Err(Error::NotAllowed { .. }) => {
                        tracing::warn!(record = %id, "a journaled erasure names no child case: left alone");
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })?;
    }
    for id in erased {
        tracing::warn!(
            record = %id,
            "erased again: the journal of irreversible actions holds its erasure, which this \
             hub's storage had lost (restored from an older copy?)"
        );
        crate::console::journal(backend, None, "case_erase", Some(id), REAPPLIED);
    }
    let mut unknown = std::collections::HashSet::new();
    if !revoke.is_empty() {
        let known: std::collections::HashSet<Uuid> =
            backend.devices()?.into_iter().map(|d| d.device).collect();
        unknown.extend(revoke.iter().filter(|id| !known.contains(id)));
        for id in &unknown {
            backend.revoked_unknown(*id)?;
            tracing::warn!(
                device = %id,
                "revoked again: the journal of irreversible actions holds the revocation of a \
                 device this hub's storage does not know (enrolled after the copy it was \
                 restored from): it is told to wipe"
            );
            crate::console::journal(backend, None, "device_revoke", Some(*id), REAPPLIED);
        }
    }
    for id in revoke {
        // False for a device revoked already, and for one unknown here (`unknown`).
        if backend.revoke(id)? {
            tracing::warn!(
                device = %id,
                "revoked again: the journal of irreversible actions holds its revocation, \
                 which this hub's storage had lost (restored from an older copy?)"
            );
            crate::console::journal(backend, None, "device_revoke", Some(id), REAPPLIED);
        }
    }
    Ok(unknown)
}

/// The hub with its journal: each erasure and revocation is journaled once done, and reported
/// done only once the journal holds it on disk.
struct Journaled {
    inner: Box<dyn Backend>,
    journal: Journal,
    /// The hub this is a copy of (`kept_for_another`): it takes no irreversible action.
    copy_of: Option<String>,
    /// Devices the journal says were revoked, which the storage does not know: enrolled after
    /// the copy it was restored from. A lost phone among them is still told to wipe.
    revoked_unknown: std::collections::HashSet<Uuid>,
    /// When the database's change order was last compared and kept (`watch_change_order`).
    marked_ms: std::sync::atomic::AtomicI64,
}

impl Journaled {
    /// Journals `actions`, done now. On failure the action stands but is not journaled: said
    /// as such (a restore would undo it), never as a success.
    fn note(&self, actions: impl IntoIterator<Item = Action>) -> Result<(), String> {
        self.note_at(actions, chrono::Utc::now().timestamp_millis())
    }

    /// `note`, dated `at_ms`: an erasure's own moment, which its tombstones hold.
    fn note_at(&self, actions: impl IntoIterator<Item = Action>, at_ms: i64) -> Result<(), String> {
        let now = at_ms;
        for action in actions {
            if let Err(e) = self.journal.append(action, now) {
                tracing::error!(
                    file = %self.journal.file.display(),
                    error = %e,
                    "an irreversible action was not journaled"
                );
                return Err(format!(
                    "done, but not written to the journal of irreversible actions ({e}): a \
                     restore of this hub from a backup would undo it"
                ));
            }
        }
        Ok(())
    }
}

/// A hub that closes (stopped, or a command done) keeps how far the database's change order
/// went: the operator stops the hubs before a `pg_restore`, and the restored database is then
/// found behind it, whatever happened since the last mark kept while serving.
impl Drop for Journaled {
    fn drop(&mut self) {
        if let Err(e) = watch_change_order(&self.journal, &*self.inner) {
            tracing::warn!(error = %e, "the database's change order could not be compared");
        }
    }
}

impl Backend for Journaled {
    fn change_order_mark(&self) -> Result<Option<ChangeOrderMark>, Error> {
        self.inner.change_order_mark()
    }

    fn take_new_incarnation(&self, from: [u8; 16]) -> Result<bool, Error> {
        self.inner.take_new_incarnation(from)
    }

    fn reachable(&self) -> Result<(), Error> {
        self.inner.reachable()
    }

    fn revoked_unknown(&self, device: Uuid) -> Result<(), AuthError> {
        self.inner.revoked_unknown(device)
    }

    /// A revocation found done already is journaled too: one whose database answer was lost
    /// (the link cut at the commit) is done but was journaled by no one, and the operator's
    /// second try is what journals it (else a restore would bring the phone back).
    fn revoke(&self, device: Uuid) -> Result<bool, AuthError> {
        if self.copy_of.is_some() {
            return Err(AuthError::OnACopy);
        }
        let revoked = self.inner.revoke(device)?;
        if revoked || self.inner.is_revoked(device)? {
            self.note([Action::Revoke(device)])
                .map_err(AuthError::Storage)?;
        }
        Ok(revoked)
    }

    /// An erasure found done already is journaled too, as a revocation is (`revoke`).
    fn erase(&self, by: Uuid, record: Uuid) -> Result<vigie_core::sync::ErasedRecords, Error> {
        if self.copy_of.is_some() {
            return Err(Error::NotAllowed {
                rule: ON_A_COPY.into(),
            });
        }
        let erased = match self.inner.erase(by, record) {
            Err(Error::NotAllowed { rule }) if rule == crate::backend::ERASED_ALREADY => {
                self.note([Action::Erase(record)])
                    .map_err(|reason| Error::HubStorage {
                        reason,
                        retryable: false,
                    })?;
                return Err(Error::NotAllowed { rule });
            }
            other => other?,
        };
        // The id asked for too when the hub held nothing under it: its tombstone stands.
        let mut ids = vec![record];
        ids.extend(erased.records.iter().copied().filter(|id| *id != record));
        self.note_at(ids.into_iter().map(Action::Erase), erased.at_ms)
            .map_err(|reason| Error::HubStorage {
                reason,
                retryable: false,
            })?;
        Ok(erased)
    }

    fn purge_erased(&self) -> Result<(), Error> {
        self.inner.purge_erased()
    }

    fn erasures(&self) -> Result<Vec<(Uuid, i64)>, Error> {
        self.inner.erasures()
    }

    // Everything else is the storage's own.

    fn authenticate(&self, token: &Token) -> Result<Uuid, AuthError> {
        match self.inner.authenticate(token) {
            // Its secret cannot be checked (the registry that held it is gone), and need not
            // be: the answer only tells whoever holds that device's token to wipe it.
            Err(AuthError::Unknown) if self.revoked_unknown.contains(&token.device) => {
                Err(AuthError::Revoked)
            }
            other => other,
        }
    }
    fn wipe_order(&self, device: Uuid) -> String {
        self.inner.wipe_order(device)
    }
    fn enrol_device(&self, user: Uuid, device: Uuid) -> Result<Option<Token>, AuthError> {
        self.inner.enrol_device(user, device)
    }
    fn user(&self, id: Uuid) -> Result<Option<User>, Error> {
        self.inner.user(id)
    }
    fn add_user(&self, user: &User) -> Result<User, Error> {
        self.inner.add_user(user)
    }
    fn quarantined(&self) -> Result<Vec<QuarantineView>, Error> {
        self.inner.quarantined()
    }
    fn received_times(
        &self,
        id: Uuid,
    ) -> Result<std::collections::HashMap<automerge::ChangeHash, i64>, Error> {
        self.inner.received_times(id)
    }
    fn review_quarantined(
        &self,
        entry: i64,
        accept: bool,
        by: Option<Uuid>,
    ) -> Result<bool, Error> {
        self.inner.review_quarantined(entry, accept, by)
    }
    fn set_user_areas(&self, user: Uuid, areas: &[String]) -> Result<User, Error> {
        self.inner.set_user_areas(user, areas)
    }
    fn users(&self) -> Result<Vec<User>, Error> {
        self.inner.users()
    }
    fn deactivate_user(&self, user: Uuid) -> Result<bool, Error> {
        self.inner.deactivate_user(user)
    }
    fn change_user(
        &self,
        user: Uuid,
        change: &dyn Fn(&mut User) -> Result<(), Error>,
    ) -> Result<(User, User), Error> {
        self.inner.change_user(user, change)
    }
    fn devices(&self) -> Result<Vec<DeviceInfo>, AuthError> {
        self.inner.devices()
    }
    fn reissue(&self, device: Uuid) -> Result<Token, AuthError> {
        self.inner.reissue(device)
    }
    fn reference(&self) -> Result<Arc<ReferenceData>, Error> {
        self.inner.reference()
    }
    fn publish_references(&self, files: &[ReferenceFile]) -> Result<Vec<u32>, Error> {
        self.inner.publish_references(files)
    }
    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }
    fn console(&self) -> &dyn ConsoleStorage {
        self.inner.console()
    }
    fn console_form_key(&self) -> [u8; 32] {
        self.inner.console_form_key()
    }
    fn open_view(&self) -> Result<View, Error> {
        self.inner.open_view()
    }
    fn refresh_view(&self, view: &mut View) -> Result<(), Error> {
        self.inner.refresh_view(view)
    }
    fn write(
        &self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.inner.write(work)
    }
    fn actor(&self) -> automerge::ActorId {
        self.inner.actor()
    }
    fn sync(
        &self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> Result<Vec<u8>, HubError> {
        use std::sync::atomic::Ordering;
        let now = chrono::Utc::now().timestamp_millis();
        let last = self.marked_ms.load(Ordering::Relaxed);
        // One sync in a while compares, the one that wins the swap.
        if now - last >= MARK_EVERY_MS
            && self
                .marked_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            && let Err(e) = watch_change_order(&self.journal, &*self.inner)
        {
            tracing::warn!(error = %e, "the database's change order could not be compared");
        }
        self.inner.sync(who, request, limits)
    }
    fn attachment(
        &self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> Result<Vec<u8>, HubError> {
        self.inner.attachment(who, request, limits)
    }
    fn import_bundle(&self, bytes: &[u8], limits: &HubLimits) -> Result<HubBundleReport, HubError> {
        self.inner.import_bundle(bytes, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_back_and_a_line_not_the_hubs_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(&dir.path().join(KEY_FILE_NAME), &HubKey([7; 32]));
        journal.prepare().unwrap();
        let (case, phone) = (Uuid::new_v4(), Uuid::new_v4());
        journal.append(Action::Erase(case), 1).unwrap();
        journal.append(Action::Revoke(phone), 2).unwrap();
        let read = journal.read().unwrap();
        assert_eq!(read.actions, [Action::Erase(case), Action::Revoke(phone)]);
        assert!(read.refused_lines.is_empty());

        // One changed character: the line is not the hub's.
        let text = std::fs::read_to_string(journal.file()).unwrap();
        let other = Uuid::new_v4().to_string();
        std::fs::write(journal.file(), text.replace(&case.to_string(), &other)).unwrap();
        let read = journal.read().unwrap();
        assert_eq!(read.actions, [Action::Revoke(phone)]);
        assert_eq!(read.refused_lines, [2]);

        // Another hub's key tags other lines.
        let stranger = Journal::new(&dir.path().join(KEY_FILE_NAME), &HubKey([8; 32]));
        assert!(stranger.read().unwrap().actions.is_empty());
    }

    /// A line cut by a crash while it was appended: the next action still stands on a line of
    /// its own, and is read back.
    #[test]
    fn an_action_after_a_torn_line_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(&dir.path().join(KEY_FILE_NAME), &HubKey([7; 32]));
        journal.prepare().unwrap();
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        journal.append(Action::Erase(first), 1).unwrap();
        let mut out = std::fs::OpenOptions::new()
            .append(true)
            .open(journal.file())
            .unwrap();
        out.write_all(b"erase 01a23c93-44").unwrap();
        journal.append(Action::Erase(second), 2).unwrap();
        let read = journal.read().unwrap();
        assert_eq!(read.actions, [Action::Erase(first), Action::Erase(second)]);
        assert_eq!(read.refused_lines, [3]);
    }
}
