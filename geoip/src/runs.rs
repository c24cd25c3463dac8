//! One address family cut into runs: maximal intervals of addresses that
//! share a value.
//!
//! A geolocation database is a tree of networks, but what a DNS answer
//! needs is coarser: which addresses get the same place, the same ranking
//! of edges, the same answer. Kept as the sorted start addresses of runs
//! (each run ends where the next starts), a table of this kind is a binary
//! search away from any address, costs a few bytes per run, and merges
//! neighbours with equal values by construction; the widest prefix around
//! an address that stays inside its run is then exactly the ECS scope over
//! which the value holds ([`widest_prefix`]).

use std::fmt::Debug;

/// An address family as an unsigned integer: `u32` for IPv4, `u128` for IPv6.
pub trait Address: Copy + Ord + Eq + Debug + Send + Sync + 'static {
    /// Bits in an address.
    const BITS: u32;
    /// The first address.
    const ZERO: Self;
    /// The last address.
    const MAX: Self;
    /// Leading zero bits.
    fn leading_zeros(self) -> u32;
    /// Trailing zero bits (`BITS` for zero).
    fn trailing_zeros(self) -> u32;
    /// Bitwise exclusive or.
    fn xor(self, other: Self) -> Self;
    /// Bitwise complement.
    fn complement(self) -> Self;
    /// The next address, `None` after the last.
    fn next(self) -> Option<Self>;
    /// The previous address, `None` before the first.
    fn previous(self) -> Option<Self>;
    /// The last address of the network of `prefix_len` bits starting at `self`.
    fn network_end(self, prefix_len: u8) -> Self;
}

macro_rules! address {
    ($type:ty) => {
        impl Address for $type {
            const BITS: u32 = <$type>::BITS;
            const ZERO: Self = 0;
            const MAX: Self = <$type>::MAX;
            fn leading_zeros(self) -> u32 {
                <$type>::leading_zeros(self)
            }
            fn trailing_zeros(self) -> u32 {
                <$type>::trailing_zeros(self)
            }
            fn xor(self, other: Self) -> Self {
                self ^ other
            }
            fn complement(self) -> Self {
                !self
            }
            fn next(self) -> Option<Self> {
                self.checked_add(1)
            }
            fn previous(self) -> Option<Self> {
                self.checked_sub(1)
            }
            fn network_end(self, prefix_len: u8) -> Self {
                let host_bits = Self::BITS.saturating_sub(u32::from(prefix_len));
                self | <$type>::MAX
                    .checked_shr(Self::BITS - host_bits)
                    .unwrap_or(0)
            }
        }
    };
}
address!(u32);
address!(u128);

/// The longest prefix length `p` such that the network of `p` bits holding
/// `address` lies inside `[start, end]` (which must hold `address`): the
/// widest network around `address` that the run covers.
pub fn widest_prefix<A: Address>(start: A, end: A, address: A) -> u8 {
    let bits = A::BITS;
    // The network's first address stays at or above `start` when it keeps
    // the highest bit in which `address` is above `start`, or when `start`
    // is itself aligned to the network.
    let below = |low: A, address: A| -> u32 {
        let aligned = bits - low.trailing_zeros();
        if address == low {
            return aligned;
        }
        let highest = bits - 1 - address.xor(low).leading_zeros();
        aligned.min(bits - highest)
    };
    // The same for the last address and `end`, on the complements.
    let from_start = below(start, address);
    let from_end = below(end.complement(), address.complement());
    from_start.max(from_end) as u8
}

/// A run: `[start, end]` with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run<A, V> {
    /// First address.
    pub start: A,
    /// Last address.
    pub end: A,
    /// What every address in it has.
    pub value: V,
}

impl<A: Address, V> Run<A, V> {
    /// The widest network around `address` inside this run.
    pub fn widest_prefix(&self, address: A) -> u8 {
        widest_prefix(self.start, self.end, address)
    }
}

