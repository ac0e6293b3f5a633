//! The one seeded generator of the generated histories (the demo, the tests' histories, the
//! benches' choices): xorshift64, so the same seed gives the same history on every run,
//! machine and engine, and no clock or operating-system randomness is read.

/// A xorshift64 generator (Marsaglia's 13, 7, 17). A seed of 0 would give only zeros, so it
/// counts as 1.
#[derive(Clone, Debug)]
pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Xorshift {
        Xorshift(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_xorshift64_and_fixed_for_a_seed() {
        // Marsaglia's xorshift64 (13, 7, 17) from 1: the first three outputs.
        let mut random = Xorshift::new(1);
        let first: Vec<u64> = (0..3).map(|_| random.next_u64()).collect();
        assert_eq!(
            first,
            [1082269761, 1152992998833853505, 11177516664432764457]
        );
        assert_eq!(Xorshift::new(0).next_u64(), Xorshift::new(1).next_u64());
        let mut again = Xorshift::new(42);
        let mut other = Xorshift::new(42);
        assert!((0..100).all(|_| again.below(7) == other.below(7)));
        assert!((0..100).all(|_| Xorshift::new(9).below(0) == 0));
    }
}
