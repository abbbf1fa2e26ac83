//! The `weir` binary.

/// mimalloc rather than glibc's allocator: a request allocates many small
/// short-lived objects across threads, which glibc serves markedly slower
/// (measured in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    weir::tooling::cli::main()
}