/// A whole address family as runs of equal values.
///
/// Invariants: the first run starts at zero, starts strictly increase, and
/// neighbouring runs have different values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runs<A, V> {
    starts: Vec<A>,
    values: Vec<V>,
}

impl<A: Address, V: Copy + Eq> Runs<A, V> {
    /// Every address with `value`.
    pub fn uniform(value: V) -> Self {
        Self {
            starts: vec![A::ZERO],
            values: vec![value],
        }
    }

    /// Number of runs.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Never true: a table always covers the whole family.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Bytes held by the table.
    pub fn heap_bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<A>()
            + self.values.capacity() * std::mem::size_of::<V>()
    }

    fn run_at(&self, index: usize) -> Run<A, V> {
        let end = match self.starts.get(index + 1) {
            Some(next) => next.previous().unwrap_or(A::ZERO),
            None => A::MAX,
        };
        Run {
            start: self.starts[index],
            end,
            value: self.values[index],
        }
    }

    /// The run holding `address`.
    pub fn find(&self, address: A) -> Run<A, V> {
        let index = self.starts.partition_point(|start| *start <= address);
        self.run_at(index.saturating_sub(1))
    }

    /// Every run, in address order.
    pub fn iter(&self) -> impl Iterator<Item = Run<A, V>> + '_ {
        (0..self.starts.len()).map(|index| self.run_at(index))
    }

    /// The same cut with each value replaced by `f(value)`; neighbours that
    /// become equal are merged.
    pub fn map<W: Copy + Eq>(&self, mut f: impl FnMut(V) -> W) -> Runs<A, W> {
        let mut builder = RunsBuilder::with_capacity(self.starts.len() / 4);
        for (start, value) in self.starts.iter().zip(&self.values) {
            builder.push(*start, f(*value));
        }
        builder.finish()
    }

    /// This table with `intervals` painted over it. The intervals must be
    /// sorted and disjoint, as `(first, last, value)`.
    pub fn overlay(&self, intervals: impl IntoIterator<Item = (A, A, V)>) -> Self {
        let mut builder = RunsBuilder::with_capacity(self.starts.len());
        // The next address not yet written, `None` once past the last.
        let mut next = Some(A::ZERO);
        let mut cursor = 0;
        for (first, last, value) in intervals {
            let Some(from) = next else { break };
            if let Some(before) = first.previous()
                && before >= from
            {
                self.copy_range(&mut builder, &mut cursor, from, before);
            }
            builder.push(first.max(from), value);
            next = last.next();
        }
        if let Some(from) = next {
            self.copy_range(&mut builder, &mut cursor, from, A::MAX);
        }
        builder.finish()
    }

    /// Writes this table's values for `[from, last]` into `builder`;
    /// `cursor` is the index of a run at or before `from`, moved forward.
    fn copy_range(&self, builder: &mut RunsBuilder<A, V>, cursor: &mut usize, from: A, last: A) {
        while *cursor + 1 < self.starts.len() && self.starts[*cursor + 1] <= from {
            *cursor += 1;
        }
        builder.push(from, self.values[*cursor]);
        while *cursor + 1 < self.starts.len() && self.starts[*cursor + 1] <= last {
            *cursor += 1;
            builder.push(self.starts[*cursor], self.values[*cursor]);
        }
    }
}

/// Builds [`Runs`] from runs pushed in address order.
#[derive(Debug)]
pub struct RunsBuilder<A, V> {
    starts: Vec<A>,
    values: Vec<V>,
}

