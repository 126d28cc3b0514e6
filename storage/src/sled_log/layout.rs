//! The stored format of the sled event log: one tree, key spaces told apart
//! by a tag byte, and the encodings of its values. It is versioned on its
//! own (`FORMAT`), separately from the engine's event tags, and is the only
//! place that knows it, so the writer and every reader agree by construction.
//!
//! Everything lives in the tree [`TREE`] because sled 0.34 makes a batch
//! crash-atomic only within one tree (`Tree::apply_batch`); several trees
//! would need its multi-tree transactions, whose bookkeeping cost more CPU
//! than the writes themselves. `ts` is a timestamp as 8 bytes of seconds with
//! the sign bit flipped, then 4 bytes of nanoseconds, all big-endian, so byte
//! order is time order down to the nanosecond and the `due_at` a timer was
//! scheduled with comes back exactly.
//!
//! | tag   | key after the tag                   | value                        |
//! |-------|-------------------------------------|------------------------------|
//! | 0x00  | `format`                            | [`FORMAT`]                   |
//! | `e`   | id (16) ++ !first seq (u64 BE)      | one append: summary + events |
//! | `c`   | tenant ++ 0x00 ++ ts(created) ++ id | kind                         |
//! | `t`   | tenant ++ 0x00 ++ id                | empty                        |
//! | `s`   | status ++ 0x00 ++ id                | empty                        |
//! | `o`   | id                                  | empty                        |
//! | `d`   | ts(due) ++ id ++ name               | empty                        |
//! | `k`   | tenant ++ 0x00 ++ key               | id                           |
//!
//! Each append is ONE value (a "chunk"), keyed by the bitwise complement of
//! the sequence number of its first event (counting from 1), so a stream's
//! newest chunk comes first: a u32 BE length and the workflow's summary
//! after the append (binary, see below), then a frame per event of a u32 BE
//! length and the bytes of `Event::encode`. There is no separate summary
//! row: a workflow's summary is the one in its newest chunk, found with one
//! forward seek, and it can never disagree with the events it sits beside.
//! Writing the summary with the events saves a sled write per append, the
//! most expensive thing the log does. A reader checks that each chunk starts
//! where the previous one ended, so a lost or extra chunk is detected as a
//! gap, and that the newest chunk's summary has the stream's version.
//!
//! `c` (by tenant, in creation order) serves `count_submitted_since`; `t`
//! is the same membership in id order because listings page by id. Tenant
//! ids never contain 0x00, so the separator keeps `acme` and `acme-eu` apart.

use ferry_engine::{
    DueTimer, LogError, Status, TenantId, TimerEntry, Timestamp, WorkflowId, WorkflowSummary,
};

/// The one sled tree the log keeps everything in.
pub const TREE: &str = "ferry_eventlog";

/// The key of the format marker.
pub const FORMAT_KEY: &[u8] = b"\x00format";

/// The format this code writes and the only one it reads.
pub const FORMAT: &[u8] = b"ferry-eventlog/2";

/// Trees of the first, multi-tree layout. A folder holding any of them was
/// written by a version this one cannot read.
pub const LEGACY_TREES: [&str; 8] = [
    "events",
    "workflows",
    "by_tenant",
    "tenant_ids",
    "by_status",
    "open",
    "timers",
    "idem",
];

pub(crate) const EVENTS: u8 = b'e';
pub(crate) const BY_TENANT: u8 = b'c';
pub(crate) const TENANT_IDS: u8 = b't';
pub(crate) const BY_STATUS: u8 = b's';
pub(crate) const OPEN: u8 = b'o';
pub(crate) const TIMERS: u8 = b'd';
pub(crate) const IDEM: u8 = b'k';

pub(crate) const TS_LEN: usize = 12;
pub(crate) const ID_LEN: usize = 16;

/// The first version byte of an encoded summary; another value is corruption.
const SUMMARY_V1: u8 = 1;

// ---------------------------------------------------------------------------
// Keys.
// ---------------------------------------------------------------------------

pub(crate) fn ts_key(t: &Timestamp) -> [u8; TS_LEN] {
    let mut out = [0u8; TS_LEN];
    // Flipping the sign bit makes two's-complement seconds sort as unsigned.
    let secs = (t.timestamp() as u64) ^ (1 << 63);
    out[..8].copy_from_slice(&secs.to_be_bytes());
    out[8..].copy_from_slice(&t.timestamp_subsec_nanos().to_be_bytes());
    out
}

