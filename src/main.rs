//! The `whatsup` binary: parses the command line and hands over to the library.

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
