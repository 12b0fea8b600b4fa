//! CSV import of contacts and their organisations.
//!
//! A reader thread parses and validates rows (see [`reader`] and [`row`]) and
//! hands chunks of them to the async side, which resolves organisations,
//! finds the contacts that already exist, and inserts, updates and tags. A
//! batch of `batch_size` rows, several chunks, is one transaction
//! (all-or-nothing). Good rows go in; bad rows are
//! reported with line, column, field and reason, and can be written to a
//! reject file. Importing the same file twice changes nothing.

pub mod created;
pub mod reader;
pub mod row;

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read as _, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use serde::Serialize;

use crate::domain::{quote, ContactStatus};
use crate::store::import::{ExistingContact, ImportSession, NewRow, OrgRecord};
use crate::store::{normalise_tag, StatusChange, Store};
use created::CreatedLines;
pub use row::{Columns, ImportRow, OrgInput, RowError, COLUMNS};

/// How an import behaves.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Validate and count, but write nothing.
    pub dry_run: bool,
    /// Merge changed fields into existing contacts and organisations.
    pub update: bool,
    /// Set unsubscribed, bounced or blocklisted contacts in the file back to active.
    pub force_reactivate: bool,
    /// Tags added to every imported contact.
    pub tags: Vec<String>,
    /// Where rejected rows are written (with the header), if anywhere.
    pub reject_file: Option<PathBuf>,
    /// Recorded as each new contact's consent source.
    pub consent_source: Option<String>,
    /// Rows per transaction.
    pub batch_size: usize,
    /// Who runs the import, for the audit trail.
    pub actor: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            dry_run: false,
            update: false,
            force_reactivate: false,
            tags: Vec::new(),
            reject_file: None,
            consent_source: None,
            batch_size: 2000,
            actor: "import".into(),
        }
    }
}

/// At most this many row errors are kept in the report (all are counted and
/// all go to the reject file).
pub const MAX_REPORTED_ERRORS: usize = 10_000;

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub file: String,
    pub dry_run: bool,
    /// Data rows read (not counting the header and blank lines).
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub reactivated: u64,
    /// Existing contacts in the file left unsubscribed, bounced or blocklisted.
    pub kept_suppressed: u64,
    pub tags_added: u64,
    pub orgs_created: u64,
    pub orgs_updated: u64,
    pub rejected: u64,
    pub errors: Vec<RowError>,
    pub warnings: Vec<String>,
    pub batches_committed: u64,
    /// True when the import stopped early (Ctrl-C); committed batches stay.
    pub interrupted: bool,
    pub seconds: f64,
}

/// What the audit trail keeps of an import: its counts (the rows
/// themselves are in the file and the reject file).
pub fn audit_details(r: &ImportReport) -> serde_json::Value {
    serde_json::json!({
        "file": r.file, "dry_run": r.dry_run, "rows": r.rows, "created": r.created,
        "updated": r.updated, "unchanged": r.unchanged, "reactivated": r.reactivated,
        "rejected": r.rejected, "orgs_created": r.orgs_created, "orgs_updated": r.orgs_updated,
        "interrupted": r.interrupted,
    })
}

impl ImportReport {
    /// The one-line summary printed after every import.
    pub fn summary_line(&self) -> String {
        format!(
            "{}{}: {} rows: {} created, {} updated, {} unchanged, {} reactivated, {} rejected; \
             {} organisations created, {} updated; {} tag links added ({:.1}s{})",
            if self.dry_run {
                "dry run, nothing written: "
            } else {
                ""
            },
            self.file,
            self.rows,
            self.created,
            self.updated,
            self.unchanged,
            self.reactivated,
            self.rejected,
            self.orgs_created,
            self.orgs_updated,
            self.tags_added,
            self.seconds,
            if self.interrupted {
                ", interrupted: run again to finish"
            } else {
                ""
            }
        )
    }

    /// Counts one rejected row and keeps its errors for the report.
    fn reject(&mut self, errs: Vec<RowError>) {
        self.rejected += 1;
        for e in errs {
            if self.errors.len() < MAX_REPORTED_ERRORS {
                self.errors.push(e);
            }
        }
    }
}

/// A batch handed from the reader thread to the writer.
struct Chunk {
    rows: Vec<ImportRow>,
    /// Rejected rows: their errors and their bytes as found in the file.
    rejects: Vec<(Vec<RowError>, Vec<u8>)>,
    read_rows: u64,
}

