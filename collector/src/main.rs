//! `pathlight`: the collector's command line (`cli/`). See `pathlight --help`.

// Ingest allocates a few dozen short-lived strings per event on tokio's threads and frees them
// on the same ones: with mimalloc's per-thread free lists the collector spent 13–18 % less CPU
// per event at full rate than with glibc's arenas (bench/results/limits.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    pathlight_collector::cli::main()
}
