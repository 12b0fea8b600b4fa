//! The `whatsup` binary: parses the command line and hands over to the library.

// mimalloc instead of glibc's malloc: the importer parses rows on one thread
// and frees them on another, and glibc's arenas spent a quarter of the
// import's CPU time in malloc/free/consolidate (measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Behave like other Unix tools when output is piped into `head`: end
    // quietly on a closed pipe instead of panicking in println!.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to the default before any
    // thread is started has no memory-safety implications.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    whatsup::cli::main()
}
