//! Block-sum tables of `FSCXREC2` extent records (docs/FORMAT.md, "Per-extent layout" and
//! "Verified reads"): XXH3-64 of each 4096-byte block of the payload's checked range, stored in the
//! record's header block at bytes 128.. so a read verifies only the blocks it touches; the first 6
//! bytes of XXH3-64 over the table go into header bytes 98..104, covered by the header checksum.
//! Pure encoding and checking, no I/O; and the small process-wide cache of verified tables.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Size of the blocks the table sums (the last one may be shorter).
pub const BLOCK: u64 = 4096;
/// Offset of the table inside the record's header block.
pub const TABLE_OFF: u64 = 128;
/// Most blocks a table holds (it fills the header block up to 4096): payloads whose checked range
/// has more blocks get no table.
pub const MAX_BLOCKS: u64 = 496;

/// The number of blocks of a `checked_len`-byte payload when it gets a table (1..=496), else None.
pub fn blocks(checked_len: u64) -> Option<u64> {
    let n = checked_len.div_ceil(BLOCK);
    (n > 0 && n <= MAX_BLOCKS).then_some(n)
}

/// The sum of one block (XXH3-64, little-endian: `PayloadSum::Xxh3`).
pub fn block_sum(block: &[u8]) -> [u8; 8] {
    xxhash_rust::xxh3::xxh3_64(block).to_le_bytes()
}

/// The table of `payload` (its checked range): 8 bytes per block; None when it gets no table.
pub fn table_of(payload: &[u8]) -> Option<Vec<u8>> {
    blocks(payload.len() as u64)?;
    Some(payload.chunks(BLOCK as usize).flat_map(block_sum).collect())
}

/// The value of header bytes 98..104 for `table`: the first 6 bytes of its XXH3-64 (little-endian),
/// with the low bit of the first byte set when all six are zero (all zero means "no table").
pub fn table_hash(table: &[u8]) -> [u8; 6] {
    let mut h = [0u8; 6];
    h.copy_from_slice(&xxhash_rust::xxh3::xxh3_64(table).to_le_bytes()[..6]);
    if h == [0; 6] {
        h[0] = 1;
    }
    h
}

/// Whether header bytes 98..104 say "a table".
pub fn has_table(hash: &[u8; 6]) -> bool {
    *hash != [0; 6]
}

/// Index of the first block of `table` (whose hash was checked) that `bytes` — blocks `first..` of
/// the payload, the last one possibly shorter — do not match; None when all match.
pub fn first_mismatch(table: &[u8], first: u64, bytes: &[u8]) -> Option<u64> {
    bytes
        .chunks(BLOCK as usize)
        .zip(first..)
        .find(|(b, i)| {
            let at = (*i * 8) as usize;
            table.get(at..at + 8) != Some(&block_sum(b)[..])
        })
        .map(|(_, i)| i)
}

/// Bytes of verified tables the process keeps (a 256 KiB run's table is 512 bytes).
pub const TABLE_CACHE_BYTES: usize = 4 << 20;

/// What identifies a verified table: the file instance, the record's offset and the table's hash.
type TableKey = (u64, u64, [u8; 6]);

struct TableCache {
    map: HashMap<TableKey, (Arc<Vec<u8>>, u64)>,
    bytes: usize,
    clock: u64,
}

static TABLES: Mutex<Option<TableCache>> = Mutex::new(None);

/// A verified table from the cache (marked as used now).
pub fn cache_get(key: &TableKey) -> Option<Arc<Vec<u8>>> {
    let mut g = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    let c = g.as_mut()?;
    c.clock += 1;
    let now = c.clock;
    let e = c.map.get_mut(key)?;
    e.1 = now;
    Some(Arc::clone(&e.0))
}

