//! The async runtime both managers run on.

/// Stack size of the runtime's worker threads. Tokio's default is 2 MiB. A reconcile nests
/// many futures (controller stream, finalizer, fetch, build, apply), and a debug build keeps
/// large copies of them on the stack while polling: a debug control-plane provider overflowed
/// 2 MiB once in 30 restarts of the fault tests (2026-12-04). The stack is reserved, not
/// touched: only the pages a thread uses count towards its memory.
pub const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// A multi-threaded runtime with every driver enabled and [`WORKER_STACK_BYTES`] stacks.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK_BYTES)
        .build()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn workers_run_with_the_larger_stack() {
        // A task that needs more than tokio's default 2 MiB of stack runs to completion.
        fn deep(n: usize) -> usize {
            let buf = [n as u8; 4096];
            if n == 0 {
                return usize::from(buf[0]);
            }
            std::hint::black_box(&buf);
            deep(n - 1) + 1
        }
        let rt = build().unwrap();
        let depth = rt.block_on(async { tokio::spawn(async { deep(1000) }).await.unwrap() });
        assert_eq!(depth, 1000);
    }
}
