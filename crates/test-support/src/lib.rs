//! Helpers for integration tests against the real API server started by `test/harness`.