pub(crate) fn ts_from_key(b: &[u8]) -> Result<Timestamp, LogError> {
    let bad = || LogError::Corruption(format!("bad timestamp {b:?}"));
    let secs: [u8; 8] = b.get(..8).and_then(|s| s.try_into().ok()).ok_or_else(bad)?;
    let nanos: [u8; 4] = b
        .get(8..TS_LEN)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(bad)?;
    let secs = (u64::from_be_bytes(secs) ^ (1 << 63)) as i64;
    chrono::DateTime::from_timestamp(secs, u32::from_be_bytes(nanos)).ok_or_else(bad)
}

pub(crate) fn id_from(b: &[u8]) -> Result<WorkflowId, LogError> {
    let bytes: [u8; ID_LEN] = b
        .try_into()
        .map_err(|_| LogError::Corruption(format!("bad workflow id of {} bytes", b.len())))?;
    Ok(WorkflowId::from_bytes(bytes))
}

/// `tag ++ id`.
fn tagged_id(tag: u8, id: &WorkflowId) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + ID_LEN + 8);
    k.push(tag);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The prefix of all of a stream's chunks.
pub(crate) fn events_prefix(id: &WorkflowId) -> Vec<u8> {
    tagged_id(EVENTS, id)
}

/// The length of a chunk's key.
pub(crate) const EVENTS_KEY_LEN: usize = 1 + ID_LEN + 8;

/// The key of the chunk of the append whose first event is number
/// `first_seq` (counting from 1) of stream `id`.
pub fn events_key(id: &WorkflowId, first_seq: u64) -> Vec<u8> {
    let mut k = tagged_id(EVENTS, id);
    k.extend_from_slice(&(!first_seq).to_be_bytes());
    k
}

/// A key after every chunk key of `id` and before any of the next id's.
pub(crate) fn events_end(id: &WorkflowId) -> Vec<u8> {
    let mut k = tagged_id(EVENTS, id);
    k.extend_from_slice(&[0xff; 8]);
    k
}

/// The workflow and first sequence number a chunk key names.
pub(crate) fn events_key_parts(key: &[u8]) -> Result<(WorkflowId, u64), LogError> {
    let bad = || LogError::Corruption(format!("bad event key {key:?}"));
    if key.len() != EVENTS_KEY_LEN || key[0] != EVENTS {
        return Err(bad());
    }
    let id = id_from(&key[1..1 + ID_LEN])?;
    let seq: [u8; 8] = key[1 + ID_LEN..].try_into().map_err(|_| bad())?;
    Ok((id, !u64::from_be_bytes(seq)))
}

pub(crate) fn open_key(id: &WorkflowId) -> Vec<u8> {
    tagged_id(OPEN, id)
}

/// `tag ++ tenant ++ 0x00`: the prefix of a tenant's rows in a tenant-keyed
/// key space.
pub(crate) fn tenant_prefix(tag: u8, tenant: &TenantId) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + tenant.as_str().len() + TS_LEN + ID_LEN);
    k.push(tag);
    k.extend_from_slice(tenant.as_str().as_bytes());
    k.push(0);
    k
}

/// `s ++ status ++ 0x00`: the prefix of a status's rows.
pub(crate) fn status_prefix(status: Status) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + status.as_str().len() + ID_LEN);
    k.push(BY_STATUS);
    k.extend_from_slice(status.as_str().as_bytes());
    k.push(0);
    k
}

pub(crate) fn idem_key(tenant: &TenantId, key: &str) -> Vec<u8> {
    let mut k = tenant_prefix(IDEM, tenant);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The first key after every key starting with `prefix`. Every prefix here
/// ends in 0x00 or is a single tag byte, neither of which is 0xff.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

// ---------------------------------------------------------------------------
// Index rows.
// ---------------------------------------------------------------------------

/// One index row a summary implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Entry {
    pub fn is_idem(&self) -> bool {
        self.key.first() == Some(&IDEM)
    }
}

