//! End-to-end tests of ferrolb against the real testbed live in `tests/`; this crate has no
//! library code. They need root and network namespaces: run them with `scripts/test`.