impl<A: Address, V: Copy + Eq> RunsBuilder<A, V> {
    /// An empty builder with room for `capacity` runs.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            starts: Vec::with_capacity(capacity),
            values: Vec::with_capacity(capacity),
        }
    }

    /// Addresses from `start` on have `value`, until the next push. The
    /// first push must start at zero; a start at or before the last one
    /// replaces that run's value.
    pub fn push(&mut self, start: A, value: V) {
        if let Some(last) = self.starts.last()
            && start <= *last
        {
            self.starts.pop();
            self.values.pop();
        }
        if self.values.last() == Some(&value) {
            return;
        }
        self.starts.push(start);
        self.values.push(value);
    }

    /// The table. Panics in debug builds if the first push did not start at zero.
    pub fn finish(mut self) -> Runs<A, V> {
        debug_assert_eq!(self.starts.first(), Some(&A::ZERO));
        self.starts.shrink_to_fit();
        self.values.shrink_to_fit();
        Runs {
            starts: self.starts,
            values: self.values,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_widest(start: u32, end: u32, address: u32) -> u8 {
        (0..=32u8)
            .find(|&len| {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                let first = address & mask;
                let last = first | !mask;
                first >= start && last <= end
            })
            .unwrap()
    }

    #[test]
    fn widest_prefix_matches_brute_force() {
        let mut state = 0x1234_5678_u32;
        let mut random = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for _ in 0..20_000 {
            let (a, b, c) = (random(), random(), random());
            // Runs of every width: shift the bounds' spread.
            let spread = random() % 33;
            let a = a.checked_shr(spread).unwrap_or(0);
            let mut bounds = [a, a.wrapping_add(b.checked_shr(spread).unwrap_or(0)), c];
            bounds.sort();
            let (start, address, end) = (bounds[0], bounds[1], bounds[2]);
            assert_eq!(
                widest_prefix(start, end, address),
                brute_widest(start, end, address),
                "{start:#x} {address:#x} {end:#x}"
            );
        }
        assert_eq!(widest_prefix(0u32, u32::MAX, 12345), 0);
        assert_eq!(widest_prefix(7u32, 7, 7), 32);
        assert_eq!(widest_prefix(0u128, u128::MAX, 1), 0);
    }

    #[test]
    fn overlay_paints_and_merges() {
        let base: Runs<u32, u8> = Runs::uniform(0);
        let painted = base.overlay([(10, 19, 1), (20, 29, 1), (40, 49, 2)]);
        let runs: Vec<_> = painted.iter().map(|r| (r.start, r.end, r.value)).collect();
        assert_eq!(
            runs,
            vec![
                (0, 9, 0),
                (10, 29, 1),
                (30, 39, 0),
                (40, 49, 2),
                (50, u32::MAX, 0)
            ]
        );
        let again = painted.overlay([(5, 12, 3), (45, u32::MAX, 0)]);
        let runs: Vec<_> = again.iter().map(|r| (r.start, r.end, r.value)).collect();
        assert_eq!(
            runs,
            vec![
                (0, 4, 0),
                (5, 12, 3),
                (13, 29, 1),
                (30, 39, 0),
                (40, 44, 2),
                (45, u32::MAX, 0)
            ]
        );
        assert_eq!(again.find(13).value, 1);
        assert_eq!(again.find(u32::MAX).value, 0);
        let edge = base.overlay([(0, 0, 5), (u32::MAX, u32::MAX, 6)]);
        let runs: Vec<_> = edge.iter().map(|r| (r.start, r.end, r.value)).collect();
        assert_eq!(
            runs,
            vec![(0, 0, 5), (1, u32::MAX - 1, 0), (u32::MAX, u32::MAX, 6)]
        );
    }

    #[test]
    fn map_merges_neighbours() {
        let runs: Runs<u32, u8> = Runs::uniform(0).overlay([(10, 19, 1), (20, 29, 2)]);
        let merged = runs.map(|value| value.min(1));
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.find(25).start, 10);
        assert_eq!(merged.find(25).end, 29);
        assert_eq!(merged.find(30).value, 0);
    }

    #[test]
    fn network_end() {
        assert_eq!(0x0a00_0000u32.network_end(8), 0x0aff_ffff);
        assert_eq!(5u32.network_end(32), 5);
        assert_eq!(0u32.network_end(0), u32::MAX);
        assert_eq!(0u128.network_end(0), u128::MAX);
    }
}