/// Every index row `s` implies.
pub(crate) fn index_entries(s: &WorkflowSummary) -> Vec<Entry> {
    let id = s.id.as_bytes();
    let mut out = Vec::with_capacity(5 + s.timers.len());
    let mut by_tenant = tenant_prefix(BY_TENANT, &s.tenant);
    by_tenant.extend_from_slice(&ts_key(&s.created_at));
    by_tenant.extend_from_slice(id);
    out.push(Entry {
        key: by_tenant,
        value: s.kind.as_bytes().to_vec(),
    });
    let mut tenant_ids = tenant_prefix(TENANT_IDS, &s.tenant);
    tenant_ids.extend_from_slice(id);
    out.push(Entry {
        key: tenant_ids,
        value: vec![],
    });
    let mut by_status = status_prefix(s.status);
    by_status.extend_from_slice(id);
    out.push(Entry {
        key: by_status,
        value: vec![],
    });
    if s.status.is_open() {
        out.push(Entry {
            key: open_key(&s.id),
            value: vec![],
        });
    }
    for t in &s.timers {
        let mut k = Vec::with_capacity(1 + TS_LEN + ID_LEN + t.name.len());
        k.push(TIMERS);
        k.extend_from_slice(&ts_key(&t.due_at));
        k.extend_from_slice(id);
        k.extend_from_slice(t.name.as_bytes());
        out.push(Entry {
            key: k,
            value: vec![],
        });
    }
    if let Some(key) = &s.idempotency_key {
        out.push(Entry {
            key: idem_key(&s.tenant, key),
            value: id.to_vec(),
        });
    }
    out
}

/// A timer row's key, without its tag.
pub(crate) fn decode_timer(key: &[u8]) -> Result<DueTimer, LogError> {
    if key.len() < TS_LEN + ID_LEN {
        return Err(LogError::Corruption(format!("short timer key {key:?}")));
    }
    let name = std::str::from_utf8(&key[TS_LEN + ID_LEN..])
        .map_err(|_| LogError::Corruption(format!("timer name is not UTF-8 in {key:?}")))?;
    Ok(DueTimer {
        workflow: id_from(&key[TS_LEN..TS_LEN + ID_LEN])?,
        name: name.to_owned(),
        due_at: ts_from_key(&key[..TS_LEN])?,
    })
}

// ---------------------------------------------------------------------------
// Chunks: one value per append.
// ---------------------------------------------------------------------------

fn put_frame(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = u32::try_from(bytes.len()).expect("a value part is smaller than 4 GiB");
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// One append's chunk: its encoded summary, then its encoded events.
pub fn encode_chunk<E: AsRef<[u8]>>(summary: &[u8], events: &[E]) -> Vec<u8> {
    let len = 4 + summary.len() + events.iter().map(|e| 4 + e.as_ref().len()).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    put_frame(&mut out, summary);
    for e in events {
        put_frame(&mut out, e.as_ref());
    }
    out
}

/// A chunk's summary bytes and its event frames (for [`unframe_events`]).
pub(crate) fn split_chunk(chunk: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = chunk.get(..4)?;
    let n = u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize;
    let summary = chunk.get(4..4 + n)?;
    Some((summary, &chunk[4 + n..]))
}

/// The event frames of a chunk, in order; a truncated frame is an error naming
/// how many whole frames came before it.
pub(crate) fn unframe_events(mut value: &[u8]) -> impl Iterator<Item = Result<&[u8], usize>> {
    let mut whole = 0usize;
    std::iter::from_fn(move || {
        if value.is_empty() {
            return None;
        }
        let frame = value
            .get(..4)
            .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
            .and_then(|n| value.get(4..4 + n).map(|body| (n, body)));
        match frame {
            Some((n, body)) => {
                value = &value[4 + n..];
                whole += 1;
                Some(Ok(body))
            }
            None => {
                value = &[];
                Some(Err(whole))
            }
        }
    })
}

// ---------------------------------------------------------------------------
// Summaries: a compact binary form.
// ---------------------------------------------------------------------------
//
// version byte 1, id (16), version u64 BE, status (str8), ts(created),
// ts(updated), tenant (str8), kind (str32), idempotency key (u8 0|1, then
// str32), timer count u32 BE, then per timer name (str32) and ts(due_at).
// `str8`/`str32` are UTF-8 after a u8/u32 BE length. Statuses are stored by
// name, not by position, so reordering the enum never changes their meaning.

fn put_str8(out: &mut Vec<u8>, s: &str) {
    let n = u8::try_from(s.len()).expect("a status or tenant id is shorter than 256 bytes");
    out.push(n);
    out.extend_from_slice(s.as_bytes());
}

fn put_str32(out: &mut Vec<u8>, s: &str) {
    let n = u32::try_from(s.len()).expect("a string is shorter than 4 GiB");
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A summary in its stored form.
pub fn encode_summary(s: &WorkflowSummary) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        80 + s.kind.len()
            + s.idempotency_key.as_ref().map_or(0, String::len)
            + s.timers.iter().map(|t| 16 + t.name.len()).sum::<usize>(),
    );
    out.push(SUMMARY_V1);
    out.extend_from_slice(s.id.as_bytes());
    out.extend_from_slice(&s.version.to_be_bytes());
    put_str8(&mut out, s.status.as_str());
    out.extend_from_slice(&ts_key(&s.created_at));
    out.extend_from_slice(&ts_key(&s.updated_at));
    put_str8(&mut out, s.tenant.as_str());
    put_str32(&mut out, &s.kind);
    match &s.idempotency_key {
        Some(key) => {
            out.push(1);
            put_str32(&mut out, key);
        }
        None => out.push(0),
    }
    let timers = u32::try_from(s.timers.len()).expect("fewer than 4 billion timers");
    out.extend_from_slice(&timers.to_be_bytes());
    for t in &s.timers {
        put_str32(&mut out, &t.name);
        out.extend_from_slice(&ts_key(&t.due_at));
    }
    out
}