/// Imports `path` (or standard input for `-`).
pub async fn import_file(
    store: &Store,
    path: &Path,
    opts: &ImportOptions,
    progress: Option<indicatif::ProgressBar>,
    stop: Arc<AtomicBool>,
) -> Result<ImportReport> {
    let started = std::time::Instant::now();
    let display = path.display().to_string();
    let input: Box<dyn std::io::Read + Send> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("opening {display}"))?)
    };
    let mut reader = reader::Reader::new(BufReader::with_capacity(1 << 16, input));
    let mut rec = reader::Record::default();
    // The header decides the columns.
    let header = match reader
        .read(&mut rec)
        .with_context(|| format!("reading {display}"))?
    {
        reader::Read::Eof => bail!(
            "{display}: the file is empty (expected a header line: {})",
            COLUMNS.join(",")
        ),
        reader::Read::Bad(e) => {
            bail!("{display}:{}:{}: header: {}", e.line, e.column, e.message)
        }
        reader::Read::Record => rec.raw.clone(),
    };
    let columns = Columns::from_header(&rec).map_err(|e| anyhow::anyhow!("{display}: {e}"))?;
    let mut reject_out = match &opts.reject_file {
        Some(p) => {
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("creating reject file {}", p.display()))?,
            );
            f.write_all(&header)?;
            if !header.ends_with(b"\n") {
                f.write_all(b"\n")?;
            }
            Some(f)
        }
        None => None,
    };

    // Reader thread: parse and validate, send batches.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Chunk>>(2);
    let chunk_rows = opts.batch_size.clamp(1, CHUNK_ROWS);
    let reader_stop = stop.clone();
    let reader_progress = progress.clone();
    let reader_thread = std::thread::Builder::new()
        .name("import-reader".into())
        .spawn(move || {
            let mut chunk = Chunk {
                rows: Vec::with_capacity(chunk_rows),
                rejects: Vec::new(),
                read_rows: 0,
            };
            let mut batch_seen: HashMap<String, u64> = HashMap::new();
            loop {
                if reader_stop.load(Ordering::Relaxed) {
                    break;
                }
                let item = match reader.read(&mut rec) {
                    Ok(item) => item,
                    Err(e) => {
                        let _ = tx
                            .blocking_send(Err(anyhow::Error::new(e).context("reading the file")));
                        return;
                    }
                };
                match item {
                    reader::Read::Eof => break,
                    reader::Read::Bad(e) => {
                        chunk.read_rows += 1;
                        let err = RowError {
                            line: e.line,
                            column: Some(e.column as u64),
                            field: None,
                            message: e.message,
                        };
                        chunk.rejects.push((vec![err], e.raw));
                    }
                    reader::Read::Record => {
                        chunk.read_rows += 1;
                        match columns.parse(&rec) {
                            Ok(row) => {
                                // Duplicates within one chunk are caught here;
                                // across chunks in `process_chunk`.
                                if let Some(first) = batch_seen.get(&row.email) {
                                    let err = row.duplicate_error(*first);
                                    chunk.rejects.push((vec![err], rec.raw.clone()));
                                } else {
                                    batch_seen.insert(row.email.clone(), row.line);
                                    chunk.rows.push(row);
                                }
                            }
                            Err(errs) => chunk.rejects.push((errs, rec.raw.clone())),
                        }
                    }
                }
                if chunk.rows.len() >= chunk_rows {
                    if let Some(p) = &reader_progress {
                        p.set_position(reader.bytes_read());
                    }
                    let full = std::mem::replace(
                        &mut chunk,
                        Chunk {
                            rows: Vec::with_capacity(chunk_rows),
                            rejects: Vec::new(),
                            read_rows: 0,
                        },
                    );
                    batch_seen.clear();
                    if tx.blocking_send(Ok(full)).is_err() {
                        return;
                    }
                }
            }
            if let Some(p) = &reader_progress {
                p.set_position(reader.bytes_read());
            }
            let _ = tx.blocking_send(Ok(chunk));
        })?;

    let mut report = ImportReport {
        file: display.clone(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut session = store.import_session(opts.dry_run).await?;
    let mut state = BatchState {
        consent_source: opts.consent_source.clone().unwrap_or_else(|| {
            format!(
                "import:{}",
                path.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            )
        }),
        ..Default::default()
    };
    let extra_tags: Vec<String> = opts
        .tags
        .iter()
        .map(|t| normalise_tag(t))
        .filter(|t| !t.is_empty())
        .collect();
    let mut failure = None;
    let batch_size = opts.batch_size.max(1);
    while let Some(chunk) = rx.recv().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        report.rows += chunk.read_rows;
        let mut rejects = chunk.rejects;
        if !chunk.rows.is_empty() {
            if state.open_rows == 0 {
                if let Err(e) = session.begin_batch().await {
                    failure = Some(e);
                    break;
                }
            }
            state.open_rows += chunk.rows.len();
            if let Err(e) = process_chunk(
                &mut session,
                &mut state,
                chunk.rows,
                opts,
                &extra_tags,
                &mut report,
                &mut rejects,
            )
            .await
            {
                failure = Some(e);
                break;
            }
        }
        rejects.sort_by_key(|r| r.0.first().map(|e| e.line));
        for (errs, raw) in rejects {
            if let Some(out) = reject_out.as_mut().filter(|_| !raw.is_empty()) {
                out.write_all(&raw)?;
                if !raw.ends_with(b"\n") {
                    out.write_all(b"\n")?;
                }
            }
            report.reject(errs);
        }
        let stopping = stop.load(Ordering::Relaxed);
        if state.open_rows >= batch_size || stopping {
            if let Err(e) = state.commit(&mut session, &mut report).await {
                failure = Some(e);
                break;
            }
        }
        if stopping {
            report.interrupted = true;
            break;
        }
    }
    if failure.is_none() {
        // The end of the file: the last batch.
        if let Err(e) = state.commit(&mut session, &mut report).await {
            failure = Some(e);
        }
    }
    drop(rx);
    let _ = reader_thread.join();
    if let Some(e) = failure {
        // `finish` rolls the open batch back.
        let _ = session.finish().await;
        return Err(e.context(format!(
            "importing {display}: stopped after {} committed batches ({} contacts created); \
             the failed batch was rolled back, so running the import again completes it",
            report.batches_committed, state.committed_created
        )));
    }
    session.finish().await?;
    if let Some(mut out) = reject_out {
        out.flush()?;
    }
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    report.errors.sort_by_key(|e| (e.line, e.column));
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// What the writer keeps between chunks: the organisations seen during the
/// import (so each is looked up once), the tags, and the open batch.
#[derive(Default)]
struct BatchState {
    consent_source: String,
    /// name_key → (record, line of this file that defined or changed it).
    orgs: HashMap<String, (OrgRecord, Option<u64>)>,
    tags: HashMap<String, i64>,
    /// Rows processed in the open batch (0: no batch is open).
    open_rows: usize,
    /// Contacts created by the batches committed so far.
    committed_created: u64,
    /// The contacts this import created, with their lines: a later row with
    /// the same address is a duplicate.
    created: CreatedLines,
    /// Addresses of rows rejected after they were read (an organisation the
    /// file disagrees about), with their lines: a later row with the same
    /// address is a duplicate of that one too. Grows only with rejections,
    /// as the report's error list does.
    passed_over: HashMap<String, u64>,
}

/// Bound on the organisation cache, so memory stays flat on huge files.
const MAX_CACHED_ORGS: usize = 50_000;

/// Rows the reader hands over at a time, and so the most rows one set of
/// bulk statements carries: a batch (one transaction) of `batch_size` rows
/// is processed in chunks of this many, which keeps memory flat however
/// large the batch.
const CHUNK_ROWS: usize = 2000;

impl BatchState {
    /// Commits the open batch, if any.
    async fn commit(
        &mut self,
        session: &mut ImportSession,
        report: &mut ImportReport,
    ) -> Result<()> {
        if self.open_rows == 0 {
            return Ok(());
        }
        session.commit_batch().await?;
        self.open_rows = 0;
        report.batches_committed += 1;
        self.committed_created = report.created;
        if self.orgs.len() > MAX_CACHED_ORGS {
            self.orgs.clear();
        }
        Ok(())
    }
}

/// Merges one chunk of valid rows into the store, inside the open batch.
#[allow(clippy::too_many_arguments)]
async fn process_chunk(
    session: &mut ImportSession,
    state: &mut BatchState,
    mut rows: Vec<ImportRow>,
    opts: &ImportOptions,
    extra_tags: &[String],
    report: &mut ImportReport,
    rejects: &mut Vec<(Vec<RowError>, Vec<u8>)>,
) -> Result<()> {
    let now = Utc::now();
    // 1. The contacts that exist already, and duplicates of rows in earlier
    // chunks (the reader catches those within a chunk). An address this
    // import created is a duplicate of the row that created it. One that
    // existed before goes into the session's seen-table, which says whether
    // an earlier row matched it too. New addresses cost no lookup beyond
    // this one.
    let existing: HashMap<String, ExistingContact> = {
        let emails: Vec<&str> = rows.iter().map(|r| r.email.as_str()).collect();
        session
            .find_contacts(&emails)
            .await?
            .into_iter()
            .map(|c| (c.email.clone(), c))
            .collect()
    };
    let mut reject_duplicate = |r: &ImportRow, first: Option<u64>| match first {
        Some(first) => {
            rejects.push((vec![r.duplicate_error(first)], r.raw.clone()));
            false
        }
        None => true,
    };
    rows.retain(|r| {
        let first = match existing.get(&r.email) {
            Some(c) => state.created.line_of(c.id),
            None => state.passed_over.get(&r.email).copied(),
        };
        reject_duplicate(r, first)
    });
    let matched: Vec<(&str, u64)> = rows
        .iter()
        .filter(|r| existing.contains_key(&r.email))
        .map(|r| (r.email.as_str(), r.line))
        .collect();
    if !matched.is_empty() {
        let seen = session.mark_seen(&matched).await?;
        if !seen.is_empty() {
            rows.retain(|r| reject_duplicate(r, seen.get(&r.email).copied()));
        }
    }

    // 2. Organisations: look up the unknown ones, create or check the rest.
    let unknown: Vec<&str> = {
        let mut set = HashSet::new();
        rows.iter()
            .filter_map(|r| r.org.as_ref())
            .map(|o| o.key.as_str())
            .filter(|k| !state.orgs.contains_key(*k) && set.insert(*k))
            .collect()
    };
    if !unknown.is_empty() {
        for rec in session.find_orgs(&unknown).await? {
            state.orgs.insert(rec.name_key.clone(), (rec, None));
        }
    }
    // Organisations still unknown are new: create them all in one statement,
    // each as its first row in the file describes it.
    let mut fresh: Vec<(OrgRecord, u64)> = Vec::new();
    {
        let mut queued = HashSet::new();
        for r in &rows {
            if let Some(input) = &r.org {
                if !state.orgs.contains_key(&input.key) && queued.insert(input.key.as_str()) {
                    fresh.push((input.to_record(), r.line));
                }
            }
        }
    }
    if !fresh.is_empty() {
        let recs: Vec<&OrgRecord> = fresh.iter().map(|(rec, _)| rec).collect();
        let ids = session.insert_orgs(&recs, now).await?;
        for (mut rec, line) in fresh {
            rec.id = *ids
                .get(&rec.name_key)
                .ok_or_else(|| anyhow!("organisation {} was not created", quote(&rec.name)))?;
            report.orgs_created += 1;
            state.orgs.insert(rec.name_key.clone(), (rec, Some(line)));
        }
    }
    let mut org_ids: Vec<Option<i64>> = Vec::with_capacity(rows.len());
    let mut keep = Vec::with_capacity(rows.len());
    for r in rows.drain(..) {
        let Some(input) = &r.org else {
            org_ids.push(None);
            keep.push(r);
            continue;
        };
        match state.orgs.get_mut(&input.key) {
            None => bail!(
                "line {}: organisation {} was neither found nor created",
                r.line,
                quote(&input.name)
            ),
            Some((rec, defined_at)) => {
                let diffs = input.differences(rec);
                if diffs.is_empty() {
                    org_ids.push(Some(rec.id));
                    keep.push(r);
                    continue;
                }
                match defined_at {
                    Some(first) => {
                        // The file itself disagrees about this organisation.
                        let (field, mine, theirs) = &diffs[0];
                        let err = r.field_error(
                            field,
                            format!(
                                "organisation {} has {field} {} here but {} on line {first}",
                                quote(&input.name),
                                quote(mine),
                                quote(theirs)
                            ),
                        );
                        rejects.push((vec![err], r.raw.clone()));
                        if !existing.contains_key(&r.email) {
                            state.passed_over.insert(r.email.clone(), r.line);
                        }
                    }
                    None if opts.update => {
                        input.merge_into(rec);
                        session.update_org(rec, now).await?;
                        report.orgs_updated += 1;
                        *defined_at = Some(r.line);
                        org_ids.push(Some(rec.id));
                        keep.push(r);
                    }
                    None => {
                        if report.warnings.len() < 100 {
                            let fields: Vec<&str> = diffs.iter().map(|d| d.0).collect();
                            report.warnings.push(format!(
                                "line {}: organisation {} differs from the stored one ({}); kept as stored (use --update to change it)",
                                r.line,
                                quote(&input.name),
                                fields.join(", ")
                            ));
                        }
                        *defined_at = Some(r.line);
                        org_ids.push(Some(rec.id));
                        keep.push(r);
                    }
                }
            }
        }
    }
    let rows = keep;

    // 3. New contacts in one statement; updates and reactivations one by one.
    let mut new_rows = Vec::new();
    // The line of each new row's address, until its contact is created.
    let mut new_lines: HashMap<&str, u64> = HashMap::new();
    // email → (contact id, created by this chunk).
    let mut contact_ids: HashMap<String, (i64, bool)> = HashMap::with_capacity(rows.len());
    for (r, org_id) in rows.iter().zip(&org_ids) {
        match existing.get(&r.email) {
            None => {
                new_rows.push(r.as_new_row(*org_id));
                new_lines.insert(&r.email, r.line);
            }
            Some(c) => {
                contact_ids.insert(r.email.clone(), (c.id, false));
                let mut changed = false;
                if opts.update {
                    let merged_attrs = r.merged_attributes(&c.attributes.0);
                    let merged = NewRow {
                        e: &c.email,
                        n: if r.name.is_empty() { &c.name } else { &r.name },
                        t: if r.title.is_empty() {
                            &c.title
                        } else {
                            &r.title
                        },
                        o: org_id.or(c.organisation_id),
                        l: r.language.as_deref().or(c.language.as_deref()),
                        a: &merged_attrs,
                        s: if r.salutation.is_empty() {
                            &c.salutation
                        } else {
                            &r.salutation
                        },
                    };
                    if merged.n != c.name
                        || merged.t != c.title
                        || merged.s != c.salutation
                        || merged.o != c.organisation_id
                        || merged.l != c.language.as_deref()
                        || merged_attrs != c.attributes.0
                    {
                        session.update_contact(c.id, &merged, now).await?;
                        changed = true;
                    }
                }
                let status = ContactStatus::parse(&c.status)?;
                if status != ContactStatus::Active {
                    if opts.force_reactivate {
                        let evidence = serde_json::json!({ "file": report.file, "line": r.line });
                        let change = StatusChange {
                            status: ContactStatus::Active,
                            reason: "reactivated by import --force-reactivate",
                            actor: &opts.actor,
                            evidence,
                        };
                        session.change_status(c.id, Some(status), &change).await?;
                        report.reactivated += 1;
                    } else {
                        report.kept_suppressed += 1;
                    }
                }
                if changed {
                    report.updated += 1;
                } else {
                    report.unchanged += 1;
                }
            }
        }
    }
    let inserted = session
        .insert_contacts(&new_rows, &state.consent_source, now)
        .await?;
    report.created += inserted.len() as u64;
    state.created.record(
        inserted
            .iter()
            .filter_map(|(id, email)| Some((*id, new_lines.remove(email.as_str())?)))
            .collect(),
    );
    if !new_lines.is_empty() {
        // Addresses another writer inserted meanwhile count as unchanged,
        // and are remembered as matched by these rows.
        report.unchanged += new_lines.len() as u64;
        let skipped: Vec<(&str, u64)> = new_lines.into_iter().collect();
        session.mark_seen(&skipped).await?;
    }
    contact_ids.extend(inserted.into_iter().map(|(id, email)| (email, (id, true))));

    // 4. Tags.
    let mut wanted: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.tags.iter().map(String::as_str))
        .chain(extra_tags.iter().map(String::as_str))
        .filter(|t| !state.tags.contains_key(*t))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    if !wanted.is_empty() {
        for (name, id) in session.ensure_tags(&wanted, now).await? {
            state.tags.insert(name, id);
        }
    }
    // Contacts created just now have no links yet: theirs are inserted
    // without the cost of looking for a conflict.
    let (mut fresh_links, mut links) = (Vec::new(), Vec::new());
    for r in &rows {
        let Some(&(cid, fresh)) = contact_ids.get(&r.email) else {
            continue;
        };
        let out = if fresh { &mut fresh_links } else { &mut links };
        for t in r.tags.iter().chain(extra_tags) {
            if let Some(&tid) = state.tags.get(t.as_str()) {
                out.push((cid, tid));
            }
        }
    }
    // A row's own tag may also be given with --tag.
    fresh_links.sort_unstable();
    fresh_links.dedup();
    report.tags_added += session.link_tags(&fresh_links, true).await?;
    report.tags_added += session.link_tags(&links, false).await?;

    // 5. Everything referred to still exists (under the batch's lock).
    let used_orgs: Vec<i64> = org_ids.iter().flatten().copied().collect();
    let used_tags: Vec<i64> = fresh_links.iter().chain(&links).map(|l| l.1).collect();
    session.check_references(&used_orgs, &used_tags).await?;
    Ok(())
}

/// Counts the data rows of a CSV file quickly (used by benchmarks and tests).
pub fn count_lines(path: &Path) -> Result<u64> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += memchr::memchr_iter(b'\n', &buf[..k]).count() as u64;
    }
    Ok(n)
}
