//! The one source of randomness for keys, nonces and tokens: the operating
//! system's generator. There is no fallback: without it nothing can be sealed.

/// Fills `buf` from the operating system's random source.
///
/// # Panics
///
/// If the operating system cannot supply random bytes (on Linux only before
/// the entropy pool is first initialised, and then `getrandom` blocks
/// instead); sealing with predictable keys would be worse than stopping.
pub(crate) fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}