/// Reads an encoded summary front to back; any shortfall is corruption.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.rest.len() < n {
            return Err(format!(
                "truncated ({} bytes left, {n} needed)",
                self.rest.len()
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    fn str(&mut self, n: usize) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(n)?).map_err(|e| format!("not UTF-8: {e}"))
    }

    fn str8(&mut self) -> Result<&'a str, String> {
        let n = usize::from(self.u8()?);
        self.str(n)
    }

    fn str32(&mut self) -> Result<&'a str, String> {
        let n = self.u32()?;
        self.str(n)
    }

    fn ts(&mut self) -> Result<Timestamp, String> {
        let b = self.take(TS_LEN)?;
        ts_from_key(b).map_err(|e| e.to_string())
    }
}

pub(crate) fn decode_summary(raw: &[u8]) -> Result<WorkflowSummary, LogError> {
    decode_summary_inner(raw)
        .map_err(|e| LogError::Corruption(format!("undecodable workflow summary: {e}")))
}

fn decode_summary_inner(raw: &[u8]) -> Result<WorkflowSummary, String> {
    let mut r = Reader { rest: raw };
    let v = r.u8()?;
    if v != SUMMARY_V1 {
        return Err(format!("unknown summary encoding {v}"));
    }
    let id = id_from(r.take(ID_LEN)?).map_err(|e| e.to_string())?;
    let version = r.u64()?;
    let status = r.str8()?;
    let status = Status::parse(status).ok_or_else(|| format!("unknown status {status:?}"))?;
    let created_at = r.ts()?;
    let updated_at = r.ts()?;
    let tenant = TenantId::parse(r.str8()?).map_err(|e| e.to_string())?;
    let kind = r.str32()?.to_owned();
    let idempotency_key = match r.u8()? {
        0 => None,
        1 => Some(r.str32()?.to_owned()),
        other => return Err(format!("bad idempotency-key flag {other}")),
    };
    let count = r.u32()?;
    // Each timer takes at least 4 + TS_LEN bytes: bound the allocation by
    // what the value can hold, not by what its count claims.
    let mut timers = Vec::with_capacity(count.min(r.rest.len() / (4 + TS_LEN)));
    for _ in 0..count {
        let name = r.str32()?.to_owned();
        let due_at = r.ts()?;
        timers.push(TimerEntry { name, due_at });
    }
    if !r.rest.is_empty() {
        return Err(format!("{} trailing bytes", r.rest.len()));
    }
    Ok(WorkflowSummary {
        id,
        tenant,
        kind,
        status,
        version,
        created_at,
        updated_at,
        idempotency_key,
        timers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, nanos: u32) -> Timestamp {
        chrono::DateTime::from_timestamp(secs, nanos).expect("valid")
    }

    fn summary() -> WorkflowSummary {
        WorkflowSummary {
            id: WorkflowId::from_bytes([7; 16]),
            tenant: TenantId::parse("acme-eu").expect("valid"),
            kind: "export".into(),
            status: Status::AwaitingConfirmation,
            version: 42,
            created_at: at(-5, 999_999_999),
            updated_at: at(1_767_225_600, 123_456_789),
            idempotency_key: Some("nightly \u{e9}".into()),
            timers: vec![
                TimerEntry {
                    name: "expire".into(),
                    due_at: at(1_767_312_000, 1),
                },
                TimerEntry {
                    name: String::new(),
                    due_at: at(0, 0),
                },
            ],
        }
    }

    #[test]
    fn timestamp_keys_sort_like_timestamps_and_round_trip() {
        let times = [
            at(-86_400, 5),
            at(-1, 999_999_999),
            at(0, 0),
            at(0, 1),
            at(1_767_225_600, 123_456),
            at(1_767_225_600, 123_457),
            at(1_767_225_601, 0),
        ];
        for pair in times.windows(2) {
            assert!(ts_key(&pair[0]) < ts_key(&pair[1]), "{pair:?}");
        }
        for t in times {
            assert_eq!(ts_from_key(&ts_key(&t)).expect("decodes"), t);
        }
    }

    #[test]
    fn tenant_prefixes_do_not_overlap() {
        let a = tenant_prefix(TENANT_IDS, &TenantId::parse("acme").expect("valid"));
        let b = tenant_prefix(TENANT_IDS, &TenantId::parse("acme-eu").expect("valid"));
        assert!(!b.starts_with(&a));
        assert!(b.as_slice() < a.as_slice() || b.as_slice() >= prefix_end(&a).as_slice());
    }

    #[test]
    fn status_names_fit_the_index() {
        // The status index is keyed by the status name; no name may contain
        // the separator, and every name fits a str8.
        for s in Status::ALL {
            assert!(!s.as_str().as_bytes().contains(&0));
            assert!(s.as_str().len() < 256);
        }
    }

    #[test]
    fn tags_are_distinct() {
        let mut tags = vec![
            FORMAT_KEY[0],
            EVENTS,
            BY_TENANT,
            TENANT_IDS,
            BY_STATUS,
            OPEN,
            TIMERS,
            IDEM,
        ];
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), 8);
        assert!(
            !tags.contains(&0xff),
            "prefix_end needs room above every tag"
        );
    }

    #[test]
    fn summaries_round_trip() {
        let mut s = summary();
        assert_eq!(decode_summary(&encode_summary(&s)).expect("decodes"), s);
        s.idempotency_key = None;
        s.timers.clear();
        s.status = Status::Pending;
        assert_eq!(decode_summary(&encode_summary(&s)).expect("decodes"), s);
    }

    #[test]
    fn every_damaged_summary_is_corruption() {
        let raw = encode_summary(&summary());
        // Every truncation, and every single extra byte, is detected.
        for n in 0..raw.len() {
            assert!(
                matches!(decode_summary(&raw[..n]), Err(LogError::Corruption(_))),
                "truncated to {n}"
            );
        }
        let mut longer = raw.clone();
        longer.push(0);
        assert!(matches!(
            decode_summary(&longer),
            Err(LogError::Corruption(_))
        ));
        // The first layout's JSON is not mistaken for a summary.
        assert!(matches!(
            decode_summary(br#"{"id":"x"}"#),
            Err(LogError::Corruption(_))
        ));
        // A huge timer count in a short value fails without allocating it.
        let mut lying = encode_summary(&WorkflowSummary {
            timers: vec![],
            ..summary()
        });
        let n = lying.len();
        lying[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_summary(&lying),
            Err(LogError::Corruption(_))
        ));
    }

    #[test]
    fn chunks_round_trip_and_truncation_is_reported() {
        let events: Vec<Vec<u8>> = vec![b"one".to_vec(), vec![], b"three".to_vec()];
        let chunk = encode_chunk(b"summary", &events);
        let (summary, frames) = split_chunk(&chunk).expect("whole");
        assert_eq!(summary, b"summary");
        let back: Vec<&[u8]> = unframe_events(frames)
            .collect::<Result<_, _>>()
            .expect("whole");
        assert_eq!(back, events.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let (_, cut) = split_chunk(&chunk[..chunk.len() - 1]).expect("summary whole");
        let results: Vec<_> = unframe_events(cut).collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[2], Err(2));
        assert!(split_chunk(&chunk[..8]).is_none());
    }

    #[test]
    fn a_streams_newest_chunk_comes_first() {
        let id = WorkflowId::from_bytes([3; 16]);
        let next = WorkflowId::from_bytes([4; 16]);
        let keys: Vec<Vec<u8>> = [u64::MAX - 1, 1_000, 2, 1]
            .iter()
            .map(|seq| events_key(&id, *seq))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(keys.iter().all(|k| k.starts_with(&events_prefix(&id))));
        assert!(keys
            .iter()
            .all(|k| k.as_slice() < events_end(&id).as_slice()));
        assert!(events_end(&id) < events_key(&next, u64::MAX - 1));
        for seq in [1, 2, 1_000, u64::MAX - 1] {
            assert_eq!(
                events_key_parts(&events_key(&id, seq)).expect("parts"),
                (id, seq)
            );
        }
    }
}