/// Keeps a verified table. Over [`TABLE_CACHE_BYTES`], the least recently used half is dropped
/// (one pass, so the cost per insertion stays constant on average).
pub fn cache_put(key: TableKey, table: Arc<Vec<u8>>) {
    let mut g = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    let c = g.get_or_insert_with(|| TableCache {
        map: HashMap::new(),
        bytes: 0,
        clock: 0,
    });
    c.clock += 1;
    // Counted by what they hold in memory, not by their length.
    let len = table.capacity();
    if let Some(old) = c.map.insert(key, (table, c.clock)) {
        c.bytes -= old.0.capacity();
    }
    c.bytes += len;
    if c.bytes > TABLE_CACHE_BYTES && c.map.len() > 1 {
        let mut stamps: Vec<u64> = c.map.values().map(|v| v.1).collect();
        let mid = stamps.len() / 2;
        let cut = *stamps.select_nth_unstable(mid).1;
        c.map.retain(|_, v| v.1 >= cut);
        c.bytes = c.map.values().map(|v| v.0.capacity()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{PayloadSum, RecordHeader, RECORD_MAGIC_SHA256};
    use super::*;
    use crate::store::checksum;

    #[test]
    fn tables_sum_each_block_and_hash_never_reads_as_none() {
        assert_eq!(blocks(0), None);
        assert_eq!(blocks(1), Some(1));
        assert_eq!(blocks(4096 * 496), Some(496));
        assert_eq!(blocks(4096 * 496 + 1), None);
        assert_eq!(TABLE_OFF + 8 * MAX_BLOCKS, 4096);
        let payload: Vec<u8> = (0..3 * 4096 + 100u32)
            .map(|i| (i * 31 + i / 4096) as u8)
            .collect();
        let t = table_of(&payload).unwrap();
        assert_eq!(t.len(), 4 * 8);
        assert_eq!(
            &t[8..16],
            &PayloadSum::Xxh3.digest(&payload[4096..8192])[..]
        );
        assert_eq!(
            &t[24..32],
            &PayloadSum::Xxh3.digest(&payload[3 * 4096..])[..]
        );
        assert_eq!(first_mismatch(&t, 0, &payload), None);
        assert_eq!(first_mismatch(&t, 1, &payload[4096..]), None);
        let mut bad = payload.clone();
        bad[2 * 4096 + 7] ^= 1;
        assert_eq!(first_mismatch(&t, 0, &bad), Some(2));
        assert_eq!(first_mismatch(&t, 0, &bad[..8192]), None);
        // Blocks out of place do not match; beyond the table: a mismatch, never a panic.
        assert_eq!(first_mismatch(&t, 2, &payload[..8192]), Some(2));
        assert_eq!(first_mismatch(&t, 4, &payload[..10]), Some(4));
        assert!(has_table(&table_hash(&t)));
        assert!(!has_table(&[0; 6]));
    }

    #[test]
    fn header_bytes_98_to_104_carry_the_hash_in_rec2_only() {
        let mut h = RecordHeader::extent(0, 8192, 0, 8192, [3; 34]);
        h.block_table = [1, 2, 3, 4, 5, 6];
        assert_eq!(RecordHeader::parse(&h.to_bytes()).unwrap(), h);
        // FSCXREC1 keeps them reserved.
        let mut b = h.to_bytes();
        b[..8].copy_from_slice(RECORD_MAGIC_SHA256);
        let sum = checksum(&b[..112]);
        b[112..120].copy_from_slice(&sum);
        assert_eq!(
            RecordHeader::parse(&b),
            Err("nonzero reserved bytes in record header")
        );
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_recent_tables() {
        let t = Arc::new(vec![0u8; 4096]);
        let inst = u64::MAX - 7;
        for i in 0..2 * (TABLE_CACHE_BYTES / 4096) as u64 {
            cache_put((inst, i, [1; 6]), Arc::clone(&t));
            assert!(cache_get(&(inst, 0, [1; 6])).is_some(), "{i}");
        }
        let g = TABLES.lock().unwrap();
        assert!(g.as_ref().unwrap().bytes <= TABLE_CACHE_BYTES);
    }
}
