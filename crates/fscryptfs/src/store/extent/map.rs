//! The in-memory extent map of one file: logical byte ranges → runs of stored ciphertext units.
//! Pure arithmetic, no I/O, so it is tested on its own.
//!
//! Invariants: pieces do not overlap; every piece starts on a data-unit boundary; a piece may end
//! inside a unit (after a truncation, or at end of file), and the bytes of that unit beyond its end
//! read as zeros; no piece ends beyond `size`.

use std::collections::BTreeMap;

/// A mapped logical range `[start, end)` (start is the map key): unit `unit` of run `run` holds
/// the data unit that begins at `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// End of the logical range (exclusive).
    pub end: u64,
    /// Index of the run in the file's run table.
    pub run: usize,
    /// Index, within the run, of the unit that starts at the piece's start.
    pub unit: u64,
}

/// The map and the logical size.
#[derive(Clone, Debug, Default)]
pub struct Map {
    pieces: BTreeMap<u64, Piece>,
    size: u64,
}

impl Map {
    /// The logical size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many pieces the map has.
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// Every piece in logical order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Piece)> + '_ {
        self.pieces.iter().map(|(&s, &p)| (s, p))
    }

    /// The pieces overlapping `[a, b)`, in order.
    pub fn overlapping(&self, a: u64, b: u64) -> Vec<(u64, Piece)> {
        let mut out = Vec::new();
        if a >= b {
            return out;
        }
        if let Some((&s, &p)) = self.pieces.range(..a).next_back() {
            if p.end > a {
                out.push((s, p));
            }
        }
        out.extend(self.pieces.range(a..b).map(|(&s, &p)| (s, p)));
        out
    }

    /// Unmaps `[a, b)`; `a` is unit-aligned and `b` is unit-aligned or no piece extends beyond it.
    pub fn unmap(&mut self, a: u64, b: u64, du: u64) {
        for (s, p) in self.overlapping(a, b) {
            self.pieces.remove(&s);
            if s < a {
                self.pieces.insert(
                    s,
                    Piece {
                        end: a.min(p.end),
                        ..p
                    },
                );
            }
            if p.end > b {
                self.pieces.insert(
                    b,
                    Piece {
                        end: p.end,
                        run: p.run,
                        unit: p.unit + (b - s) / du,
                    },
                );
            }
        }
    }

    /// An extent-like mapping: `[start, end)` comes from `run` starting at its unit `unit`;
    /// whole units `[start, round_up(end))` are replaced. Grows the size to `end`.
    pub fn map(&mut self, start: u64, end: u64, run: usize, unit: u64, du: u64) {
        let unit_end = end.div_ceil(du).saturating_mul(du);
        self.unmap(start, unit_end, du);
        self.pieces.insert(start, Piece { end, run, unit });
        self.size = self.size.max(end);
    }

    /// Sets the size; everything at or beyond `len` is dropped.
    pub fn truncate(&mut self, len: u64) {
        if len < self.size {
            for (s, p) in self.overlapping(len, u64::MAX) {
                self.pieces.remove(&s);
                if s < len {
                    self.pieces.insert(s, Piece { end: len, ..p });
                }
            }
        }
        self.size = len;
    }

    /// Checks the invariants; the first violation as text.
    pub fn check(&self, du: u64) -> std::result::Result<(), String> {
        let mut prev_end = 0;
        for (s, p) in self.iter() {
            if s % du != 0 {
                return Err(format!("map piece at {s} is not unit-aligned"));
            }
            if p.end <= s || s < prev_end {
                return Err(format!("map piece at {s} overlaps or is empty"));
            }
            if p.end > self.size {
                return Err(format!(
                    "map piece at {s} ends beyond the size {}",
                    self.size
                ));
            }
            prev_end = p.end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The map against a per-byte model of (run, unit-in-run) owners.
    #[test]
    fn matches_a_byte_model() {
        let du = 16u64;
        let mut x = 99u64;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..200 {
            let mut m = Map::default();
            let mut model: Vec<Option<(usize, u64)>> = Vec::new();
            for run in 0..40usize {
                match rnd(3) {
                    0 | 1 => {
                        let start = rnd(20) * du;
                        let end = start + 1 + rnd(4 * du);
                        m.map(start, end, run, 0, du);
                        if model.len() < end as usize {
                            model.resize(end as usize, None);
                        }
                        let ue = (end.div_ceil(du) * du).min(model.len() as u64);
                        for i in start..ue {
                            model[i as usize] = (i < end).then_some((run, (i - start) / du));
                        }
                    }
                    _ => {
                        let len = rnd(24 * du);
                        m.truncate(len);
                        model.resize(len as usize, None);
                    }
                }
                m.check(du).unwrap();
                assert_eq!(m.size(), model.len() as u64);
                let mut got = vec![None; model.len()];
                for (s, p) in m.iter() {
                    for i in s..p.end {
                        got[i as usize] = Some((p.run, p.unit + (i - s) / du));
                    }
                }
                assert_eq!(got, model);
            }
        }
    }
}
